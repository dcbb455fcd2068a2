"""minsnr_core: schedules, weightings, losses, models, samplers and the training loop of minsnr."""

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
