"""The Denoise tab: sample from the owner's latest run and scrub through the trajectory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import torch

from minsnr_core.config import TrainConfig
from minsnr_core.runs import load_run
from minsnr_core.sampling import SAMPLERS, Trajectory, balanced_labels
from minsnr_core.styles import PLOT_TEMPLATE, weighting_style
from minsnr_core.weighting import STRATEGIES

from .charts import chart, describe_marked_step, describe_points, slug, with_export, words_html
from .figures import samples_image, scatter_figure
from .jobs import JobManager, check_owner

DENOISE_INTRO = """
### Watch one sample being denoised
Sample from your latest model and scrub through the trajectory: the noisy x_t, the model's guess of the clean image
x̂0 and of the noise ε̂ at that step. The right-hand plot marks the step's SNR and its loss weight on the curve the
model was trained with: early steps (low SNR) are guessed from almost nothing, late steps only clean up details.
"""


@dataclass
class DenoiseResult:
    """A sampling trajectory plus what the weight-curve panel needs."""

    trajectory: Trajectory
    snr: list[float]
    weights: np.ndarray
    snr_curve: np.ndarray
    step_weights: list[float]
    weighting: str
    target: str
    kind: str  # "image" or "points": how the trajectory is shown
    dataset: str
    conditional: bool
    labels: list[int]  # the class each sample was asked for (empty: unconditional)


def denoise(checkpoint: str, sampler: str, steps: int, seed: int, guidance: float) -> DenoiseResult:
    """A sampling trajectory of the run in ``checkpoint`` (16 images or 1000 points; a class-conditional model draws
    the classes in order) with the weight the run trained each visited step with."""
    run = load_run(checkpoint, "cpu")
    config, diffusion = run.config, run.diffusion
    count = 16 if config.kind == "image" else 1000
    _, trajectory = run.sample(count, sampler, steps, seed=seed, guidance=guidance, return_trajectory=True)
    snr = diffusion.schedule.snr
    positive = snr > 0
    weights = diffusion.weights.cpu().double()  # the run's own per-step weights, as it trained with them
    return DenoiseResult(
        trajectory=trajectory, snr=[float(snr[t]) for t in trajectory.timesteps], weights=weights[positive].numpy(),
        snr_curve=snr[positive].numpy(), step_weights=[float(weights[t]) for t in trajectory.timesteps],
        weighting=STRATEGIES.get(config.weighting).display_name, target=config.target, kind=config.kind,
        dataset=config.dataset, conditional=bool(run.num_classes),
        labels=[] if not run.num_classes else balanced_labels(count, run.num_classes).tolist())


def _picture(tensor: torch.Tensor) -> Any:
    return samples_image(tensor.clamp(-1, 1) if tensor.abs().max() <= 1 else tensor / tensor.abs().max(), 4)


SAMPLE_STEPS_RANGE = (2, 200)
GUIDANCE_RANGE = (0.0, 6.0)


def check_sampling_request(sampler: object, steps: object, seed: object, guidance: object) -> None:
    """What the Denoise controls allow, and nothing more (the endpoint is reachable without the page)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    low, high = SAMPLE_STEPS_RANGE
    if isinstance(steps, bool) or not isinstance(steps, int | float) or steps != int(steps) or not low <= steps <= high:
        raise ValueError(f"sampling steps must be a whole number from {low} to {high}; got {steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | float) or seed != int(seed) or not 0 <= seed < 2**31:
        raise ValueError(f"seed must be a whole number from 0 to {2**31 - 1}; got {seed!r}")
    low, high = GUIDANCE_RANGE
    if isinstance(guidance, bool) or not isinstance(guidance, int | float) or not low <= guidance <= high:
        raise ValueError(f"guidance must be a number from {low:g} to {high:g}; got {guidance!r}")


def weight_marker(result: DenoiseResult, index: int) -> go.Figure:
    """The run's weight curve over log-SNR, with the trajectory's step ``index`` marked on it (a large black diamond,
    apart from the curve by shape as well as colour)."""
    style = weighting_style(result.weighting)
    figure = go.Figure(go.Scatter(x=np.log(result.snr_curve), y=result.weights, mode="lines", line=style.line(),
                                  name=f"{result.weighting} weight on the {result.target} loss"))
    lam = float(np.log(max(result.snr[index], 1e-30)))
    step = result.trajectory.timesteps[index]
    figure.add_trace(go.Scatter(x=[lam], y=[result.step_weights[index]], mode="markers",
                                marker={"size": 14, "color": "#000000", "symbol": "diamond"},
                                name=f"t = {step}, SNR = {result.snr[index]:.3g}"))
    figure.update_layout(height=340, xaxis_title="log-SNR λ", yaxis_title="weight", yaxis_type="log",
                         margin={"l": 60, "r": 20, "t": 30, "b": 40}, legend={"orientation": "h", "y": -0.3},
                         template=PLOT_TEMPLATE)
    return with_export(figure, f"minsnr-denoise-weight-curve-{slug(result.weighting)}-{result.target}-t{step}",
                       "log_snr", "weight")


def build_denoise_tab(manager: JobManager, owner: gr.BrowserState):
    gr.Markdown(DENOISE_INTRO)
    with gr.Row():
        sampler = gr.Radio(list(SAMPLERS), value="ddim", label="Sampler",
                           info="DDPM adds fresh noise at each step; DDIM (η = 0) is deterministic. Watch: how many "
                                "steps each needs for a clean sample.")
        steps = gr.Slider(*SAMPLE_STEPS_RANGE, value=25, step=1, label="Sampling steps",
                          info=f"Denoising steps from pure noise to the sample, {SAMPLE_STEPS_RANGE[0]} to "
                               f"{SAMPLE_STEPS_RANGE[1]}. Watch: few steps blur, many cost time.")
        seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=2**31 - 1,
                         info="The starting noise, 0 to 2³¹ − 1: the same seed draws the same samples.")
        guidance = gr.Slider(*GUIDANCE_RANGE, value=TrainConfig.guidance, step=0.5, elem_id="denoise-guidance",
                             label="Guidance (class-conditional models; 1: none)",
                             info=f"Classifier-free guidance, {GUIDANCE_RANGE[0]:g} to {GUIDANCE_RANGE[1]:g}. Watch: "
                                  "higher draws more typical digits of the class, less varied.")
        go_button = gr.Button("Sample from my latest model", variant="primary", elem_id="denoise-start")
    message = gr.Markdown(elem_id="denoise-message")
    scrub = gr.Slider(0, 24, value=0, step=1, label="Step of the trajectory", elem_id="denoise-scrub",
                      info="From pure noise (0) to the sample (last). Watch: when x̂0 already shows the digit.")
    with gr.Row():
        x_t = gr.Image(label="x_t (noisy)", format="png", interactive=False)
        x0 = gr.Image(label="predicted x̂0", format="png", interactive=False, elem_id="denoise-x0")
        eps = gr.Image(label="predicted ε̂", format="png", interactive=False)
    with gr.Row():
        with gr.Column(min_width=300):
            points, points_words = chart("x_t and x̂0 (2D toys)", "denoise-points", visible=False)
        with gr.Column(min_width=300):
            curve, curve_words = chart("Where this step sits on the weight curve", "denoise-curve")
    state = gr.State(None)

    def show(result: DenoiseResult | None, index: float):
        if result is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        path = result.trajectory
        i = int(min(max(index, 0), len(path.timesteps) - 1))
        marked = weight_marker(result, i)
        words = words_html(describe_marked_step(marked))
        if result.kind == "image":  # the 2-D panel only for the toys, the three images only for image models
            return (gr.update(value=_picture(path.x_t[i]), visible=True),
                    gr.update(value=_picture(path.x0_pred[i]), visible=True),
                    gr.update(value=_picture(path.eps_pred[i] / 3), visible=True),
                    gr.update(visible=False), marked, words, gr.update(visible=False))
        fig = scatter_figure(path.x0_pred[i], f"x_t and x̂0 at t = {path.timesteps[i]}", reference=path.x_t[i],
                             names=("x_t", "predicted x̂0"), file_name=f"minsnr-denoise-points-t{path.timesteps[i]}")
        hidden = gr.update(value=None, visible=False)
        return (hidden, hidden, hidden, gr.update(value=fig, visible=True), marked, words,
                gr.update(value=words_html(describe_points(fig)), visible=True))

    def on_sample(owner_token, sampler_name, steps_value, seed_value, guidance_value):
        try:
            check_owner(owner_token)
            check_sampling_request(sampler_name, steps_value, seed_value, guidance_value)
        except ValueError as error:
            return f"⚠️ {error}", None, gr.skip()
        job = manager.job(owner_token)
        checkpoint = None
        if job is not None:
            found = [h.checkpoint for h in job.histories if h.checkpoint]
            checkpoint = found[-1] if found else None
        if checkpoint is None:
            return "⚠️ Train a model first (Train tab), then sample from it here.", None, gr.skip()
        try:
            result = denoise(checkpoint, sampler_name, int(steps_value), int(seed_value or 0), float(guidance_value))
        except ValueError as error:
            return f"⚠️ {error}", None, gr.skip()
        trajectory = result.trajectory
        text = f"{len(trajectory.timesteps)} steps of {sampler_name.upper()} from the model trained on {result.dataset}"
        if result.conditional:  # the grid is 4 × 4, classes in turn
            rows = [" ".join(str(c) for c in result.labels[r:r + 4]) for r in range(0, len(result.labels), 4)]
            text += f", classes in order, guidance {float(guidance_value):g}. Classes asked for, row by row: "
            text += " · ".join(rows) + "."
        else:
            text += "."
        return text, result, gr.update(maximum=len(trajectory.timesteps) - 1, value=0)

    go_button.click(on_sample, [owner, sampler, steps, seed, guidance], [message, state, scrub],
                    api_visibility="undocumented").then(
        show, [state, scrub], [x_t, x0, eps, points, curve, curve_words, points_words], api_visibility="undocumented")
    scrub.change(show, [state, scrub], [x_t, x0, eps, points, curve, curve_words, points_words], trigger_mode="always_last",
                 api_visibility="undocumented")
