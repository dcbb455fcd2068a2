"""The explorer as one HTML file (app/export_explorer.py, `minsnr-export-explorer OUT.html`), opened from file:// in a
real headless Chromium with every request off the file blocked: its curves equal the app's (app.explorer.build_explorer)
to relative 1e-6 for every strategy × schedule × target × view, every timestep sampler, both x axes and both y axes;
a link's query string opens the same view as in the app, and one the file cannot draw gets a notice; a typed γ
redraws; axe-core finds no serious or critical WCAG 2.1 AA violation at 1400×1000 and 390×844; the keyboard reaches
every control with a visible focus ring. One page, driven through window.minsnrStatic (app/static/explorer_static.js).
Screenshots go to artifacts/export/."""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
from pathlib import Path

import numpy as np
import pytest

from app.explorer import EXPLORER_SAMPLERS, VIEWS, build_explorer
from app.export_explorer import T, decode_array, encode_float32, encode_float64, explanation_html, main
from minsnr_core.schedules import SCHEDULES, get_schedule
from minsnr_core.timesteps import timestep_probabilities
from minsnr_core.weighting import STRATEGIES, TARGETS, loss_weight, strategy_parameters, x0_error_scale

from .conftest import ARTIFACTS
from .test_accessibility import BLOCKING, FOCUSED, RING_PROBLEM, RUN_AXE, WCAG_TAGS, axe_source

SHOTS = ARTIFACTS / "export"
MAX_BYTES = 5_000_000  # "file ≤ 5 MB"
PRINTED: dict[Path, str] = {}
PLOT = "document.querySelector('#explorer-plot .js-plotly-plot')"
WORDS = "document.getElementById('explorer-words').textContent"
DEFAULT_PARAMS = {p.name: p.default for p in strategy_parameters().values()}
# Records what the page would ask of the network or what its Content-Security-Policy refused (nothing, if it works).
WATCH = """window.__csp = []; document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));"""
# Each combination's chart as the page drew it: per trace its name and points (float64 as base64), the layout's
# titles and clamp band, the chart in words, the notices and the explanation.
RUN = """async (combos) => {
  const S = window.minsnrStatic, div = () => document.querySelector('#explorer-plot .js-plotly-plot');
  const b64 = (values) => { const raw = new Uint8Array(Float64Array.from(values).buffer); let text = '';
    for (let i = 0; i < raw.length; i += 8192) text += String.fromCharCode.apply(null, raw.subarray(i, i + 8192));
    return btoa(text); };
  const out = [];
  await new Promise((resolve) => setTimeout(resolve, 0));  // the caller goes on while the page draws
  for (const combo of combos) {
    await S.set(combo);
    const d = div();
    out.push({traces: d.data.map((t) => ({name: t.name, x: S.state.x === 'log_snr' ? b64(t.x) : null, y: b64(t.y),
                                          t: t.customdata ? b64(t.customdata.map((c) => c[0])) : null})),
              title: d.layout.title.text, xtitle: d.layout.xaxis.title.text, ytitle: d.layout.yaxis.title.text,
              ytype: d.layout.yaxis.type, band: d.layout.shapes.map((s) => [s.x0, s.x1]),
              notes: d.layout.annotations.map((a) => a.text),
              words: document.getElementById('explorer-words').textContent,
              notices: [...document.querySelectorAll('#explorer-notices li')].map((li) => li.textContent),
              explanation: document.getElementById('explorer-explanation').innerHTML});
  }
  return out;
}"""


def floats(text: str | None) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text or ""), dtype="<f8")


