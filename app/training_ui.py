"""Train, Compare and Denoise tabs: controls → TrainConfig → JobManager; RunHistory → figures."""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
import numpy as np

from minsnr_core.adaptive import ADAPTIVE_WEIGHTINGS
from minsnr_core.config import continued_config
from minsnr_core.data import toy_points
from minsnr_core.experiment import (
    HIGHER_IS_BETTER,
    REPORT_CONDITIONING,
    REPORT_EVAL_EVERY,
    REPORT_LR,
    REPORT_STEPS,
    report_model,
)
from minsnr_core.images import point_raster
from minsnr_core.stats import steps_to_reach
from minsnr_core.weighting import STRATEGIES

from .charts import chart, describe_figure, describe_points, describe_runs, run_slug, words_html
from .figures import (
    METRIC_NAMES,
    SHARES,
    bucket_figure,
    loss_figure,
    metric_figure,
    metric_key,
    samples_image,
    scatter_figure,
    weight_figure,
)
from .job_text import status_text
from .jobs import Job, JobManager, check_owner
from .measured import budget_note, build_measured_view
from .settings import config_controls, default_settings, make_config, params_of, setting_names

UPDATE_EVERY_S = 1.0  # live updates cost training speed (benchmarks/app_overhead.py): at most one per second
LATEX = [{"left": "$", "right": "$", "display": False}]

TRAIN_INTRO = """
### Train a diffusion model and watch it learn
Pick a dataset and a loss weighting, press **Start**. The 2D toys show a point cloud taking shape within seconds on
any CPU. MNIST with the defaults, measured (docs/performance.md): on a 2-core CPU 97–99 % of the digits are
recognisable after 5 minutes (three runs), 59–72 % after 90 s (four runs); on an H100 GPU 96 % after 20 s (three
runs). Runs from all users share one queue; if someone else is training you see your place in it.
"""
BUCKET_EXPLANATION = """
**Each noise level is its own task.** The right-hand plot splits the unweighted loss by timestep: blue lines are
nearly clean images, red lines almost pure noise. Hang et al. treat training as multi-task learning over these
levels: their gradients conflict, so letting the high-SNR levels dominate the weighted loss slows training down;
Min-SNR-γ clamps their weight at γ, which the paper reports to be close to the Pareto-optimal task weights.
Notebook 04 computes those weights for a small MNIST model: there they are noisy and follow Min-SNR's only loosely.

**Read the plot in its space** (the y-axis names it: the space the model predicts). For the same prediction the
ε error is SNR × the x₀ error and the v error (SNR + 1) × the x₀ error ((1 + √SNR)² for rectified flow's v): an
error at a nearly clean step (large SNR)
looks large in ε space and small in x₀ space, and at a noisy step (SNR near 0) the other way round.
"""
COMPARE_INTRO = """
### Compare weightings side by side
Two to four runs with the same seed, data, model and budget, differing only in the loss weighting, trained side by
side (one step of each in turn), so every curve grows at once. The claim of the paper, to check live: Min-SNR-γ
reaches a given Fréchet distance in fewer steps than the plain loss of the target. Measured on MNIST
(docs/results.md, 2000 steps, 5 paired seeds, FD on 1000 samples): ε 1.97× sooner (95 % interval 1.66–2.33×); x0
1.37× (1.09–1.74×, not established after Holm's correction, p = 0.057); for v a difference was not detected (ΔFD +0.0
[−4.4, +4.4]); on a 2-core CPU a few hundred steps show only the first phase, where the ε models still draw noise.
The quality is measured on fresh samples (MNIST and CIFAR-10: the Fréchet distance in a small classifier's features
and its share of confidently recognised images; toys: the distance to the true distribution).
"""
# The settings of docs/results.md (minsnr-experiment), so the class reproduces what the report shows.
# The first phase of docs/results.md (section 3). Constant-x0 is left out: in ε space it puts almost all of the loss
# on the last timestep (docs/results.md, section 2), so it would not test that weighting.
PAPER_WEIGHTINGS = ["snr", "min_snr", "soft_min_snr", "p2"]
PAPER_PRESET = default_settings(
    dataset="mnist", model=report_model("mnist"), lr=REPORT_LR, target="eps", gamma=5.0, steps=REPORT_STEPS, seed=0,
    schedule="cosine", preview_every=REPORT_EVAL_EVERY, quality=True, use_labels=REPORT_CONDITIONING["class_conditional"],
    sample_eta=REPORT_CONDITIONING["sample_eta"])
del PAPER_PRESET["data_root"]  # the server's own folder stays chosen


def rest(outputs: list) -> list:
    """Nothing for each output but the first (the status line, which says why)."""
    return [gr.skip()] * (len(outputs) - 1)


