"""The explorer's first chart as a static SVG, so a page shows its curves before Plotly has loaded.

Gradio mounts the explorer's controls well after a page is opened, and Plotly's large module then takes as long
again to compile and run before it draws (measured in docs/performance.md). The server draws the same figure's
traces, axes, clamp band and legend as SVG into the page; Plotly's interactive chart replaces it as soon as it exists
(CSS in :data:`FIRST_PAINT_CSS`). A page opened from a link with settings shows no first paint: its chart is not the
default one (app/static/first_paint.js).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import plotly.graph_objects as go
from starlette.middleware import Middleware

# Plotly's default colour sequence, so each curve keeps its colour when Plotly takes over.
COLORWAY = ("#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880", "#FF97FF",
            "#FECB52")
WIDTH, HEIGHT = 900, 520
LEFT, RIGHT, TOP = 70, 20, 50
LEGEND_COLUMNS = 2
# Plotly's dash names as SVG stroke-dasharray (its own, for a line 2 units wide).
DASH_ARRAYS = {"dash": "9 9", "dot": "3 3", "dashdot": "9 3 3 3", "longdash": "15 9", "longdashdot": "15 6 3 6"}
EARLY_PAINT_ID = "early-paint"  # the chart in the page's own HTML (:class:`EarlyPaint`)

# The first paint is hidden once Plotly's chart exists (also by app/static/explorer.js, for browsers without :has);
# until then the empty Plotly box takes no room. Each selector list in its own rule: a browser drops a whole rule
# whose selector it cannot parse.
FIRST_PAINT_CSS = (
    "#explorer-first-paint.linked, #explorer-first-paint.replaced { display: none; }\n"
    "body:has(#explorer-plot .js-plotly-plot) #explorer-first-paint { display: none; }\n"
    "body:not(:has(#explorer-plot .js-plotly-plot)):has(#explorer-first-paint:not(.linked)) #explorer-plot "
    "{ height: 0; min-height: 0; overflow: hidden; padding: 0; border: 0; }"
)


def _nice_step(span: float, count: int = 5) -> float:
    """A step of 1, 2 or 5 × 10^k giving about ``count`` ticks over ``span``."""
    raw = span / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _format(value: float, power_of_ten: bool = False) -> str:
    """A tick label: 1e-5 … 1e9 for a log axis's decades, otherwise three significant digits."""
    if power_of_ten and (abs(value) >= 1e4 or abs(value) < 1e-3):
        return f"1e{round(math.log10(abs(value)))}"
    return f"{value:.3g}"


def _text(x: float, y: float, text: str, anchor: str = "middle", size: int = 12, extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="#444" {extra}>'
            f"{html.escape(text)}</text>")


