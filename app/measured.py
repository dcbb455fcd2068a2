"""The measured comparisons shipped in docs/results (MNIST and CIFAR-10), shown without training: quality against
step with its spread and each seed, and what a chosen MNIST budget showed there."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import gradio as gr
import plotly.graph_objects as go

from minsnr_core.curves import FAR_FROM_THE_REST, far_runs, mean_curves
from minsnr_core.experiment import (
    BASELINE,
    HIGHER_IS_BETTER,
    REPORT_LR,
    arm_name,
    read_csv,
    report_model,
)
from minsnr_core.report import quality_figures
from minsnr_core.settings import DEFAULT_BATCH
from minsnr_core.weighting import TARGET_NAMES, TARGETS

from .charts import chart, describe_runs, with_export, words_html
from .figures import METRIC_COLUMNS, METRIC_LABELS

RESULTS_DIR = Path(__file__).resolve().parents[1] / "docs" / "results"


@dataclass(frozen=True)
class MeasuredSet:
    """One comparison of docs/results.md that the Compare tab shows from its CSV."""

    label: str
    csv: Path
    source: str
    metrics: tuple[str, ...]  # the quality measures worth showing for this dataset
    metric_note: str = ""  # why the others are not
    # Targets shown at another learning rate than the grid's, from the runner's learning-rate check in their own CSV:
    # (target, CSV, rate). The caption names that target's grid runs far from the rest (far_runs) at the grid's rate.
    other_rates: tuple[tuple[str, Path, float], ...] = ()


# The comparisons shipped in docs/results, by dataset: the runner's CSVs as written (minsnr-experiment).
MEASURED = {
    "mnist": MeasuredSet("MNIST", RESULTS_DIR / "mnist_2000_results.csv",
                         "docs/results.md §1: MNIST, 2000 steps per run, 1000 fresh samples scored every 250 steps",
                         ("fd", "confident")),
    "cifar10": MeasuredSet("CIFAR-10", RESULTS_DIR / "cifar_2000_results.csv",
                           "docs/results.md §4.1: CIFAR-10 (4,000 training images), 2000 steps per run, 1000 fresh "
                           "samples scored every 250 steps", ("fd",),
                           "Only the Fréchet distance is shown for CIFAR-10: our CIFAR-10 classifier is weak (53 % test "
                           "accuracy), so its share of confidently recognised images says little (docs/results.md §4).",
                           (("x0", RESULTS_DIR / "cifar_2000_x0_lr_results.csv", 1e-3),)),
}
RESULTS_CSV = MEASURED["mnist"].csv  # the budget note quotes the MNIST runs
MEASURED_INTRO = """
The comparisons of docs/results.md, loaded from their CSVs. Each thick line is the mean over seeds, the band ± one
standard deviation, each thin line one seed; the paired differences with 95 % intervals are in docs/results.md.
"""


@cache
def _csv_rows(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(read_csv(path)) if path.exists() else ()


def measured_rows(dataset: str = "mnist") -> tuple[dict[str, Any], ...]:
    """The rows of a shipped results CSV (none when the docs are not installed beside the app)."""
    return _csv_rows(MEASURED[dataset].csv)


def target_rows(measured: MeasuredSet, target: str) -> tuple[list[dict[str, Any]], float, Path]:
    """The comparison rows drawn for ``target``, their learning rate and their CSV: the learning-rate check's runs at
    the rate ``measured.other_rates`` names (relabelled as the comparison they are there), else the grid's."""
    for name, path, lr in measured.other_rates:
        rows = [{**row, "group": "comparison"} for row in _csv_rows(path)
                if name == target == row["target"] and math.isclose(float(row["lr"]), lr)]
        if rows:  # else (that CSV not installed) the grid's own runs
            return rows, lr, path
    return list(_csv_rows(measured.csv)), REPORT_LR, measured.csv


def _far_from_the_rest(far: list[tuple[str, int]]) -> str:
    named = ", ".join(f"{arm_name(w)} seed {seed}" for w, seed in far)
    return f"ended at over {FAR_FROM_THE_REST:g}× the median final Fréchet distance of their weighting's seeds ({named})"


