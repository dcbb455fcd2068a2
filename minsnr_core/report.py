"""Figures (Plotly HTML, PNG through kaleido when a Chrome is available) and a Markdown summary of an experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from .curves import mean_curves, steps_to_threshold
from .experiment import BASELINE, HIGHER_IS_BETTER, arm_name
from .results_files import NOT_RECORDED
from .stats import holm, paired_comparison, paired_speedups
from .styles import PLOT_TEMPLATE, CurveStyle, chart_styles
from .weighting import STRATEGIES, TARGET_NAMES

METRIC_TITLES = {"confident": "share of confidently recognised digits (p > 0.9)", "fd": "Fréchet distance",
                 "label_entropy": "label entropy (bits)", "swd": "sliced Wasserstein distance"}


def _band(figure: go.Figure, x: list, mean: list, std: list, name: str, style: CurveStyle) -> None:
    upper = [m + s for m, s in zip(mean, std, strict=True)]
    lower = [m - s for m, s in zip(mean, std, strict=True)]
    figure.add_trace(go.Scatter(x=x + x[::-1], y=upper + lower[::-1], fill="toself", fillcolor=style.color, opacity=0.15,
                                line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=name))
    figure.add_trace(go.Scatter(x=x, y=mean, name=name, legendgroup=name, **style.scatter(every_point=True)))


def quality_figures(rows: list[dict[str, Any]], metric: str, seed_lines: bool = False) -> dict[str, go.Figure]:
    """One figure per target: quality against step for each weighting, mean ± one standard deviation over seeds;
    ``seed_lines`` adds each seed's own curve as a thin line (a run far from the others shows as itself)."""
    figures: dict[str, go.Figure] = {}
    curves = mean_curves(rows, metric)
    per_seed = mean_curves(rows, metric, by=("target", "weighting", "seed")) if seed_lines else {}
    # Each weighting its own colour, dash and marker (minsnr_core.styles), the same in every target's figure.
    arms = list(dict.fromkeys(weighting for _, weighting in curves))
    styles = dict(zip(arms, chart_styles(arms), strict=True))
    for (target, weighting), curve in curves.items():
        figure = figures.setdefault(target, go.Figure())
        style = styles[weighting]
        label = arm_name(weighting) + (" (baseline)" if BASELINE[target] == weighting else "")
        _band(figure, curve["step"], curve["mean"], curve["std"], label, style)
        for (_, _, seed), run in ((k, c) for k, c in per_seed.items() if k[:2] == (target, weighting)):
            figure.add_trace(go.Scatter(x=run["step"], y=run["mean"], mode="lines",
                                        line={"color": style.color, "width": 1, "dash": style.dash},
                                        opacity=0.45, showlegend=False, legendgroup=label,
                                        name=f"{label}, seed {seed}", hovertemplate="%{y:.3g}<extra>%{fullData.name}</extra>"))
    for target, figure in figures.items():
        figure.update_layout(title=f"{TARGET_NAMES[target]} target: {METRIC_TITLES.get(metric, metric)} (mean ± sd over seeds)",
                             xaxis_title="training step", yaxis_title=metric, height=450, width=800,
                             template=PLOT_TEMPLATE)
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
            name=f"{TARGET_NAMES[target]} target", x=[arm_name(r["weighting"]) for r in entries],
            y=[r["steps_to_threshold"] or budget for r in entries],
            marker_pattern_shape=["" if r["steps_to_threshold"] else "/" for r in entries],
            text=[f"{r['speedup']:.2f}×" if r["speedup"] else "not reached" for r in entries], textposition="outside"))
    figure.update_layout(barmode="group", height=450, width=800, yaxis_title="training steps",
                         title=f"Steps to reach the baseline's final {METRIC_TITLES.get(metric, metric)}<br><sup>label: "
                               "speed-up over the baseline; hatched: not reached within the budget</sup>")
    return figure


def save_figures(figures: dict[str, go.Figure], out: Path) -> list[str]:
    """Write each figure as ``<name>.html`` (plotly.js in a shared file beside them) and, when kaleido and a Chrome
    are present, ``<name>.png`` (all in one export: each export otherwise starts a browser, ~3 s)."""
    written = []
    for name, figure in figures.items():
        figure.write_html(out / f"{name}.html", include_plotlyjs="directory")
        written.append(f"{name}.html")
    if not figures:
        return written
    try:
        pio.write_images(list(figures.values()), [out / f"{name}.png" for name in figures], scale=1.5)
        written += [f"{name}.png" for name in figures]
    except Exception as error:  # noqa: BLE001 - PNG export is optional: kaleido or Chrome may be missing
        print(f"PNGs not written ({type(error).__name__}); the HTML figures are there")
    return written


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "not reached"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.2g}" if value >= 0.001 else "< 0.001"


