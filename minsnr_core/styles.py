"""How the curves of every chart are told apart: the one table of colours, dash styles and markers, used by the
app's charts (app/figures.py, app/explorer.py, app/denoise_ui.py) and by the experiment report's figures
(:mod:`minsnr_core.report`, the Compare tab's measured results).

Colour alone does not tell curves apart for a reader with a colour-vision deficiency, on a greyscale print or a
projector: each curve also has its own dash style and marker. The colours are the Okabe–Ito ones that keep a contrast
of at least 3:1 on the charts' white background (WCAG 1.4.11); their orange, sky blue and yellow are too light there.
A weighting keeps its style in every chart (by its registry name, or its display name in a run's label)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .weighting import STRATEGIES

PLOT_TEMPLATE = "plotly_white"  # white plot area: the contrast of PALETTE is measured against it
BACKGROUND = "#FFFFFF"
# Okabe & Ito (2008): blue, vermillion, bluish green, reddish purple (contrast on white 5.2, 3.9, 3.4, 3.1).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7")
NEUTRAL = "#6E6E6E"  # a reference curve that is not one of the compared ones (a sampler's p(t)): grey, 5.1:1
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "triangle-down", "star", "cross", "pentagon", "hexagon",
           "hourglass", "star-square")
MARKERS_SHOWN = 12  # markers drawn along a long curve (plotly's marker.maxdisplayed): enough to tell it by its shape
# The weightings in the order they take styles: the ones that share charts most (the explorer's defaults, the
# paper's comparison: Min-SNR, SNR, Soft-Min-SNR, constant-x0 or P2) first, so those differ in colour too. With 4
# colours and 6 dashes, the first 12 (lcm) get distinct colour-dash pairs and distinct markers.
STYLE_ORDER = ("min_snr", "snr", "soft_min_snr", "constant", "snr_plus_one", "trunc_snr", "max_snr", "p2", "edm",
               "flow_velocity", "debiased", "sigmoid")


@dataclass(frozen=True)
class CurveStyle:
    color: str
    dash: str
    symbol: str

    def line(self, width: float = 2) -> dict[str, Any]:
        return {"color": self.color, "dash": self.dash, "width": width}

    def marker(self, size: float = 7, every_point: bool = False) -> dict[str, Any]:
        """Plotly's marker; on a long curve only :data:`MARKERS_SHOWN` of them (``every_point``: one per point)."""
        return {"color": self.color, "symbol": self.symbol, "size": size,
                **({} if every_point else {"maxdisplayed": MARKERS_SHOWN})}

    def scatter(self, every_point: bool = False, width: float = 2) -> dict[str, Any]:
        """Keyword arguments of ``go.Scatter`` for a line with markers in this style."""
        return {"mode": "lines+markers", "line": self.line(width), "marker": self.marker(every_point=every_point)}


def curve_style(index: int) -> CurveStyle:
    """The ``index``-th style: the colour cycles by 4, the dash by 6, the marker by 12."""
    return CurveStyle(PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)], SYMBOLS[index % len(SYMBOLS)])


def style_index(key: str) -> int | None:
    """The style index of a weighting by registry name or display name ("min_snr" or "Min-SNR-γ"); None for any other
    curve."""
    names = list(STYLE_ORDER) + [n for n in STRATEGIES.names() if n not in STYLE_ORDER]
    if key in names:
        return names.index(key)
    for name in names:
        if name in STRATEGIES and STRATEGIES.get(name).display_name == key:
            return names.index(name)
    return None


def weighting_style(key: str) -> CurveStyle:
    """The style of a weighting (name or display name); a curve that names none gets the first style."""
    return chart_styles([key])[0]


def chart_styles(keys: Sequence[str]) -> list[CurveStyle]:
    """The styles of one chart's curves: a weighting's own (:func:`weighting_style`), and for any other curve (a
    run labelled otherwise, a weighting with a timestep sampler) the first style no curve of the chart has."""
    indices = [style_index(key) for key in keys]
    taken = {i for i in indices if i is not None}
    free = (i for i in range(10**6) if i not in taken)
    return [curve_style(i if i is not None else next(free)) for i in indices]
