"""The weight explorer as one self-contained HTML file: ``minsnr-export-explorer OUT.html``.

The file needs no server and asks nothing of the network (Plotly is inlined and a Content-Security-Policy forbids every
request): a teacher can mail it or put it on a USB stick. Its curves are drawn by the app's own browser code
(app/static/explorer.js) from data that :mod:`minsnr_core` computed here, at T = 1000: each schedule's SNR (exactly, as
float64), log-SNR density and v-target scale and each fixed timestep sampler's T·p(t) at its default parameters (as
float32: relative error ≤ 2⁻²⁴), each weighting's JavaScript expression from the registry. app/static/explorer_static.js switches
schedule, strategies, target, x axis, view, log axis and sampler in the page and reads the app's link fields
(:func:`app.explorer_tab.explorer_fields`) from the query string. What the app offers and this file does not (T other
than 1000, zero terminal SNR, the resolution shift, sampler parameters, the other tabs) the page says in words, and a
link that asks for it gets a notice. tests/test_export_explorer.py checks its curves against :func:`build_explorer`.
"""

from __future__ import annotations

import argparse
import html
import importlib.metadata
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly

from minsnr_core.schedules import SCHEDULES, get_schedule
from minsnr_core.timesteps import TIMESTEP_SAMPLERS, timestep_probabilities
from minsnr_core.weighting import STRATEGIES, TARGET_NAMES, TARGETS, strategy_parameters, x0_error_scale

from .array_code import DIFFERENCES, decode_array, encode_float32, encode_float64  # noqa: F401 - decode_array re-exported
from .explorer import (
    DEFAULT_STRATEGIES,
    EXPLORER_SAMPLERS,
    TIMESTEPS_RANGE,
    VIEWS,
    X_AXES,
    build_explorer,
    explain_strategies,
)
from .explorer_js import STATIC, gamma_log_html, read_script
from .explorer_tab import EXPLORER_INTRO, PARAM_PREFIX, PLOT_ID, WORDS_ID, explorer_fields
from .markdown_html import markdown_blocks, markdown_html
from .urlstate import LINKS_JS

T = 1000  # the only number of timesteps the file draws
# Plotly's "basic" bundle (scatter, bar and pie: the explorer draws scatter traces only), the same plotly.js version
# as the Python package's full bundle, from npm's plotly.js-basic-dist-min (MIT, app/static/vendor/plotly-LICENSE.txt):
# 1.2 MB where the full bundle is 4.8, so the file opens in about a quarter of the parse time.
PLOTLY_JS = STATIC / "vendor" / "plotly-basic.min.js"
FULL_PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
PLOTLY_VERSION = re.compile(r"plotly\.js(?: \([^)]*\))? v([\w.-]+)")  # in each bundle's licence comment
# The link fields the page honours with any allowed value; the others (FIXED) only at their default.
HONOURED = ("schedule", "strategies", "target", "x", "view", "log_y", "sampler")
# Why a fixed link field is not honoured, in the words of the notice the page shows for it.
FIXED_REASONS = {
    "T": "this file draws T = 1000 timesteps only",
    "zero_snr": "this file has no zero-terminal-SNR rescale (Lin et al. 2023)",
    "shift": "this file has no resolution shift (it draws α = 1)",
}
SAMPLER_PARAM_REASON = "this file draws each timestep sampler at its default parameters ({name} = {default})"
# The notices build_explorer writes (app/explorer.py), as templates the page fills from what explorer.js reports.
NOTICES = {
    "no_lambda": "t = T has SNR = 0 (λ = −∞): it has no place on a log-SNR axis and is left out.",
    "undefined_at_zero": "{display}: the weight is unbounded or undefined at SNR = 0; that point is left out.",
    "no_sampler": "{display}: no timestep distribution reproduces it (its mean weight is {mean}).",
    "zero_on_log": "{display}: weight 0 at some steps, not drawn on the log axis.",
    "infinite": "infinite",
    "zero": "zero",
    # The page's own: a link field it cannot honour (fixed), one it cannot read (refused), one of another tab (other).
    "refused": "Link parameter {field} ignored ({error}); using the default.",
    "fixed": "Link parameter {field} not honoured: {reason}. The chart shows the default; the minsnr app draws it.",
    "other": "Link parameters {fields} belong to the app's other tabs (Tour, Train, Compare, Denoise), which this file "
             "does not have; ignored.",
}
LEAVES_OUT = (
    "T = 1000 timesteps only (the app: any T from {low} to {high}).",
    "No zero-terminal-SNR rescale and no resolution shift α (SD3): the schedules as defined.",
    "Each timestep sampler at its default parameters: {defaults}.",
    "Formulas are shown as LaTeX source (the app typesets them).",
    "No CSV or SVG download: the chart's camera button saves a PNG.",
    "Only the weight explorer: the app's Tour, Train, Compare and Denoise tabs need the app.",
)


