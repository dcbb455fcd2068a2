"""The Python side of the page's scripts in app/static/: each file read once, at import, and handed to Gradio.

- explorer.js, first_paint.js and chart_export.js go into the page's head once, through the ``head`` of the
  explorer's first-paint component (:data:`EXPLORER_HEAD`); its ``js_on_load`` (:data:`EXPLORER_ON_LOAD`) calls the
  first two with the page's element ids and link fields, which Python passes as the component's ``minsnr_page`` prop
  (app/explorer_tab.py). chart_export.js is every chart's download buttons' (app/charts.py).
- gamma_log.js is the body of each log-scale γ slider's ``js_on_load`` (:data:`GAMMA_LOG_JS`).
- links.js is the link writer, inside each link control's ``js=`` hook (:func:`app.urlstate.link_writer_js`).

What the scripts need to draw as Python does (number format, legend entries, the clamp band, parameter ranges)
comes with each figure, in ``layout.meta`` (:func:`app.explorer.browser_meta`).
"""

import json
import math
from pathlib import Path

STATIC = Path(__file__).with_name("static")


def read_script(name: str) -> str:
    """The code of app/static/<name> without its header comment (for the file's reader: the page's config carries a
    hook once per control that uses it). It must not hold ``</script``, which would end its <script> element early."""
    lines = (STATIC / name).read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and lines[0].lstrip().startswith(("//", "/*")):
        lines.pop(0)
    text = "".join(lines)
    if "</script" in text.lower():
        raise ValueError(f"app/static/{name} holds '</script'")
    return text


EXPLORER_HEAD = "".join(f"<script>\n{read_script(name)}</script>" for name in ("explorer.js", "first_paint.js",
                                                                                      "chart_export.js"))
# The first-paint component's js_on_load: Gradio runs it after the head's scripts, each time the component is shown.
EXPLORER_ON_LOAD = ("window.minsnr.markFirstPaint(props.minsnr_page);"
                    " window.minsnr.installExplorer(props.minsnr_page);")
# Gradio's own slider events (also when a value is set by a link or the reset button): the same redraw.
REDRAW_JS = "(...values) => { if (window.minsnrExplorer) window.minsnrExplorer.fromValues(values); }"


# γ on a log scale, above a γ box (the explorer's, the Train and Compare tabs'): Gradio's sliders are linear, where the
# γ values that matter most sit at the very start of the track. Labelled at GAMMA_TICKS; the slider snaps to those
# inside its ends.
GAMMA_TICKS = (0.1, 1, 2, 5, 10, 20, 100)
GAMMA_LOG_RANGE = (-1.0, 2.0)  # log10 γ
GAMMA_SNAP = tuple(t for t in GAMMA_TICKS if GAMMA_LOG_RANGE[0] < math.log10(t) < GAMMA_LOG_RANGE[1])
# What one press of an arrow key moves γ by: to the next of these values in each decade, so that a student who uses
# the keyboard alone reaches every γ a teacher would name (Page Up/Down: a decade; Home/End: the ends).
GAMMA_KEY_STEPS = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)
# The γ boxes' own linear tracks are hidden: the log-scale one above each replaces it.
GAMMA_LOG_CSS = ('[id$="param-gamma"] input[type=range], [id$="param-gamma"] .min_value, '
                 '[id$="param-gamma"] .max_value { display: none; }')
GAMMA_LOG_JS = read_script("gamma_log.js")


def gamma_log_id(box_id: str) -> str:
    """The id of the log-scale slider of the γ control whose elem_id is ``box_id``."""
    return f"{box_id}-log"


def gamma_log_html(value: float, box_id: str = "param-gamma") -> str:
    """The log-scale γ slider for the γ control whose elem_id is ``box_id`` (run by :data:`GAMMA_LOG_JS`)."""
    low, high = GAMMA_LOG_RANGE
    ticks = "".join(
        f'<span style="position:absolute;left:{(math.log10(t) - low) / (high - low) * 100:.2f}%;'
        f'transform:translateX(-50%)">{t:g}</span>' for t in GAMMA_TICKS)
    snap = ",".join(f"{t:g}" for t in GAMMA_SNAP)
    key_steps = ",".join(f"{t:g}" for t in GAMMA_KEY_STEPS)
    range_id = gamma_log_id(box_id)
    return (f'<div style="padding:0 8px 18px 8px"><label for="{range_id}" style="font-size:var(--block-label-text-size)">'
            f'γ on a log scale</label><input id="{range_id}" data-box="{box_id}" data-snap="{snap}" '
            f'data-keys="{key_steps}" aria-valuetext="γ = {value:g}" type="range" '
            f'min="{low}" max="{high}" step="0.001" value="{math.log10(value):.4f}" style="width:100%"><div '
            f'style="position:relative;height:1em;font-size:0.8em;color:var(--body-text-color-subdued)">{ticks}</div></div>')


def gamma_follow_js(box_id: str = "param-gamma") -> str:
    """For the γ control's own change event (also when a link, preset or reset sets it): move its log-scale slider
    (defined by :data:`GAMMA_LOG_JS`, which has run wherever that slider exists)."""
    return f"(value) => window.minsnr?.followGamma?.({json.dumps(gamma_log_id(box_id))}, value)"