def _samples_outputs(job: Job, index: int) -> tuple[Any, Any, Any]:
    """The sample grid (images) or the scatter of samples (2D toys) with the scatter's text alternative."""
    history = job.histories[index]
    samples = history.samples
    if samples is None:
        return gr.skip(), gr.skip(), gr.skip()
    config = job.configs[index]
    if config.kind == "image":
        return gr.update(value=samples_image(samples), visible=True), gr.update(visible=False), gr.update(visible=False)
    reference = toy_points(config.dataset, 1000, seed=7)
    run = run_slug(config.weighting, config.weighting_params, config.target, config.dataset)
    figure = scatter_figure(samples, f"Samples at step {history.samples_step}", reference,
                            file_name=f"minsnr-train-samples-step{history.samples_step}-{run}")
    return (gr.update(visible=False), gr.update(value=figure, visible=True),
            gr.update(value=words_html(describe_points(figure)), visible=True))


def build_train_tab(manager: JobManager, data_roots: list[str], image_roots: dict[str, str], owner: gr.BrowserState):
    gr.Markdown(TRAIN_INTRO)
    weighting = gr.Dropdown([(e.display_name, e.name) for e in STRATEGIES], value="min_snr", label="Loss weighting",
                            elem_id="train-weighting")
    formula = gr.Markdown(elem_id="train-formula", latex_delimiters=LATEX)
    controls = config_controls("train", data_roots, image_roots, manager.limits, shown_params=params_of(["min_snr"]))
    with gr.Row():
        start = gr.Button("Start", variant="primary", elem_id="train-start")
        stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
        resume = gr.Button("Keep training (the same budget again)", elem_id="train-resume")
    status = gr.Markdown("No run yet. Press **Start**.", elem_id="train-status")
    # Each chart with its data (CSV) and picture (PNG, SVG) to download and its text alternative (app/charts.py).
    with gr.Row():
        with gr.Column(min_width=300):
            loss_plot, loss_words = chart("Loss", "train-loss")
        with gr.Column(min_width=300):
            bucket_plot, bucket_words = chart("Loss per noise level", "train-buckets")
    gr.Markdown(BUCKET_EXPLANATION)
    with gr.Row():
        grid = gr.Image(label="Samples (EMA model, fixed seed)", format="png", visible=False, elem_id="train-samples",
                        interactive=False)
        scatter, scatter_words = chart("Samples", "train-scatter", visible=False)
        with gr.Column(min_width=300):
            quality_plot, quality_words = chart("Quality", "train-quality")
    # Shown when the weighting adapts while training: does a learned weighting find Min-SNR's shape?
    weights_plot, weights_words = chart("Learned weighting", "train-weights", visible=False)
    files = gr.File(label="Download the finished run (its metrics as CSV and JSON lines, samples, checkpoint)",
                    file_count="multiple", elem_id="train-files")

    def describe(name: str) -> tuple:
        """The weighting's formula, and only its parameters' sliders."""
        if name not in STRATEGIES:
            return gr.skip(), *[gr.skip()] * len(controls.param_holders())
        entry = STRATEGIES.get(name)
        text = f"**{entry.display_name}** — ${entry.latex}$ — {entry.description} *({entry.reference})*"
        return text, *controls.show_params_of([name])

    def render(job: Job) -> tuple:
        history = job.histories[job.current]
        grid_update, scatter_update, scatter_text = _samples_outputs(job, job.current)
        config = job.configs[job.current]
        run = run_slug(config.weighting, config.weighting_params, config.target, config.dataset)
        runs = [(job.labels[job.current], history)]
        learning = config.adaptive_weighting != "none"
        loss = loss_figure(runs, file_name=f"minsnr-train-loss-{run}")
        buckets = bucket_figure(history, config.timesteps, config.target,
                                file_name=f"minsnr-train-loss-per-noise-level-{run}")
        quality = metric_figure(runs, file_name=f"minsnr-train-quality-{run}")
        if learning and history.weight_curves:
            learned = weight_figure(history, job.labels[job.current],
                                    ADAPTIVE_WEIGHTINGS.get(config.adaptive_weighting).display_name,
                                    file_name=f"minsnr-train-learned-weighting-{run}")
            weights = gr.update(value=learned, visible=True)
            weights_text = gr.update(value=words_html(describe_figure(learned, "t")), visible=True)
        else:
            weights = weights_text = gr.update(visible=learning)
        return (status_text(manager, job), loss, buckets, grid_update, scatter_update, quality, manager.downloads(job),
                weights, words_html(describe_runs(loss, None)), words_html(describe_figure(buckets, "step", rank=True)),
                words_html(describe_runs(quality, None, "No quality measured yet.")), weights_text, scatter_text)

    def on_start(request: gr.Request, owner_token, name, *values):
        try:
            check_owner(owner_token)
            config = make_config(image_roots, name, dict(zip(setting_names(), values, strict=True)), data_roots)
            job = manager.submit(owner_token, [config], [STRATEGIES.get(name).display_name],
                                 address=client_address(request))
        except (ValueError, TypeError, OSError) as error:
            yield f"⚠️ {error}", *rest(outputs)
            return
        yield from follow(manager, job, render)

    def on_resume(request: gr.Request, owner_token):
        try:
            check_owner(owner_token)
        except ValueError as error:
            yield f"⚠️ {error}", *rest(outputs)
            return
        previous = manager.job(owner_token)
        if previous is None or previous.kind != "train" or not previous.finished or previous.histories[0].checkpoint is None:
            yield "⚠️ Nothing to continue: finish or stop a run first.", *rest(outputs)
            return
        if previous.status == "error":  # its last good checkpoint is older than its curves: start afresh
            yield "⚠️ This run ended in an error; start a new run (e.g. with a lower learning rate).", *rest(outputs)
            return
        config = continued_config(previous.configs[0], previous.histories[0].step, session_start=previous.start_step)
        try:
            job = manager.submit(owner_token, [config], previous.labels[:1], resume_from=previous,
                                 address=client_address(request))
        except ValueError as error:
            yield f"⚠️ {error}", *rest(outputs)
            return
        yield from follow(manager, job, render)

    outputs = [status, loss_plot, bucket_plot, grid, scatter, quality_plot, files, weights_plot, loss_words, bucket_words,
               quality_words, weights_words, scatter_words]
    describe_outputs = [formula, *controls.param_holders()]
    weighting.change(describe, weighting, describe_outputs, api_visibility="undocumented")
    start.click(on_start, [owner, weighting, *controls.components()], outputs, concurrency_limit=None, api_name="train")
    resume.click(on_resume, owner, outputs, concurrency_limit=None, api_name="resume")
    stop.click(_stop_for(manager), owner, None, queue=False, api_name="stop")
    return controls, weighting, describe, describe_outputs, outputs, render


