"""What every chart of the app offers besides its picture: a text alternative written from the chart's own data,
and its data (CSV) and picture (PNG, SVG) to download under names that say what they hold.

The words are written from the figure's traces, so they say what is drawn, not what was meant to be drawn
(:func:`describe_figure`, plus sentences particular to a chart). The downloads are made in the page, from the chart
as it is drawn (app/static/chart_export.js): the explorer redraws its curves in the browser while γ moves, and a
training chart changes every second, so the page's chart is the only copy that is always current; nothing of it is
written on the server, so nothing of one session's can reach another. A figure names its file and its CSV columns in
``layout.meta["export"]`` (:func:`export_spec`).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go

# The download buttons in each chart's toolbar: format → label (also the button's accessible name). Short, so that
# on a phone they leave room for the chart's label beside them.
EXPORT_BUTTONS = {"csv": "Save CSV", "png": "Save PNG", "svg": "Save SVG"}
FOLD_AFTER = 4  # a text alternative's list of more curves than this is folded (<details>)
SUMMARY_SUFFIX = "-summary"  # the text alternative of the chart with elem_id X is the element X-summary


def slug(text: str) -> str:
    """A file-name-safe, lower-case ASCII form of ``text`` ("Min-SNR-γ (gamma=5)" → "min-snr-gamma-gamma-5")."""
    text = text.replace("γ", "gamma").replace("ε", "eps").replace("√", "sqrt").replace("×", "x").replace("₀", "0")
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "chart"


def run_slug(weighting: str, params: dict[str, float], *context: str) -> str:
    """A run's name in a file name: weighting and its parameters, then ``context`` (target, dataset…):
    ("min_snr", {"gamma": 5}, "eps", "moons") → "min-snr-gamma5-eps-moons"."""
    values = "".join(f"-{slug(k)}{v:g}" for k, v in params.items())
    return slug("-".join([f"{weighting}{values}", *context]))


def export_spec(name: str, x: str, y: str, custom: Sequence[str | None] = ()) -> dict[str, Any]:
    """What a figure's downloads are called (``name``, without extension; ``{param}`` fields are filled in the page
    with a strategy parameter's current value) and its CSV's column names: ``x`` and ``y`` for the trace's points,
    ``custom`` for the columns of its customdata (None: not written)."""
    return {"name": name, "x": x, "y": y, "custom": list(custom)}


def with_export(figure: go.Figure, name: str, x: str, y: str, custom: Sequence[str | None] = ()) -> go.Figure:
    """``figure`` with :func:`export_spec` in its layout's meta (other meta keys kept)."""
    meta = dict(figure.layout.meta or {})
    meta["export"] = export_spec(name, x, y, custom)
    figure.update_layout(meta=meta)
    return figure


# --- the words -------------------------------------------------------------------------------------------------

def number(value: float) -> str:
    """Three significant digits, as the charts' hover labels write them; a whole number below a million whole."""
    if value == math.inf:
        return "∞"
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e6 else f"{value:.3g}"


