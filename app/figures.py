"""Plotly figures and pictures of training runs (presentation only: every number comes from a RunHistory).

Each curve's colour, dash and marker come from :mod:`minsnr_core.styles` (a weighting keeps its style in every
chart); each figure names its downloads (:func:`app.charts.with_export`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from minsnr_core.images import image_grid
from minsnr_core.recorder import RunHistory
from minsnr_core.styles import PLOT_TEMPLATE, chart_styles, curve_style
from minsnr_core.training import bucket_steps
from minsnr_core.weighting import TARGET_NAMES

from .charts import with_export

METRIC_LABELS = {"confident": "fraction of recognisable digits (p > 0.9)", "fd": "Fréchet distance (lower is better)",
                 "label_entropy": "label entropy (bits)", "swd": "sliced Wasserstein distance (lower is better)"}
SHARES = ("confident", "as_requested")  # metrics that are a share in [0, 1]
# The status line's short, plain names of the same numbers.
METRIC_NAMES = {"confident": "recognised", "fd": "Fréchet distance", "label_entropy": "spread over the classes (bits)",
                "swd": "distance to the data", "as_requested": "drawn as the class asked for"}
# A quality metric's column in a chart's CSV.
METRIC_COLUMNS = {"confident": "share_recognised", "fd": "frechet_distance", "label_entropy": "label_entropy_bits",
                  "swd": "sliced_wasserstein_distance", "as_requested": "share_as_requested"}


def _layout(figure: go.Figure, title: str, x: str, y: str, log_y: bool = False) -> go.Figure:
    figure.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=340, yaxis_type="log" if log_y else "linear",
                         margin={"l": 60, "r": 20, "t": 45, "b": 40}, legend={"orientation": "h", "y": -0.25},
                         template=PLOT_TEMPLATE)
    return figure


def loss_figure(runs: Sequence[tuple[str, RunHistory]], unweighted: bool = False, target: str | None = None,
                file_name: str = "minsnr-loss") -> go.Figure:
    """Training loss against step, one line per run: the weighted loss each run minimises, or (``unweighted``) the
    plain MSE in the ``target`` space, which runs of different weightings share. ``file_name``: its downloads'."""
    figure = go.Figure()
    for (label, history), style in zip(runs, chart_styles([label for label, _ in runs]), strict=True):
        values = history.unweighted_losses if unweighted else history.losses
        n = min(len(history.steps), len(values))  # the trainer may be appending right now
        figure.add_trace(go.Scatter(x=history.steps[:n], y=values[:n], name=label, **style.scatter()))
    if unweighted:
        figure = _layout(figure, "Unweighted loss (one scale for every weighting)", "step",
                         f"{TARGET_NAMES.get(target or '', 'target')} MSE", log_y=True)
        return with_export(figure, file_name, "step", f"unweighted_{target or 'target'}_mse")
    return with_export(_layout(figure, "Weighted training loss", "step", "loss", log_y=True), file_name, "step",
                       "weighted_loss")


def bucket_figure(history: RunHistory, num_timesteps: int, target: str,
                  file_name: str = "minsnr-loss-per-noise-level") -> go.Figure:
    """Unweighted loss (in the ``target`` space) per timestep bucket against step: which noise levels are being
    learned. Blue to red from clean to noisy steps, and each its own dash and marker."""
    figure = go.Figure()
    n = min(len(history.steps), len(history.bucket_losses))  # the trainer may be appending right now
    if n:
        steps = np.asarray(history.steps[:n])
        matrix = np.array([[np.nan if v is None else v for v in row] for row in history.bucket_losses[:n]], dtype=float)
        buckets = matrix.shape[1]
        for b in range(buckets):
            column = matrix[:, b]
            keep = np.isfinite(column)
            low, high = bucket_steps(b, buckets, num_timesteps)
            shade = int(40 + 180 * b / max(1, buckets - 1))  # every shade ≥ 4:1 on white
            color = f"rgb({shade},{80},{255 - shade})"
            figure.add_trace(go.Scatter(
                x=steps[keep], y=column[keep], mode="lines+markers", name=f"t {low}–{high}",
                line={**curve_style(b).line(), "color": color}, marker={**curve_style(b).marker(), "color": color}))
    figure = _layout(figure, "Unweighted loss per noise level (blue: clean t, red: noisy t)", "step",
                     f"{TARGET_NAMES[target]} MSE", log_y=True)
    figure.update_yaxes(dtick=1)  # one tick per decade: 0.01, 0.1, 1…
    return with_export(figure, file_name, "step", f"unweighted_{target}_mse")


