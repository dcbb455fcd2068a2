"""Samplers: DDPM ancestral and DDIM, for ε-, x0- and v-predicting models alike.

Both are the generalized step of Song et al. 2021 (DDIM, arXiv 2010.02502, Eq. 12) over a subsequence τ of the
training steps, written for any x_t = α_t·x0 + σ_t·ε: from x_t, predict x̂0 and ε̂, then
    x_s = α_s·x̂0 + √(σ_s² − c²)·ε̂ + c·z,   c = η·(σ_s/σ_t)·√(σ_t² − (α_t/α_s)²·σ_s²).
For VP diffusion (α² = ᾱ, σ² = 1 − ᾱ) this is DDIM's c = η·√((1 − ᾱ_s)/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_s).
η = 1 over all T steps is DDPM's ancestral sampler (Ho et al. 2020; for rectified flow the same posterior step of
its Gaussian x_t); η = 0 is deterministic DDIM. For rectified flow (α = 1 − t, σ = t) the η = 0 step is exactly
the Euler step of the flow ODE, x_s = x_t + (s − t)·v̂ with v̂ = ε̂ − x̂0.
x̂0 is clipped to [−clip, clip] (images: 1, the data range). Near t = T the conversion ε̂ → x̂0 divides by
α_T ≈ 5e-5 (cosine), so an unclipped x̂0 amplifies small ε errors without bound.

A class-conditional model takes ``labels``; ``guidance`` w is classifier-free guidance (Ho & Salimans 2022,
arXiv 2207.12598): the prediction is  uncond + w·(cond − uncond), with uncond the model's output for the "no label"
index. w = 1 is the plain conditional model, w > 1 trades diversity for fidelity to the class. The mix is taken in
the model's own space (ε, x0 or v); for a fixed x_t each space is an affine function of the others, so it is the
same guidance in all three.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .diffusion import Diffusion, convert_prediction


@dataclass
class Trajectory:
    """Per sampling step: the timestep, x_t, and the model's x̂0 and ε̂ at that step (all on CPU)."""

    timesteps: list[int]
    x_t: list[torch.Tensor]
    x0_pred: list[torch.Tensor]
    eps_pred: list[torch.Tensor]


