"""Loss weightings that adapt during training, on top of a fixed weighting w(t).

**EDM2's learned uncertainty weighting** (Karras et al. 2024, arXiv 2312.02696, Sec. 5): each sample's weighted loss
is divided by e^{u(t)} and u(t) is added, L = w(t)·ℓ/e^{u(t)} + u(t), with u a small network of the noise level
trained together with the model. For a fixed model the optimum is e^{u(t)} = E[w(t)·ℓ | t], so the effective weight
w(t)/e^{u(t)} makes every noise level's expected loss 1 (the homoscedastic uncertainty weighting of Kendall et al.
2018). u's input is the log-SNR λ (EDM2 uses ln σ = −λ/2), through fixed Fourier features.

**Loss-bucket EMA weighting** (Stable Cascade's adaptive loss weight, Würstchen, Pernias et al. 2024, arXiv
2306.00637): the log-SNR range split into buckets, an exponential moving average of the weighted loss per bucket,
and the factor 1/EMA — the same normalisation, estimated by averaging instead of learning.

Each is a registry entry (name, formula, parameters, reference); :func:`build_adaptive` makes the module a run uses.
Its :meth:`AdaptiveWeighting.factor` multiplies the fixed weight w(t), :meth:`~AdaptiveWeighting.curve` gives that
factor at every step for plots.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .registry import Entry, Param, Registry
from .schedules import Schedule

ADAPTIVE_WEIGHTINGS: Registry[Entry] = Registry("adaptive weighting")


class AdaptiveWeighting(nn.Module):
    """A per-step factor on the fixed weight, adapted during training. The base class is the identity (``none``)."""

    def __init__(self, schedule: Schedule) -> None:
        super().__init__()
        lam = schedule.log_snr.clone()
        finite = torch.isfinite(lam)
        # SNR = 0 (zero terminal SNR) has λ = −∞: give it the lowest finite λ minus one, a finite input.
        low = float(lam[finite].min()) if finite.any() else 0.0
        lam[~finite] = low - 1.0
        self.register_buffer("log_snr", lam.float())

    def factor(self, t: torch.Tensor) -> torch.Tensor:
        """The multiplier on w(t) for each sample (differentiable where it is learned)."""
        return torch.ones(t.shape, device=t.device)

    def regulariser(self, t: torch.Tensor) -> torch.Tensor:
        """A per-sample term added to the loss (EDM2's u(t)); 0 otherwise."""
        return torch.zeros(t.shape, device=t.device)

    def observe(self, t: torch.Tensor, weighted_losses: torch.Tensor) -> None:
        """Learn from the batch's weighted losses w(t)·ℓ (the EMA weighting); nothing otherwise."""

    @torch.no_grad()
    def curve(self) -> torch.Tensor:
        """The factor at every step 0 … T−1 (float64, on the CPU)."""
        steps = torch.arange(len(self.log_snr), device=self.log_snr.device)
        return self.factor(steps).double().cpu()


class UncertaintyWeighting(AdaptiveWeighting):
    """EDM2: u(λ) = a linear map of fixed Fourier features of λ/8; factor e^{−u}, regulariser u."""

    def __init__(self, schedule: Schedule, u_features: float = 16, seed: int = 0) -> None:
        super().__init__(schedule)
        count = int(u_features)
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("frequencies", torch.randn(count, generator=generator))
        self.register_buffer("phases", torch.rand(count, generator=generator))
        self.linear = nn.utils.skip_init(nn.Linear, count, 1)  # no draw from torch's global generator
        nn.init.zeros_(self.linear.weight)  # u = 0 at the start: the fixed weighting unchanged
        nn.init.zeros_(self.linear.bias)

    def log_variance(self, t: torch.Tensor) -> torch.Tensor:
        x = self.log_snr[t].unsqueeze(-1) / 8
        features = torch.cos(2 * math.pi * (x * self.frequencies + self.phases)) * math.sqrt(2)
        return self.linear(features).squeeze(-1)

    def factor(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.log_variance(t))

    def regulariser(self, t: torch.Tensor) -> torch.Tensor:
        return self.log_variance(t)


class BucketEMAWeighting(AdaptiveWeighting):
    """Stable Cascade: ``loss_buckets`` equal ranges of λ over the schedule, an EMA (``loss_decay``) of the weighted loss in each,
    factor 1/EMA (1 until a bucket has seen a loss)."""

    def __init__(self, schedule: Schedule, loss_buckets: float = 20, loss_decay: float = 0.99) -> None:
        super().__init__(schedule)
        count = int(loss_buckets)
        lam = self.log_snr
        edges = torch.linspace(float(lam.min()), float(lam.max()), count + 1)[1:-1]
        self.register_buffer("bucket_of_step", torch.bucketize(lam, edges))
        self.register_buffer("ema", torch.ones(count))
        self.register_buffer("seen", torch.zeros(count, dtype=torch.bool))
        self.decay = float(loss_decay)

    def factor(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 / self.ema[self.bucket_of_step[t]]

    @torch.no_grad()
    def observe(self, t: torch.Tensor, weighted_losses: torch.Tensor) -> None:
        buckets = self.bucket_of_step[t]
        count = len(self.ema)
        totals = torch.zeros(count, device=buckets.device).index_add_(0, buckets, weighted_losses.float())
        counts = torch.bincount(buckets, minlength=count)
        hit = counts > 0
        means = totals[hit] / counts[hit]
        # The first loss a bucket sees starts its average; later ones move it by 1 − decay.
        start = hit & ~self.seen
        self.ema[start] = means[start[hit]]
        moving = hit & self.seen
        self.ema[moving] = self.decay * self.ema[moving] + (1 - self.decay) * means[moving[hit]]
        self.ema.clamp_(min=1e-12)  # a zero loss must not make an infinite weight
        self.seen |= hit


def _register(name: str, display: str, latex: str, description: str, reference: str, cls: type,
              params: tuple[Param, ...] = ()) -> None:
    ADAPTIVE_WEIGHTINGS.register(Entry(name, display, latex, description, reference, cls, params))


_register("none", "None (the fixed weighting)", r"w(t)", "The weighting as chosen, unchanged.", "", AdaptiveWeighting)
_register(
    "edm2", "EDM2 learned (uncertainty)", r"\frac{w(t)}{e^{u(t)}}\,\ell + u(t)",
    "A small network u(t) learns the expected weighted loss at each noise level and divides by it: every level "
    "ends with the same expected loss.", "Karras et al. 2024, arXiv 2312.02696", UncertaintyWeighting,
    (Param("u_features", 16, 1, 256, "Fourier features of u's input", step=1, integer=True),),
)
_register(
    "loss_ema", "Loss-bucket EMA", r"\frac{w(t)}{\mathrm{EMA}_{b(t)}[w\,\ell]}",
    "The running mean of the weighted loss in each log-SNR bucket, and its inverse as the factor.",
    "Pernias et al. 2024 (Würstchen / Stable Cascade), arXiv 2306.00637", BucketEMAWeighting,
    (Param("loss_buckets", 20, 1, 1000, "log-SNR buckets", step=1, integer=True),
     Param("loss_decay", 0.99, 0.0, 1.0, "EMA decay per batch (below 1: 1 never learns)", step=0.001,
           exclusive_maximum=True)),
)


def build_adaptive(name: str, schedule: Schedule, params: Mapping[str, Any] | None = None,
                   seed: int = 0) -> AdaptiveWeighting:
    """The adaptive weighting ``name`` for this schedule, its parameters validated (by their :class:`Param`)."""
    entry = ADAPTIVE_WEIGHTINGS.get(name)
    values = entry.resolve_params(dict(params or {}))
    if name == "edm2":
        return UncertaintyWeighting(schedule, seed=seed, **values)
    return entry.function(schedule, **values)