def weight_figure(history: RunHistory, fixed_name: str, adaptive_name: str,
                  file_name: str = "minsnr-learned-weighting") -> go.Figure:
    """The weighting a run trains with as it adapts, beside the fixed one it started from (each divided by its mean
    over t, so their shapes compare)."""
    figure = go.Figure()
    curves = history.weight_curves
    if curves:
        fixed, learned = chart_styles([fixed_name, "learned"])
        figure.add_trace(go.Scatter(x=curves["t"], y=curves["fixed"], name=f"{fixed_name} (fixed)",
                                    **{**fixed.scatter(), "line": {**fixed.line(), "dash": "dot"}}))
        figure.add_trace(go.Scatter(x=curves["t"], y=curves["learned"],
                                    name=f"× {adaptive_name}, at step {history.samples_step}",
                                    **{**learned.scatter(), "line": {**learned.line(), "dash": "solid"}}))
    figure = _layout(figure, "The weighting as it is learned (each divided by its mean)", "timestep t",
                     "weight / mean weight", log_y=True)
    return with_export(figure, file_name, "t", "weight_over_mean_weight")


def metric_key(runs: Sequence[tuple[str, RunHistory]]) -> str | None:
    """The quality metric a chart of these runs shows: the share recognised where measured, else the first one."""
    for _, history in runs:
        if history.metrics:
            return "confident" if "confident" in history.metrics[0] else next(iter(history.metrics[0]))
    return None


def metric_figure(runs: Sequence[tuple[str, RunHistory]], key: str | None = None,
                  file_name: str = "minsnr-quality") -> go.Figure:
    """Sample quality against step, one line per run (``key`` defaults to what the runs measured)."""
    figure = go.Figure()
    key = key or metric_key(runs)
    for (label, history), style in zip(runs, chart_styles([label for label, _ in runs]), strict=True):
        if not history.metrics:
            continue
        n = min(len(history.metric_steps), len(history.metrics))
        figure.add_trace(go.Scatter(x=history.metric_steps[:n], y=[m[key] for m in history.metrics[:n]], name=label,
                                    **style.scatter(every_point=True)))
    figure = _layout(figure, "Sample quality", "step", METRIC_LABELS.get(key or "", key or "quality"))
    if key in SHARES:
        figure.update_yaxes(range=[0, 1.02])
    return with_export(figure, file_name, "step", METRIC_COLUMNS.get(key or "", key or "quality"))


def samples_image(samples: torch.Tensor | None, scale: int = 3) -> np.ndarray | None:
    """An enlarged uint8 grid of image samples (nearest-neighbour, so pixels stay crisp)."""
    if samples is None or samples.dim() != 4:
        return None
    grid = image_grid(samples)
    return np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)


def scatter_figure(points: torch.Tensor | None, title: str = "Samples", reference: torch.Tensor | None = None,
                   names: tuple[str, str] = ("data", "model"), file_name: str = "minsnr-samples") -> go.Figure:
    """2D samples as a scatter (optionally over a reference cloud in grey, e.g. the true distribution); its points
    download as CSV (curve, x, y) under ``file_name``."""
    figure = go.Figure()
    if points is not None and points.dim() == 2:
        finite = torch.isfinite(points).all(1)
        figure.add_trace(go.Scattergl(x=points[finite, 0].tolist(), y=points[finite, 1].tolist(), mode="markers",
                                      marker={"size": 4, "color": "#e4572e", "opacity": 0.5}, name=names[1]))
    if reference is not None:  # drawn on top, small and dark, so the true distribution stays visible
        figure.add_trace(go.Scattergl(x=reference[:, 0].tolist(), y=reference[:, 1].tolist(), mode="markers",
                                      marker={"size": 2, "color": "#1f3b73", "opacity": 0.6}, name=names[0]))
    figure.update_layout(title=title, height=360, xaxis={"range": [-3, 3]}, yaxis={"range": [-3, 3], "scaleanchor": "x"},
                         margin={"l": 40, "r": 20, "t": 45, "b": 30}, showlegend=reference is not None)
    return with_export(figure, file_name, "x", "y")
