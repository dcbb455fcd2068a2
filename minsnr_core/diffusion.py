"""Forward noising, the three prediction targets, conversions between them, and the weighted loss.

VP diffusion (Ho et al. 2020): x_t = α·x0 + σ·ε with α² + σ² = 1; velocity v = α·ε − σ·x0
(Salimans & Ho 2022, arXiv 2202.00512). Rectified flow (process "rf"): x_t = (1 − t)·x0 + t·ε with α = 1 − t,
σ = t; velocity v = dx_t/dt = ε − x0 (Liu et al. 2022, arXiv 2209.03003). Given x_t, any one of ε, x0, v
determines the other two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .schedules import Schedule
from .weighting import check_process, check_target, schedule_weights


def check_target_fits(target: str, schedule: Schedule) -> None:
    """Refuse the ε target where the schedule reaches SNR = 0 (zero terminal SNR, rectified flow's t = 1): there
    x0 = (x_t − σ·ε)/α divides by α = 0 (Lin et al. 2023, Sec. 3.2)."""
    check_target(target)
    if target == "eps" and bool((schedule.snr == 0).any()):
        raise ValueError(f"target 'eps' cannot be trained or sampled on schedule {schedule.name!r}: its last step "
                         "has SNR = 0, where x0 = (x_t − σ·ε)/α divides by α = 0; use target 'v' or 'x0'")


def _broadcast(coefficient: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Shape a per-sample coefficient (B,) so that it multiplies a (B, …) tensor."""
    return coefficient.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def q_sample(x0: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x_t = α·x0 + σ·ε (per-sample α, σ of shape (B,))."""
    return _broadcast(alpha, x0) * x0 + _broadcast(sigma, x0) * noise


def training_target(
    target: str, x0: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
    process: str = "vp",
) -> torch.Tensor:
    """What a model predicting ``target`` should output: ε, x0, or v (α·ε − σ·x0; rectified flow: ε − x0)."""
    check_target(target)
    check_process(process)
    if target == "eps":
        return noise
    if target == "x0":
        return x0
    if process == "rf":
        return noise - x0
    return _broadcast(alpha, x0) * noise - _broadcast(sigma, x0) * x0


def convert_prediction(
    prediction: torch.Tensor, source: str, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
    process: str = "vp",
) -> dict[str, torch.Tensor]:
    """Express a prediction in ``source`` space as all three: {"eps", "x0", "v"}.

    From ε, x0 = (x_t − σ·ε)/α needs α > 0; from x0, ε = (x_t − α·x0)/σ needs σ > 0. From v both are
    always defined: VP x0 = α·x_t − σ·v, ε = σ·x_t + α·v; rectified flow (α = 1 − t, σ = t, α + σ = 1)
    x0 = x_t − σ·v, ε = x_t + α·v.
    """
    check_target(source)
    check_process(process)
    a, s = _broadcast(alpha, x_t), _broadcast(sigma, x_t)
    if source == "eps":
        eps = prediction
        x0 = (x_t - s * eps) / a
    elif source == "x0":
        x0 = prediction
        eps = (x_t - a * x0) / s
    elif process == "rf":
        x0 = x_t - s * prediction
        eps = x_t + a * prediction
    else:
        x0 = a * x_t - s * prediction
        eps = s * x_t + a * prediction
    if source == "v":
        v = prediction
    else:
        v = eps - x0 if process == "rf" else a * eps - s * x0
    return {"eps": eps, "x0": x0, "v": v}


def weighted_mse(
    prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted mean loss, per-sample unweighted MSE); the per-sample values let callers bucket by t."""
    per_sample = (prediction.float() - target.float()).pow(2).flatten(1).mean(dim=1)
    return (weights.to(per_sample.dtype) * per_sample).mean(), per_sample


@dataclass
class Diffusion:
    """A schedule plus a prediction target and a weighting, with per-timestep arrays ready for training.

    The weights w_t are computed once for all T steps (float64, then cast), so a training step only indexes.
    """

    schedule: Schedule
    target: str = "eps"
    weighting: str = "min_snr"
    weighting_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_target_fits(self.target, self.schedule)
        self.weights = schedule_weights(self.weighting, self.schedule, self.target, **self.weighting_params)
        self.alphas = self.schedule.alphas
        self.sigmas = self.schedule.sigmas

    @property
    def num_timesteps(self) -> int:
        return self.schedule.num_timesteps

    def to(self, device: torch.device | str) -> Diffusion:
        """Keep float32 copies of the per-step arrays on ``device`` (indexing stays on-device)."""
        self.alphas = self.schedule.alphas.to(device=device, dtype=torch.float32)
        self.sigmas = self.schedule.sigmas.to(device=device, dtype=torch.float32)
        self.weights = self.weights.to(device=device, dtype=torch.float32)
        return self

    def loss(
        self,
        model: torch.nn.Module,
        x0: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        labels: torch.Tensor | None = None,
        loss_factor: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise x0 at steps t, run the model (given class ``labels`` if any), return (weighted mean, per-sample
        unweighted MSE). ``loss_factor`` multiplies each sample's weight (an importance sampler's 1/(T·p_t))."""
        x_t = self.noised(x0, t, noise)
        prediction = model(x_t, t) if labels is None else model(x_t, t, labels)
        return self.prediction_loss(prediction, x0, t, noise, loss_factor)

    def noised(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The model's input x_t at steps t (:func:`q_sample`)."""
        return q_sample(x0, noise, self.alphas[t], self.sigmas[t])

    def prediction_loss(
        self, prediction: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
        loss_factor: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss of :meth:`loss` for a model's ``prediction`` of x_t = :meth:`noised` (several runs' models can
        then predict in one batched call): (weighted mean, per-sample unweighted MSE)."""
        alpha, sigma = self.alphas[t], self.sigmas[t]
        target = training_target(self.target, x0, noise, alpha, sigma, self.schedule.process)
        weights = self.weights[t] if loss_factor is None else self.weights[t] * loss_factor
        return weighted_mse(prediction, target, weights)