def _series(trace: Any) -> tuple[np.ndarray, np.ndarray]:
    """A trace's finite points, in its own order."""
    x = np.asarray(trace.x if trace.x is not None else [], dtype=float)
    y = np.asarray(trace.y if trace.y is not None else [], dtype=float)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def curves(figure: go.Figure) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The figure's curves with their finite points: every trace in its legend but a filled band (its points trace
    an outline, not a curve); not a trace kept out of the legend (each seed's thin line beside its mean) nor one
    without points."""
    out = []
    for trace in figure.data:
        if getattr(trace, "fill", None) not in (None, "none") or trace.showlegend is False:
            continue
        x, y = _series(trace)
        if len(x):
            out.append((trace.name or "curve", x, y))
    return out


def describe_curve(name: str, x: np.ndarray, y: np.ndarray, x_name: str) -> str:
    """One curve in a sentence: its last value, its lowest and highest, and where it started."""
    last = f"last {number(y[-1])} at {x_name} {number(x[-1])}"
    if len(y) == 1:
        return f"{name}: {last} (one point)"
    low, high = int(np.argmin(y)), int(np.argmax(y))
    start = f"from {number(y[0])} at {x_name} {number(x[0])}"
    change = ""
    if y[0] > 0 and y[-1] > 0 and y[-1] != y[0]:
        ratio = y[0] / y[-1]
        change = f", {'down' if ratio > 1 else 'up'} {number(ratio if ratio > 1 else 1 / ratio)}×"
    return (f"{name}: {last}; {start}{change}; lowest {number(y[low])} ({x_name} {number(x[low])}), highest "
            f"{number(y[high])} ({x_name} {number(x[high])}); {len(y)} points")


def describe_figure(figure: go.Figure, x_name: str | None = None, empty: str = "Nothing drawn yet.",
                    rank: bool = False) -> str:
    """A text alternative of any line chart, from its traces: its title, axes and one line per curve (last value,
    lowest, highest, first value and the factor between first and last). ``rank``: a sentence first on which curve
    ends highest and lowest and which fell most (:func:`rank_curves`)."""
    found = curves(figure)
    if not found:
        return empty
    layout = figure.layout
    x_name = x_name or (layout.xaxis.title.text or "x")
    y_name = layout.yaxis.title.text or "y"
    title = layout.title.text or "Chart"
    scale = ", log scale" if layout.yaxis.type == "log" else ""
    head = f"{title}: {y_name}{scale} against {x_name}, {len(found)} curve{'s' if len(found) > 1 else ''}."
    if rank and len(found) > 1:
        head += " " + rank_curves(found)
    return head + "\n" + "\n".join(f"- {describe_curve(name, x, y, x_name)}" for name, x, y in found)


def describe_points(figure: go.Figure, empty: str = "No samples drawn yet.") -> str:
    """A text alternative of a 2D scatter of samples, from its traces: per cloud, how many points, their mean and
    spread (standard deviation) in x and y, and the box they fill (the middle 90 %: 5th to 95th percentiles)."""
    clouds = [(trace.name or "points", np.asarray(trace.x, dtype=float), np.asarray(trace.y, dtype=float))
              for trace in figure.data if trace.x is not None and len(trace.x)]
    if not clouds:
        return empty
    lines = [f"{figure.layout.title.text or 'Samples'}: {len(clouds)} point cloud{'s' if len(clouds) > 1 else ''}."]
    for name, x, y in clouds:
        (x5, x95), (y5, y95) = np.percentile(x, [5, 95]), np.percentile(y, [5, 95])
        lines.append(f"- {name}: {len(x)} points; mean ({number(x.mean())}, {number(y.mean())}), spread "
                     f"({number(x.std())}, {number(y.std())}); the middle 90 % within x {number(x5)} to {number(x95)}, "
                     f"y {number(y5)} to {number(y95)}")
    return "\n".join(lines)


def rank_curves(found: list[tuple[str, np.ndarray, np.ndarray]]) -> str:
    """Which of these curves ends highest and which lowest, and which fell most from its first point to its last."""
    high = max(found, key=lambda c: c[2][-1])
    low = min(found, key=lambda c: c[2][-1])
    text = (f"At their last points {high[0]} is highest ({number(high[2][-1])}) and {low[0]} lowest "
            f"({number(low[2][-1])}).")
    falls = [(name, y[0] / y[-1]) for name, _, y in found if y[0] > 0 and y[-1] > 0]
    if falls and max(f for _, f in falls) > 1:
        name, factor = max(falls, key=lambda f: f[1])
        text += f" Fell most since its first point: {name} ({number(factor)}× lower)."
    return text


def describe_runs(figure: go.Figure, higher_is_better: bool | None, empty: str = "Nothing drawn yet.") -> str:
    """Curves over training steps (losses, quality): :func:`describe_figure`, then which run ended best (its last
    value; ``higher_is_better`` None: no ranking)."""
    text = describe_figure(figure, "step", empty)
    found = curves(figure)
    if len(found) < 2 or higher_is_better is None:
        return text
    ends = sorted(found, key=lambda c: c[2][-1], reverse=higher_is_better)
    word = "highest" if higher_is_better else "lowest"
    best = ends[0]
    return text + (f"\n\nBest at its last point ({word} is better): {best[0]}, {number(best[2][-1])} at step "
                   f"{number(best[1][-1])}.")


def describe_marked_step(figure: go.Figure) -> str:
    """The Denoise tab's chart: the weight curve over log-SNR (:func:`describe_curve`) and the step marked on it."""
    found = curves(figure)
    if not found:
        return "Nothing drawn yet."
    text = f"{figure.layout.yaxis.title.text} against log-SNR λ.\n- {describe_curve(*found[0], 'λ')}"
    if len(found) > 1:
        name, x, y = found[1]
        text += f"\n- Marked: {name}, at λ = {number(float(x[0]))}, weight {number(float(y[0]))}."
    return text


def words_html(text: str, text_id: str | None = None) -> str:
    """A text alternative as HTML under its chart: "The chart in words." and ``text``, in order: its paragraphs, and
    its lines starting with "- " as lists. ``text_id``: the id of the first paragraph's text (the page rewrites it)."""
    blocks: list[str] = []
    items: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("- "):
            items.append(f"<li>{html.escape(line[2:])}</li>")
            continue
        if items:  # a long list folded away, so that the chart's neighbours stay in view
            listed = "<ul>" + "".join(items) + "</ul>"
            blocks.append(listed if len(items) <= FOLD_AFTER else
                          f"<details><summary>Each curve ({len(items)})</summary>{listed}</details>")
            items = []
        if line.strip():
            if not blocks:
                attribute = f' id="{html.escape(text_id)}"' if text_id else ""
                blocks.append(f"<p><strong>The chart in words.</strong> <span{attribute}>{html.escape(line)}</span></p>")
            else:
                blocks.append(f"<p>{html.escape(line)}</p>")
    return f'<div class="chart-words">{"".join(blocks)}</div>'


# --- the Gradio side ---------------------------------------------------------------------------------------------

def export_js(elem_id: str, file_format: str) -> str:
    """The click handler of a chart's download button (app/static/chart_export.js, in the page's head)."""
    return f"() => window.minsnr?.exportChart?.({json.dumps(elem_id)}, {json.dumps(file_format)})"


def chart(label: str, elem_id: str, value: go.Figure | None = None, visible: bool = True,
          words: str = "") -> tuple[gr.Plot, gr.HTML]:
    """A gr.Plot with its download buttons (data as CSV, picture as PNG and SVG) in its toolbar, and its text
    alternative under it (elem_id ``<elem_id>-summary``), ``words`` as :func:`words_html` writes it."""
    buttons = {fmt: gr.Button(text, size="sm") for fmt, text in EXPORT_BUTTONS.items()}
    plot = gr.Plot(value, label=label, elem_id=elem_id, visible=visible, buttons=list(buttons.values()))
    for fmt, button in buttons.items():
        button.click(None, None, None, js=export_js(elem_id, fmt))
    return plot, gr.HTML(words, elem_id=elem_id + SUMMARY_SUFFIX, visible=visible)
