"""How a training step picks its timesteps: a distribution p(t) over the T steps, next to the loss weighting.

A weighting w(t) and a timestep distribution p(t) meet in the expected loss: training with t ~ p and weight w has
E_p[w·ℓ] = Σ_t p_t·w_t·ℓ_t = E_uniform[(T·p_t·w_t)·ℓ], so the same objective is reached by a weight T·p_t·w_t under
uniform sampling (:func:`equivalent_weights`), or by the distribution p ∝ w with a constant weight
(:func:`distribution_for_weights`). The gradient's variance differs between the two.

Samplers (a registry, like the weightings): ``uniform``; ``logit_normal``, ``mode`` and ``cosmap`` over t/T (Esser
et al. 2024, SD3); EDM's ``log_normal`` over σ = 1/√SNR (Karras et al. 2022); ``laplace`` and ``cauchy`` over
λ = log SNR (Hang et al. 2024); and ``importance``, the loss-aware resampler of Nichol & Dhariwal 2021 (p_t ∝
√E[L_t²] over the last losses seen at t), whose losses are multiplied by 1/(T·p_t) so that the expected loss is the
uniform one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .registry import Entry, Param, Registry
from .schedules import Schedule

UNIFORM_SHARE = 0.001  # the importance sampler keeps this share uniform, so every step stays reachable (improved-diffusion)


@dataclass(frozen=True)
class TimestepSampler(Entry):
    """A registry entry: ``function(schedule, **params)`` gives p_t (float64, length T, sums to 1)."""

    # Learns p from the losses it sees and multiplies each loss by 1/(T·p_t): the expected loss stays the uniform one.
    adaptive: bool = False


TIMESTEP_SAMPLERS: Registry[TimestepSampler] = Registry("timestep sampler")


def _normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2))


def uniform_probabilities(schedule: Schedule) -> torch.Tensor:
    """p_t = 1/T."""
    T = schedule.num_timesteps
    return torch.full((T,), 1.0 / T, dtype=torch.float64)


def logit_normal_probabilities(schedule: Schedule, logit_mean: float = 0.0, logit_std: float = 1.0) -> torch.Tensor:
    """Esser et al. 2024 (SD3): u = sigmoid(n), n ~ N(m, s²), and step ⌊u·T⌋ (as diffusers' training scripts do), so
    p_t = Φ((logit((t+1)/T) − m)/s) − Φ((logit(t/T) − m)/s)."""
    T = schedule.num_timesteps
    edges = torch.arange(T + 1, dtype=torch.float64) / T
    logits = torch.log(edges) - torch.log1p(-edges)  # −inf at 0, +inf at 1
    cdf = _normal_cdf((logits - logit_mean) / logit_std)
    return cdf[1:] - cdf[:-1]


def _log_snr_bins(schedule: Schedule, cdf: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """p_t for a distribution of λ = log SNR given by its ``cdf``: each step takes the mass of λ between the
    midpoints to its neighbours (the first and last step the tails; a step with SNR = 0 gets none), as EDM's."""
    lam = schedule.log_snr
    midpoints = (lam[1:] + lam[:-1]) / 2  # λ falls with t; −inf next to an SNR = 0 step
    infinite = torch.tensor([math.inf], dtype=torch.float64)
    return cdf(torch.cat([infinite, midpoints])) - cdf(torch.cat([midpoints, -infinite]))


def log_normal_probabilities(schedule: Schedule, p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    """Karras et al. 2022 (EDM): ln σ ~ N(P_mean, P_std²) with σ = 1/√SNR, i.e. λ = log SNR = −2 ln σ ~
    N(−2·P_mean, (2·P_std)²), binned onto the steps by :func:`_log_snr_bins`."""
    mean, std = -2.0 * p_mean, 2.0 * p_std
    return _log_snr_bins(schedule, lambda lam: _normal_cdf((lam - mean) / std))


def laplace_probabilities(schedule: Schedule, log_snr_centre: float = 0.0, laplace_scale: float = 0.5) -> torch.Tensor:
    """Hang et al. 2024 (arXiv 2407.03297): λ ~ Laplace(μ, b), p(λ) = e^{−|λ−μ|/b}/(2b), most mass around
    log SNR = μ (0: where signal and noise are equal); binned onto the steps by :func:`_log_snr_bins`."""
    def cdf(lam: torch.Tensor) -> torch.Tensor:
        z = (lam - log_snr_centre) / laplace_scale
        return torch.where(z < 0, 0.5 * torch.exp(z.clamp(max=0)), 1 - 0.5 * torch.exp(-z.clamp(min=0)))
    return _log_snr_bins(schedule, cdf)


def cauchy_probabilities(schedule: Schedule, log_snr_centre: float = 0.0, cauchy_scale: float = 1.0) -> torch.Tensor:
    """Hang et al. 2024 (arXiv 2407.03297): λ ~ Cauchy(μ, γ), p(λ) = γ/(π((λ−μ)² + γ²)), heavier tails than the
    Laplace; binned onto the steps by :func:`_log_snr_bins`."""
    return _log_snr_bins(schedule, lambda lam: 0.5 + torch.atan((lam - log_snr_centre) / cauchy_scale) / math.pi)


def _time_bins(schedule: Schedule, cdf: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """p_t for a distribution of u = t/T in [0, 1] given by its ``cdf``: step t takes the mass of [t/T, (t+1)/T), as
    ⌊u·T⌋ draws it."""
    edges = torch.arange(schedule.num_timesteps + 1, dtype=torch.float64) / schedule.num_timesteps
    cdf_at = cdf(edges)
    return cdf_at[1:] - cdf_at[:-1]


def mode_probabilities(schedule: Schedule, mode_scale: float = 1.29) -> torch.Tensor:
    """Esser et al. 2024 (SD3, §3.1, "mode sampling with heavy tails"): t/T = f(u) = 1 − u − s·(cos²(πu/2) − 1 + u),
    u uniform; s > 0 favours the middle, s < 0 the ends (s = 0: uniform). f falls from 1 to 0 for s in
    [−1, 2/(π − 2)], so P(t/T ≤ x) = 1 − f⁻¹(x), with f⁻¹ found by bisection."""
    def f(u: torch.Tensor) -> torch.Tensor:
        return 1 - u - mode_scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)

    def cdf(x: torch.Tensor) -> torch.Tensor:
        low, high = torch.zeros_like(x), torch.ones_like(x)
        for _ in range(60):  # f is decreasing: f(mid) > x means the root lies above mid
            mid = (low + high) / 2
            above = f(mid) > x
            low, high = torch.where(above, mid, low), torch.where(above, high, mid)
        return 1 - (low + high) / 2
    return _time_bins(schedule, cdf)


def cosmap_probabilities(schedule: Schedule) -> torch.Tensor:
    """Esser et al. 2024 (SD3, §3.1, CosMap): t/T = 1 − 1/(tan(πu/2) + 1), u uniform, i.e. P(t/T ≤ x) =
    (2/π)·atan(x/(1 − x))."""
    return _time_bins(schedule, lambda x: 2 / math.pi * torch.atan(x / (1 - x)))


def _register(name: str, display: str, latex: str, description: str, reference: str,
              function: Callable[..., torch.Tensor], params: tuple[Param, ...] = (), adaptive: bool = False) -> None:
    TIMESTEP_SAMPLERS.register(TimestepSampler(name, display, latex, description, reference, function, params,
                                               adaptive=adaptive))


_register("uniform", "Uniform", r"p_t = 1/T", "Every timestep equally often: the DDPM default.",
          "Ho et al. 2020, arXiv 2006.11239", uniform_probabilities)
_register(
    "logit_normal", "Logit-normal", r"t/T = \mathrm{sigmoid}(n),\ n \sim \mathcal{N}(m, s^2)",
    "More steps in the middle of the timeline, fewer at both ends; SD3's choice for rectified flow.",
    "Esser et al. 2024, arXiv 2403.03206", logit_normal_probabilities,
    (Param("logit_mean", 0.0, -3.0, 3.0, "logit-normal mean m"),
     Param("logit_std", 1.0, 0.0, 3.0, "logit-normal spread s", exclusive_minimum=True)),
)
_register(
    "log_normal", "EDM log-normal",
    r"\ln\sigma \sim \mathcal{N}(P_\mathrm{mean}, P_\mathrm{std}^2),\ \sigma = 1/\sqrt{\mathrm{SNR}}",
    "Noise levels drawn around σ = e^{P_mean}: EDM's training distribution, mapped onto the schedule's steps.",
    "Karras et al. 2022, arXiv 2206.00364", log_normal_probabilities,
    (Param("p_mean", -1.2, -5.0, 5.0, "EDM P_mean (ln σ)"),
     Param("p_std", 1.2, 0.0, 5.0, "EDM P_std", exclusive_minimum=True)),
)
_register(
    "laplace", "Laplace in log-SNR", r"p(\lambda) = \frac{1}{2b} e^{-|\lambda-\mu|/b}",
    "Noise levels drawn around log SNR = μ, where signal and noise are equal: most training on the transition.",
    "Hang et al. 2024, arXiv 2407.03297", laplace_probabilities,
    (Param("log_snr_centre", 0.0, -10.0, 10.0, "centre μ (log SNR)"),
     Param("laplace_scale", 0.5, 0.0, 5.0, "Laplace scale b", exclusive_minimum=True)),
)
_register(
    "cauchy", "Cauchy in log-SNR", r"p(\lambda) = \frac{\gamma}{\pi((\lambda-\mu)^2 + \gamma^2)}",
    "Noise levels drawn around log SNR = μ with heavy tails: fewer draws at the centre than the Laplace, more far out.",
    "Hang et al. 2024, arXiv 2407.03297", cauchy_probabilities,
    (Param("log_snr_centre", 0.0, -10.0, 10.0, "centre μ (log SNR)"),
     Param("cauchy_scale", 1.0, 0.0, 5.0, "Cauchy scale γ", exclusive_minimum=True)),
)
_register(
    "mode", "SD3 mode", r"t/T = 1 - u - s\left(\cos^2\tfrac{\pi u}{2} - 1 + u\right),\ u \sim \mathcal{U}(0,1)",
    "More steps in the middle for s > 0, more at both ends for s < 0; s = 0 is uniform.",
    "Esser et al. 2024, arXiv 2403.03206, §3.1", mode_probabilities,
    (Param("mode_scale", 1.29, -1.0, 1.75, "mode scale s (≤ 2/(π − 2) keeps t monotone in u)", step=0.01),),
)
_register(
    "cosmap", "SD3 CosMap", r"t/T = 1 - \frac{1}{\tan(\pi u/2) + 1},\ u \sim \mathcal{U}(0,1)",
    "A cosine map of the timeline: more steps in the middle, fewer at both ends.",
    "Esser et al. 2024, arXiv 2403.03206, §3.1", cosmap_probabilities,
)
_register(
    "importance", "Loss-aware importance", r"p_t \propto \sqrt{\mathbb{E}[L_t^2]},\ \text{loss} \times \frac{1}{T p_t}",
    "Draws the steps whose loss is large and varies more often, and divides by how often: the same expected loss "
    "with less variance. Uniform until every step has its history of losses.",
    "Nichol & Dhariwal 2021, arXiv 2102.09672", uniform_probabilities,
    (Param("history", 10, 1, 100, "losses remembered per step", step=1, integer=True),), adaptive=True,
)


def sampler_parameters() -> dict[str, Param]:
    """Every timestep sampler's parameters by name."""
    return TIMESTEP_SAMPLERS.parameters()


def timestep_probabilities(name: str, schedule: Schedule, **params: Any) -> torch.Tensor:
    """p_t of a sampler for this schedule (an adaptive sampler's starting distribution), validated."""
    entry = TIMESTEP_SAMPLERS.get(name)
    values = entry.resolve_params(params)
    if entry.adaptive:
        return uniform_probabilities(schedule)
    probabilities = entry.function(schedule, **values)
    total = float(probabilities.sum())
    if not torch.isfinite(probabilities).all() or abs(total - 1) > 1e-9:
        raise ValueError(f"{name}: its probabilities over the {schedule.num_timesteps} steps sum to {total:g}, not 1")
    return probabilities


def equivalent_weights(probabilities: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The weight under uniform sampling that gives the same expected loss as weight ``weights`` with t ~ p:
    T·p_t·w_t."""
    return len(probabilities) * probabilities * weights


def distribution_for_weights(weights: torch.Tensor) -> torch.Tensor:
    """The timestep distribution that, with a constant weight (the mean weight, :func:`mean_weight`), gives the same
    expected loss as ``weights`` under uniform sampling: p_t = w_t / Σ w."""
    if not torch.isfinite(weights).all() or (weights < 0).any() or not weights.sum() > 0:
        raise ValueError("weights must be finite, ≥ 0 and not all 0 to become a distribution")
    return weights / weights.sum()


def mean_weight(weights: torch.Tensor, probabilities: torch.Tensor | None = None) -> float:
    """E_t[w] under uniform t (or under ``probabilities``): the factor by which a weighting scales the loss and so,
    with plain SGD, the effective learning rate."""
    if probabilities is None:
        return float(weights.double().mean())
    return float((probabilities.double() * weights.double()).sum())


class TimestepDistribution:
    """A run's timestep sampler: draws t for each batch and, for the importance sampler, learns from the losses.

    Uniform sampling draws exactly as before samplers existed (``torch.randint`` from the run's generator), so a
    run's batches are unchanged by this class."""

    def __init__(self, name: str, schedule: Schedule, params: Mapping[str, Any] | None = None) -> None:
        self.entry = TIMESTEP_SAMPLERS.get(name)
        self.params = self.entry.resolve_params(dict(params or {}))
        self.num_timesteps = schedule.num_timesteps
        self.probabilities = timestep_probabilities(name, schedule, **self.params)
        if self.entry.adaptive:
            self.history = torch.zeros(self.num_timesteps, int(self.params["history"]), dtype=torch.float64)
            self.counts = torch.zeros(self.num_timesteps, dtype=torch.long)

    @property
    def name(self) -> str:
        return self.entry.name

    def warmed_up(self) -> bool:
        """Whether the importance sampler has its full history at every step (before that it samples uniformly)."""
        return bool(self.entry.adaptive and (self.counts >= self.history.shape[1]).all())  # counts: losses seen

    def current_probabilities(self) -> torch.Tensor:
        if not self.warmed_up():
            return self.probabilities
        second_moment = self.history.pow(2).mean(dim=1).sqrt()
        p = second_moment / second_moment.sum() if second_moment.sum() > 0 else self.probabilities
        return p * (1 - UNIFORM_SHARE) + UNIFORM_SHARE / self.num_timesteps

    def sample(self, batch_size: int, generator: torch.Generator,
               device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(timesteps, the per-sample loss factor 1/(T·p_t) or None where the loss is not reweighted)."""
        if self.entry.name == "uniform" or (self.entry.adaptive and not self.warmed_up()):
            t = torch.randint(0, self.num_timesteps, (batch_size,), generator=generator, device=device)
            return t, (torch.ones(batch_size, device=device) if self.entry.adaptive else None)
        p = self.current_probabilities()
        t = torch.multinomial(p.to(device=device, dtype=torch.float32), batch_size, replacement=True,
                              generator=generator)
        if not self.entry.adaptive:
            return t, None
        factor = (1.0 / (self.num_timesteps * p)).to(device=device, dtype=torch.float32)[t]
        return t, factor

    def observe(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Remember each sample's loss at its step, the last ``history`` per step (the importance sampler; the
        others ignore it). A ring buffer per step, written in batch order."""
        if not self.entry.adaptive:
            return
        size = self.history.shape[1]
        steps, values = t.detach().long().cpu(), losses.detach().double().cpu()
        order = torch.argsort(steps, stable=True)
        steps, values = steps[order], values[order]
        rank = torch.arange(len(steps)) - torch.searchsorted(steps, steps)  # occurrence within its step, in order
        seen_now = torch.bincount(steps, minlength=self.num_timesteps)
        keep = rank >= seen_now[steps] - size  # only the last `size` of one step in this batch survive anyway
        slots = (self.counts[steps] + rank) % size
        self.history[steps[keep], slots[keep]] = values[keep]
        self.counts += seen_now

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"history": self.history, "counts": self.counts} if self.entry.adaptive else {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        if self.entry.adaptive:
            if tuple(state["history"].shape) != tuple(self.history.shape):
                raise ValueError("the saved loss history does not match this sampler's (T, history)")
            self.history = state["history"].to(torch.float64).clone()
            self.counts = state["counts"].to(torch.long).clone()
