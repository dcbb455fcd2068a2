"""The weight-curve explorer: builds the Plotly figure and the explanation from the core registries."""

from __future__ import annotations

import base64
import functools
import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

from minsnr_core.implementations import who_computes
from minsnr_core.schedules import Schedule, get_schedule
from minsnr_core.settings import SETTINGS
from minsnr_core.styles import NEUTRAL, PLOT_TEMPLATE, chart_styles
from minsnr_core.timesteps import TIMESTEP_SAMPLERS, timestep_probabilities
from minsnr_core.weighting import (
    STRATEGIES,
    defined_everywhere,
    effective_weight,
    loss_weight,
    min_snr_clamp_active,
    schedule_weights,
    strategy_parameters,
    target_name,
    target_weight_latex,
    x0_error_scale,
)

from .charts import export_spec
from .explorer_words import CLAMP, TEXT, WORDS, describe_explorer, legend_entry, number

X_AXES = {"t": "timestep t", "log_snr": "log-SNR λ"}
VIEWS = {"weight": "Loss weight", "effective": "Effective weight (Kingma–Gao)",
         "sampler": "As a timestep distribution"}
# The samplers the explorer draws: the fixed ones (an adaptive sampler's p(t) depends on a run's losses).
EXPLORER_SAMPLERS = [e.name for e in TIMESTEP_SAMPLERS if not e.adaptive]


def explorer_sampler_parameters() -> dict:
    """The parameters of :data:`EXPLORER_SAMPLERS` by name, in registry order."""
    return {p.name: p for name in EXPLORER_SAMPLERS for p in TIMESTEP_SAMPLERS.get(name).params}
DEFAULT_STRATEGIES = ("snr", "constant", "min_snr", "soft_min_snr")
# The explorer's T slider: the settings table's lowest T, and a highest one that keeps a figure's curves small enough
# to draw and send (a run's T is capped by ClassLimits on a server, by the table in the library).
TIMESTEPS_RANGE = (int(SETTINGS["timesteps"].low), 4000)


@dataclass
class ExplorerResult:
    figure: go.Figure
    explanation: str
    notices: list[str] = field(default_factory=list)
    mean_weights: list[float] = field(default_factory=list)  # E_p[w] of each strategy's trace, in order
    summary: str = ""  # the chart in words (:func:`describe_explorer`)


def _mean_weight(probabilities: np.ndarray, weights: np.ndarray) -> float:
    """E_p[w] = Σ p(t)·w(t) over the steps p can draw (inf where w is unbounded at such a step)."""
    drawn = probabilities > 0
    return float(np.sum(probabilities[drawn] * weights[drawn]))


def _clamp_region(snr: np.ndarray, x: np.ndarray, gamma: float) -> tuple[float, float] | None:
    """The x-interval where Min-SNR's clamp holds the weight at γ (:func:`min_snr_clamp_active`)."""
    active = min_snr_clamp_active(snr, gamma).numpy()
    if not active.any():
        return None
    xs = x[active]
    return float(xs.min()), float(xs.max())