# ---- What the page draws with: data from minsnr_core, layout and texts from build_explorer ----


def explanation_html(strategies: Sequence[str], target: str = "eps", view: str = "weight", sampler: str = "uniform",
                     process: str = "vp") -> str:
    """The app's explanation under the chart (:func:`explain_strategies`) as the file shows it (:func:`markdown_html`)."""
    return markdown_html(explain_strategies(strategies, target, view, sampler, process))


def _explanations(processes: dict[str, str]) -> dict[str, Any]:
    """The explanation's sections as HTML, which the page joins in explain_strategies' order: each is what an
    argument of explain_strategies adds to its blocks (the sampler section: the blocks every sampler shares, then each
    sampler's own)."""
    conversion = {process: {target: markdown_blocks(explain_strategies([], target, process=process)) for target in TARGETS}
                  for process in processes}
    plain = len(conversion["vp"]["eps"])
    sections = {name: markdown_blocks(explain_strategies([], view="sampler", sampler=name))[:-plain]
                for name in EXPLORER_SAMPLERS}
    shared = 0
    while all(len(blocks) > shared and blocks[shared] == sections["uniform"][shared] for blocks in sections.values()):
        shared += 1
    return {
        "effective": markdown_html(markdown_blocks(explain_strategies([], view="effective"))[:-plain]),
        "sampler": markdown_html(sections["uniform"][:shared]),
        "samplers": {name: markdown_html(blocks[shared:]) for name, blocks in sections.items()},
        "rf": markdown_html(markdown_blocks(explain_strategies([], process="rf"))[:-len(conversion["rf"]["eps"])]),
        "conversion": {process: {target: markdown_html(blocks) for target, blocks in by_target.items()}
                       for process, by_target in conversion.items()},
        "strategies": {name: markdown_html(markdown_blocks(explain_strategies([name]))[plain:]) for name in STRATEGIES.names()},
    }


def _layout_parts() -> dict[str, Any]:
    """The figure's layout without its curves: the base (template, legend, margins), each schedule's title, and the
    axis titles by process (VP or rectified flow), x axis, target, view and sampler (uniform or not)."""
    processes = {}
    for name in SCHEDULES.names():
        processes.setdefault(SCHEDULES.get(name).process, name)
    base = json.loads(build_explorer(strategies=[]).figure.to_json())["layout"]
    template = base.pop("template")
    base = {key: value for key, value in base.items() if key not in ("meta", "shapes", "annotations", "title")}
    base["template"] = {"layout": template["layout"], "data": {"scatter": template["data"]["scatter"]}}
    titles: dict[str, Any] = {"schedule": {}, "x": {}, "y": {}}
    for name in SCHEDULES.names():
        titles["schedule"][name] = build_explorer(name, strategies=[]).figure.layout.title.text
    for process, name in processes.items():
        titles["x"][process] = {x: build_explorer(name, strategies=[], x_axis=x).figure.layout.xaxis.title.text
                                for x in X_AXES}
        titles["y"][process] = {
            target: {view: [build_explorer(name, strategies=[], target=target, view=view, sampler=sampler)
                            .figure.layout.yaxis.title.text for sampler in ("uniform", EXPLORER_SAMPLERS[1])]
                     for view in VIEWS} for target in TARGETS}
    return {"base": base, "titles": titles, "processes": processes}


def _traces() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Each strategy's trace without its points (its style, hover text) and its entry of the figure's meta, and each
    sampler's own dotted curve without its points."""
    figure = json.loads(build_explorer(strategies=STRATEGIES.names()).figure.to_json())
    drop = ("x", "y", "customdata", "name")
    styles = {name: {k: v for k, v in trace.items() if k not in drop}
              for name, trace in zip(STRATEGIES.names(), figure["data"], strict=True)}
    metas = dict(zip(STRATEGIES.names(), figure["layout"]["meta"]["strategies"], strict=True))
    samplers = {}
    for name in EXPLORER_SAMPLERS[1:]:
        trace = json.loads(build_explorer(strategies=[], sampler=name).figure.to_json())["data"][-1]
        samplers[name] = {k: v for k, v in trace.items() if k not in ("x", "y")}
    return styles, metas, samplers


