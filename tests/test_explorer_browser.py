"""The explorer's curves redrawn in the browser (app/explorer_js.py) equal the Python ones (app.explorer), for every
strategy, target and view, and the registry's JavaScript expressions equal its Python weight functions."""

import json
import math
import random

import numpy as np
import pytest
import torch

from app.explorer import build_explorer
from minsnr_core.weighting import STRATEGIES

from .conftest import ARTIFACTS
from .test_classroom import page_at

pytestmark = pytest.mark.browser
NEW_PARAMS = {"gamma": 2.5, "k": 3.0, "p2_gamma": 0.5, "sigma_data": 1.5, "bias": -2.0}
READ_PLOT = """() => { const el = document.querySelector('#explorer-plot .js-plotly-plot');
    return {traces: el._fullData.map(t => ({name: t.name, x: Array.from(t.x), y: Array.from(t.y)})),  // decoded
            shapes: (el.layout.shapes || []).map(s => [s.x0, s.x1]),
            notes: (el.layout.annotations || []).map(a => a.text), ms: Number(el.dataset.redrawMs || -1)}; }"""


def test_every_strategys_javascript_weight_equals_its_python_function(browser):
    page = browser.new_page()
    rng = random.Random(0)
    snrs = [0.0, 1e-9, 1e-3, 0.2, 1.0, 4.9, 5.0, 7.5, 1e3, 1e7]
    for entry in STRATEGIES:
        assert entry.js, f"{entry.name} has no JavaScript expression"
        for _ in range(5):
            params = {p.name: rng.uniform(p.lowest_setting, p.maximum) for p in entry.params}
            got = page.evaluate(f"([snrs, p]) => snrs.map(s => {entry.js})", [snrs, params])
            want = entry.function(torch.tensor(snrs, dtype=torch.float64), **params).tolist()
            assert np.allclose(got, want, rtol=1e-12, atol=0), (entry.name, params)
            if entry.js_eps_at_zero:
                limit = page.evaluate(f"(p) => {entry.js_eps_at_zero}", params)
                assert math.isclose(limit, entry.eps_at_zero(**params), rel_tol=1e-12), entry.name
            else:
                assert entry.eps_at_zero is None, entry.name
    page.close()


CASES = [
    {"schedule": "cosine", "T": 1000, "target": "eps", "x": "t", "view": "weight", "log_y": True, "zero_snr": False},
    {"schedule": "linear", "T": 333, "target": "v", "x": "log_snr", "view": "weight", "log_y": True, "zero_snr": False},
    {"schedule": "sigmoid", "T": 500, "target": "x0", "x": "t", "view": "weight", "log_y": False, "zero_snr": False},
    {"schedule": "scaled_linear", "T": 1000, "target": "eps", "x": "log_snr", "view": "effective", "log_y": True,
     "zero_snr": False},
    # Rectified flow: its velocity's own conversion w_v = w_x0/(1 + √SNR)², SNR = 0 at t = 1.
    {"schedule": "rectified_flow", "T": 800, "target": "v", "x": "t", "view": "weight", "log_y": True,
     "zero_snr": False},
    {"schedule": "linear", "T": 1000, "target": "eps", "x": "t", "view": "weight", "log_y": False, "zero_snr": True},
    # Timestep samplers: the weights of the same expected loss under uniform t, and each weighting as a sampler.
    {"schedule": "cosine", "T": 1000, "target": "eps", "x": "t", "view": "weight", "log_y": True, "zero_snr": False,
     "sampler": "logit_normal"},
    {"schedule": "sigmoid", "T": 400, "target": "v", "x": "log_snr", "view": "effective", "log_y": True,
     "zero_snr": False, "sampler": "logit_normal"},
    {"schedule": "linear", "T": 500, "target": "x0", "x": "log_snr", "view": "sampler", "log_y": True, "zero_snr": False,
     "sampler": "log_normal"},
    {"schedule": "cosine", "T": 800, "target": "eps", "x": "t", "view": "sampler", "log_y": False, "zero_snr": True},
]


@pytest.fixture(scope="module")
def every_strategy_page(browser, app_url):
    """One explorer page with every strategy ticked (so every parameter's box shows), opened from a link as a
    student would; each case below installs its own server figure in it instead of loading a page per case."""
    page = page_at(browser, app_url + f"?strategies={','.join(STRATEGIES.names())}", 1400, 1000)
    page.wait_for_function("() => document.querySelector('#explorer-plot .js-plotly-plot').data.length === "
                           f"{len(STRATEGIES.names())}", timeout=30_000)
    yield page
    page.close()