def build_explorer(
    schedule: str = "cosine",
    num_timesteps: int = 1000,
    strategies: Iterable[str] = DEFAULT_STRATEGIES,
    params: Mapping[str, float] | None = None,
    target: str = "eps",
    x_axis: str = "t",
    view: str = "weight",
    zero_terminal_snr: bool = False,
    log_y: bool = True,
    sampler: str = "uniform",
    sampler_params: Mapping[str, float] | None = None,
    schedule_shift: float = 1.0,
) -> ExplorerResult:
    """Weight curves of the chosen strategies for one schedule, in one target space.

    With a non-uniform timestep ``sampler`` the weight and effective views show the weight that gives the same
    expected loss under uniform sampling, T·p(t)·w(t); the ``sampler`` view shows each weighting as the timestep
    distribution that reproduces it with a constant weight, T·q(t) with q ∝ p·w. Each legend entry carries the
    strategy's mean weight E_p[w] = Σ p(t)·w(t), that constant. ``schedule_shift`` α ≠ 1 moves every log-SNR of the
    schedule by −2·log α (SD3's resolution shift)."""
    params = dict(params or {})
    low, high = TIMESTEPS_RANGE
    if (isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int | float)
            or not low <= num_timesteps <= high or num_timesteps != int(num_timesteps)):
        raise ValueError(f"num_timesteps (T) must be a whole number from {low} to {high}; got {num_timesteps!r}")
    num_timesteps = int(num_timesteps)
    if isinstance(strategies, str) or not all(isinstance(name, str) for name in strategies):
        raise ValueError("strategies must be a list of strategy names")
    if x_axis not in X_AXES:
        raise ValueError(f"x_axis must be one of {', '.join(X_AXES)}; got {x_axis!r}")
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}; got {view!r}")
    sched = get_schedule(schedule, int(num_timesteps), zero_terminal_snr=bool(zero_terminal_snr), shift=schedule_shift)
    snr = sched.snr.numpy()
    t = np.arange(sched.num_timesteps)
    finite_lambda = snr > 0
    density = sched.log_snr_density().numpy()
    x_all = t if x_axis == "t" else np.log(np.where(finite_lambda, snr, 1.0))
    notices: list[str] = []
    if x_axis == "log_snr" and not finite_lambda.all():
        notices.append("t = T has SNR = 0 (λ = −∞): it has no place on a log-SNR axis and is left out.")

    if sampler not in EXPLORER_SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(EXPLORER_SAMPLERS)}; got {sampler!r}")
    sampler_values = TIMESTEP_SAMPLERS.get(sampler).resolve_params(dict(sampler_params or {}), ignore_unknown=True)
    probabilities = timestep_probabilities(sampler, sched, **sampler_values).numpy()
    # The sampler's p(t) relative to uniform (exactly 1 for uniform, so its curves are the registry's weights).
    factor = np.ones_like(probabilities) if sampler == "uniform" else sched.num_timesteps * probabilities

    figure = go.Figure()
    strategies = list(dict.fromkeys(strategies))
    mean_weights: list[float] = []
    for name, style in zip(strategies, chart_styles(strategies), strict=True):
        entry = STRATEGIES.get(name)
        values = entry.resolve_params(params, ignore_unknown=True)
        keep = np.ones_like(snr, dtype=bool) if x_axis == "t" else finite_lambda.copy()
        # The weight in the target space at every step; inf where it is unbounded or undefined (SNR = 0).
        if defined_everywhere(name, sched, target, **values):
            target_weights = schedule_weights(name, sched, target, **values).numpy()
        else:
            notices.append(f"{entry.display_name}: the weight is unbounded or undefined at SNR = 0; that point is left out.")
            target_weights = np.full_like(snr, np.inf)
            target_weights[finite_lambda] = loss_weight(name, snr[finite_lambda], target, density[finite_lambda],
                                                        process=sched.process, **values).numpy()
        mean = _mean_weight(probabilities, target_weights)
        mean_weights.append(mean)
        if view == "effective":
            weights = effective_weight(name, sched, **values).numpy() * factor
            keep &= finite_lambda
        elif view == "sampler":
            keep &= np.isfinite(target_weights)
            if np.isfinite(mean) and mean > 0:  # q ∝ p·w, drawn relative to uniform: T·q
                weights = np.where(keep, factor * np.where(keep, target_weights, 0) / mean, 0.0)
            else:
                notices.append(f"{entry.display_name}: no timestep distribution reproduces it (its mean weight is "
                               f"{'infinite' if mean == np.inf else 'zero'}).")
                weights, keep = np.zeros_like(snr), np.zeros_like(keep)
        else:
            keep &= np.isfinite(target_weights)
            weights = factor * np.where(keep, target_weights, 0.0)
        if log_y and (weights[keep] <= 0).any():
            notices.append(f"{entry.display_name}: weight 0 at some steps, not drawn on the log axis.")
            keep &= weights > 0
        figure.add_trace(
            go.Scatter(
                x=x_all[keep],
                y=weights[keep],
                customdata=np.stack([t[keep], snr[keep]], axis=1),
                **style.scatter(),
                name=legend_entry(entry.display_name, values, mean),
                hovertemplate="t=%{customdata[0]}<br>SNR=%{customdata[1]:.4g}<br>weight=%{y:.4g}<extra>%{fullData.name}</extra>",
            )
        )
    if sampler != "uniform" and view == "weight":  # the sampler's own curve, for comparison
        keep = np.ones_like(snr, dtype=bool) if x_axis == "t" else finite_lambda.copy()
        if log_y:
            keep &= factor > 0
        figure.add_trace(go.Scatter(x=x_all[keep], y=factor[keep], mode="lines", line={"dash": "dot", "color": NEUTRAL},
                                    name=f"{TIMESTEP_SAMPLERS.get(sampler).display_name} T·p(t)",
                                    hovertemplate="t=%{x}<br>T·p(t)=%{y:.4g}<extra></extra>"))

    gamma = STRATEGIES.get("min_snr").resolve_params(params, ignore_unknown=True)[CLAMP["param"]]
    region = _clamp_region(snr, x_all, gamma)
    # The band set directly, not through plotly's add_vrect, which is slow.
    band = {} if region is None else {
        "shapes": [{**CLAMP["shape"], "x0": region[0], "x1": region[1]}],
        "annotations": [{**CLAMP["note"], "text": CLAMP["text"].format(**{CLAMP["param"]: number(gamma)}),
                         "x": region[0]}]}
    all_params = {p.name: float(params.get(p.name, p.default)) for p in strategy_parameters().values()}
    if view == "sampler":
        y_title = f"T·q(t), q ∝ p·w on the {target_name(target, sched.process)} MSE (1 = uniform)"
    else:
        y_title = VIEWS[view] + ("" if view == "effective" else f" on the {target_name(target, sched.process)} MSE")
        if sampler != "uniform":
            y_title += " × T·p(t)"
    figure.update_layout(
        meta={**browser_meta(sched, strategies, target, x_axis, view, log_y, all_params, factor),
              "export": explorer_export(strategies, target, x_axis, view, sched, zero_terminal_snr, sampler)},
        **band,
        template=PLOT_TEMPLATE,
        title=(f"rectified flow, T = {sched.num_timesteps} (t = 1 is pure noise)" if sched.process == "rf" else
               f"{sched.name} schedule, T = {sched.num_timesteps}" + (", zero terminal SNR" if zero_terminal_snr else ""))
              + (f", shifted by α = {sched.shift:g} (log-SNR − {2 * np.log(sched.shift):.2f})" if sched.shift != 1 else ""),
        xaxis_title=("timestep index i (rectified flow's t = (i + 1)/T)" if x_axis == "t" and sched.process == "rf"
                     else X_AXES[x_axis]),
        yaxis_title=y_title,
        yaxis_type="log" if log_y else "linear",
        hovermode="closest",
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        height=520,
    )
    displays = [STRATEGIES.get(name).display_name for name in strategies]
    return ExplorerResult(figure, explain_strategies(strategies, target, view, sampler, sched.process),
                          list(dict.fromkeys(notices)),
                          mean_weights, describe_explorer(figure, displays, snr, gamma, region is not None))