def _arrays() -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Each schedule's arrays at T steps, by key: SNR exactly, the log-SNR density, the v target's error scale and
    each non-uniform sampler's T·p(t) in float32; a sampler's T·p(t) that equals another schedule's is shared."""
    schedules, arrays, seen = {}, {}, {}

    def add(key: str, values: np.ndarray, code: dict[str, str]) -> str:
        digest = values.astype(np.float32).tobytes() if "f4" in code else values.tobytes()
        if digest in seen:
            return seen[digest]
        arrays[key] = code
        seen[digest] = key
        return key

    for name in SCHEDULES.names():
        sched = get_schedule(name, T)
        snr, density = sched.snr.numpy(), sched.log_snr_density().numpy()
        v_scale = x0_error_scale("v", sched.snr, sched.process).numpy()
        entry = {"snr": add(f"{name}.snr", snr, encode_float64(snr)),
                 "density": add(f"{name}.density", density, encode_float32(density)),
                 "v_scale": add(f"{name}.v_scale", v_scale, encode_float32(v_scale)), "factors": {}}
        for sampler in EXPLORER_SAMPLERS[1:]:
            factor = T * timestep_probabilities(sampler, sched).numpy()
            entry["factors"][sampler] = add(f"{name}.{sampler}", factor, encode_float32(factor))
        schedules[name] = entry
    return schedules, arrays


def static_data() -> dict[str, Any]:
    """Everything app/static/explorer_static.js needs, as JSON: the arrays (:func:`_arrays`), the layout's parts,
    each strategy's trace style and meta entry, the meta's templates (app.explorer.browser_meta), the link fields with
    their rules (app.urlstate), the notices' templates and the explanation's paragraphs."""
    fields = explorer_fields()
    defaults = {f.key: f.default for f in fields}
    if defaults["T"] != T or defaults["zero_snr"] or defaults["shift"] != 1:
        raise ValueError("the app's link defaults are no longer T = 1000, no zero terminal SNR, α = 1")
    layout = _layout_parts()
    styles, metas, sampler_traces = _traces()
    schedules, arrays = _arrays()
    meta = json.loads(build_explorer(strategies=[]).figure.to_json())["layout"]["meta"]
    fixed = {key: FIXED_REASONS[key] for key in FIXED_REASONS}
    for name in EXPLORER_SAMPLERS:
        for p in TIMESTEP_SAMPLERS.get(name).params:
            fixed[p.name] = SAMPLER_PARAM_REASON.format(name=p.name, default=f"{p.default:g}")
    unknown = set(defaults) - set(HONOURED) - set(fixed) - set(strategy_parameters())
    if unknown:  # a link field the page would not know how to draw
        raise ValueError(f"app/static/explorer_static.js does not know the explorer's link fields {sorted(unknown)}")
    return {
        "T": T, "differences": DIFFERENCES,
        "schedules": {name: {**schedules[name], "process": SCHEDULES.get(name).process} for name in SCHEDULES.names()},
        "arrays": arrays,
        "layout": layout["base"], "titles": layout["titles"],
        "strategies": {name: {"trace": styles[name], "meta": metas[name]} for name in STRATEGIES.names()},
        "sampler_traces": sampler_traces,
        "meta": {key: meta[key] for key in ("minsnr", "param_names", "param_ranges", "text", "clamp", "words")},
        "fields": [[f.key, f.default, f.parse.rule] for f in fields],
        "fixed": fixed,
        "notices": NOTICES,
        "explain": _explanations(layout["processes"]),
        "ids": {"plot": PLOT_ID, "summary": WORDS_ID, "param_prefix": PARAM_PREFIX},
    }


# ---- The page ----