@pytest.mark.parametrize("case", CASES, ids=[f"{c['schedule']}-{c['target']}-{c['view']}-{c['x']}"
                                              f"-{c.get('sampler', 'uniform')}" for c in CASES])
def test_browser_redraw_equals_the_python_curves(every_strategy_page, case):
    """The server's figure for the case at the default parameters, then every parameter typed into its box: the
    page's redraw (the input listener of app/explorer_js.py) equals the figure Python draws at the new values."""
    page, names, sampler = every_strategy_page, STRATEGIES.names(), case.get("sampler", "uniform")
    settings = (case["schedule"], case["T"], names)
    rest = (case["target"], case["x"], case["view"], case["zero_snr"], case["log_y"], sampler)
    served = build_explorer(*settings, None, *rest).figure
    want = build_explorer(*settings, NEW_PARAMS, *rest).figure
    page.evaluate("(figure) => { const div = document.querySelector('#explorer-plot .js-plotly-plot');"
                  " return window.Plotly.react(div, figure.data, figure.layout).then(() => {"
                  " div.dataset.redraws = '0'; }); }", json.loads(served.to_json()))
    for name, value in NEW_PARAMS.items():
        box = page.locator(f"#param-{name} input[type=number]")
        box.fill(str(value))
        box.press("Enter")
    page.wait_for_function("() => { const d = document.querySelector('#explorer-plot .js-plotly-plot');"
                           f" return Number(d.dataset.redraws) >= {len(NEW_PARAMS)}"
                           " && d.data.some(t => t.name.includes('gamma=2.5'))"
                           " && d.data.some(t => t.name.includes('bias=-2')); }", timeout=10_000)
    drawn = page.evaluate(READ_PLOT)
    assert [t["name"] for t in drawn["traces"]] == [t.name for t in want.data]
    for got, expected in zip(drawn["traces"], want.data, strict=True):
        assert np.allclose(got["x"], np.asarray(expected.x, dtype=float), rtol=1e-12), got["name"]
        assert np.allclose(got["y"], np.asarray(expected.y, dtype=float), rtol=1e-9, atol=0), got["name"]
    assert drawn["shapes"] == [[s.x0, s.x1] for s in want.layout.shapes]
    assert drawn["notes"] == [a.text for a in want.layout.annotations]
    assert drawn["ms"] >= 0, "the last redraw was the browser's"


def test_the_first_chart_is_drawn_before_plotly_and_replaced_by_it(browser, app_url):
    """The server's static first paint shows the default curves while Plotly's module is held back; a γ typed in that
    time is drawn once Plotly's chart exists, which then replaces the first paint. A linked page shows none."""
    want = build_explorer(params={"gamma": 5.0}).figure
    for width, height in ((1400, 1000), (390, 844)):
        page = browser.new_page(viewport={"width": width, "height": height})
        held = []
        page.route("**/PlotlyPlot-*.js", lambda route: held.append(route))  # noqa: B023 (used in this iteration)
        page.goto(app_url)
        page.wait_for_selector("#explorer-first-paint svg", timeout=30_000)
        titles = page.eval_on_selector_all("#explorer-first-paint polyline title", "els => els.map(e => e.textContent)")
        assert titles == [t.name for t in want.data]
        assert page.locator("#explorer-first-paint svg").bounding_box()["height"] > 0.4 * min(width, 900) * 520 / 900
        assert page.locator("#explorer-plot").bounding_box()["height"] < 5  # the empty Plotly box takes no room
        page.screenshot(path=str(ARTIFACTS / f"explorer-first-paint-{width}x{height}.png"))
        box = page.locator("#param-gamma input[type=number]")
        box.fill("2.5")
        box.press("Enter")
        page.wait_for_function("() => (document.querySelector('#param-gamma input[type=number]')?.value ?? '') === '2.5'")
        page.wait_for_timeout(300)
        assert held, "the page did not ask for Plotly's module"
        for route in held:
            route.continue_()
        page.wait_for_function("() => { const d = document.querySelector('#explorer-plot .js-plotly-plot');"
                               " return d && d.data && d.data.some(t => t.name.includes('gamma=2.5')); }", timeout=30_000)
        assert not page.locator("#explorer-first-paint").is_visible()
        assert page.eval_on_selector("#explorer-first-paint", "e => e.classList.contains('replaced')")
        page.close()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url + "?gamma=2")
    page.wait_for_selector("#explorer-plot .js-plotly-plot", timeout=30_000)
    assert page.eval_on_selector("#explorer-first-paint", "e => e.classList.contains('linked')")
    assert not page.locator("#explorer-first-paint").is_visible()
    page.close()