EXPORT_VIEWS = {"weight": "weights", "effective": "effective-weights", "sampler": "weights-as-sampling"}
EXPORT_Y = {"weight": "weight", "effective": "effective_weight", "sampler": "T_times_q"}


def explorer_export(strategies: list[str], target: str, x_axis: str, view: str, sched: Schedule,
                    zero_terminal_snr: bool, sampler: str) -> dict:
    """The explorer's downloads (:func:`app.charts.export_spec`): named by view, target and each shown strategy
    parameter (filled in the page with the value drawn), then any setting away from its default
    ("minsnr-weights-eps-gamma5"); CSV columns t or log_snr, snr (and t on a log-SNR axis), and the weight."""
    names = [p.name for name in strategies for p in STRATEGIES.get(name).params]
    parts = [f"minsnr-{EXPORT_VIEWS[view]}-{target}", *[f"{n.replace('_', '-')}{{{n}}}" for n in dict.fromkeys(names)]]
    if sched.name != "cosine":
        parts.append(sched.name)
    if sched.num_timesteps != 1000:
        parts.append(f"T{sched.num_timesteps}")
    if zero_terminal_snr:
        parts.append("zero-terminal-snr")
    if sched.shift != 1:
        parts.append(f"shift{sched.shift:g}")
    if sampler != "uniform":
        parts.append(f"sampler-{sampler}")
    if x_axis != "t":
        parts.append("by-log-snr")
    custom = [None, "snr"] if x_axis == "t" else ["t", "snr"]
    return export_spec("-".join(part if "{" in part else part.replace("_", "-") for part in parts), x_axis,
                       EXPORT_Y[view], custom)