def _json_for_script(value: Any) -> str:
    """JSON that cannot end its <script> element early."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def _controls() -> str:
    """The page's controls, at the app's defaults (the page sets them from a link): the strategy parameters first (γ
    on a log scale, as in the app), then the chart's settings."""
    esc = html.escape
    parts = ['<section class="panel params" aria-labelledby="params-title"><h2 id="params-title">Weighting parameters'
             "</h2>",
             gamma_log_html(strategy_parameters()["gamma"].default).replace("<div ", '<div id="gamma-log" ', 1)]
    for p in strategy_parameters().values():
        holder = f"{PARAM_PREFIX}{p.name}"
        low, high = p.lowest_setting, p.maximum
        allowed = (f"above {p.minimum:g} up to {high:g}" if p.exclusive_minimum else f"from {p.minimum:g} to {high:g}")
        slider = "" if p.name == "gamma" else (
            f'<input type="range" id="range-{p.name}" min="{low:g}" max="{high:g}" step="{p.step:g}" value="{p.default:g}" '
            f'aria-label="{esc(p.description)} (slider)">')
        parts.append(
            f'<div class="param" id="{holder}"><label for="box-{p.name}">{esc(p.description)}</label>{slider}'
            f'<input type="number" id="box-{p.name}" min="{low:g}" max="{high:g}" step="{p.step:g}" value="{p.default:g}"'
            f' aria-describedby="error-{p.name}"><span class="error" id="error-{p.name}" data-allowed="{esc(allowed)}">'
            "</span></div>")
    parts.append("</section>")
    return "".join(parts)


def _settings() -> str:
    esc = html.escape

    def radios(name: str, legend: str, options: Iterable[tuple[str, str]], value: str) -> str:
        items = "".join(f'<label><input type="radio" name="{name}" value="{esc(v)}"{" checked" if v == value else ""}>'
                        f"{esc(text)}</label>" for v, text in options)
        return f'<fieldset id="{name}"><legend>{esc(legend)}</legend>{items}</fieldset>'

    def select(name: str, label: str, options: Iterable[tuple[str, str]], value: str) -> str:
        items = "".join(f'<option value="{esc(v)}"{" selected" if v == value else ""}>{esc(text)}</option>'
                        for v, text in options)
        return f'<div class="field"><label for="{name}">{esc(label)}</label><select id="{name}">{items}</select></div>'

    boxes = "".join(f'<label><input type="checkbox" name="strategies" value="{e.name}"'
                    f'{" checked" if e.name in DEFAULT_STRATEGIES else ""}>{esc(e.display_name)}</label>' for e in STRATEGIES)
    return "".join([
        '<section class="panel settings" aria-labelledby="settings-title"><h2 id="settings-title">Chart settings</h2>',
        select("schedule", "Noise schedule (T = 1000)", [(e.name, e.display_name) for e in SCHEDULES], "cosine"),
        f'<fieldset id="strategies"><legend>Weighting strategies</legend>{boxes}</fieldset>',
        radios("target", "Prediction target (loss space)", [(t, TARGET_NAMES[t]) for t in TARGETS], "eps"),
        radios("x", "x-axis", X_AXES.items(), "t"),
        radios("view", "Show", VIEWS.items(), "weight"),
        '<div class="field"><label><input type="checkbox" id="log_y" checked>Logarithmic y-axis</label></div>',
        select("sampler", "Timestep sampling p(t) (default parameters)",
               [(n, TIMESTEP_SAMPLERS.get(n).display_name) for n in EXPLORER_SAMPLERS], "uniform"),
        "</section>"])


def _leaves_out() -> str:
    defaults = "; ".join(f"{TIMESTEP_SAMPLERS.get(n).display_name}: "
                         + ", ".join(f"{p.name} = {p.default:g}" for p in TIMESTEP_SAMPLERS.get(n).params)
                         for n in EXPLORER_SAMPLERS if TIMESTEP_SAMPLERS.get(n).params)
    low, high = TIMESTEPS_RANGE
    return "".join(f"<li>{html.escape(item.format(defaults=defaults, low=low, high=high))}</li>" for item in LEAVES_OUT)


CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
       "img-src data: blob:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'")