def combinations() -> list[dict]:
    """Every strategy × schedule × target × view (all strategies ticked at once); each sampler in every view, on a
    VP schedule and rectified flow (the page's copy of each schedule's T·p(t) is checked exactly on its own); the
    log-SNR axis for every schedule and view; a linear y axis."""
    base = {"strategies": STRATEGIES.names(), "params": DEFAULT_PARAMS, "sampler": "uniform", "x": "t", "log_y": True}
    combos = [{**base, "schedule": s, "target": t, "view": v}
              for s, t, v in itertools.product(SCHEDULES.names(), TARGETS, VIEWS)]
    combos += [{**base, "schedule": s, "target": t, "view": v, "sampler": p}
               for (s, t), v, p in itertools.product([("cosine", "eps"), ("rectified_flow", "v")], VIEWS,
                                                     EXPLORER_SAMPLERS[1:])]
    cycle = itertools.cycle(itertools.product(TARGETS, EXPLORER_SAMPLERS))
    combos += [{**base, "schedule": s, "target": t, "view": v, "x": "log_snr", "sampler": p}
               for (s, v), (t, p) in zip(itertools.product(SCHEDULES.names(), VIEWS), cycle, strict=False)]
    combos += [{**base, "schedule": s, "target": "v", "view": v, "log_y": False, "sampler": "cauchy",
                "params": {**DEFAULT_PARAMS, "gamma": 2.5, "bias": -1.0}}
               for s, v in zip(SCHEDULES.names(), itertools.cycle(VIEWS), strict=False)]
    return combos


def expected(combo: dict):
    return build_explorer(combo["schedule"], T, combo["strategies"], combo["params"], combo["target"], combo["x"],
                          combo["view"], False, combo["log_y"], combo["sampler"])


def check_chart(drawn: dict, want, combo: dict) -> None:
    """The page's chart is the app's: each trace's name and points (x, t and y to relative 1e-6), titles, clamp band,
    the chart in words, notices and explanation."""
    where = {k: combo[k] for k in ("schedule", "target", "view", "x", "sampler", "log_y")}
    layout = want.figure.layout
    assert (drawn["title"], drawn["xtitle"], drawn["ytitle"], drawn["ytype"]) == (
        layout.title.text, layout.xaxis.title.text, layout.yaxis.title.text, layout.yaxis.type), where
    assert len(drawn["traces"]) == len(want.figure.data), where
    for got, trace in zip(drawn["traces"], want.figure.data, strict=True):
        assert got["name"] == trace.name, where
        y, x = np.asarray(trace.y, dtype=float), np.asarray(trace.x, dtype=float)
        assert floats(got["y"]).shape == y.shape, (where, trace.name)
        np.testing.assert_allclose(floats(got["y"]), y, rtol=1e-6, atol=0, err_msg=f"{where} {trace.name}")
        if got["x"] is not None:  # log-SNR; on the t axis x is t, which the customdata holds
            np.testing.assert_allclose(floats(got["x"]), x, rtol=1e-12, atol=1e-12, err_msg=f"{where} {trace.name}")
        if trace.customdata is not None:
            assert np.array_equal(floats(got["t"]), np.asarray(trace.customdata)[:, 0]), where
            if got["x"] is None:
                assert np.array_equal(floats(got["t"]), x), where
    band = [x for s in layout.shapes for x in (s.x0, s.x1)]
    assert [x for pair in drawn["band"] for x in pair] == pytest.approx(band, rel=1e-12, abs=1e-12), where
    assert drawn["notes"] == [a.text for a in layout.annotations], where
    assert drawn["words"] == want.summary, where
    assert drawn["notices"] == want.notices, where


@pytest.fixture(scope="module")
def html_file(tmp_path_factory) -> Path:
    """The file as the console script writes it (what the script printed: PRINTED[the file])."""
    out = tmp_path_factory.mktemp("export") / "explorer.html"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([str(out)]) == 0
    PRINTED[out] = printed.getvalue()
    return out


