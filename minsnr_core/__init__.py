"""minsnr_core: schedules, weightings, losses, models, samplers and the training loop of minsnr.

A reading order, from the formulas to a run (each module's docstring says more):

1. ``schedules``: the noise schedules and every array derived from them (ᾱ_t, SNR, log-SNR), in one place.
2. ``weighting``: the loss weightings of the literature, each once as its x0-space weight; ``loss_weight``
   converts it to the ε and v spaces. ``registry`` holds the name → entry tables they and the others use.
3. ``timesteps`` and ``adaptive``: how a step draws its timesteps, and weightings learned while training.
4. ``diffusion``: noising, the three prediction targets, and the weighted loss.
5. ``models`` and ``data``: the UNet and toy MLP, and the datasets as one tensor in [−1, 1].
6. ``settings`` and ``config``: the table of every run setting, and ``TrainConfig``, built and checked from it.
7. ``steps`` (a run's state, batches and its one optimisation step), ``cuda_graph`` (that step replayed as a CUDA
   graph), ``training`` (``train``: the loop, top to bottom, yielding progress events), ``checkpoint``, ``recorder``.
8. ``sampling`` and ``runs``: DDPM and DDIM, and a finished run as something to sample from.
9. ``metrics``, ``experiment``, ``stats``, ``report``: scoring samples, the grid of paired runs, its statistics and
   figures. ``multitask``: the paper's multi-task view. ``cli``: the command-line tools. ``images``: pictures.
"""

from .diffusion import Diffusion, convert_prediction, q_sample, training_target, weighted_mse
from .schedules import Schedule, get_schedule, list_schedules
from .weighting import TARGETS, effective_weight, list_strategies, loss_weight

__all__ = [
    "TARGETS",
    "Diffusion",
    "Schedule",
    "convert_prediction",
    "effective_weight",
    "get_schedule",
    "list_schedules",
    "list_strategies",
    "loss_weight",
    "q_sample",
    "training_target",
    "weighted_mse",
]
