"""Noise schedules, and every array derived from them.

Two processes, both x_t = α_t·x0 + σ_t·ε with SNR(t) = α_t²/σ_t² and λ_t = log SNR(t):
- **VP diffusion** (Ho et al. 2020): α_t² = ᾱ_t, σ_t² = 1 − ᾱ_t, so SNR = ᾱ_t/(1 − ᾱ_t); the schedules differ in ᾱ.
- **Rectified flow** (Liu et al. 2022, arXiv 2209.03003; Esser et al. 2024, arXiv 2403.03206): the straight line
  x_t = (1 − t)·x0 + t·ε, so α = 1 − t, σ = t, SNR = ((1 − t)/t)², and α + σ = 1 instead of α² + σ² = 1.
  Step i of T is the time t = (i + 1)/T: the last step is pure noise (t = 1, SNR = 0, a zero terminal SNR by
  construction) and t = 0 (SNR = ∞) is never drawn.

Timesteps are indexed 0 … T−1; index T−1 is the "t = T" of the papers. All arrays are float64 torch tensors of
length T, computed once here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .registry import Entry, Registry

MAX_BETA = 0.999  # Nichol & Dhariwal 2021: clip β to avoid a singularity at t = T.

PROCESSES = {"vp": "VP diffusion", "rf": "rectified flow"}


@dataclass(frozen=True)
class ScheduleEntry(Entry):
    """A registered schedule: ``function(T)`` gives the VP betas, or for rectified flow the times t_i."""

    process: str = "vp"


SCHEDULES: Registry[ScheduleEntry] = Registry("schedule")


def _betas_from_alpha_bar(alpha_bar: Callable[[torch.Tensor], torch.Tensor], T: int) -> torch.Tensor:
    """β_t = min(1 − ᾱ(t/T)/ᾱ((t−1)/T), 0.999) for a continuous ᾱ on [0, 1] (improved-diffusion)."""
    grid = alpha_bar(torch.arange(T + 1, dtype=torch.float64) / T)
    return (1 - grid[1:] / grid[:-1]).clamp(max=MAX_BETA)


def linear_betas(T: int) -> torch.Tensor:
    """Ho et al. 2020: β = linspace(1e-4, 0.02, T), scaled by 1000/T as in improved-diffusion.

    For T < 50 the scaled end value exceeds 1; β is clipped to 0.999 there.
    """
    scale = 1000.0 / T
    return torch.linspace(1e-4 * scale, 0.02 * scale, T, dtype=torch.float64).clamp(max=MAX_BETA)


def cosine_betas(T: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal 2021: ᾱ(t) = f(t)/f(0), f(t) = cos²((t + s)/(1 + s)·π/2)."""

    def alpha_bar(t: torch.Tensor) -> torch.Tensor:
        return torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2

    return _betas_from_alpha_bar(alpha_bar, T)


def scaled_linear_betas(T: int) -> torch.Tensor:
    """Stable Diffusion: β = linspace(√0.00085, √0.012, T)² (not rescaled for T ≠ 1000, as in diffusers)."""
    return torch.linspace(0.00085**0.5, 0.012**0.5, T, dtype=torch.float64) ** 2


def sigmoid_betas(T: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> torch.Tensor:
    """Jabri et al. 2022 / Chen 2023: ᾱ(t) = [sig(e/τ) − sig((t(e−s)+s)/τ)] / [sig(e/τ) − sig(s/τ)],
    clipped to [1e-9, 1]."""

    def alpha_bar(t: torch.Tensor) -> torch.Tensor:
        top = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))
        bottom = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
        value = (top - torch.sigmoid((t * (end - start) + start) / tau)) / (top - bottom)
        return value.clamp(1e-9, 1.0)

    return _betas_from_alpha_bar(alpha_bar, T)


def rectified_flow_times(T: int) -> torch.Tensor:
    """t_i = (i + 1)/T for i = 0 … T−1: from one step's worth of noise to pure noise at t = 1."""
    return torch.arange(1, T + 1, dtype=torch.float64) / T