def build_compare_tab(manager: JobManager, data_roots: list[str], image_roots: dict[str, str], owner: gr.BrowserState):
    gr.Markdown(COMPARE_INTRO)
    weightings = gr.CheckboxGroup([(e.display_name, e.name) for e in STRATEGIES], value=["snr", "min_snr"],
                                  label="Weightings to compare (2 to 4)", elem_id="compare-weightings")
    controls = config_controls("compare", data_roots, image_roots, manager.limits,
                               shown_params=params_of(["snr", "min_snr"]), dataset="moons", steps=400)
    weightings.change(lambda names: controls.show_params_of(names or []), weightings, controls.param_holders(),
                      api_visibility="undocumented")
    with gr.Row():
        preset = gr.Button("Preset: our first-phase comparison (MNIST, ε target, 300 steps: plain ε loss, Min-SNR-5, "
                           "Soft-Min-SNR-5, P2)")
        start = gr.Button("Start comparison", variant="primary", elem_id="compare-start")
        stop = gr.Button("Stop", variant="stop", elem_id="compare-stop")
    budget = gr.Markdown(elem_id="compare-budget")
    status = gr.Markdown(elem_id="compare-status")
    with gr.Row():
        with gr.Column(min_width=300):
            loss_plot, loss_words = chart("Loss", "compare-loss")
        with gr.Column(min_width=300):
            quality_plot, quality_words = chart("Quality", "compare-quality")
    table = gr.Markdown(elem_id="compare-table")
    files = gr.File(label="Download each run's metrics (CSV)", file_count="multiple", elem_id="compare-files")
    gallery = gr.Gallery(label="Samples side by side", columns=4, format="png", height=360, object_fit="contain",
                         elem_id="compare-gallery")
    build_measured_view()
    budget_inputs = [controls["dataset"], controls["target"], controls["steps"], weightings]
    for control in budget_inputs:
        control.change(budget_note, budget_inputs, budget, api_visibility="undocumented")

    def pictures(job: Job) -> list[tuple[np.ndarray, str]]:
        out = []
        for label, history, config in zip(job.labels, job.histories, job.configs, strict=True):
            if history.samples is None:
                continue
            picture = samples_image(history.samples, 2) if config.kind == "image" else point_raster(history.samples, 240)
            out.append((picture, f"{label} · step {history.samples_step}"))
        return out

    def render(job: Job) -> tuple:
        runs = list(zip(job.labels, job.histories, strict=True))
        first = job.configs[0]
        name = "-vs-".join(run_slug(c.weighting, c.weighting_params) for c in job.configs) + f"-{first.target}-{first.dataset}"
        loss = loss_figure(runs, unweighted=True, target=first.target, file_name=f"minsnr-compare-loss-{name}")
        quality = metric_figure(runs, file_name=f"minsnr-compare-quality-{name}")
        return (status_text(manager, job), loss, quality, results_table(job), pictures(job),
                words_html(describe_runs(loss, False)),
                words_html(describe_runs(quality, HIGHER_IS_BETTER.get(metric_key(runs) or ""), "No quality measured yet.")),
                [f for f in manager.downloads(job) if f.endswith(".csv")])

    def on_start(request: gr.Request, owner_token, names, *values):
        names = list(names or [])
        if not 2 <= len(names) <= 4:
            yield f"⚠️ Tick 2 to 4 weightings (got {len(names)}).", *rest(outputs)
            return
        try:
            check_owner(owner_token)
            settings = dict(zip(setting_names(), values, strict=True))
            configs = [make_config(image_roots, name, settings, data_roots) for name in names]
            job = manager.submit(owner_token, configs, [STRATEGIES.get(n).display_name for n in names], kind="compare",
                                 address=client_address(request))
        except (ValueError, TypeError, OSError) as error:
            yield f"⚠️ {error}", *rest(outputs)
            return
        yield from follow(manager, job, render)

    def fill_preset():
        return {weightings: PAPER_WEIGHTINGS, **controls.updates(PAPER_PRESET)}

    preset.click(fill_preset, None, [weightings, *controls.updates(PAPER_PRESET)], api_visibility="undocumented")
    outputs = [status, loss_plot, quality_plot, table, gallery, loss_words, quality_words, files]
    start.click(on_start, [owner, weightings, *controls.components()], outputs, concurrency_limit=None, api_name="compare")
    stop.click(_stop_for(manager), owner, None, queue=False, api_visibility="undocumented")
    return outputs, render