def test_a_drag_redraws_at_once_and_gradio_gets_its_last_value(browser, app_url):
    """The page redraws on each input event and hands the value to Gradio after the paint (app/explorer_js.py): a
    burst of a drag's values draws the last one at once, none is lost (Gradio's box, the link), and a value typed
    and entered at once is not overwritten by a stale one."""
    page = page_at(browser, app_url + "?strategies=p2,min_snr", 1400, 1000)
    page.wait_for_timeout(1000)
    plot = "document.querySelector('#explorer-plot .js-plotly-plot')"
    link = "document.querySelector('#explorer-link textarea, #explorer-link input').value"
    drawn = page.evaluate(f"""() => {{ const range = document.querySelector('#param-k input[type=range]');
        for (const value of [1.5, 2, 2.5, 3, 3.5]) {{
            range.value = String(value); range.dispatchEvent(new Event('input', {{bubbles: true}})); }}
        return {plot}.data.map(t => t.name); }}""")  # read in the same task: drawn before Gradio ran
    assert any(name.startswith("P2 (k=3.5, p2_gamma=1)") for name in drawn), drawn
    page.wait_for_function(f"() => {link}.includes('k=3.5')", timeout=10_000)
    assert page.locator("#param-k input[type=number]").input_value() == "3.5"
    box = page.locator("#param-gamma input[type=number]")
    box.fill("2.5")
    box.press("Enter")
    page.wait_for_function(f"() => {link}.includes('gamma=2.5')", timeout=10_000)
    page.wait_for_timeout(500)
    assert box.input_value() == "2.5"
    assert page.evaluate(f"() => {plot}.data.some(t => t.name.startsWith('Min-SNR-γ (gamma=2.5) · '))")
    page.close()