def measured_figure(dataset: str, target: str, metric: str) -> tuple[go.Figure | None, str]:
    """Quality against step for ``target`` on ``dataset``, and a caption: the source, the seeds per line, and the
    runs far from the rest."""
    if dataset not in MEASURED:
        return None, f"⚠️ dataset must be one of {', '.join(MEASURED)}; got {dataset!r}"
    measured = MEASURED[dataset]
    rows, lr, path = target_rows(measured, target)
    if not rows:
        return None, f"⚠️ {path.name} is not installed beside the app (it ships in docs/results)."
    if metric not in measured.metrics:
        return None, measured.metric_note or f"⚠️ metric must be one of {', '.join(measured.metrics)}; got {metric!r}"
    figure = quality_figures(rows, metric, seed_lines=True).get(target)
    if figure is None:
        return None, f"No measured runs with the {TARGET_NAMES[target]} target on {measured.label}."
    # Legend under the chart and a short title: a phone's width is left to the curves.
    figure.update_layout(width=None, height=460, margin={"l": 60, "r": 20, "t": 50, "b": 40},
                         title={"text": f"{measured.label}, {TARGET_NAMES[target]} target", "font": {"size": 15}},
                         legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0},
                         yaxis_title=METRIC_LABELS.get(metric, metric))
    with_export(figure, f"minsnr-measured-{dataset}-{target}-{metric}", "step", METRIC_COLUMNS.get(metric, metric))
    seeds = {weighting: max(curve["n"]) for (t, weighting), curve in mean_curves(rows, metric).items() if t == target}
    rate = (f"; the {TARGET_NAMES[target]} target at learning rate {lr:g} (the learning-rate check; the grid's "
            f"rate is {REPORT_LR:g})" if lr != REPORT_LR else "")
    caption = (f"{measured.source}{rate}. Seeds per line: "
               + ", ".join(f"{arm_name(w)} {n}" for w, n in seeds.items()) + ".")
    far, total = far_runs(rows, target)
    if far:
        caption += (f" ⚠️ {len(far)} of these {total} runs {_far_from_the_rest(far)}: they diverged or stalled, and "
                    "the means and bands include them; compare the thin lines.")
    if lr != REPORT_LR:
        far, total = far_runs(list(measured_rows(dataset)), target)
        if far:
            caption += (f" At the grid's rate {REPORT_LR:g} (not shown), {len(far)} of its {total} runs with this target "
                        f"{_far_from_the_rest(far)}; docs/results.md §4.1.")
    return figure, caption


def measured_view(dataset: str, target: str, metric: str) -> tuple[go.Figure | None, str, str]:
    """:func:`measured_figure` and the chart in words: each weighting's mean over seeds at the last step, and the
    best."""
    figure, caption = measured_figure(dataset, target, metric)
    if figure is None:
        return None, caption, ""
    words = describe_runs(figure, HIGHER_IS_BETTER.get(metric))
    return figure, caption, words_html(words + "\n\nThe thin lines (each seed) are in the CSV, not in these words.")


def budget_note(dataset: str, target: str, steps: float | None, weightings: list[str] | None = None) -> str:
    """What the measured MNIST runs showed at the evaluation nearest below this step budget, for the ticked
    ``weightings`` that were measured with this target (else its plain loss and Min-SNR-γ)."""
    rows = list(measured_rows("mnist"))
    if dataset != "mnist" or not rows or not steps:
        return ""
    target = "x0" if target == "auto" else target
    curves = mean_curves(rows, "confident")
    measured = {w: c for (t, w), c in curves.items() if t == target}
    chosen = [w for w in weightings or [] if w in measured] or [w for w in (BASELINE[target], "min_snr") if w in measured]
    arms = [(w, measured[w]) for w in chosen]
    if not arms:
        return ""
    evaluated = [s for s in arms[0][1]["step"] if s <= steps]
    step = evaluated[-1] if evaluated else arms[0][1]["step"][0]
    parts = []
    for weighting, curve in arms:
        i = curve["step"].index(step)
        parts.append(f"{arm_name(weighting)} {curve['mean'][i]:.1%} (sd {curve['std'][i]:.1%}, "
                     f"{curve['n'][i]} seeds)")
    head = (f"What this budget showed when measured (docs/results.md §1, {TARGET_NAMES[target]} target, step {step})"
            if evaluated else
            f"A budget of {int(steps)} steps was not measured (docs/results.md §1); at its first evaluation, step {step}")
    settings = (f" Those runs used the `{report_model('mnist')}` UNet at batch {DEFAULT_BATCH['image']} and learning "
                f"rate {REPORT_LR:g}, unconditional, scored on deterministic DDIM samples (the preset's settings); "
                "other settings train at another pace.")
    return head + ", digits confidently recognised: " + "; ".join(parts) + "." + settings


def build_measured_view() -> None:
    """The "Measured results" panel of the Compare tab, drawn when the page is built (no training, no wait)."""
    figure, text, words = measured_view("mnist", "eps", "fd")
    with gr.Accordion("Measured results: the comparison of docs/results.md, without training", open=False):
        gr.Markdown(MEASURED_INTRO)
        with gr.Row():
            dataset = gr.Radio([(m.label, name) for name, m in MEASURED.items()], value="mnist", label="Dataset",
                               elem_id="measured-dataset")
            target = gr.Radio([(TARGET_NAMES[t], t) for t in TARGETS], value="eps", label="Target",
                              elem_id="measured-target")
            metric = gr.Radio([("Fréchet distance (lower is better)", "fd"), ("share recognised", "confident")],
                              value="fd", label="Quality", elem_id="measured-metric")
        plot, summary = chart("Measured quality", "measured-plot", figure, words=words)
        caption = gr.Markdown(text, elem_id="measured-caption")
    for control in (dataset, target, metric):
        control.change(measured_view, [dataset, target, metric], [plot, caption, summary], api_visibility="undocumented")
