"""How the explorer writes its numbers, legend entries, clamp band and its chart in words. The page writes the same
when it redraws a figure in the browser (app/static/explorer.js), from these templates sent in the figure's meta
(app.explorer.browser_meta)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from minsnr_core.weighting import min_snr_clamp_active

# How build_explorer writes numbers, legend entries and the clamp band. The page writes the same when it redraws a
# figure for new parameter values (app/static/explorer.js), from these, sent in the figure's meta (browser_meta).
TEXT = {
    "digits": 6,  # a parameter's value: Python's format(v, ".6g"), the "g" of f"{v:g}"
    "mean_digits": 3,  # a curve's mean weight E[w]
    "infinite": "∞",  # an unbounded mean weight
    # str.format templates with named fields only, which the page fills the same way.
    "legend": {"entry": "{display}{params} · E[w] = {mean}", "params": " ({list})", "param": "{name}={value}",
               "separator": ", "},
}
# Min-SNR's clamp band (where SNR > γ), as plotly's add_vrect draws it: the shape's x0 and x1 and the note's x are
# the band's ends, the note's text CLAMP["text"] with the parameter's value.
CLAMP = {
    "param": "gamma",
    "shape": {"type": "rect", "xref": "x", "y0": 0, "y1": 1, "yref": "y domain", "fillcolor": "rgba(255,165,0,0.15)",
              "line": {"width": 0}},
    "note": {"xref": "x", "y": 1, "yref": "y domain", "xanchor": "left", "yanchor": "top", "showarrow": False},
    "text": "Min-SNR clamp active (SNR > γ = {gamma})",
}
# The chart in words (:func:`describe_explorer`), as str.format templates with named fields only: the page writes
# the same sentences after it has redrawn the curves for a new parameter value (app/static/explorer.js). Numbers
# with TEXT["digits"] (γ) or WORDS["digits"] significant digits.
WORDS = {
    "digits": 3,
    "head": "{title}; y: {quantity}.",
    "clamp": "Min-SNR clamp (shaded band): where SNR > γ = {gamma} (log-SNR λ > {log_gamma}), at t = {first}–{last} "
             "of this schedule; there the weight on the x₀ error is held at γ instead of following SNR.",
    "no_clamp": "Min-SNR clamp: no step of this schedule has SNR above γ = {gamma}, so it never bites.",
    "largest": "Largest weight: {segments}{more}.",
    "segment": "t {steps} (SNR {snrs}): {names}",
    "span": "{first}–{last}",  # a segment's steps; its SNRs with "{first} to {last}" (one step: the value alone)
    "snr_span": "{first} to {last}",
    "segment_separator": "; ",
    "tie": " and ",
    "equal": "{names} (equal)",
    "max_segments": 5,
    "more": "; and {count} more ranges",
    "range": "The weights run from {low} ({low_name}, t = {low_t}) to {high} ({high_name}, t = {high_t}).",
    "tolerance": 1e-9,  # weights this close (relative) are equal: a tie, and the first of them the extreme
}


def number(value: float, digits: int = TEXT["digits"]) -> str:
    return format(value, f".{digits}g")


def legend_entry(display: str, values: Mapping[str, float], mean: float) -> str:
    """A curve's name: the strategy, its parameters' values and its mean weight E_p[w]."""
    legend = TEXT["legend"]
    listed = legend["separator"].join(legend["param"].format(name=k, value=number(v)) for k, v in values.items())
    shown_mean = TEXT["infinite"] if mean == np.inf else number(mean, TEXT["mean_digits"])
    return legend["entry"].format(display=display, params=legend["params"].format(list=listed) if listed else "",
                                  mean=shown_mean)


def describe_explorer(figure: go.Figure, displays: list[str], snr: np.ndarray, gamma: float, clamp_drawn: bool) -> str:
    """The explorer's chart in words, from its traces: where Min-SNR's clamp begins (SNR = γ: which log-SNR, which
    timesteps of this schedule), which weighting is largest over which steps, and the range of the weights.
    ``displays``: the strategies' display names, in the order of the figure's first traces (each with customdata
    [t, SNR]). The page writes the same after each redraw of its own (app/static/explorer.js)."""
    digits = WORDS["digits"]
    lines = [WORDS["head"].format(title=figure.layout.title.text, quantity=figure.layout.yaxis.title.text)]
    if clamp_drawn:
        active = np.flatnonzero(min_snr_clamp_active(snr, gamma).numpy())
        lines.append(WORDS["clamp"].format(gamma=number(gamma), log_gamma=number(float(np.log(gamma)), digits),
                                           first=int(active.min()), last=int(active.max())))
    else:
        lines.append(WORDS["no_clamp"].format(gamma=number(gamma)))
    # Each curve's weight at each step (NaN where the curve has no point), curves in order, steps ascending.
    drawn = [(display, trace) for display, trace in zip(displays, figure.data, strict=False)
             if trace.customdata is not None and len(trace.customdata)]
    names = [display for display, _ in drawn]
    weights = np.full((len(names), len(snr)), np.nan)
    for row, (_, trace) in zip(weights, drawn, strict=True):
        row[np.asarray(trace.customdata)[:, 0].astype(int)] = np.asarray(trace.y, dtype=float)
    present = ~np.isnan(weights)
    tolerance = WORDS["tolerance"]
    columns = np.flatnonzero(present.sum(axis=0) >= 2)
    if len(names) >= 2 and columns.size:
        here = weights[:, columns]
        top = np.nanmax(here, axis=0)
        with np.errstate(invalid="ignore"):
            tied = present[:, columns] & (np.abs(here - top) <= tolerance * np.maximum(np.abs(here), np.abs(top)))
        pattern = (tied * (1 << np.arange(len(names)))[:, None]).sum(axis=0)  # which curves are largest, as bits
        breaks = np.flatnonzero((np.diff(pattern) != 0) | (np.diff(columns) != 1)) + 1
        starts, ends = np.r_[0, breaks], np.r_[breaks - 1, columns.size - 1]

        def segment(a: int, b: int, mask: int) -> str:
            largest = [name for i, name in enumerate(names) if mask >> i & 1]
            label = WORDS["equal"].format(names=WORDS["tie"].join(largest)) if len(largest) > 1 else largest[0]
            first, last = number(float(snr[a]), digits), number(float(snr[b]), digits)
            return WORDS["segment"].format(
                steps=WORDS["span"].format(first=a, last=b) if b > a else str(a), names=label,
                snrs=WORDS["snr_span"].format(first=first, last=last) if b > a else first)

        shown = min(len(starts), WORDS["max_segments"])
        text = WORDS["segment_separator"].join(segment(int(columns[a]), int(columns[b]), int(pattern[a]))
                                               for a, b in zip(starts[:shown], ends[:shown], strict=True))
        more = WORDS["more"].format(count=len(starts) - shown) if len(starts) > shown else ""
        lines.append(WORDS["largest"].format(segments=text, more=more))
    if present.any():
        flat, seen = weights.ravel(), present.ravel()
        extremes = []
        for value in (float(np.nanmin(weights)), float(np.nanmax(weights))):  # the first point this close to it
            index = int(np.flatnonzero(seen & (np.abs(np.where(seen, flat, 0) - value)
                                               <= tolerance * np.maximum(np.abs(np.where(seen, flat, 0)), abs(value))))[0])
            extremes.append((value, names[index // len(snr)], index % len(snr)))
        (low_w, low_name, low_t), (high_w, high_name, high_t) = extremes
        lines.append(WORDS["range"].format(low=number(low_w, digits), low_name=low_name, low_t=low_t,
                                           high=number(high_w, digits), high_name=high_name, high_t=high_t))
    return " ".join(lines)
