"""The measured comparison shipped in docs/results, shown without training: quality against step with its spread,
and what a chosen MNIST budget showed there."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import gradio as gr
import plotly.graph_objects as go

from minsnr_core.config import DEFAULT_BATCH
from minsnr_core.experiment import BASELINE, REPORT_LR, arm_name, mean_curves, read_csv, report_model
from minsnr_core.report import quality_figures
from minsnr_core.weighting import TARGET_NAMES, TARGETS

RESULTS_CSV = Path(__file__).resolve().parents[1] / "docs" / "results" / "mnist_2000_results.csv"
MEASURED_INTRO = """
The comparison of docs/results.md (section 1), loaded from its CSV: MNIST, 2000 steps, 1000 fresh samples scored
every 250 steps. Each line is the mean over seeds, the band ± one standard deviation; the paired differences with
95 % intervals are in docs/results.md.
"""


@cache
def measured_rows() -> tuple[dict[str, Any], ...]:
    """The rows of the shipped results CSV (none when the docs are not installed beside the app)."""
    return tuple(read_csv(RESULTS_CSV)) if RESULTS_CSV.exists() else ()


def measured_figure(target: str, metric: str) -> tuple[go.Figure | None, str]:
    """Quality against step for ``target``, and a caption with the seed count of each line."""
    rows = list(measured_rows())
    if not rows:
        return None, f"⚠️ {RESULTS_CSV.name} is not installed beside the app (it ships in docs/results)."
    figure = quality_figures(rows, metric).get(target)
    if figure is None:
        return None, f"No measured runs with the {TARGET_NAMES[target]} target."
    figure.update_layout(width=None, height=420, margin={"l": 60, "r": 20, "t": 50, "b": 40})
    seeds = {weighting: max(curve["n"]) for (t, weighting), curve in mean_curves(rows, metric).items() if t == target}
    caption = "Seeds per line: " + ", ".join(f"{arm_name(w)} {n}" for w, n in seeds.items()) + "."
    return figure, caption


def budget_note(dataset: str, target: str, steps: float | None, weightings: list[str] | None = None) -> str:
    """What the measured MNIST runs showed at the evaluation nearest below this step budget, for the ticked
    ``weightings`` that were measured with this target (else its plain loss and Min-SNR-γ)."""
    rows = list(measured_rows())
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
    figure, text = measured_figure("eps", "fd")
    with gr.Accordion("Measured results: the comparison of docs/results.md, without training", open=False):
        gr.Markdown(MEASURED_INTRO)
        with gr.Row():
            target = gr.Radio([(TARGET_NAMES[t], t) for t in TARGETS], value="eps", label="Target",
                              elem_id="measured-target")
            metric = gr.Radio([("Fréchet distance (lower is better)", "fd"), ("share recognised", "confident")],
                              value="fd", label="Quality", elem_id="measured-metric")
        plot = gr.Plot(figure, elem_id="measured-plot")
        caption = gr.Markdown(text, elem_id="measured-caption")
    for control in (target, metric):
        control.change(measured_figure, [target, metric], [plot, caption], api_visibility="undocumented")