def _code_lines(text: str) -> str:
    """A script without its whole-line // comments (the commented source is app/static/ in minsnr): a smaller file."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("//"))


def build_static_explorer() -> str:
    """The explorer as one self-contained HTML page (about 1.3 MB, Plotly's basic bundle 1.2 of it): the app's
    explorer at T = 1000 with every schedule, weighting and parameter, target, x axis, view and fixed timestep
    sampler, opening on the view a link's query string (the app's link fields) names."""
    plotly_js = PLOTLY_JS.read_text(encoding="utf-8")
    if "</script" in plotly_js.lower():
        raise ValueError(f"{PLOTLY_JS} holds '</script'")
    css = "".join(line for line in (STATIC / "explorer_static.css").read_text(encoding="utf-8").splitlines(keepends=True)
                  if not line.startswith("/*"))
    if "</style" in css.lower():
        raise ValueError("app/static/explorer_static.css holds '</style'")
    # The app's introduction without its heading ("### Why weight the loss at all?").
    intro = markdown_html("\n".join(line for line in EXPLORER_INTRO.splitlines() if not line.startswith("#")))
    version = importlib.metadata.version("minsnr")
    plotly_version = PLOTLY_VERSION.search(plotly_js[:300])
    # The page's own scripts first (its controls set from the link by the first paint), then Plotly and explorer.js,
    # which explorer_static.js waits for (DOMContentLoaded) to draw the chart.
    scripts = [
        f'<script type="application/json" id="minsnr-data">{_json_for_script(static_data())}</script>',
        f"<script>\nwindow.minsnrWriteQuery = (\n{_code_lines(LINKS_JS).strip()}\n);\n</script>",
        f"<script>\n{_code_lines(read_script('explorer_static.js'))}</script>",
        f'<script>\n((element) => {{\n{_code_lines(read_script("gamma_log.js"))}}})(document.getElementById("gamma-log"));\n'
        "</script>",
        f"<script>\n{plotly_js}\n</script>",
        f"<script>\n{_code_lines(read_script('explorer.js'))}</script>",
    ]
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Min-SNR-γ weight explorer (minsnr, offline)</title>",
        f"<style>\n{css}</style></head><body>",
        '<a class="skip" href="#chart-title">Skip to the chart</a>',
        "<header><h1>Min-SNR-γ weight explorer</h1>", intro,
        '<p class="offline">This file works offline, with no server: nothing is fetched. See <a href="#leaves-out">what '
        "it leaves out</a>.</p></header>",
        '<main><div id="link-notices" class="notices" role="status" aria-live="polite"></div>',
        '<div class="explorer">', _controls(),
        '<section class="panel chart" aria-labelledby="chart-title"><h2 id="chart-title" tabindex="-1">Weight curves</h2>',
        '<ul id="explorer-notices" class="notices" aria-live="polite"></ul>',
        f'<div id="{PLOT_ID}"><div id="explorer-chart" class="js-plotly-plot"></div><p class="loading">Drawing the chart…</p>'
        "<noscript><p>This page draws its chart with JavaScript, which is off in this browser.</p></noscript></div>",
        f'<h3>The chart in words</h3><p id="{WORDS_ID}" aria-live="polite"></p></section>',
        _settings(), "</div>",
        '<section class="panel" aria-labelledby="link-title"><h2 id="link-title">Link to this view</h2>',
        '<p>This file\'s address with the view\'s settings. The same query (after “?”) opens this view in the minsnr '
        "app.</p>",
        '<div class="link"><label for="explorer-link" class="visually-hidden">Link to this view</label>',
        '<input id="explorer-link" type="text" readonly><button type="button" id="copy-link">Copy link</button></div>',
        '<p id="copy-status" role="status"></p></section>',
        '<section class="panel" aria-labelledby="about-title"><h2 id="about-title">About these curves</h2>',
        '<div id="explorer-explanation"></div></section>',
        '<section class="panel" aria-labelledby="leaves-out"><h2 id="leaves-out">What this file leaves out</h2>',
        f"<ul>{_leaves_out()}</ul></section></main>",
        f"<footer>Made by minsnr {html.escape(version)} (<code>minsnr-export-explorer</code>) with Plotly.js "
        f"{html.escape(plotly_version.group(1) if plotly_version else '')} (MIT license), which this file includes.</footer>",
        *scripts,
        "</body></html>\n",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    """``minsnr-export-explorer OUT.html``: write the explorer as one self-contained HTML file and print its size."""
    parser = argparse.ArgumentParser(
        prog="minsnr-export-explorer",
        description="Write the Min-SNR-γ weight explorer as one self-contained HTML file (no server, works offline).")
    parser.add_argument("out", metavar="OUT.html", help="the HTML file to write (its folder must exist)")
    args = parser.parse_args(argv)
    out = Path(args.out).expanduser()
    if out.is_dir():
        parser.error(f"OUT.html: {args.out!r} is a folder; give a file name such as explorer.html")
    if not out.parent.is_dir():
        parser.error(f"OUT.html: the folder {str(out.parent)!r} of {args.out!r} does not exist")
    page = build_static_explorer().encode("utf-8")
    try:
        out.write_bytes(page)
    except OSError as error:
        parser.error(f"OUT.html: cannot write {args.out!r}: {error.strerror or error}")
    print(f"wrote {out} ({len(page):,} bytes, {len(page) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
