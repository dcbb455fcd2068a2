"""The real app in a real headless Chromium: what a user sees and does. Screenshots go to artifacts/."""

import pytest

from .conftest import ARTIFACTS

pytestmark = pytest.mark.browser

# Plotly 6 ships arrays as {dtype, bdata} (base64); decode float64 ones, pass plain lists through.
PLOT_Y = """(sel) => { const el = document.querySelector(sel + ' .js-plotly-plot');
    if (!el || !el.data) return null;
    const decode = (y) => (y && y.bdata) ? Array.from(new Float64Array(
        Uint8Array.from(atob(y.bdata), c => c.charCodeAt(0)).buffer)) : Array.from(y);
    return el.data.map(tr => decode(tr.y)); }"""


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector("#explorer-plot .js-plotly-plot", timeout=60_000)
    return page


def test_gamma_slider_moves_the_weight_curves(browser, app_url):
    page = open_page(browser, app_url + "?strategies=min_snr")
    page.wait_for_function(f"({PLOT_Y})('#explorer-plot') !== null", timeout=30_000)
    page.wait_for_timeout(1500)  # let the page's initial updates settle
    before = page.evaluate(PLOT_Y, "#explorer-plot")
    gamma_box = page.locator("#param-gamma input[type=number]")
    gamma_box.fill("1")
    gamma_box.press("Enter")
    page.wait_for_function(f"(before) => {{ const y = ({PLOT_Y})('#explorer-plot'); return y && y[0][0] !== before; }}",
                           arg=before[0][0], timeout=30_000)
    after = page.evaluate(PLOT_Y, "#explorer-plot")
    # With γ = 1 the ε weight min(1, γ/SNR) is smaller wherever SNR > 1.
    assert after[0][0] < before[0][0]
    page.wait_for_function("() => (document.querySelector('#explorer-link textarea, #explorer-link input')?.value ?? '')"
                           ".endsWith('?strategies=min_snr&gamma=1')", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "explorer-gamma-1.png"), full_page=True)
    page.close()


def test_link_opens_on_its_settings_and_bad_values_show_a_notice(browser, app_url):
    page = open_page(browser, app_url + "?schedule=linear&gamma=nope&strategies=p2,min_snr")
    page.wait_for_selector("#url-notice :text('gamma=nope')", timeout=30_000)
    traces = page.evaluate("() => document.querySelector('#explorer-plot .js-plotly-plot').data"
                           ".map(t => t.name.split(' · E[w]')[0])")
    assert traces == ["P2 (k=1, p2_gamma=1)", "Min-SNR-γ (gamma=5)"]
    assert "linear" in page.locator("#explorer-plot").inner_text()
    page.screenshot(path=str(ARTIFACTS / "explorer-bad-link.png"), full_page=True)
    page.close()


STATUS = "() => document.querySelector('#{id}').innerText"


def status_step(page, element_id):
    text = page.evaluate(STATUS.format(id=element_id))
    return int(text.split("step ")[1].split(" ")[0]) if "step " in text else -1


def test_train_a_toy_run_live_and_stop_it(browser, app_url):
    page = open_page(browser, app_url + "?train_dataset=gaussians&train_steps=20000")
    page.get_by_role("tab", name="Train").click()
    page.click("#train-start")
    page.wait_for_selector("#train-loss .js-plotly-plot", timeout=60_000)
    page.wait_for_selector("#train-scatter .js-plotly-plot", timeout=60_000)
    first = status_step(page, "train-status")
    page.wait_for_function(f"() => ({STATUS.format(id='train-status')})().includes('step') && "
                           f"parseInt(({STATUS.format(id='train-status')})().split('step ')[1]) > {first + 100}",
                           timeout=60_000)
    losses = page.evaluate("() => document.querySelector('#train-loss .js-plotly-plot').data[0].x")
    assert losses, "the loss curve has points"
    # The samples' scatter in words, from its own points: the model's cloud and the true distribution's.
    words = page.locator("#train-scatter-summary").inner_text()
    assert "model: 512 points" in words and "data: 1000 points" in words, words
    page.screenshot(path=str(ARTIFACTS / "train-toy-live.png"), full_page=True)
    page.click("#train-stop")
    page.wait_for_function(f"() => ({STATUS.format(id='train-status')})().includes('stopped')", timeout=30_000)
    page.wait_for_selector("#train-files a", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "train-toy-stopped.png"), full_page=True)
    # The Denoise tab samples from this session's model and scrubs through the trajectory.
    page.get_by_role("tab", name="Denoise").click()
    page.click("#denoise-start")
    page.wait_for_function("() => (document.querySelector('#denoise-message')?.innerText ?? '').includes('25 steps')",
                           timeout=60_000)
    scrub = page.locator("#denoise-scrub input[type=number]")
    scrub.fill("12")
    scrub.press("Enter")
    page.wait_for_function("() => { const el = document.querySelector('#denoise-curve .js-plotly-plot');"
                           " return el && el.data.length === 2 && el.data[1].name.startsWith('t = '); }", timeout=30_000)
    assert page.locator("#denoise-points").is_visible() and not page.locator("#denoise-x0").is_visible()
    assert "predicted x̂0:" in page.locator("#denoise-points-summary").inner_text()
    page.screenshot(path=str(ARTIFACTS / "denoise-toy.png"), full_page=True)
    page.close()