@pytest.fixture(scope="module")
def page(browser, html_file):
    """One page for the whole module, every request that is not for a file: URL aborted and recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(WATCH)
    off_file, errors = [], []

    def guard(route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            off_file.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.off_file, page.errors = off_file, errors
    yield page
    context.close()
    assert not off_file, f"the page asked the network for {off_file}"


def open_file(page, html_file: Path, query: str = "") -> None:
    page.goto(html_file.as_uri() + query)
    page.wait_for_function("document.documentElement.dataset.ready", timeout=60_000)
    assert page.evaluate("window.__csp") == [], "the Content-Security-Policy refused something"
    assert not page.errors, page.errors
    assert not page.off_file, f"the page asked the network for {page.off_file}"


def test_the_console_script_writes_one_small_file_and_names_a_bad_path(html_file, tmp_path, capsys):
    data = html_file.read_bytes()
    assert len(data) <= MAX_BYTES, f"{len(data):,} bytes"
    assert b'<html lang="en">' in data and b"<title>" in data and b"Content-Security-Policy" in data
    for outside in (b"<script src", b"<link ", b"@import", b"cdn.plot.ly/plotly"):
        assert outside not in data
    assert f"{len(data):,} bytes" in PRINTED[html_file]
    for bad in (tmp_path / "missing" / "x.html", tmp_path):
        with pytest.raises(SystemExit) as exit_info:
            main([str(bad)])
        assert exit_info.value.code == 2
        assert "OUT.html" in capsys.readouterr().err


def test_the_arrays_are_minsnr_cores():
    """SNR exactly, the rest at float32 rounding, as encoded: the page's decoder is checked in the browser below."""
    values = np.array([0.0, 1e-300, 4.0359e-5, 1.0, 24221.327, 998001.0])
    assert np.array_equal(decode_array(encode_float64(values)), values)
    assert np.array_equal(decode_array(encode_float32(values[2:])), values[2:].astype(np.float32))


def test_the_page_decodes_the_arrays_of_every_schedule(page, html_file):
    open_file(page, html_file)
    for name in SCHEDULES.names():
        sched = get_schedule(name, T)
        got = page.evaluate("(name) => { const a = window.minsnrStatic.arrays(name); return [Array.from(a.snr),"
                            " Array.from(a.density), Array.from(a.v_scale),"
                            " Object.fromEntries(Object.entries(a.factors).map(([k, v]) => [k, Array.from(v)]))]; }", name)
        assert np.array_equal(got[0], sched.snr.numpy()), name  # exact
        f32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
        assert np.array_equal(got[1], f32(sched.log_snr_density().numpy())), name
        assert np.array_equal(got[2], f32(x0_error_scale("v", sched.snr, sched.process).numpy())), name
        assert set(got[3]) == set(EXPLORER_SAMPLERS[1:])
        for sampler, factor in got[3].items():
            assert np.array_equal(factor, f32(T * timestep_probabilities(sampler, sched).numpy())), (name, sampler)


def test_every_curve_equals_the_apps(page, html_file):
    """Every strategy × schedule × target × view, each sampler, both axes: the page's figure is build_explorer's."""
    open_file(page, html_file)
    combos = combinations()
    page.evaluate("(combos) => { window.__run = (" + RUN + ")(combos); }", combos)  # runs while Python draws below
    wanted = [expected(combo) for combo in combos]
    drawn = page.evaluate("() => window.__run")
    assert len(drawn) == len(combos)
    for got, want, combo in zip(drawn, wanted, combos, strict=True):
        check_chart(got, want, combo)
    # The explanation: app.explorer.explain_strategies as the file writes it (the browser's own serialisation).
    explanations = {}
    for got, combo in zip(drawn, combos, strict=True):
        process = SCHEDULES.get(combo["schedule"]).process
        explanations.setdefault(got["explanation"], explanation_html(combo["strategies"], combo["target"], combo["view"],
                                                                     combo["sampler"], process))
    same = page.evaluate("(pairs) => pairs.map(([got, want]) => { const d = document.createElement('div');"
                         " d.innerHTML = want; return d.innerHTML === got; })", list(explanations.items()))
    assert all(same) and len(same) >= 20


LINKS = [  # a link's query, and the view the app opens for it (the settings it does not name at their defaults)
    ("?schedule=linear&target=v&strategies=snr,min_snr,p2",
     {"schedule": "linear", "target": "v", "strategies": ["snr", "min_snr", "p2"]}),
    ("?schedule=rectified_flow&strategies=p2,min_snr,sigmoid&view=sampler&gamma=2.5&bias=-1.5&x=log_snr&log_y=0"
     "&sampler=cauchy",
     {"schedule": "rectified_flow", "strategies": ["p2", "min_snr", "sigmoid"], "view": "sampler", "x": "log_snr",
      "log_y": False, "sampler": "cauchy", "params": {**DEFAULT_PARAMS, "gamma": 2.5, "bias": -1.5}}),
]