def rescale_zero_terminal_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2023 (arXiv 2305.08891), Alg. 1: shift and scale r = √ᾱ so that r_T = 0, r_1 unchanged."""
    root = alphas_cumprod.sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)
    return root**2


@dataclass(frozen=True)
class Schedule:
    """A discrete noise schedule: every derived array in one place (float64, length T).

    ``alphas_cumprod`` is ᾱ_t = α_t² (for VP diffusion the signal's share of the variance; for rectified flow,
    where α² + σ² < 1 inside (0, 1), not); ``betas`` = 1 − ᾱ_t/ᾱ_{t−1} is the VP chain's per-step noise (for
    rectified flow the same ratio, which no part of that process uses)."""

    name: str
    num_timesteps: int
    zero_terminal_snr: bool
    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    process: str = "vp"
    shift: float = 1.0  # the resolution shift α (:func:`shift_times`); 1: none

    @property
    def snr(self) -> torch.Tensor:
        """SNR(t) = α_t²/σ_t²: ᾱ_t/(1 − ᾱ_t) for VP, ((1 − t)/t)² for rectified flow; exactly 0 at t = T under zero
        terminal SNR (always, for rectified flow)."""
        if self.process == "rf":
            return (self.alphas / self.sigmas) ** 2
        return self.alphas_cumprod / (1 - self.alphas_cumprod)

    @property
    def log_snr(self) -> torch.Tensor:
        """λ_t = log SNR(t); −inf where SNR = 0."""
        return torch.log(self.snr)

    @property
    def times(self) -> torch.Tensor:
        """Rectified flow's t_i = (i + 1)/T (= σ_t); VP diffusion has no such time (its steps are indices)."""
        if self.process != "rf":
            raise ValueError(f"schedule {self.name!r} is VP diffusion: its steps have no rectified-flow time t")
        return shift_times(rectified_flow_times(self.num_timesteps), self.shift)

    @property
    def alphas(self) -> torch.Tensor:
        """α_t, the signal coefficient: √ᾱ_t (VP), 1 − t (rectified flow)."""
        return 1 - self.times if self.process == "rf" else self.alphas_cumprod.sqrt()

    @property
    def sigmas(self) -> torch.Tensor:
        """σ_t, the noise coefficient: √(1 − ᾱ_t) (VP), t (rectified flow)."""
        return self.times if self.process == "rf" else (1 - self.alphas_cumprod).sqrt()

    def log_snr_density(self) -> torch.Tensor:
        """Density p(λ) of λ = log SNR(t) when t is uniform on the T steps (Kingma & Gao 2023).

        Estimated from the discrete schedule as (1/T)/|Δλ| with central differences; 0 where λ is not finite.
        """
        lam = self.log_snr
        finite = torch.isfinite(lam)
        density = torch.zeros_like(lam)
        idx = torch.nonzero(finite).flatten()
        if len(idx) >= 2:
            lam_f = lam[idx]
            gradient = torch.gradient(lam_f)[0].abs()
            density[idx] = (1.0 / self.num_timesteps) / gradient.clamp(min=1e-12)
        return density


def _register(name: str, display: str, latex: str, description: str, reference: str, fn, process: str = "vp") -> None:
    SCHEDULES.register(ScheduleEntry(name, display, latex, description, reference, fn, process=process))


_register(
    "linear",
    "Linear (DDPM)",
    r"\beta_t = \mathrm{linspace}(10^{-4}, 0.02, T)",
    "β grows linearly; most steps sit at very low SNR. Terminal SNR 4.0e-5 at T = 1000.",
    "Ho et al. 2020, arXiv 2006.11239",
    linear_betas,
)
_register(
    "cosine",
    "Cosine",
    r"\bar\alpha_t = \frac{f(t)}{f(0)},\ f(t)=\cos^2\!\left(\frac{t/T+s}{1+s}\frac{\pi}{2}\right)",
    "ᾱ follows a cosine; SNR falls more evenly in log space. Terminal SNR 2.4e-9 at T = 1000.",
    "Nichol & Dhariwal 2021, arXiv 2102.09672",
    cosine_betas,
)
_register(
    "scaled_linear",
    "Scaled linear (Stable Diffusion)",
    r"\beta_t = \mathrm{linspace}(\sqrt{0.00085}, \sqrt{0.012}, T)^2",
    "Stable Diffusion's schedule: little noise at the end (terminal SNR 4.7e-3), made for latents.",
    "Rombach et al. 2022, arXiv 2112.10752",
    scaled_linear_betas,
)
_register(
    "sigmoid",
    "Sigmoid",
    r"\bar\alpha_t = \frac{\mathrm{sig}(e/\tau)-\mathrm{sig}((t(e-s)+s)/\tau)}{\mathrm{sig}(e/\tau)-\mathrm{sig}(s/\tau)}",
    "ᾱ follows a sigmoid (s = −3, e = 3, τ = 1); terminal SNR ~3e-7 at T = 1000.",
    "Jabri et al. 2022, arXiv 2212.11972; Chen 2023, arXiv 2301.10972",
    sigmoid_betas,
)

