"""Loss-weighting strategies of the diffusion literature, each defined once as its x0-space weight.

For the same network output the three MSEs are proportional (VP diffusion):
    ‖ε − ε̂‖² = SNR · ‖x0 − x̂0‖²   and   ‖v − v̂‖² = (SNR + 1) · ‖x0 − x̂0‖²,
so one strategy is one function w_x0(SNR), and in the other spaces
    w_ε = w_x0 / SNR,   w_v = w_x0 / (SNR + 1)
(Hang et al. 2023, arXiv 2303.09556, Sec. 3.4). That factor lives only in :func:`x0_error_scale`.

Rectified flow (x_t = (1 − t)·x0 + t·ε) has the velocity v = ε − x0, not VP's α·ε − σ·x0. At fixed x_t,
t·(ε̂ − ε) = −(1 − t)·(x̂0 − x0), so v̂ − v = −(x̂0 − x0)/t and, with √SNR = (1 − t)/t,
    ‖v − v̂‖² = (1 + √SNR)² · ‖x0 − x̂0‖²,   w_v = w_x0 / (1 + √SNR)²;
the ε rule (any x_t = α·x0 + σ·ε) is the same as VP's.

Zero SNR (zero-terminal-SNR schedules, Lin et al. 2023): w_x0 and w_v are always finite. In ε space
w_x0/SNR is 0/0 or x/0 at SNR = 0. Where the limit is finite (e.g. Min-SNR: min(1, γ/SNR) → 1) the registry
holds it in ``eps_weight_at_zero_snr`` and it is used; where the weight is genuinely unbounded (constant-x0,
truncated SNR, SNR+1, (1 + √SNR)², Max-SNR, EDM, debiased) :func:`loss_weight` raises a ``ValueError``: no clamp, no NaN.

Kingma & Gao's sigmoid weighting is a weight per unit log-SNR, w(λ) = sigmoid(b − λ), as in their loss; the
per-sample weight is w(λ)/p(λ) with p the schedule's log-SNR density, so it needs the schedule
(:func:`schedule_weights`) and is undefined where λ = −∞ (SNR = 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .registry import Entry, Param, Registry
from .schedules import Schedule

TARGETS = ("eps", "x0", "v")
TARGET_NAMES = {"eps": "ε (noise)", "x0": "x₀ (clean image)", "v": "v (velocity)"}
# The conversion that loss_weight applies, as LaTeX for the app and the notebooks.
TARGET_WEIGHT_LATEX = {"eps": r"w_\varepsilon = w_{x_0}/\mathrm{SNR}", "x0": r"w_{x_0}",
                       "v": r"w_v = w_{x_0}/(\mathrm{SNR}+1)"}
# Rectified flow's velocity ε − x0 (the other two spaces are the same as VP's).
RF_TARGET_NAMES = {**TARGET_NAMES, "v": "v = ε − x₀ (flow velocity)"}
RF_TARGET_WEIGHT_LATEX = {**TARGET_WEIGHT_LATEX, "v": r"w_v = w_{x_0}/(1+\sqrt{\mathrm{SNR}})^2"}


def target_name(target: str, process: str = "vp") -> str:
    """The display name of a prediction target under ``process`` ("vp" or "rf")."""
    return (RF_TARGET_NAMES if process == "rf" else TARGET_NAMES)[target]


def target_weight_latex(target: str, process: str = "vp") -> str:
    """The conversion :func:`loss_weight` applies in ``target`` space under ``process``, as LaTeX."""
    return (RF_TARGET_WEIGHT_LATEX if process == "rf" else TARGET_WEIGHT_LATEX)[target]
DEFAULT_GAMMA = 5.0

@dataclass(frozen=True)
class Strategy(Entry):
    """A weighting strategy: ``function`` is w_x0(snr, **params). ``eps_at_zero`` is lim_{SNR→0} w_x0/SNR where it
    is finite; ``per_unit_log_snr``: the function is a weight per unit λ (Kingma & Gao's w(λ)), not per sample."""

    eps_at_zero: Callable[..., float] | None = None
    per_unit_log_snr: bool = False
    # The same w_x0 (and ε limit at SNR = 0) as a JavaScript expression of ``s`` (SNR) and ``p`` (the parameters), for
    # the explorer's curves drawn in the browser; tests check it against ``function`` for every strategy.
    js: str = ""
    js_eps_at_zero: str = ""


STRATEGIES: Registry[Strategy] = Registry("weighting strategy")

GAMMA = Param("gamma", DEFAULT_GAMMA, 0.0, 100.0, "SNR threshold γ", exclusive_minimum=True, step=0.01)


def _strategy(
    name: str,
    display: str,
    latex: str,
    intuition: str,
    reference: str,
    params: tuple[Param, ...] = (),
    eps_at_zero: Callable[..., float] | None = None,
    per_unit_log_snr: bool = False,
    js: str = "",
    js_eps_at_zero: str = "",
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Register ``w_x0(snr, **params)``; ``eps_at_zero`` is lim_{SNR→0} w_x0/SNR where it is finite.
    ``per_unit_log_snr``: the function is a weight per unit λ (Kingma & Gao's w(λ)), not per sample."""

    def decorate(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        STRATEGIES.register(Strategy(name, display, latex, intuition, reference, fn, params, eps_at_zero,
                                     per_unit_log_snr, js, js_eps_at_zero))
        return fn

    return decorate


@_strategy("constant", "Constant (x0)", r"w_{x_0} = 1",
           "Every timestep's x0 error counts the same: noisy steps dominate in ε space.",
           "Hang et al. 2023 (\"Const.\")", js="1")
def constant_weight(snr: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(snr)


@_strategy("snr", "SNR (= plain ε-MSE)", r"w_{x_0} = \mathrm{SNR}",
           "The plain ε loss of DDPM: weight 1 on the noise error, so clean steps dominate in x0 space.",
           "Ho et al. 2020, arXiv 2006.11239 (L_simple)", eps_at_zero=lambda: 1.0, js="s", js_eps_at_zero="1")
def snr_weight(snr: torch.Tensor) -> torch.Tensor:
    return snr.clone()


@_strategy("trunc_snr", "Truncated SNR", r"w_{x_0} = \max(\mathrm{SNR}, 1)",
           "Like the ε loss, but never below weight 1 on x0: the noisiest steps keep some weight.",
           "Salimans & Ho 2022, arXiv 2202.00512", js="Math.max(s, 1)")
def trunc_snr_weight(snr: torch.Tensor) -> torch.Tensor:
    return snr.clamp(min=1.0)


@_strategy("snr_plus_one", "SNR + 1 (= plain v-MSE)", r"w_{x_0} = \mathrm{SNR} + 1",
           "The plain v loss: ε loss plus an x0 loss, balanced where SNR = 1.",
           "Salimans & Ho 2022, arXiv 2202.00512", js="s + 1")
def snr_plus_one_weight(snr: torch.Tensor) -> torch.Tensor:
    return snr + 1.0


@_strategy("flow_velocity", "(1 + √SNR)² (= plain flow-matching MSE)", r"w_{x_0} = (1 + \sqrt{\mathrm{SNR}})^2",
           "The plain loss of rectified flow: weight 1 on the velocity ε − x₀, whose error is (1 + √SNR)² × the x₀ "
           "error, so the clean steps dominate in x₀ space, less steeply than with the ε loss.",
           "Liu et al. 2022, arXiv 2209.03003; Lipman et al. 2022, arXiv 2210.02747",
           js="Math.pow(1 + Math.sqrt(s), 2)")
def flow_velocity_weight(snr: torch.Tensor) -> torch.Tensor:
    return (1.0 + snr.sqrt()) ** 2


@_strategy("min_snr", "Min-SNR-γ", r"w_{x_0} = \min(\mathrm{SNR}, \gamma)",
           "Clamp the weight of the easy, nearly clean steps at γ so they stop crowding out the rest.",
           "Hang et al. 2023, arXiv 2303.09556", (GAMMA,), eps_at_zero=lambda gamma: 1.0,
           js="Math.min(s, p.gamma)", js_eps_at_zero="1")
def min_snr_weight(snr: torch.Tensor, gamma: float) -> torch.Tensor:
    return snr.clamp(max=gamma)


@_strategy("max_snr", "Max-SNR-γ", r"w_{x_0} = \max(\mathrm{SNR}, \gamma)",
           "The opposite clamp: lifts the noisy steps up to γ; the paper shows it trains worse.",
           "Hang et al. 2023, arXiv 2303.09556 (ablation)", (GAMMA,), js="Math.max(s, p.gamma)")
def max_snr_weight(snr: torch.Tensor, gamma: float) -> torch.Tensor:
    return snr.clamp(min=gamma)


@_strategy("soft_min_snr", "Soft-Min-SNR-γ", r"w_{x_0} = \frac{\mathrm{SNR}\,\gamma}{\mathrm{SNR} + \gamma}",
           "A smooth Min-SNR: the harmonic blend of SNR and γ, no kink at SNR = γ.",
           "Crowson et al. 2024 (HDiT), arXiv 2401.11605", (GAMMA,), eps_at_zero=lambda gamma: 1.0,
           js="s * p.gamma / (s + p.gamma)", js_eps_at_zero="1")
def soft_min_snr_weight(snr: torch.Tensor, gamma: float) -> torch.Tensor:
    return snr * gamma / (snr + gamma)


@_strategy("p2", "P2", r"w_{x_0} = \frac{\mathrm{SNR}}{(k + \mathrm{SNR})^{\gamma_p}}",
           "Perception-prioritized: down-weights the clean steps that only polish imperceptible detail.",
           "Choi et al. 2022, arXiv 2204.00227",
           (Param("k", 1.0, 0.0, 100.0, "offset k", exclusive_minimum=True),
            Param("p2_gamma", 1.0, 0.0, 4.0, "exponent γ_p")),
           eps_at_zero=lambda k, p2_gamma: k ** (-p2_gamma),
           js="s / Math.pow(p.k + s, p.p2_gamma)", js_eps_at_zero="Math.pow(p.k, -p.p2_gamma)")
def p2_weight(snr: torch.Tensor, k: float, p2_gamma: float) -> torch.Tensor:
    return snr / (k + snr) ** p2_gamma


@_strategy("edm", "EDM", r"w_{x_0} = \mathrm{SNR} + \sigma_\mathrm{data}^{-2}",
           "Karras et al.'s λ(σ) = (σ² + σ_data²)/(σ σ_data)², which gives unit-variance training targets.",
           "Karras et al. 2022, arXiv 2206.00364",
           (Param("sigma_data", 0.5, 0.0, 10.0, "data standard deviation σ_data", exclusive_minimum=True),),
           js="s + Math.pow(p.sigma_data, -2)")
def edm_weight(snr: torch.Tensor, sigma_data: float) -> torch.Tensor:
    return snr + sigma_data**-2


@_strategy("debiased", "Debiased", r"w_{x_0} = \sqrt{\mathrm{SNR}}",
           "Weight 1/√SNR on ε: removes the bias of the ε loss towards the clean steps.",
           "Yu et al. 2023, arXiv 2310.08442", js="Math.sqrt(s)")
def debiased_weight(snr: torch.Tensor) -> torch.Tensor:
    return snr.sqrt()


@_strategy("sigmoid", "Sigmoid (Kingma & Gao)",
           r"w(\lambda) = \mathrm{sigmoid}(b - \lambda)\ \text{per unit }\lambda:\ "
           r"w_\varepsilon = \mathrm{sigmoid}(b - \lambda)/p(\lambda)",
           "Kingma & Gao's weight per unit log-SNR: the effective weight is the sigmoid itself, 1 at high noise and "
           "fading out above λ ≈ b; each sample's weight divides it by how often the schedule draws that λ.",
           "Kingma & Gao 2023, arXiv 2303.00848", (Param("bias", 0.0, -10.0, 10.0, "bias b"),), per_unit_log_snr=True,
           js="s / (1 + s * Math.exp(-p.bias))")
def sigmoid_weight(snr: torch.Tensor, bias: float) -> torch.Tensor:
    # SNR·sigmoid(b − log SNR) = SNR / (1 + SNR·e^(−b)): the same value, no log(0) at SNR = 0. This is the weight
    # per unit λ in x0 terms; loss_weight divides it by the log-SNR density p(λ) to give the per-sample weight.
    return snr / (1.0 + snr * float(np.exp(-bias)))


def list_strategies() -> list[Entry]:
    """All strategies with display name, LaTeX, intuition, parameters and reference."""
    return list(STRATEGIES)


def strategy_parameters() -> dict[str, Param]:
    """Every distinct strategy parameter by name (γ is shared by Min-, Max- and Soft-Min-SNR)."""
    return STRATEGIES.parameters()


def _as_snr_tensor(snr: Any) -> torch.Tensor:
    tensor = torch.as_tensor(snr)
    if not torch.is_floating_point(tensor):
        tensor = tensor.to(torch.float64)
    if torch.isnan(tensor).any():
        raise ValueError("snr must not contain NaN")
    if (tensor < 0).any():
        raise ValueError("snr must be ≥ 0")
    if torch.isinf(tensor).any():  # t = 0 of rectified flow: no schedule here has a step there
        raise ValueError("snr must be finite: SNR = ∞ is the clean data itself (t = 0), where no weight is defined "
                         "and no schedule here draws a step")
    return tensor


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}; got {target!r}")
    return target


def check_process(process: str) -> str:
    if process not in ("vp", "rf"):
        raise ValueError(f"process must be 'vp' (VP diffusion) or 'rf' (rectified flow); got {process!r}")
    return process


def x0_error_scale(target: str, snr: Any, process: str = "vp") -> torch.Tensor:
    """s with ‖target − prediction‖² = s · ‖x0 − x̂0‖² for the same network output: SNR for ε, 1 for x0, and for v
    SNR + 1 (VP, Hang et al. 2023, Sec. 3.4) or (1 + √SNR)² (rectified flow's v = ε − x0, module docstring).
    A target-space weight is w_x0 / s; a target-space error / s is the x0 error."""
    check_target(target)
    check_process(process)
    snr = _as_snr_tensor(snr)
    if target == "v":
        return (1.0 + snr.sqrt()) ** 2 if process == "rf" else snr + 1.0
    return snr.clone() if target == "eps" else torch.ones_like(snr)


def loss_weight(strategy: str, snr: Any, target: str = "eps", log_snr_density: Any = None, *,
                process: str = "vp", **params: Any) -> torch.Tensor:
    """Per-sample weight on the MSE in ``target`` space ("eps", "x0" or "v") for ``strategy``; ``process`` "rf"
    makes v rectified flow's velocity ε − x0.

    ``snr`` is a tensor (or array/float) of SNR values ≥ 0; parameters default from the registry
    (γ = 5). Raises ``ValueError`` for unknown names, bad parameters, and for ε-space weights that are
    unbounded at SNR = 0 (see the module docstring).

    A strategy defined per unit log-SNR (Kingma & Gao's w(λ), the ``sigmoid`` strategy) has the per-sample weight
    w(λ)/p(λ), with p the density of λ under the schedule's uniform t (their weighted loss, arXiv 2303.00848):
    pass ``log_snr_density`` (the schedule's :meth:`~minsnr_core.schedules.Schedule.log_snr_density` at the same
    steps), or use :func:`schedule_weights`.
    """
    entry = STRATEGIES.get(strategy)
    check_target(target)
    values = entry.resolve_params(params)
    snr = _as_snr_tensor(snr)
    w_x0 = entry.function(snr, **values)
    if entry.per_unit_log_snr:
        if log_snr_density is None:
            raise ValueError(f"strategy {strategy!r} is a weight per unit log-SNR (Kingma & Gao): its per-sample weight "
                             "w(λ)/p(λ) needs the schedule's log-SNR density; pass log_snr_density or use schedule_weights")
        density = torch.as_tensor(log_snr_density, dtype=w_x0.dtype)
        if density.shape != snr.shape:
            raise ValueError(f"log_snr_density must have the shape of snr {tuple(snr.shape)}, got {tuple(density.shape)}")
        if not (density > 0).all():
            raise ValueError(f"strategy {strategy!r} is not defined where λ is not finite (SNR = 0, zero terminal SNR): "
                             "its per-sample weight divides by the log-SNR density, which is 0 there; use a schedule "
                             "without zero terminal SNR or another strategy")
        w_x0 = w_x0 / density
    scale = x0_error_scale(target, snr, process)
    zero = scale == 0  # only ε at SNR = 0
    if not zero.any():
        return w_x0 / scale
    limit = eps_weight_at_zero_snr(strategy, **values)
    if limit is None:
        raise ValueError(
            f"strategy {strategy!r} has an unbounded ε-space weight at SNR = 0 (zero terminal SNR); "
            "use target 'x0' or 'v', a strategy with a finite limit "
            f"({', '.join(n for n in STRATEGIES.names() if STRATEGIES.get(n).eps_at_zero)}), "
            "or a schedule without zero terminal SNR"
        )
    return torch.where(zero, torch.full_like(w_x0, limit), w_x0 / torch.where(zero, 1.0, snr))


def schedule_weights(strategy: str, schedule: Schedule, target: str = "eps", **params: Any) -> torch.Tensor:
    """Per-sample weight of ``strategy`` at each of the schedule's T steps, in ``target`` space."""
    return loss_weight(strategy, schedule.snr, target, log_snr_density=schedule.log_snr_density(),
                       process=schedule.process, **params)


def defined_everywhere(strategy: str, schedule: Schedule, target: str, **params: Any) -> bool:
    """False where a schedule with zero terminal SNR leaves the weight undefined at t = T (see loss_weight)."""
    return bool((schedule.snr > 0).all()) or defined_at_zero_snr(strategy, target, **params)


def defined_at_zero_snr(strategy: str, target: str, **params: Any) -> bool:
    """Whether the weight has a value at SNR = 0: not for a weight per unit log-SNR (λ = −∞ there), nor in ε space
    where w_x0/SNR is unbounded."""
    entry = STRATEGIES.get(strategy)
    return not entry.per_unit_log_snr and (target != "eps" or eps_weight_at_zero_snr(strategy, **params) is not None)


def eps_weight_at_zero_snr(strategy: str, **params: Any) -> float | None:
    """lim_{SNR→0} w_x0/SNR for ``strategy``, or None where the ε-space weight is unbounded."""
    entry = STRATEGIES.get(strategy)
    limit = entry.eps_at_zero
    return None if limit is None else float(limit(**entry.resolve_params(params)))


def effective_weight(strategy: str, schedule: Schedule, **params: Any) -> torch.Tensor:
    """Kingma & Gao 2023's effective weight: w_ε(λ)·p(λ), with p the density of λ under uniform t — what the
    training emphasises per unit log-SNR. For their sigmoid weighting this is the sigmoid itself.

    Where λ is not finite (SNR = 0) the density is 0 and so is the returned value.
    """
    finite = schedule.snr > 0
    density = schedule.log_snr_density()
    weights = torch.zeros_like(schedule.snr)
    weights[finite] = loss_weight(strategy, schedule.snr[finite], "eps", log_snr_density=density[finite], **params)
    return weights * density


def min_snr_clamp_active(snr: Any, gamma: float = DEFAULT_GAMMA) -> torch.Tensor:
    """Where Min-SNR-γ's clamp bites (SNR > γ): the weight there is γ, not SNR."""
    gamma = GAMMA.validate(gamma, "min_snr")
    return _as_snr_tensor(snr) > gamma