@pytest.mark.parametrize(("query", "view"), LINKS)
def test_a_link_opens_the_same_view_as_in_the_app(page, html_file, query, view):
    open_file(page, html_file, query)
    drawn = page.evaluate("(c) => (" + RUN + ")([c])", {})[0]  # the chart as the link left it
    combo = {"target": "eps", "view": "weight", "x": "t", "sampler": "uniform", "log_y": True, "params": DEFAULT_PARAMS,
             **view}
    check_chart(drawn, expected(combo), combo)
    assert page.evaluate("document.getElementById('link-notices').textContent") == ""
    # The page's own link carries the same query (written as the app writes it: app/static/links.js).
    link = page.evaluate("document.getElementById('explorer-link').value")
    assert link.startswith(html_file.as_uri() + "?")
    assert dict(p.split("=") for p in link.split("?", 1)[1].split("&")) == dict(p.split("=") for p in query[1:].split("&"))
    assert page.evaluate("document.getElementById('schedule').value") == combo["schedule"]
    assert page.evaluate("[...document.querySelectorAll('input[name=strategies]:checked')].map((b) => b.value)") == [
        name for name in STRATEGIES.names() if name in combo["strategies"]]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"link-{combo['schedule']}.png"), full_page=True)


def test_a_link_the_file_cannot_draw_gets_a_notice_and_the_default(page, html_file):
    open_file(page, html_file, "?T=500&zero_snr=1&shift=2&sampler=logit_normal&logit_std=2&schedule=nope&tab=train"
                               "&strategies=min_snr")
    notices = page.evaluate("[...document.querySelectorAll('#link-notices li')].map((li) => li.textContent)")
    for field in ("T=500", "zero_snr=1", "shift=2", "logit_std=2", "schedule=nope", "tab=train"):
        assert any(field in notice for notice in notices), (field, notices)
    # Drawn at what it says: T = 1000, no rescale or shift, the sampler at its default parameters.
    combo = {"schedule": "cosine", "target": "eps", "strategies": ["min_snr"], "view": "weight", "x": "t",
             "sampler": "logit_normal", "log_y": True, "params": DEFAULT_PARAMS}
    drawn = page.evaluate("(c) => (" + RUN + ")([c])", {})[0]  # the chart as the link left it
    check_chart(drawn, expected(combo), combo)
    assert "T = 1000" in drawn["title"]


def test_the_controls_switch_the_view_in_the_page(page, html_file):
    """The page's own controls (no server): a schedule, a target, a sampler, a view, an x axis, one more strategy."""
    open_file(page, html_file)
    page.select_option("#schedule", "sigmoid")
    page.get_by_label("x₀ (clean image)").check()
    page.select_option("#sampler", "laplace")
    page.get_by_label("Effective weight (Kingma–Gao)").check()
    page.get_by_label("log-SNR λ").check()
    page.get_by_label("P2", exact=True).check()
    page.wait_for_function("document.getElementById('explorer-link').value.includes('strategies=snr,constant,min_snr,"
                           "soft_min_snr,p2')", timeout=10_000)  # in the order ticked, as in the app
    drawn = page.evaluate("(c) => (" + RUN + ")([c])", {})[0]
    combo = {"schedule": "sigmoid", "target": "x0", "strategies": ["snr", "constant", "min_snr", "soft_min_snr", "p2"],
             "view": "effective", "x": "log_snr", "sampler": "laplace", "log_y": True, "params": DEFAULT_PARAMS}
    check_chart(drawn, expected(combo), combo)


