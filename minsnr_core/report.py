"""Figures (Plotly HTML, PNG through kaleido when a Chrome is available) and a Markdown summary of an experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from .experiment import BASELINE, HIGHER_IS_BETTER, mean_curves, steps_to_threshold
from .weighting import STRATEGIES, TARGET_NAMES

METRIC_TITLES = {"confident": "share of confidently recognised digits (p > 0.9)", "fd": "Fréchet distance",
                 "label_entropy": "label entropy (bits)", "swd": "sliced Wasserstein distance"}
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
          "#393b79"]


def _band(figure: go.Figure, x: list, mean: list, std: list, name: str, color: str) -> None:
    upper = [m + s for m, s in zip(mean, std, strict=True)]
    lower = [m - s for m, s in zip(mean, std, strict=True)]
    figure.add_trace(go.Scatter(x=x + x[::-1], y=upper + lower[::-1], fill="toself", fillcolor=color, opacity=0.15,
                                line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=name))
    figure.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=name, line={"color": color}, legendgroup=name))


def quality_figures(rows: list[dict[str, Any]], metric: str) -> dict[str, go.Figure]:
    """One figure per target: quality against step for each weighting, mean ± one standard deviation over seeds."""
    figures: dict[str, go.Figure] = {}
    curves = mean_curves(rows, metric)
    names = STRATEGIES.names()
    for (target, weighting), curve in curves.items():
        figure = figures.setdefault(target, go.Figure())
        color = COLORS[names.index(weighting) % len(COLORS)]
        label = STRATEGIES.get(weighting).display_name + (" (baseline)" if BASELINE[target] == weighting else "")
        _band(figure, curve["step"], curve["mean"], curve["std"], label, color)
    for target, figure in figures.items():
        figure.update_layout(title=f"{TARGET_NAMES[target]} target: {METRIC_TITLES.get(metric, metric)} (mean ± sd over seeds)",
                             xaxis_title="training step", yaxis_title=metric, height=450, width=800)
    return figures


def ablation_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The γ ablation's rows plus the comparison's Min-SNR rows of the same target (its γ = 5 point)."""
    targets = {r["target"] for r in rows if r["group"] == "ablation"}
    return [r for r in rows if r["weighting"] == "min_snr" and r["target"] in targets]


def ablation_figure(rows: list[dict[str, Any]], metric: str) -> go.Figure | None:
    """Final quality of Min-SNR against γ (mean ± sd over seeds); None when no ablation was run."""
    selected = ablation_rows(rows)
    curves = mean_curves(selected, metric, group="all", by=("gamma",))
    if len(curves) < 2:
        return None
    targets = ", ".join(TARGET_NAMES[t] for t in sorted({r["target"] for r in selected}))
    points = sorted((float(key[0]), curve["mean"][-1], curve["std"][-1]) for key, curve in curves.items())
    figure = go.Figure(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                                  error_y={"type": "data", "array": [p[2] for p in points]}))
    figure.update_layout(title=f"Min-SNR-γ ablation, {targets} target: {METRIC_TITLES.get(metric, metric)} "
                               f"at step {max(r['step'] for r in selected)} (mean ± sd over seeds)",
                         xaxis_title="γ", xaxis_type="log", yaxis_title=metric, height=420, width=700)
    return figure


def speedup_figure(rows: list[dict[str, Any]], metric: str) -> go.Figure | None:
    """Steps each weighting needs to reach its target's baseline's final quality, one bar group per target;
    weightings that never get there are marked "not reached" at the full budget. None without a baseline."""
    table = steps_to_threshold(mean_curves(rows, metric), metric)
    if not table:
        return None
    budget = max(r["step"] for r in rows)
    figure = go.Figure()
    for target in dict.fromkeys(r["target"] for r in table):
        entries = [r for r in table if r["target"] == target]
        figure.add_trace(go.Bar(
            name=f"{TARGET_NAMES[target]} target", x=[STRATEGIES.get(r["weighting"]).display_name for r in entries],
            y=[r["steps_to_threshold"] or budget for r in entries],
            marker_pattern_shape=["" if r["steps_to_threshold"] else "/" for r in entries],
            text=[f"{r['speedup']:.2f}×" if r["speedup"] else "not reached" for r in entries], textposition="outside"))
    figure.update_layout(barmode="group", height=450, width=800, yaxis_title="training steps",
                         title=f"Steps to reach the baseline's final {METRIC_TITLES.get(metric, metric)}<br><sup>label: "
                               "speed-up over the baseline; hatched: not reached within the budget</sup>")
    return figure