_register(
    "rectified_flow",
    "Rectified flow",
    r"x_t = (1-t)\,x_0 + t\,\varepsilon,\ \mathrm{SNR} = \left(\tfrac{1-t}{t}\right)^2",
    "Not VP diffusion: a straight line from data to noise (α = 1 − t, σ = t), trained on the velocity v = ε − x₀ "
    "and sampled with Euler steps. t = 1 is pure noise (SNR = 0), so an ε target cannot recover x₀ there.",
    "Liu et al. 2022, arXiv 2209.03003; Lipman et al. 2022, arXiv 2210.02747; Esser et al. 2024, arXiv 2403.03206",
    rectified_flow_times,
    process="rf",
)


def shift_times(times: torch.Tensor, shift: float) -> torch.Tensor:
    """Esser et al. 2024 (SD3, §5.3.2), the resolution shift: t_m = α·t_n / (1 + (α − 1)·t_n). Since
    SNR = ((1 − t)/t)², it moves every log-SNR by −2·log α: α > 1 spends more steps at high noise, which larger
    images need (SD3 uses α = 3 at 1024²; FLUX sets α from the image's token count)."""
    return shift * times / (1 + (shift - 1) * times)


def shift_alphas_cumprod(alphas_cumprod: torch.Tensor, shift: float) -> torch.Tensor:
    """The same shift for VP diffusion: SNR/α², i.e. ᾱ' = ᾱ / (ᾱ + α²·(1 − ᾱ)); SNR = 0 stays 0."""
    return alphas_cumprod / (alphas_cumprod + shift**2 * (1 - alphas_cumprod))


def check_shift(shift: float) -> float:
    if isinstance(shift, bool) or not isinstance(shift, int | float) or not math.isfinite(shift) or shift <= 0:
        raise ValueError(f"schedule_shift must be a number > 0 (1: no shift), got {shift!r}")
    return float(shift)


def list_schedules() -> list[Entry]:
    """All schedules, each with display name, formula, description and reference."""
    return list(SCHEDULES)


def reaches_zero_snr(name: str, zero_terminal_snr: bool = False) -> bool:
    """Whether the schedule ``name`` ends at SNR = 0: rescaled to it (Lin et al. 2023), or rectified flow, whose
    t = 1 is pure noise by construction."""
    return zero_terminal_snr or SCHEDULES.get(name).process == "rf"


def get_schedule(name: str, num_timesteps: int = 1000, *, zero_terminal_snr: bool = False,
                 shift: float = 1.0) -> Schedule:
    """Build a schedule by name (see :func:`list_schedules`) for any T ≥ 2.

    ``zero_terminal_snr`` applies the rescale of Lin et al. 2023 so that SNR(T) = 0. Rectified flow has SNR(T) = 0
    by construction: the flag changes nothing there, and its schedule reports ``zero_terminal_snr=True``.
    ``shift`` α ≠ 1 moves every log-SNR by −2·log α (SD3's resolution shift, :func:`shift_times`), after the rescale.
    """
    shift = check_shift(shift)
    entry = SCHEDULES.get(name)
    if isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int) or num_timesteps < 2:
        raise ValueError(f"num_timesteps must be an integer ≥ 2, got {num_timesteps!r}")
    if not isinstance(zero_terminal_snr, bool):
        raise ValueError(f"zero_terminal_snr must be True or False, got {zero_terminal_snr!r}")
    if entry.process == "rf":
        alphas_cumprod = (1 - shift_times(entry.function(num_timesteps), shift)) ** 2
        previous = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        return Schedule(name, num_timesteps, True, 1 - alphas_cumprod / previous, alphas_cumprod, "rf", shift)
    betas = entry.function(num_timesteps)
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    if zero_terminal_snr:
        alphas_cumprod = rescale_zero_terminal_snr(alphas_cumprod)
    if shift != 1.0:
        alphas_cumprod = shift_alphas_cumprod(alphas_cumprod, shift)
    if zero_terminal_snr or shift != 1.0:
        previous = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        betas = 1 - alphas_cumprod / previous
    return Schedule(name, num_timesteps, zero_terminal_snr, betas, alphas_cumprod, shift=shift)