def figure_svg(figure: go.Figure) -> str:
    """The figure's line traces, axes (linear or log y), rectangle shapes, annotations, title and legend as one SVG
    string of :data:`WIDTH` × :data:`HEIGHT` user units that scales down to a narrow column."""
    layout = figure.layout
    traces = [(t.name or "", np.asarray(t.x, dtype=float), np.asarray(t.y, dtype=float), t.line.color, t.line.dash)
              for t in figure.data]
    log_y = layout.yaxis.type == "log"
    legend_rows = math.ceil(len(traces) / LEGEND_COLUMNS)
    bottom = HEIGHT - 62 - 18 * legend_rows
    xs = np.concatenate([x for _, x, _, _, _ in traces]) if traces else np.array([0.0, 1.0])
    xs = xs[np.isfinite(xs)]
    ys = np.concatenate([y for _, _, y, _, _ in traces]) if traces else np.array([1.0, 10.0])
    ys = ys[np.isfinite(ys) & ((ys > 0) if log_y else True)]
    x_low, x_high = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    if x_high <= x_low:
        x_high = x_low + 1
    if log_y:
        y_low = math.floor(math.log10(ys.min())) if ys.size else 0
        y_high = math.ceil(math.log10(ys.max())) if ys.size else 1
        y_high = max(y_high, y_low + 1)
    else:
        y_low, y_high = (min(0.0, float(ys.min())), float(ys.max())) if ys.size else (0.0, 1.0)
        y_high = y_high if y_high > y_low else y_low + 1

    def px(x: np.ndarray | float) -> np.ndarray | float:
        return LEFT + (np.asarray(x) - x_low) / (x_high - x_low) * (WIDTH - LEFT - RIGHT)

    def py(y: np.ndarray | float) -> np.ndarray | float:
        value = np.log10(np.asarray(y, dtype=float)) if log_y else np.asarray(y, dtype=float)
        return bottom - (value - y_low) / (y_high - y_low) * (bottom - TOP)

    template = layout.template.layout if layout.template is not None else None
    background = layout.plot_bgcolor or (template.plot_bgcolor if template is not None else None) or "#E5ECF6"
    grid = (template.xaxis.gridcolor if template is not None else None) or "white"
    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" style="max-width:{WIDTH}px;display:block" '
             f'role="img" aria-label="{html.escape(layout.title.text or "chart")}" font-family="sans-serif">',
             f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{bottom - TOP}" '
             f'fill="{html.escape(background)}"/>']
    for shape in layout.shapes or ():  # Plotly's vrect: x in data units, y over the plot's height
        x0, x1 = sorted((float(px(shape.x0)), float(px(shape.x1))))
        parts.append(f'<rect x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1):.1f}" height="{bottom - TOP}" '
                     f'fill="{html.escape(shape.fillcolor or "rgba(0,0,0,0.1)")}"/>')
    # Grid and tick labels.
    if log_y:
        stride = max(1, math.ceil((y_high - y_low) / 8))
        y_ticks = [10.0**k for k in range(y_low, y_high + 1, stride)]
    else:
        step = _nice_step(y_high - y_low)
        y_ticks = [k * step for k in range(math.ceil(y_low / step), math.floor(y_high / step) + 1)]
    for tick in y_ticks:
        y = float(py(tick))
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{html.escape(grid)}"/>')
        parts.append(_text(LEFT - 6, y + 4, _format(tick, log_y), "end", 11))
    step = _nice_step(x_high - x_low, 9)
    for k in range(math.ceil(x_low / step), math.floor(x_high / step) + 1):
        x = float(px(k * step))
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{bottom}" stroke="{html.escape(grid)}"/>')
        parts.append(_text(x, bottom + 16, _format(k * step), size=11))
    # The curves, one point per 2 units of width at most: as smooth, in far fewer bytes.
    for index, (name, x, y, color, dash) in enumerate(traces):
        keep = np.isfinite(x) & np.isfinite(y) & ((y > 0) if log_y else True)
        points_x, points_y = px(x[keep]), py(y[keep])
        coordinates, last = [], math.inf
        for i, (a, b) in enumerate(zip(points_x, points_y, strict=True)):
            if abs(a - last) >= 2 or i == len(points_x) - 1:  # x falls along t on a log-SNR axis
                coordinates.append(f"{a:.1f},{b:.1f}")
                last = a
        stroke = color or COLORWAY[index % len(COLORWAY)]
        dashes = f' stroke-dasharray="{DASH_ARRAYS[dash]}"' if dash in DASH_ARRAYS else ""
        parts.append(f'<polyline fill="none" stroke="{html.escape(stroke)}" stroke-width="2"{dashes} '
                     f'points="{" ".join(coordinates)}"><title>{html.escape(name)}</title></polyline>')
    for note in layout.annotations or ():
        parts.append(_text(float(px(note.x)) + 4, TOP + 14, note.text or "", "start", 11))
    parts.append(_text(LEFT, 30, layout.title.text or "", "start", 16))
    parts.append(_text((LEFT + WIDTH - RIGHT) / 2, bottom + 36, layout.xaxis.title.text or "", size=12))
    parts.append(_text(16, (TOP + bottom) / 2, layout.yaxis.title.text or "", size=12,
                       extra=f'transform="rotate(-90 16 {(TOP + bottom) / 2:.1f})"'))
    for index, (name, *_rest, color, dash) in enumerate(traces):
        row, column = divmod(index, LEGEND_COLUMNS)
        x = LEFT + column * (WIDTH - LEFT) / LEGEND_COLUMNS
        y = bottom + 58 + 18 * row
        stroke = color or COLORWAY[index % len(COLORWAY)]
        dashes = f' stroke-dasharray="{DASH_ARRAYS[dash]}"' if dash in DASH_ARRAYS else ""
        parts.append(f'<line x1="{x:.1f}" x2="{x + 24:.1f}" y1="{y - 4:.1f}" y2="{y - 4:.1f}" '
                     f'stroke="{html.escape(stroke)}" stroke-width="2"{dashes}/>')
        parts.append(_text(x + 30, y, name, "start", 12))
    parts.append("</svg>")
    return "".join(parts)


