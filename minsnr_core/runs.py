"""A finished (or stopped) run as something to sample from: the one path from a run folder to samples that
``minsnr-sample``, the app's Denoise tab and the benchmarks share.

    run = load_run("runs/mnist")
    samples, _ = run.sample(1000, "ddim", 50, seed=0)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel

from .checkpoint import CheckpointError, load_checkpoint
from .config import TrainConfig, check_sampling_guidance, resolve_device, saved_config
from .data import sample_clip
from .diffusion import Diffusion
from .models import build_model, global_generator
from .sampling import Trajectory, balanced_labels, sample
from .schedules import get_schedule


@dataclass
class LoadedRun:
    """The EMA model of a run, its diffusion process, config and the shape of one sample, on ``device``."""

    model: torch.nn.Module
    diffusion: Diffusion
    config: TrainConfig
    shape: tuple[int, ...]
    device: torch.device

    @property
    def num_classes(self) -> int:
        return int(getattr(self.model, "num_classes", 0))

    def sample(
        self,
        n: int,
        sampler: str = "ddim",
        steps: int = 50,
        *,
        seed: int = 0,
        label: int | None = None,
        unconditional: bool = False,
        guidance: float | None = None,
        eta: float | None = None,
        batch: int | None = 250,
        return_trajectory: bool = False,
    ) -> tuple[torch.Tensor, Trajectory | None]:
        """``n`` samples. A class-conditional run draws every class in turn (or only ``label``, or none with
        ``unconditional``) with the run's guidance and DDIM η unless given; samples are clipped to the data range."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer ≥ 1, got {n!r}")
        if label is not None and unconditional:
            raise ValueError("label and unconditional exclude each other")
        labels = None if unconditional else balanced_labels(n, self.num_classes)
        if label is not None:
            if not self.num_classes:
                raise ValueError("label: this run was trained without class labels")
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < self.num_classes:
                raise ValueError(f"label must be in [0, {self.num_classes - 1}], got {label!r}")
            labels = torch.full((n,), label)
        guidance = self.config.guidance if guidance is None else float(guidance)
        check_sampling_guidance(self.config, guidance, unconditional)
        kwargs = {"eta": self.config.sample_eta if eta is None else eta} if sampler == "ddim" else {}
        generator = torch.Generator(device=self.device).manual_seed(seed)
        samples, trajectory = sample(self.model, self.diffusion, (n, *self.shape), sampler, steps,
                                     batch=None if return_trajectory else batch, labels=labels, generator=generator,
                                     device=self.device, clip=sample_clip(self.config.kind), guidance=guidance,
                                     return_trajectory=return_trajectory, **kwargs)
        return samples.cpu(), trajectory


def load_run(path: str | Path, device: str = "auto") -> LoadedRun:
    """The run in a run folder (or a checkpoint file), ready to sample on ``device``."""
    state = load_checkpoint(path)
    config = dataclasses.replace(saved_config(state), device=device).resolved()  # sampled where it is loaded
    try:
        shape = tuple(state["shape"])
        num_classes = int(state.get("num_classes", 0))  # checkpoints from before class conditioning have none
        with global_generator():  # its weights are loaded below; its build must not disturb a seeded one
            model = build_model(config.model, state["channels"], num_classes, tuple(shape[1:]) or None)
        ema = AveragedModel(model)
        ema.load_state_dict(state["ema"])
    except (KeyError, RuntimeError, TypeError) as error:
        raise CheckpointError(f"{path}: checkpoint does not match its model ({error})") from None
    dev = resolve_device(device)
    diffusion = Diffusion(get_schedule(config.schedule, config.timesteps, zero_terminal_snr=config.zero_terminal_snr,
                                       shift=config.schedule_shift),
                          config.target, config.weighting, config.weighting_params).to(dev)
    return LoadedRun(ema.module.to(dev).eval(), diffusion, config, shape, dev)