def test_a_value_typed_before_the_page_has_read_its_link_is_kept(browser, app_url):
    """The page's load events (the link's settings) may answer after a student's first input: a field the link
    does not set keeps what was typed, and a field it sets takes the link's value."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    held, released = [], []
    page.route("**/gradio_api/queue/join*",  # the load events wait until released
               lambda route: route.continue_() if released else held.append(route))
    page.goto(app_url + "?schedule=linear")
    page.wait_for_selector("#param-gamma input[type=number]", timeout=30_000)
    page.wait_for_function("() => window.minsnrExplorer !== undefined", timeout=30_000)
    box = page.locator("#param-gamma input[type=number]")
    box.fill("2.5")
    box.press("Enter")
    page.wait_for_timeout(300)
    assert held, "the load events did not ask the server"
    released.append(True)
    for route in held:
        route.continue_()
    link = "document.querySelector('#explorer-link textarea, #explorer-link input').value"
    page.wait_for_function(f"() => {link}.includes('schedule=linear')", timeout=30_000)
    page.wait_for_timeout(500)
    assert box.input_value() == "2.5"
    assert "gamma=2.5" in page.evaluate(f"() => {link}")
    page.close()


def test_a_value_moved_while_the_server_draws_a_figure_is_drawn_on_it(browser, app_url):
    """A schedule change asks the server for a figure drawn with the γ Gradio held then; a γ typed while that
    request is in flight is drawn again on the figure when it arrives (the chart never disagrees with the box)."""
    page = page_at(browser, app_url + "?strategies=min_snr", 1400, 1000)
    page.wait_for_timeout(1000)
    held, released = [], []
    page.route("**/gradio_api/run/predict*", lambda route: route.continue_() if released else held.append(route))
    page.locator("#schedule input").click()
    page.get_by_role("option", name="Linear (DDPM)").click()
    page.wait_for_timeout(300)
    assert held, "the schedule change did not ask the server"
    box = page.locator("#param-gamma input[type=number]")
    box.fill("2.5")
    box.press("Enter")
    plot = "document.querySelector('#explorer-plot .js-plotly-plot')"
    page.wait_for_function(f"() => {plot}.data.some(t => t.name.startsWith('Min-SNR-γ (gamma=2.5) · '))",
                           timeout=10_000)  # drawn at once on the old figure
    released.append(True)
    for route in held:
        route.continue_()
    page.wait_for_function(f"() => {plot}.layout.title.text.startsWith('linear')", timeout=30_000)
    page.wait_for_timeout(500)
    names = page.evaluate(f"() => {plot}.data.map(t => t.name)")
    assert any(name.startswith("Min-SNR-γ (gamma=2.5) · ") for name in names), names
    want = build_explorer("linear", 1000, ["min_snr"], {"gamma": 2.5}).figure
    assert np.allclose(page.evaluate(f"() => Array.from({plot}._fullData[0].y)"), np.asarray(want.data[0].y, float))
    page.close()


def test_a_figure_from_the_server_comes_without_its_points_and_is_drawn_before_a_frame_is_painted(browser, app_url):
    """After a control change the server sends the strategies' traces without their points; the page draws them
    from the figure's meta before the browser paints a frame (no frame shows an empty chart), and they are the
    Python curves."""
    page = page_at(browser, app_url, 1400, 1000)
    plot = "document.querySelector('#explorer-plot .js-plotly-plot')"
    page.wait_for_function(f"() => {plot} && {plot}._fullData && {plot}._fullData.length === 4", timeout=60_000)
    page.wait_for_timeout(1000)
    responses = []
    page.on("response", lambda response: responses.append(response) if "/run/predict" in response.url else None)
    # Each animation frame's callback runs just before that frame is painted: what it sees is what is painted.
    page.evaluate("""() => { window.__frames = 0; window.__emptyFrames = 0;
        const tick = () => { const div = document.querySelector('#explorer-plot .js-plotly-plot');
            window.__frames += 1;
            if (div && div._fullData && div._fullData.slice(0, 4).some((t) => !t.x || !t.x.length)) window.__emptyFrames += 1;
            requestAnimationFrame(tick); };
        requestAnimationFrame(tick); }""")
    page.locator("#schedule input").click()
    page.get_by_role("option", name="Linear (DDPM)").click()
    page.wait_for_function(f"() => {plot}.layout.title.text.startsWith('linear')", timeout=30_000)
    page.wait_for_timeout(500)
    sent = [json.loads(item["plot"]) for response in responses for item in response.json().get("data", [])
            if isinstance(item, dict) and item.get("type") == "plotly"]
    assert sent and sent[-1]["layout"]["meta"]["skeleton"] == 1
    assert all(len(trace["x"]) == 0 for trace in sent[-1]["data"])  # the points are not sent
    frames, empty = page.evaluate("() => [window.__frames, window.__emptyFrames]")
    assert frames > 10 and empty == 0, (frames, empty)
    want = build_explorer("linear", 1000).figure
    for index, trace in enumerate(want.data):
        drawn = page.evaluate(f"() => [Array.from({plot}._fullData[{index}].y), {plot}._fullData[{index}].name]")
        assert np.allclose(drawn[0], np.asarray(trace.y, float), rtol=1e-9) and drawn[1] == trace.name
    page.close()


def test_the_pages_link_writer_writes_what_python_reads_back_and_refuses_what_the_app_refuses(browser):
    """app.urlstate.link_writer_js, run in Chromium on random values of every link field: Python's read_query reads the
    same values back without a notice, and its query equals write_query's up to the order and spelling of numbers;
    a value the app would refuse (out of range, an empty box, an unknown choice) leaves the query as it was."""
    from urllib.parse import parse_qsl

    from app.jobs import ClassLimits
    from app.main import link_fields
    from app.urlstate import link_writer_js, read_query, write_query

    fields = link_fields(ClassLimits())
    page = browser.new_page()
    write = f"(args) => ({link_writer_js(fields)})(...args)"
    rng = random.Random(0)

    def draw(field):
        rule = field.parse.rule
        if rng.random() < 0.3:
            return field.default
        if rule["kind"] == "choice":
            return rng.choice(rule["allowed"])
        if rule["kind"] == "list":
            return rng.sample(rule["allowed"], rng.randint(0, 4))
        if rule["kind"] == "flag":
            return rng.random() < 0.5
        low, high = rule["low"], min(rule["high"], 1e6)
        value = rng.uniform(low, high) if not rule["integer"] else rng.randint(int(low) + 1, int(high))
        if rule["integer"]:
            return value
        rounded = round(value, rng.randint(0, 4)) or high
        return rounded if low < rounded <= high else value  # a bound like 1.75 is not kept by rounding to 2

    for _ in range(40):
        values = [draw(f) for f in fields]
        query = page.evaluate(write, ["", *values])
        read, notices = read_query(fields, dict(parse_qsl(query, keep_blank_values=True)))
        assert notices == [] and read == values, (query, notices)
        assert dict(parse_qsl(query, keep_blank_values=True)).keys() == dict(
            parse_qsl(write_query(fields, values), keep_blank_values=True)).keys()
    values = [f.default for f in fields]
    for index, field in enumerate(fields):
        rule = field.parse.rule
        refused = ([rule["high"] * 2 + 1, ""] if rule["kind"] == "number" else ["nope"] if rule["kind"] == "choice"
                   else [["nope"]] if rule["kind"] == "list" else [])
        for value in refused:
            changed = [*values[:index], value, *values[index + 1:]]
            assert page.evaluate(write, ["keep=1", *changed]) == "keep=1", (field.key, value)
    page.close()


def test_moving_a_parameter_writes_the_link_in_the_page_and_asks_the_server_nothing(browser, app_url):
    """γ and the other strategy parameters are written into the link by the page (app.urlstate.link_writer_js): no
    request reaches the server; a default leaves the link, a value the app would refuse leaves the link as it was,
    and the written link opens on the same view."""
    page = page_at(browser, app_url + "?strategies=p2,min_snr", 1400, 1000)
    page.wait_for_timeout(1500)  # the load chain has written the link
    link = "document.querySelector('#explorer-link textarea, #explorer-link input').value"
    requests = []
    page.on("request", lambda request: requests.append(request.url) if "/gradio_api/" in request.url else None)
    box = page.locator("#param-gamma input[type=number]")
    for value in ("2.5", "12"):
        box.fill(value)
        box.press("Enter")
        page.wait_for_function(f"() => {link}.includes('gamma={value}')", timeout=10_000)
    k = page.locator("#param-k input[type=number]")
    k.fill("3.5")
    k.press("Enter")
    page.wait_for_function(f"() => {link}.includes('k=3.5')", timeout=10_000)
    box.fill("0")  # refused (γ > 0): the link keeps γ = 12
    box.press("Enter")
    page.wait_for_timeout(800)
    assert "gamma=12" in page.evaluate(f"() => {link}")
    box.fill("5")  # the default: left out of the link
    box.press("Enter")
    page.wait_for_function(f"() => !{link}.includes('gamma=')", timeout=10_000)
    assert requests == [], requests
    written = page.evaluate(f"() => {link}")
    assert "strategies=p2,min_snr" in written and "k=3.5" in written
    opened = page_at(browser, written.replace("k=3.5", "k=3.5&gamma=2.5"), 1400, 1000)
    opened.wait_for_function("() => (document.querySelector('#param-k input[type=number]')?.value ?? '') === '3.5'",
                             timeout=10_000)
    assert opened.locator("#param-gamma input[type=number]").input_value() == "2.5"
    opened.close()
    page.close()


def test_showing_gamma_again_keeps_one_listener_and_its_log_slider_follows(browser, app_url):
    """The γ control's script runs again each time the control is shown again (a strategy ticked again): it
    replaces its document listener instead of adding one more, and the newest log-scale slider follows the box."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script("""(() => { window.__inputListeners = 0;
        const add = Document.prototype.addEventListener, remove = Document.prototype.removeEventListener;
        Document.prototype.addEventListener = function (type, ...rest) {
            if (type === 'input') window.__inputListeners += 1; return add.call(this, type, ...rest); };
        Document.prototype.removeEventListener = function (type, ...rest) {
            if (type === 'input') window.__inputListeners -= 1; return remove.call(this, type, ...rest); }; })();""")
    page = context.new_page()
    page.goto(app_url + "?strategies=min_snr")
    page.wait_for_selector("#explorer-plot .js-plotly-plot", timeout=60_000)
    page.wait_for_timeout(1000)
    before = page.evaluate("() => window.__inputListeners")
    tick = page.locator("#strategies label", has_text="Min-SNR-γ").first
    for _ in range(2):
        tick.click()
        page.locator("#param-gamma").wait_for(state="hidden", timeout=10_000)
        tick.click()
        page.locator("#param-gamma").wait_for(state="visible", timeout=10_000)
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__inputListeners") == before
    box = page.locator("#param-gamma input[type=number]")
    box.fill("20")
    box.press("Enter")
    page.wait_for_function("() => Math.abs(Number((document.querySelector('#param-gamma-log')?.value ?? '')) - Math.log10(20))"
                           " < 1e-3", timeout=10_000)
    context.close()