# The page's own HTML carries the default chart too, so it is painted as soon as the HTML has arrived, before
# Gradio's script has built the page (which takes a while: docs/performance.md). It sits above Gradio's app in the
# document flow, so it can never cover a control, and goes once the explorer's own first paint or Plotly's chart
# exists (CSS, and app/static/first_paint.js for browsers without :has).
# Text in the body's colours, which Gradio's page sets for a light and a dark colour scheme; the chart on white.
EARLY_PAINT_CSS = (
    f"#{EARLY_PAINT_ID} {{ box-sizing: border-box; max-width: 1280px; min-height: 100vh; margin: 0 auto;"
    " padding: 16px 24px; font-family: system-ui, sans-serif; }\n"
    f"#{EARLY_PAINT_ID} h1 {{ font-size: 1.6rem; margin: 0.2em 0 0.4em; }}\n"
    f"#{EARLY_PAINT_ID} p {{ margin: 0 0 12px; opacity: 0.75; }}\n"
    f"#{EARLY_PAINT_ID} svg {{ display: block; width: 100%; max-width: {WIDTH}px; height: auto; background: white; }}\n"
    f"@media (max-width: 700px) {{ #{EARLY_PAINT_ID} h1 {{ font-size: 1.25rem; }} }}\n"
    f"body:has(#explorer-first-paint svg) #{EARLY_PAINT_ID} {{ display: none; }}\n"
    f"body:has(#explorer-plot .js-plotly-plot) #{EARLY_PAINT_ID} {{ display: none; }}"
)


def early_paint_html(svg: str, heading: str) -> str:
    """The block the app's page carries before Gradio's own: a heading, a line saying the controls are loading, and
    the default chart's SVG (:func:`figure_svg`)."""
    return (f'<div id="{EARLY_PAINT_ID}"><style>{EARLY_PAINT_CSS}</style><h1>{html.escape(heading)}</h1>'
            "<p>The default weight curves; the controls are loading…</p>" + svg + "</div>")


class EarlyPaint:
    """ASGI middleware: the app's page (a GET of the root path) gets ``block`` right after its ``<body>`` tag, and a
    HEAD of it the same Content-Length, unless its query sets one of ``link_fields`` (that page's chart is another
    one, as the page reads the link: a blank value counts). Every other request and response passes through
    untouched, streams included."""

    def __init__(self, app: Any, block: str, link_fields: Sequence[str]) -> None:
        self.app, self.block, self.link_fields = app, block.encode(), set(link_fields)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        root = scope.get("root_path", "").rstrip("/")  # the page's path with or without it, as servers differ
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if (scope["type"] != "http" or scope["method"] not in ("GET", "HEAD")
                or scope["path"].rstrip("/") not in ("", root) or self.link_fields & set(query)):
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        chunks: list[bytes] = []

        def with_length(message: dict, length: int) -> dict:
            return {**message, "headers": [(k, str(length).encode() if k == b"content-length" else v)
                                           for k, v in message["headers"]]}

        async def send_with_block(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if start is not None and message["type"] != "http.response.body":  # anything else: send as it came
                await send(start)
                for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                start, chunks[:] = None, []
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body, headers = b"".join(chunks), dict(start["headers"])
            if (start["status"] == 200 and headers.get(b"content-type", b"").startswith(b"text/html")
                    and b"content-encoding" not in headers):
                if scope["method"] == "HEAD" and headers.get(b"content-length", b"").isdigit():
                    start = with_length(start, int(headers[b"content-length"]) + len(self.block))
                opening = body.find(b"<body", body.find(b"</head>") + 1)  # not a "<body" in the head's scripts
                end = body.find(b">", opening)
                if scope["method"] == "GET" and opening >= 0 and end > 0:
                    body = body[:end + 1] + self.block + body[end + 1:]
                    start = with_length(start, len(body))
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_with_block)


def early_paint_middleware(figure: go.Figure, title: str, link_fields: Sequence[str]) -> Middleware:
    """:class:`EarlyPaint` with ``figure`` (the explorer's default view) drawn as SVG under the first line of the
    app's Markdown ``title`` as its heading, for the app's ASGI stack."""
    heading = title.strip().splitlines()[0].lstrip("# ")
    return Middleware(EarlyPaint, block=early_paint_html(figure_svg(figure), heading), link_fields=list(link_fields))