def save_figure(figure: go.Figure, path_without_suffix: Path) -> list[str]:
    """Write ``.html`` (plotly.js in a shared file beside it) and, when kaleido and a Chrome are present, ``.png``."""
    written = []
    html = path_without_suffix.with_suffix(".html")
    figure.write_html(html, include_plotlyjs="directory")
    written.append(html.name)
    try:
        figure.write_image(path_without_suffix.with_suffix(".png"), scale=1.5)
        written.append(path_without_suffix.with_suffix(".png").name)
    except Exception as error:  # noqa: BLE001 - PNG export is optional: kaleido or Chrome may be missing
        print(f"PNG not written for {html.name} ({type(error).__name__}); the HTML figure is there")
    return written


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "not reached"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def write_report(rows: list[dict[str, Any]], out_dir: str | Path, metric: str | None = None) -> Path:
    """Figures plus ``summary.md``: final quality per cell (mean ± sd, n seeds), steps to threshold, γ ablation."""
    out = Path(out_dir)
    if not rows:
        raise ValueError("no results to report")
    # The Fréchet distance moves from the first steps on; the share of recognised digits stays 0 until digits form.
    metric = metric or ("fd" if "fd" in rows[0] else "swd")
    figures = []
    for target, figure in quality_figures(rows, metric).items():
        figures += save_figure(figure, out / f"quality_{target}")
    ablation = ablation_figure(rows, metric)
    if ablation is not None:
        figures += save_figure(ablation, out / "gamma_ablation")
    speedups = speedup_figure(rows, metric)
    if speedups is not None:
        figures += save_figure(speedups, out / "steps_to_threshold")

    lines = [f"Metric: **{metric}** ({METRIC_TITLES.get(metric, metric)}; "
             f"{'higher' if HIGHER_IS_BETTER.get(metric, True) else 'lower'} is better).", ""]
    measured = [m for m in METRIC_TITLES if m in rows[0]]
    lines += ["### Final quality (mean ± sd over seeds)", "",
              "| target | weighting | " + " | ".join(measured) + " | seeds |", "| --- | --- |" + " --- |" * (len(measured) + 1)]
    curves_by_metric = {m: mean_curves(rows, m) for m in measured}
    for (target, weighting), curve in curves_by_metric[metric].items():
        cells = [f"{c['mean'][-1]:.3g} ± {c['std'][-1]:.2g}"
                 for c in (curves_by_metric[m][(target, weighting)] for m in measured)]
        lines.append(f"| {target} | {STRATEGIES.get(weighting).display_name} | " + " | ".join(cells) + f" | {curve['n'][-1]} |")
    lines += ["", "### Steps to reach the baseline's final quality (the paper's speed-up)", "",
              "| target | weighting | baseline | threshold | steps | speed-up |", "| --- | --- | --- | --- | --- | --- |"]
    for row in steps_to_threshold(mean_curves(rows, metric), metric):
        lines.append(f"| {row['target']} | {STRATEGIES.get(row['weighting']).display_name} | "
                     f"{STRATEGIES.get(row['baseline']).display_name} | {row['threshold']:.3f} | "
                     f"{_fmt(row['steps_to_threshold'])} | {_fmt(row['speedup'])}{'×' if row['speedup'] else ''} |")
    ablation_curves = mean_curves(ablation_rows(rows), metric, group="all", by=("gamma",))
    if len(ablation_curves) >= 2:
        lines += ["", "### Min-SNR-γ ablation (final quality)", "", f"| γ | {metric} | n |", "| --- | --- | --- |"]
        for (gamma,), curve in sorted(ablation_curves.items(), key=lambda kv: float(kv[0][0])):
            lines.append(f"| {float(gamma):g} | {curve['mean'][-1]:.3f} ± {curve['std'][-1]:.3f} | {curve['n'][-1]} |")
    lines += ["", "Figures: " + ", ".join(f"[{name}]({name})" for name in figures)]
    summary = out / "summary.md"
    summary.write_text("\n".join(lines) + "\n")
    return summary