def test_compare_two_weightings_side_by_side(browser, app_url):
    page = open_page(browser, app_url)
    page.get_by_role("tab", name="Compare").click()
    steps = page.locator("#compare-steps input")
    steps.fill("150")
    steps.press("Tab")
    page.locator("#compare-preview input").fill("50")
    page.locator("#compare-preview input").press("Tab")
    page.click("#compare-start")
    try:  # two runs with a quality measurement every 50 steps: slow when the whole suite loads the 2 cores
        page.wait_for_function(f"() => ({STATUS.format(id='compare-status')})().includes('done')", timeout=240_000)
    except Exception:
        raise AssertionError(f"comparison not done; status: {page.locator('#compare-status').inner_text()!r}") from None
    traces = page.evaluate("() => document.querySelector('#compare-loss .js-plotly-plot').data.map(t => t.name)")
    assert traces == ["SNR (= plain ε-MSE)", "Min-SNR-γ"]
    page.wait_for_function("() => document.querySelectorAll('#compare-gallery img').length >= 2", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "compare-toy.png"), full_page=True)
    page.close()


def test_mnist_run_is_class_conditional_and_denoise_draws_each_digit(browser, app_url):
    page = open_page(browser, app_url + "?train_dataset=mnist&train_steps=20")
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-measure input").uncheck()
    page.click("#train-start")
    page.wait_for_function(f"() => ({STATUS.format(id='train-status')})().includes('done')", timeout=120_000)
    page.wait_for_selector("#train-samples img", timeout=30_000)
    page.get_by_role("tab", name="Denoise").click()
    guidance = page.locator("#denoise-guidance input[type=number]")
    guidance.fill("3")
    guidance.press("Enter")
    page.click("#denoise-start")
    page.wait_for_function("() => (document.querySelector('#denoise-message')?.innerText ?? '')"
                           ".includes('classes in order, guidance 3')", timeout=60_000)
    page.wait_for_selector("#denoise-x0 img", timeout=30_000)
    message = page.locator("#denoise-message").inner_text()
    assert "Classes asked for, row by row: 0 1 2 3 · 4 5 6 7 · 8 9 0 1 · 2 3 4 5" in message
    assert not page.locator("#denoise-points").is_visible(), "no empty 2-D panel for an image model"
    page.screenshot(path=str(ARTIFACTS / "denoise-mnist-guided.png"), full_page=True)
    page.close()


def test_a_reloaded_page_gets_its_running_run_back(browser, app_url):
    """A Wi-Fi blip reloads the page as a new Gradio session: the browser keeps its owner token, so within the
    grace period the new page shows the same run, still training, and can stop it."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(app_url + "?train_dataset=moons&train_steps=20000")
    page.wait_for_selector("#explorer-plot .js-plotly-plot", timeout=60_000)
    page.get_by_role("tab", name="Train").click()
    page.click("#train-start")
    status = STATUS.format(id="train-status")
    page.wait_for_function(f"() => ({status})().includes('running') && parseInt(({status})().split('step ')[1]) > 0",
                           timeout=60_000)
    before = status_step(page, "train-status")
    page.close()  # the connection drops; the server keeps the run for the grace period
    again = context.new_page()
    again.goto(app_url)
    again.get_by_role("tab", name="Train").click()
    again.wait_for_function(f"() => ({status})().includes('running') && "
                            f"parseInt(({status})().split('step ')[1]) > {before}", timeout=60_000)
    again.click("#train-stop")
    again.wait_for_function(f"() => ({status})().includes('stopped')", timeout=30_000)
    context.close()