def test_typing_gamma_redraws_the_chart(page, html_file):
    open_file(page, html_file)
    box = page.locator("#box-gamma")
    box.click()
    box.press("Control+a")
    box.press_sequentially("2")
    page.wait_for_function(f"() => {WORDS}.includes('γ = 2 ')", timeout=10_000)
    y = page.evaluate(f"{PLOT}.data.find((t) => t.name.startsWith('Min-SNR-γ (gamma=2)')).y")
    snr = get_schedule("cosine", T).snr
    np.testing.assert_allclose(y, loss_weight("min_snr", snr, "eps", gamma=2.0).numpy(), rtol=1e-12)
    assert page.evaluate(f"() => {WORDS}") == build_explorer(params={"gamma": 2.0}).summary
    assert float(page.evaluate("document.getElementById('param-gamma-log').value")) == pytest.approx(np.log10(2), abs=1e-3)
    page.wait_for_function("document.getElementById('explorer-link').value.includes('gamma=2')", timeout=5_000)
    # A value the app refuses is said, not drawn.
    box.press("Control+a")
    box.press_sequentially("0")
    page.wait_for_function("document.getElementById('error-gamma').textContent !== ''", timeout=5_000)
    assert page.evaluate("document.getElementById('box-gamma').getAttribute('aria-invalid')") == "true"
    assert "γ = 2 " in page.evaluate(f"() => {WORDS}")


@pytest.mark.parametrize(("size", "width", "height"), [("desktop", 1400, 1000), ("phone", 390, 844)])
def test_axe_and_the_keyboard(page, html_file, size, width, height):
    """No serious or critical axe-core violation; Tab reaches every control with a visible ring; the arrow keys on the
    log-scale γ slider redraw the chart."""
    page.set_viewport_size({"width": width, "height": height})
    open_file(page, html_file, "?sampler=laplace&strategies=min_snr,p2,edm,sigmoid")
    page.evaluate(axe_source())
    violations = [v for v in page.evaluate(RUN_AXE, WCAG_TAGS) if v["impact"] in BLOCKING]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{size}.png"), full_page=True)
    assert not violations, violations
    stops, problems = [], []
    for _ in range(80):
        page.keyboard.press("Tab")
        stop = page.evaluate(FOCUSED)
        if stop is None or (stops and stop["uid"] == stops[0]["uid"]):
            break
        if (problem := page.evaluate(RING_PROBLEM)) and stop["kind"] != "link":
            problems.append((stop["id"] or stop["name"], problem))
        stops.append(stop)
    ids = {stop["id"] for stop in stops}
    for control in ("param-gamma-log", "box-gamma", "range-k", "box-k", "schedule", "sampler", "log_y", "copy-link"):
        assert control in ids, (control, [s["id"] for s in stops])
    assert {"checkbox", "radio", "select", "slider", "log-gamma slider", "number box", "button"} <= {s["kind"] for s in stops}
    assert not problems, problems
    assert not [s for s in stops if "Share" in s["name"] or "plotly" in s["name"].lower()], "a toolbar link off the file"
    before = page.evaluate(f"() => {WORDS}")
    page.focus("#param-gamma-log")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"(before) => {WORDS} !== before", arg=before, timeout=5_000)
    assert "γ = 6 " in page.evaluate(f"() => {WORDS}")
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_the_page_states_what_it_leaves_out(page, html_file):
    open_file(page, html_file)
    text = page.evaluate("document.getElementById('leaves-out').parentElement.textContent")
    for words in ("T = 1000", "zero-terminal-SNR", "resolution shift", "default parameters", "LaTeX"):
        assert words in text
    assert page.evaluate("document.documentElement.lang") == "en" and page.title()
    assert page.evaluate("document.getElementById('explorer-words').getAttribute('aria-live')") == "polite"


def test_the_inlined_plotly_is_the_basic_bundle_of_the_python_packages_version():
    """The file inlines Plotly's basic bundle (1.2 MB): the same plotly.js release as the Python package's full
    bundle, whose figures the app draws, so a figure built by Python is drawn the same way."""
    from app.export_explorer import FULL_PLOTLY_JS, PLOTLY_JS, PLOTLY_VERSION

    basic, full = (PLOTLY_VERSION.search(p.read_text(encoding="utf-8")[:300]) for p in (PLOTLY_JS, FULL_PLOTLY_JS))
    assert basic and full and basic.group(1) == full.group(1), (basic, full)
    assert "(basic - minified)" in PLOTLY_JS.read_text(encoding="utf-8")[:200]