def tested_family(rows: list[dict[str, Any]], metrics: list[str], primary: str) -> list[dict[str, Any]]:
    """Every test of the report with its raw and Holm-adjusted p-value, in two families. Primary (declared before
    looking): Min-SNR-γ against each target's plain loss, its paired difference in ``primary`` at the last step and
    its speed-up per target. Exploratory: every other paired difference (other weightings, other metrics). Holm
    adjusts each family on its own."""
    tests = []
    for metric in metrics:
        for entry in paired_comparison(rows, metric, BASELINE):
            family = "primary" if entry["weighting"] == "min_snr" and metric == primary else "exploratory"
            tests.append({**entry, "kind": "difference", "metric": metric, "family": family})
    for entry in paired_speedups(rows, primary, BASELINE, HIGHER_IS_BETTER.get(primary, True)):
        if entry["weighting"] != entry["baseline"]:
            family = "primary" if entry["weighting"] == "min_snr" else "exploratory"
            tests.append({**entry, "kind": "speedup", "metric": primary, "family": family})
    for family in ("primary", "exploratory"):
        members = [t for t in tests if t["family"] == family]
        for test, adjusted in zip(members, holm([t["p"] for t in members]), strict=True):
            test["p_holm"] = adjusted
    return tests


def paired_lines(rows: list[dict[str, Any]], metrics: list[str], primary: str) -> list[str]:
    """Markdown: each weighting minus its target's plain loss, seed by seed (same seed = same init, batches and
    noise), at the last step, with 95 % t intervals and p-values (raw, and Holm-adjusted within the primary or the
    exploratory family); then per-seed speed-ups in ``primary``."""
    tests = tested_family(rows, metrics, primary)
    lines = ["Primary comparison (declared in advance): Min-SNR-γ against each target's plain loss, its paired difference "
             f"in {primary} at the last step and its speed-up. Everything else is exploratory. p: paired t-test; "
             "Holm: adjusted within its family (Holm 1979). An interval that includes 0 is a difference not detected.", "",
             "### Paired differences from the plain loss (same seeds; mean and 95 % t interval)", "",
             "| target | weighting | metric | Δ [95 % interval] | p | Holm p | family | seeds | step |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for test in (t for t in tests if t["kind"] == "difference"):
        lines.append(f"| {test['target']} | {arm_name(test['weighting'])} | {test['metric']} | "
                     f"{test['diff']:+.3g} [{test['low']:+.3g}, {test['high']:+.3g}] | {_p(test['p'])} | "
                     f"{_p(test['p_holm'])} | {test['family']} | {test['n']} | {test['step']} |")
    lines += ["", f"### Speed-up per seed ({primary}): baseline steps / steps to the same seed's baseline final value", "",
              "| target | weighting | per seed | geometric mean [95 % interval] | p | Holm p | family |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for test in (t for t in tests if t["kind"] == "speedup"):
        seeds = ", ".join("not reached" if s is None else f"{s:.2f}×" for s in test["speedups"])
        summary = (f"{test['geomean']:.2f}× [{test['low']:.2f}, {test['high']:.2f}]" if test["geomean"]
                   else f"reached in {test['reached']} of {test['n']} seeds")
        lines.append(f"| {test['target']} | {arm_name(test['weighting'])} | {seeds} | {summary} | {_p(test['p'])} | "
                     f"{_p(test['p_holm'])} | {test['family']} |")
    return lines


def lr_check_lines(rows: list[dict[str, Any]], metric: str) -> list[str]:
    """Markdown: the learning-rate check (group ``lr_check``) beside the comparison's runs at the default rate, seed
    by seed, with the paired difference Min-SNR − plain loss at each rate."""
    checks = [r for r in rows if r["group"] == "lr_check"]
    if not checks:
        return []
    target, seeds = checks[0]["target"], sorted({int(r["seed"]) for r in checks})
    last = max(int(r["step"]) for r in checks)
    chosen = [r for r in rows if r["group"] in ("lr_check", "comparison") and r["target"] == target
              and r["weighting"] in (BASELINE[target], "min_snr") and int(r["seed"]) in seeds and int(r["step"]) == last]
    value = {(float(r["lr"]), r["weighting"], int(r["seed"])): float(r[metric]) for r in chosen}
    lines = [f"### Learning-rate check ({target} target, {metric} at step {last}, seeds {', '.join(map(str, seeds))})", "",
             f"| learning rate | {STRATEGIES.get(BASELINE[target]).display_name} | Min-SNR-γ | Min-SNR − plain, per seed |",
             "| --- | --- | --- | --- |"]
    for lr in sorted({key[0] for key in value}):
        per = {w: [value.get((lr, w, s)) for s in seeds] for w in (BASELINE[target], "min_snr")}
        cells = [", ".join("–" if v is None else f"{v:.3g}" for v in per[w]) for w in per]
        diffs = ", ".join("–" if a is None or b is None else f"{b - a:+.3g}" for a, b in zip(*per.values(), strict=True))
        lines.append(f"| {lr:g} | {cells[0]} | {cells[1]} | {diffs} |")
    return lines


def write_report(rows: list[dict[str, Any]], out_dir: str | Path, metric: str | None = None,
                 floor: dict[str, Any] | None = None, machines: dict[str, int] | None = None) -> Path:
    """Figures plus ``summary.md``: final quality per cell (mean ± sd, n seeds), paired differences and speed-ups,
    steps to threshold, γ ablation; ``floor`` (:func:`minsnr_core.metrics.real_data_floor`), when given, is the
    real-data score at the same sample count; ``machines`` (:func:`minsnr_core.results_files.record_machines`), the
    machines the runs trained on."""
    out = Path(out_dir)
    if not rows:
        raise ValueError("no results to report")
    # The Fréchet distance moves from the first steps on; the share of recognised digits stays 0 until digits form.
    metric = metric or ("fd" if "fd" in rows[0] else "swd")
    drawn = {f"quality_{target}": figure for target, figure in quality_figures(rows, metric).items()}
    drawn.update({name: figure for name, figure in (("gamma_ablation", ablation_figure(rows, metric)),
                                                    ("steps_to_threshold", speedup_figure(rows, metric)))
                  if figure is not None})
    figures = save_figures(drawn, out)

    lines = [f"Metric: **{metric}** ({METRIC_TITLES.get(metric, metric)}; "
             f"{'higher' if HIGHER_IS_BETTER.get(metric, True) else 'lower'} is better).", ""]
    measured = [m for m in METRIC_TITLES if m in rows[0]]
    lines += ["### Final quality (mean ± sd over seeds)", "",
              "| target | weighting | " + " | ".join(measured) + " | seeds |", "| --- | --- |" + " --- |" * (len(measured) + 1)]
    curves_by_metric = {m: mean_curves(rows, m) for m in measured}
    for (target, weighting), curve in curves_by_metric[metric].items():
        cells = [f"{c['mean'][-1]:.3g} ± {c['std'][-1]:.2g}"
                 for c in (curves_by_metric[m][(target, weighting)] for m in measured)]
        lines.append(f"| {target} | {arm_name(weighting)} | " + " | ".join(cells) + f" | {curve['n'][-1]} |")
    lines += ["", "### Steps to reach the baseline's final quality (the paper's speed-up)", "",
              "| target | weighting | baseline | threshold | steps | speed-up |", "| --- | --- | --- | --- | --- | --- |"]
    for row in steps_to_threshold(mean_curves(rows, metric), metric):
        lines.append(f"| {row['target']} | {arm_name(row['weighting'])} | "
                     f"{arm_name(row['baseline'])} | {row['threshold']:.3f} | "
                     f"{_fmt(row['steps_to_threshold'])} | {_fmt(row['speedup'])}{'×' if row['speedup'] else ''} |")
    lines += [""] + paired_lines(rows, measured, metric)
    check = lr_check_lines(rows, metric)
    lines += [""] + check if check else []
    if floor:
        lines += ["", f"Real data, scored the same way: {floor['samples']} training images, {floor['sets']} disjoint "
                  "sets (mean ± sd): " + ", ".join(f"{m} {v['mean']:.3g} ± {v['sd']:.2g}" for m, v in floor["scores"].items())
                  + "."]
    ablation_curves = mean_curves(ablation_rows(rows), metric, group="all", by=("gamma",))
    if len(ablation_curves) >= 2:
        lines += ["", "### Min-SNR-γ ablation (final quality)", "", f"| γ | {metric} | n |", "| --- | --- | --- |"]
        for (gamma,), curve in sorted(ablation_curves.items(), key=lambda kv: float(kv[0][0])):
            lines.append(f"| {float(gamma):g} | {curve['mean'][-1]:.3f} ± {curve['std'][-1]:.3f} | {curve['n'][-1]} |")
    if machines:
        lines += ["", "Trained on: " + "; ".join(f"{machine} ({count} run{'s' * (count != 1)})"
                                                 for machine, count in machines.items()) + "."]
        if len([machine for machine in machines if machine != NOT_RECORDED]) > 1:
            lines.append("These runs trained in more than one way: another CPU, GPU, thread count or batched step "
                         "rounds differently, so a run's digits, and its score, can differ from the same run trained "
                         "the other way (docs/results.md, section 8).")
    lines += ["", "Figures: " + ", ".join(f"[{name}]({name})" for name in figures)]
    summary = out / "summary.md"
    summary.write_text("\n".join(lines) + "\n")
    return summary