EFFECTIVE_EXPLANATION = (
    "**The effective weight** (Kingma & Gao 2023) asks how much a weighting emphasises each noise level *per unit "
    r"log-SNR* λ, not per timestep: it is the ε-space weight times $p(\lambda)$, the density of λ when t is drawn "
    r"uniformly, $w_\varepsilon(\lambda)\,p(\lambda)$. A schedule that spends many timesteps near one λ raises "
    "that level's share even with a constant weight, so this view compares weightings across schedules and "
    "prediction spaces on one footing: the same curve here means the same training objective, whatever the schedule "
    "(Kingma & Gao 2023). "
    "It does not depend on the prediction target (ε, x₀ and v weights convert into one another exactly).")


SAMPLER_EXPLANATION = (
    "**Timestep sampling and weighting meet in the expected loss.** Training with t drawn from p(t) and the weight "
    r"w(t) minimises $\sum_t p(t)\,w(t)\,\ell_t$: the same as uniform t with the weight $T\,p(t)\,w(t)$, which "
    r"the weight and effective views draw when a sampler other than uniform is chosen (its own $T\,p(t)$ dotted). "
    r"The other way round, a weighting is reproduced by drawing t from $q(t) \propto p(t)\,w(t)$ with the constant "
    r"weight $E_p[w] = \sum_t p(t)\,w(t)$, the number in each legend entry; *As a timestep distribution* draws "
    r"$T\,q(t)$ (1 = uniform). The expected loss is the same both ways, the gradient's variance is not: the "
    "Train tab's loss-aware importance sampler uses this to draw the steps with large losses more often, dividing "
    "by how often. A constant factor such as E[w] scales the loss, and with plain SGD the learning rate; Adam "
    "divides each update by the gradient's running scale, so there it cancels up to Adam's small ε.")


@functools.cache
def default_view() -> ExplorerResult:
    """The explorer at every default: the tab's first figure and the chart in the page's own HTML."""
    return build_explorer(params={p.name: p.default for p in strategy_parameters().values()})


def warm_up_explorer() -> None:
    """Draw every view once before the server opens: Plotly loads its validators on first use."""
    for view, x_axis in itertools.product(VIEWS, X_AXES):
        build_explorer(strategies=STRATEGIES.names(), view=view, x_axis=x_axis).figure.to_json()
    default_view()