def sampling_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` evenly spaced training steps from T−1 down to 0 (DDIM's "trailing" spacing keeps T−1)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= num_timesteps:
        raise ValueError(f"sample steps must be an integer in [1, {num_timesteps}], got {steps!r}")
    grid = torch.linspace(num_timesteps - 1, 0, steps).round().long().tolist()
    return list(dict.fromkeys(grid))


def check_guidance(guidance: float) -> None:
    if isinstance(guidance, bool) or not isinstance(guidance, int | float) or not 0 <= guidance < float("inf"):
        raise ValueError(f"guidance must be a number ≥ 0, got {guidance!r}")


def check_labels(model: torch.nn.Module, labels: torch.Tensor | None, count: int, guidance: float) -> None:
    """Clear errors for labels or guidance that do not fit the model."""
    check_guidance(guidance)
    num_classes = getattr(model, "num_classes", 0)
    if labels is None:
        return
    if not num_classes:
        raise ValueError("labels given, but this model was trained without class labels")
    if labels.shape != (count,) or labels.dtype != torch.long:
        raise ValueError(f"labels must be an int64 tensor of shape ({count},), got {labels.dtype} {tuple(labels.shape)}")
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < num_classes):
        raise ValueError(f"labels must be in [0, {num_classes - 1}], got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")


def balanced_labels(count: int, num_classes: int) -> torch.Tensor | None:
    """0, 1, …, K−1, 0, 1, … — the classes in turn, what previews, the metric and ``minsnr-sample`` ask a
    class-conditional model for; None for an unconditional one (K = 0)."""
    return torch.arange(count) % num_classes if num_classes else None


def _predict(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
             guidance: float) -> torch.Tensor:
    if labels is None:
        return model(x, t).float()
    if guidance == 1:
        return model(x, t, labels).float()
    unconditional = torch.full_like(labels, model.num_classes)
    cond, uncond = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, unconditional])).float().chunk(2)
    return uncond + guidance * (cond - uncond)


class SamplingStopped(Exception):
    """Sampling was asked to stop (a training run's Stop pressed during a preview or quality measurement)."""


@torch.no_grad()
def _generalized_sample(
    model: torch.nn.Module,
    diffusion: Diffusion,
    shape: tuple[int, ...],
    steps: int,
    eta: float,
    generator: torch.Generator | None,
    device: torch.device | str,
    clip: float | None,
    return_trajectory: bool,
    labels: torch.Tensor | None,
    guidance: float,
    stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, Trajectory | None]:
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta!r}")
    check_labels(model, labels, shape[0], guidance)
    if labels is not None:
        labels = labels.to(device)
    schedule = diffusion.schedule
    # Float64 coefficients, with the clean end (α = 1, σ = 0) after the last step.
    alphas = torch.cat([schedule.alphas, torch.ones(1, dtype=torch.float64)])
    sigmas = torch.cat([schedule.sigmas, torch.zeros(1, dtype=torch.float64)])
    x = torch.randn(shape, generator=generator, device=device)
    trajectory = Trajectory([], [], [], []) if return_trajectory else None
    timesteps = sampling_timesteps(diffusion.num_timesteps, steps)
    for i, t in enumerate(timesteps):
        if stop is not None and stop():
            raise SamplingStopped(f"stopped at sampling step {i + 1} of {len(timesteps)}")
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        a_t, s_t, a_s, s_s = (float(v) for v in (alphas[t], sigmas[t], alphas[s], sigmas[s]))
        t_batch = torch.full((shape[0],), t, device=device, dtype=torch.long)
        alpha, sigma = torch.full((shape[0],), a_t, device=device), torch.full((shape[0],), s_t, device=device)
        pred = convert_prediction(_predict(model, x, t_batch, labels, guidance), diffusion.target, x, alpha, sigma,
                                  schedule.process)
        x0 = pred["x0"].clamp(-clip, clip) if clip else pred["x0"]
        # Recompute ε̂ from the (clipped) x̂0 so the step stays on the line through x_t.
        eps = (x - a_t * x0) / max(s_t, 1e-8)
        if trajectory is not None:
            trajectory.timesteps.append(t)
            for store, value in ((trajectory.x_t, x), (trajectory.x0_pred, x0), (trajectory.eps_pred, eps)):
                store.append(value.cpu())
        c = eta * s_s / s_t * max(s_t**2 - (a_t / a_s) ** 2 * s_s**2, 0.0) ** 0.5
        x = a_s * x0 + max(s_s**2 - c**2, 0.0) ** 0.5 * eps
        if eta > 0 and i + 1 < len(timesteps):
            x = x + c * torch.randn(shape, generator=generator, device=device)
    return x, trajectory


def ddpm_sample(
    model: torch.nn.Module,
    diffusion: Diffusion,
    shape: tuple[int, ...],
    steps: int | None = None,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    clip: float | None = 1.0,
    return_trajectory: bool = False,
    labels: torch.Tensor | None = None,
    guidance: float = 1.0,
    stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, Trajectory | None]:
    """DDPM ancestral sampling (η = 1) over ``steps`` steps (default: all T). ``stop``: checked before each step;
    when it returns True, :class:`SamplingStopped` is raised."""
    steps = diffusion.num_timesteps if steps is None else steps
    return _generalized_sample(model, diffusion, shape, steps, 1.0, generator, device, clip, return_trajectory,
                               labels, guidance, stop)


def ddim_sample(
    model: torch.nn.Module,
    diffusion: Diffusion,
    shape: tuple[int, ...],
    steps: int = 50,
    eta: float = 0.0,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    clip: float | None = 1.0,
    return_trajectory: bool = False,
    labels: torch.Tensor | None = None,
    guidance: float = 1.0,
    stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, Trajectory | None]:
    """DDIM sampling over ``steps`` steps with stochasticity ``eta`` (0 = deterministic). ``stop``: as for DDPM."""
    return _generalized_sample(model, diffusion, shape, steps, eta, generator, device, clip, return_trajectory,
                               labels, guidance, stop)


SAMPLERS = {"ddpm": ddpm_sample, "ddim": ddim_sample}


def sample(
    model: torch.nn.Module,
    diffusion: Diffusion,
    shape: tuple[int, ...],
    sampler: str = "ddim",
    steps: int = 50,
    *,
    batch: int | None = None,
    labels: torch.Tensor | None = None,
    **kwargs,
) -> tuple[torch.Tensor, Trajectory | None]:
    """Dispatch by name: ``sampler`` is "ddpm" or "ddim". ``batch`` draws the samples that many at a time (one
    generator, in order; the result is on the CPU), a trajectory only in one batch."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    if batch is None or batch >= shape[0]:
        return SAMPLERS[sampler](model, diffusion, shape, steps, labels=labels, **kwargs)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer ≥ 1, got {batch!r}")
    if kwargs.get("return_trajectory"):
        raise ValueError("return_trajectory needs all samples in one batch")
    chunks = [SAMPLERS[sampler](model, diffusion, (len(index), *shape[1:]), steps,
                                labels=None if labels is None else labels[index], **kwargs)[0].cpu()
              for index in torch.arange(shape[0]).split(batch)]
    return torch.cat(chunks), None