def results_table(job: Job) -> str:
    """After a comparison: each weighting's last quality, and the step at which it reached the first weighting's
    last quality (linear interpolation between measurements; one seed, so no spread)."""
    if not job.finished or not job.histories[0].metrics:
        return ""
    key = "fd" if "fd" in job.histories[0].metrics[0] else next(iter(job.histories[0].metrics[0]))
    higher = key in SHARES
    base = job.histories[0]
    threshold = base.metrics[-1][key]
    rows = [f"| weighting | {METRIC_NAMES.get(key, key)} at the end | step at which it reached "
            f"{job.labels[0]}'s {threshold:.3g} |", "| --- | --- | --- |"]
    for label, history in zip(job.labels, job.histories, strict=True):
        if not history.metrics:
            continue
        curve = dict(zip(history.metric_steps, (m[key] for m in history.metrics), strict=False))
        reached = steps_to_reach(curve, threshold, higher)
        rows.append(f"| {label} | {history.metrics[-1][key]:.3g} (step {history.metric_steps[-1]}) | "
                    + (f"{reached:,.0f}" if reached is not None else "not reached") + " |")
    samples = job.configs[0].metric_samples
    return "\n".join(rows) + (f"\n\nOne seed per weighting, {samples} samples per measurement: a single paired run, "
                               "not a measured difference (Measured results below shows the comparison over seeds).")


def client_address(request: gr.Request | None) -> str:
    """The client's network address (the per-address run cap counts by it); empty when unknown."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", "") or "")


def _stop_for(manager: JobManager):
    def on_stop(owner_token: str) -> None:
        try:
            manager.stop(check_owner(owner_token))
        except ValueError as error:
            raise gr.Error(str(error), print_exception=False) from None

    return on_stop


def follow(manager: JobManager, job: Job, render):
    """Stream ``render(job)`` whenever the job changes, until it ends or its owner replaces it. While a page
    follows the job, the job is kept even if the owner's other pages close."""
    shown = None
    while manager.job(job.owner) is job:
        manager.touch(job.owner)
        # Read before rendering: a job that ends while it is being rendered gets one more render, its final one
        # (else the page kept the last running status forever).
        finished = job.finished
        history = job.histories[job.current]
        key = (job.status, job.current, history.step, history.samples_step, len(history.metrics),
               *((h.step, h.samples_step, len(h.metrics), h.activity, h.status) for h in job.histories),
               manager.queue_position(job), manager.expected_wait_s(job) is None)
        if key != shown:
            shown = key
            yield render(job)
        if finished:
            return
        time.sleep(UPDATE_EVERY_S)