def _float64_base64(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode("ascii")


def browser_meta(sched: Schedule, strategies: list[str], target: str, x_axis: str, view: str,
                 log_y: bool, params: dict[str, float], factor: np.ndarray) -> dict:
    """What the browser needs to redraw this figure for new parameter values without asking the server
    (app/static/explorer.js): the schedule's SNR and log-SNR density per step, the v target's error scale, the timestep
    sampler's T·p(t), each strategy's weight as the registry's JavaScript expression, the parameters' ranges, and how
    numbers, legend entries and the clamp band are written (:data:`TEXT`, :data:`CLAMP`). The scale is sent only for
    the v target and T·p(t) only for a sampler other than uniform (where it is 1 everywhere), as each is as large as
    the SNR itself."""
    return {
        "minsnr": 1, "snr": _float64_base64(sched.snr.numpy()), "density": _float64_base64(sched.log_snr_density().numpy()),
        "factor": None if np.all(factor == 1) else _float64_base64(factor),
        # x0_error_scale of the v target, which depends on the process (VP: SNR + 1; rectified flow: (1 + √SNR)²).
        "v_scale": _float64_base64(x0_error_scale("v", sched.snr, sched.process).numpy()) if target == "v" else None,
        "target": target, "x_axis": x_axis, "view": view, "log_y": bool(log_y),
        "param_names": list(strategy_parameters()), "params": params,
        "param_ranges": {p.name: [p.minimum, p.maximum, p.exclusive_minimum] for p in strategy_parameters().values()},
        "strategies": [{"display": STRATEGIES.get(n).display_name, "js": STRATEGIES.get(n).js,
                        "eps_at_zero": STRATEGIES.get(n).js_eps_at_zero, "per_unit": STRATEGIES.get(n).per_unit_log_snr,
                        "params": [p.name for p in STRATEGIES.get(n).params]} for n in strategies],
        "text": TEXT, "clamp": CLAMP, "words": WORDS,
    }


def browser_figure_json(result: ExplorerResult) -> str:
    """The figure as sent to a page after a control change: the strategies' traces without their points, which the
    page computes from ``layout.meta`` (app/static/explorer.js) before the chart is painted: far fewer bytes than the
    full figure, whose points and hover data make up most of it."""
    figure = json.loads(result.figure.to_json())  # a copy without plotly's validation, which is slow
    for trace in figure["data"][:len(figure["layout"]["meta"]["strategies"])]:
        trace.update(x=[], y=[], customdata=[])
    figure["layout"]["meta"]["skeleton"] = 1
    return json.dumps(figure)


RF_EXPLANATION = (
    "**Rectified flow** is not VP diffusion: $x_t = (1-t)\\,x_0 + t\\,\\varepsilon$ moves on a straight line "
    "from the data (t = 0) to pure noise (t = 1), so $\\mathrm{SNR} = ((1-t)/t)^2$ and the model learns the "
    "velocity $v = \\varepsilon - x_0$, not VP's $\\alpha\\varepsilon - \\sigma x_0$. For the same output, "
    "$v - \\hat v = -(x_0 - \\hat x_0)/t$, so $\\|v-\\hat v\\|^2 = (1+\\sqrt{\\mathrm{SNR}})^2\\,"
    "\\|x_0-\\hat x_0\\|^2$: a weighting moves into v space by dividing by $(1+\\sqrt{\\mathrm{SNR}})^2$, not by "
    "SNR + 1. The plain velocity loss is the weight $(1+\\sqrt{\\mathrm{SNR}})^2$ on x₀. At t = 1 the ε target "
    "cannot recover x₀ (train with v or x₀); sampling takes Euler steps along $\\hat v$.")


def explain_strategies(strategies: Iterable[str], target: str = "eps", view: str = "weight",
                       sampler: str = "uniform", process: str = "vp") -> str:
    """Markdown: formula, intuition and reference of each ticked strategy, from the registry (and, for the effective
    weight, timestep sampling and rectified flow, what that view shows)."""
    conversion = target_weight_latex(target, process)
    lines = [EFFECTIVE_EXPLANATION, ""] if view == "effective" else []
    if view == "sampler" or sampler != "uniform":
        entry = TIMESTEP_SAMPLERS.get(sampler)
        lines += [SAMPLER_EXPLANATION, "", f"**{entry.display_name}** — ${entry.latex}$  \n{entry.description} "
                  f"*({entry.reference})*", ""]
    if process == "rf":
        lines += [RF_EXPLANATION, ""]
    v_scale = r"(1+\sqrt{\mathrm{SNR}})^2" if process == "rf" else r"(\mathrm{SNR}+1)"
    lines += [
        "Each curve is one weighting strategy. A strategy is one function $w_{x_0}(\\mathrm{SNR})$ on the x₀ error; "
        f"in the {target_name(target, process)} space it becomes ${conversion}$ because "
        "$\\|\\varepsilon-\\hat\\varepsilon\\|^2 = \\mathrm{SNR}\\,\\|x_0-\\hat x_0\\|^2$ and "
        f"$\\|v-\\hat v\\|^2 = {v_scale}\\,\\|x_0-\\hat x_0\\|^2$.",
        "",
    ]
    for name in strategies:
        entry = STRATEGIES.get(name)
        lines.append(f"**{entry.display_name}** — ${entry.latex}$  \n{entry.description} *({entry.reference})*")
        lines.append("")
        if who_computes(name):
            # folded: six implementations of Min-SNR would otherwise push the next strategy off the screen
            lines += [f"<details><summary>Who computes {entry.display_name}, and how</summary>", "", who_computes(name), "",
                      "</details>", ""]
    return "\n".join(lines)

