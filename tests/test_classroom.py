"""The app as a class sees it, in a real headless Chromium at a 1400×1000 screen and a 390×844 phone: every tab
reachable, γ beside its chart, only the parameters that apply, a full link to copy, the measured comparison without
training. Screenshots of each tab at both sizes go to artifacts/."""

import urllib.parse
import urllib.request

import pytest

from .conftest import ARTIFACTS

pytestmark = pytest.mark.browser
TABS = {"Weight explorer": "explorer", "Tour": "tour", "Train": "train", "Compare": "compare", "Denoise": "denoise"}


def page_at(browser, url, width, height):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.wait_for_selector("#explorer-plot .js-plotly-plot", timeout=60_000)
    return page


def box(page, selector):
    return page.locator(selector).first.bounding_box()


def move_log_slider(page, selector, position):
    """Drag a log-scale γ slider to log10 γ = ``position`` as a user's drag ends: input, then change."""
    page.evaluate("([selector, p]) => { const r = document.querySelector(selector); r.value = String(p);"
                  " r.dispatchEvent(new Event('input', {bubbles: true}));"
                  " r.dispatchEvent(new Event('change', {bubbles: true})); }", [selector, position])


@pytest.mark.parametrize(("size", "width", "height"), [("desktop", 1400, 1000), ("phone", 390, 844)])
def test_every_tab_is_reachable_and_photographed_at_both_sizes(browser, app_url, size, width, height):
    """Every tab in the tab bar, and the page asks nothing of any other machine (no outside fonts, scripts or
    reports) while each is opened."""
    hosts = set()
    page = browser.new_page(viewport={"width": width, "height": height})
    page.on("request", lambda request: hosts.add(urllib.parse.urlsplit(request.url).hostname))
    page.goto(app_url)
    page.wait_for_selector("#explorer-plot .js-plotly-plot", timeout=60_000)
    for name, slug in TABS.items():
        tab = page.get_by_role("tab", name=name)
        assert tab.is_visible(), f"the {name} tab must be in the tab bar, not behind a menu, at {width} px"
        tab.click()
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / f"tab-{slug}-{size}.png"))
    page.get_by_role("tab", name="Weight explorer").click()
    plot, gamma = box(page, "#explorer-plot"), box(page, "#param-gamma")
    if size == "desktop":  # γ and its chart in view together, without scrolling
        assert gamma["y"] + gamma["height"] < height and plot["y"] < height
        assert gamma["x"] + gamma["width"] <= plot["x"], "γ beside the chart"
    else:  # on a phone the chart comes first
        assert plot["y"] < gamma["y"]
    page.close()
    assert hosts - {None} == {urllib.parse.urlsplit(app_url).hostname}, hosts


def test_only_the_ticked_strategies_parameters_show_and_the_link_is_a_full_url(browser, app_url):
    page = page_at(browser, app_url, 1400, 1000)
    assert page.locator("#param-gamma").is_visible() and not page.locator("#param-k").is_visible()
    page.locator("#strategies label", has_text="P2").click()
    page.locator("#param-k").wait_for(state="visible", timeout=10_000)
    for name in ("Min-SNR-γ", "Soft-Min-SNR-γ"):
        page.locator("#strategies label", has_text=name).first.click()
    page.locator("#param-gamma").wait_for(state="hidden", timeout=10_000)
    page.wait_for_function("() => (document.querySelector('#explorer-link textarea, #explorer-link input')?.value ?? '')"
                           ".startsWith(window.location.origin + '/?') && document.querySelector('#explorer-link textarea, "
                           "#explorer-link input').value.includes('p2') && !document.querySelector('#explorer-link textarea, "
                           "#explorer-link input').value.includes('min_snr')",  # the link of the last change
                           timeout=10_000)
    link = page.evaluate("() => document.querySelector('#explorer-link textarea, #explorer-link input').value")
    assert link.startswith(page.evaluate("() => window.location.origin + window.location.pathname + '?'"))
    # The link opens the same view.
    other = page_at(browser, link, 1400, 1000)
    other.locator("#param-k").wait_for(state="visible", timeout=15_000)
    other.locator("#param-gamma").wait_for(state="hidden", timeout=15_000)
    other.close()
    assert page.locator("#explorer-link button").count() >= 1, "a Copy button beside the link"
    # The effective-weight view explains itself.
    page.locator("label", has_text="Effective weight (Kingma–Gao)").click()
    page.wait_for_function("() => (document.querySelector('#explorer-explanation')?.innerText ?? '')"
                           ".includes('The effective weight')", timeout=10_000)
    page.close()


def test_train_puts_the_weighting_first_and_shows_only_its_parameters(browser, app_url):
    page = page_at(browser, app_url, 1400, 1000)
    page.get_by_role("tab", name="Train").click()
    assert box(page, "#train-weighting")["y"] < box(page, "#train-dataset")["y"]
    assert page.locator("#train-param-gamma").is_visible() and not page.locator("#train-param-sigma_data").is_visible()
    page.locator("#train-weighting input").click()
    page.get_by_role("option", name="EDM").click()
    page.locator("#train-param-sigma_data").wait_for(state="visible", timeout=10_000)
    assert not page.locator("#train-param-gamma").is_visible()
    page.close()


def test_compare_offers_the_measured_results_and_says_what_a_budget_showed(browser, app_url):
    page = page_at(browser, app_url, 1400, 1000)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_text("Measured results: the comparison of docs/results.md").click()
    page.wait_for_function("() => { const el = document.querySelector('#measured-plot .js-plotly-plot');"
                           " return el && el.data.some(t => t.name === 'Min-SNR-γ'); }", timeout=15_000)
    assert "Seeds per line" in page.locator("#measured-caption").inner_text()
    page.locator("#compare-dataset input").click()
    page.get_by_role("option", name="MNIST").click()
    page.wait_for_function("() => (document.querySelector('#compare-budget')?.innerText ?? '')"
                           ".includes('confidently recognised')",
                           timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "compare-measured.png"), full_page=True)
    # CIFAR-10's comparison too, with each seed's line. Its x0 runs are shown at the learning-rate check's rate, where
    # every run trained, and the grid's runs that diverged at its own rate are named.
    from app.measured import MEASURED, target_rows
    from minsnr_core.curves import far_runs
    from minsnr_core.experiment import read_csv

    far, total = far_runs(read_csv(MEASURED["cifar10"].csv), "x0")
    shown = {(row["weighting"], row["seed"]) for row in target_rows(MEASURED["cifar10"], "x0")[0]}
    assert far and len(shown) == 10
    page.locator("#measured-dataset label", has_text="CIFAR-10").click()
    page.wait_for_function("() => (document.querySelector('#measured-caption')?.innerText ?? '').includes('§4.1')",
                           timeout=10_000)
    page.locator("#measured-target label", has_text="x₀").click()
    page.wait_for_function("() => (document.querySelector('#measured-caption')?.innerText ?? '').includes('Constant (x0) 5')",
                           timeout=10_000)
    caption = page.locator("#measured-caption").inner_text()
    assert "learning rate 0.001" in caption and f"{len(far)} of its {total} runs with this target ended at over" in caption
    seeds = page.evaluate("() => document.querySelector('#measured-plot .js-plotly-plot').data"
                          ".filter(t => / seed \\d+$/.test(t.name)).length")
    assert seeds == len(shown)
    page.locator("#measured-metric label", has_text="share recognised").click()
    page.wait_for_function("() => (document.querySelector('#measured-caption')?.innerText ?? '').includes('weak')",
                           timeout=10_000)
    page.locator("#measured-metric label", has_text="Fréchet").click()
    page.wait_for_function("() => (document.querySelector('#measured-caption')?.innerText ?? '').includes('§4.1')",
                           timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "compare-measured-cifar.png"), full_page=True)
    page.close()
    phone = page_at(browser, app_url, 390, 844)
    phone.get_by_role("tab", name="Compare").click()
    phone.get_by_text("Measured results: the comparison of docs/results.md").click()
    phone.locator("#measured-dataset label", has_text="CIFAR-10").click()
    phone.wait_for_function("() => (document.querySelector('#measured-caption')?.innerText ?? '').includes('§4.1')",
                            timeout=10_000)
    phone.locator("#measured-plot").scroll_into_view_if_needed()
    phone.screenshot(path=str(ARTIFACTS / "compare-measured-cifar-phone.png"))
    phone.close()


def test_gamma_moves_on_a_log_scale_from_above_zero(browser, app_url):
    page = page_at(browser, app_url, 1400, 1000)
    page.wait_for_timeout(1000)
    log_range = page.locator("#param-gamma-log")
    assert float(log_range.get_attribute("min")) == -1, "γ starts at 0.1, never 0"
    plot = "document.querySelector('#explorer-plot .js-plotly-plot')"
    for position, gamma in ((0.30103, "2"), (0.3, "2"), (-0.5, "0.32"), (1.0, "10")):  # log10 γ; 0.3 snaps to the tick 2
        move_log_slider(page, "#param-gamma-log", position)
        page.wait_for_function(f"() => {plot}.data.some(t => t.name.startsWith('Min-SNR-γ (gamma={gamma}) · '))",
                               timeout=10_000)
        assert page.locator("#param-gamma input[type=number]").input_value() == gamma
    page.wait_for_function("() => (document.querySelector('#explorer-link textarea, #explorer-link input')?.value ?? '')"
                           ".includes('gamma=10')", timeout=10_000)
    # Typing into γ's box moves the log-scale slider.
    box = page.locator("#param-gamma input[type=number]")
    box.fill("5")
    box.press("Enter")
    page.wait_for_function("() => Math.abs(Number((document.querySelector('#param-gamma-log')?.value ?? '')) - Math.log10(5))"
                           " < 1e-3", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "explorer-gamma-log.png"))
    page.close()


def test_the_log_gamma_slider_moves_by_one_visible_step_per_key(browser, app_url):
    """By the keyboard alone: the arrow keys step γ through 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 in each decade, Page
    Up/Down by a decade, Home/End to the ends; the box, the chart and the slider's spoken value follow."""
    page = page_at(browser, app_url, 1400, 1000)
    page.wait_for_timeout(1000)
    slider = page.locator("#param-gamma-log")
    gamma_box = page.locator("#param-gamma input[type=number]")
    slider.focus()
    plot = "document.querySelector('#explorer-plot .js-plotly-plot')"
    for key, gamma in (("ArrowRight", "6"), ("ArrowRight", "8"), ("ArrowUp", "10"), ("ArrowRight", "12"),
                       ("ArrowLeft", "10"), ("ArrowDown", "8"), ("PageDown", "0.8"), ("PageUp", "8"), ("Home", "0.1"),
                       ("End", "100"), ("ArrowRight", "100")):
        slider.press(key)
        page.wait_for_function(f"() => (document.querySelector('#param-gamma input[type=number]')?.value ?? '') === '{gamma}'",
                               timeout=10_000)
        assert slider.get_attribute("aria-valuetext") == f"γ = {gamma}", key
    page.wait_for_function(f"() => {plot}.data.some(t => t.name.startsWith('Min-SNR-γ (gamma=100) · '))", timeout=10_000)
    assert gamma_box.input_value() == "100"
    page.close()


def test_train_and_compare_gamma_move_on_a_log_scale_too(browser, app_url):
    page = page_at(browser, app_url, 1400, 1000)
    page.get_by_role("tab", name="Train").click()
    log_range = page.locator("#train-param-gamma-log")
    log_range.wait_for(timeout=10_000)
    assert float(log_range.get_attribute("min")) == -1, "γ starts at 0.1, never 0"
    assert not page.locator("#train-param-gamma input[type=range]").is_visible(), "the linear track is replaced"
    move_log_slider(page, "#train-param-gamma-log", 0.3)
    assert page.locator("#train-param-gamma input[type=number]").input_value() == "2", "0.3 snaps to the tick 2"
    # The Train tab's γ is a link setting: the explorer's link carries it.
    page.wait_for_function("() => (document.querySelector('#explorer-link textarea, #explorer-link input')?.value ?? '')"
                           ".includes('train_gamma=2')", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "train-gamma-log.png"))
    # A value set by the app (Compare's preset, γ = 5) moves the log-scale slider with it.
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-param-gamma-log").wait_for(timeout=10_000)  # drawn once the tab opens (slow on a busy CPU)
    move_log_slider(page, "#compare-param-gamma-log", 1)
    page.wait_for_function("() => (document.querySelector('#compare-param-gamma input[type=number]')?.value ?? '') === '10'",
                           timeout=10_000)
    page.get_by_role("button", name="Preset").first.click()
    page.wait_for_function("() => Math.abs(Number((document.querySelector('#compare-param-gamma-log')?.value ?? ''))"
                           " - Math.log10(5)) < 1e-3", timeout=10_000)
    page.close()


def test_train_offers_the_timestep_samplers_with_only_the_chosen_ones_parameters(browser, app_url):
    page = page_at(browser, app_url, 1400, 1000)
    page.get_by_role("tab", name="Train").click()
    page.get_by_text("Timestep sampling, adaptive weighting").first.click()
    page.locator("#train-timestep-sampling").wait_for(timeout=10_000)
    assert not page.locator("#train-param-logit_mean").is_visible() and not page.locator("#train-param-history").is_visible()
    page.locator("#train-timestep-sampling input").click()
    page.get_by_role("option", name="Logit-normal").click()
    page.locator("#train-param-logit_std").wait_for(state="visible", timeout=10_000)
    assert page.locator("#train-param-logit_mean").is_visible() and not page.locator("#train-param-p_std").is_visible()
    page.locator("#train-timestep-sampling input").click()
    page.get_by_role("option", name="Loss-aware importance").click()
    page.locator("#train-param-history").wait_for(state="visible", timeout=10_000)
    assert not page.locator("#train-param-logit_mean").is_visible()
    page.locator("#train-timestep-sampling").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "train-timestep-sampling.png"))
    page.close()


@pytest.mark.parametrize(("size", "width", "height"), [("desktop", 1400, 1000), ("phone", 390, 844)])
def test_the_explorer_shows_a_timestep_sampler_and_each_weighting_as_a_sampler(browser, app_url, size, width, height):
    page = page_at(browser, app_url, width, height)
    plot = "document.querySelector('#explorer-plot .js-plotly-plot')"
    assert not page.locator("#sampler-param-logit_mean").is_visible()
    page.locator("#explorer-sampler input").click()
    page.get_by_role("option", name="Logit-normal").click()
    page.wait_for_function(f"() => {plot}.data.some(t => t.name === 'Logit-normal T·p(t)')", timeout=15_000)
    page.locator("#sampler-param-logit_mean").wait_for(state="visible", timeout=10_000)
    assert not page.locator("#sampler-param-p_std").is_visible()
    page.wait_for_function("() => (document.querySelector('#explorer-explanation')?.innerText ?? '')"
                           ".includes('Timestep sampling and weighting meet in the expected loss')", timeout=10_000)
    # γ still redraws in the browser, with the sampler's factor and the mean weight in the legend.
    box = page.locator("#param-gamma input[type=number]")
    box.fill("2")
    box.press("Enter")
    page.wait_for_function(f"() => {plot}.data.some(t => t.name.startsWith('Min-SNR-γ (gamma=2) · E[w] = '))",
                           timeout=10_000)
    page.locator("label", has_text="As a timestep distribution").click()
    page.wait_for_function(f"() => {plot}.layout.yaxis.title.text.startsWith('T·q(t)')", timeout=10_000)
    page.locator("#explorer-plot").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"explorer-sampler-{size}.png"))
    page.close()


def test_train_plots_a_learned_weighting_beside_the_fixed_one(browser, app_url):
    page = page_at(browser, app_url + "?train_dataset=moons&train_steps=300", 1400, 1000)
    page.get_by_role("tab", name="Train").click()
    page.get_by_text("Timestep sampling, adaptive weighting").first.click()
    page.locator("#train-adaptive-weighting input").click()
    page.get_by_role("option", name="EDM2 learned (uncertainty)").click()
    page.locator("#train-param-u_features").wait_for(state="visible", timeout=10_000)
    assert not page.locator("#train-weights").is_visible(), "no learned curve before a run"
    page.click("#train-start")
    page.wait_for_function("() => { const el = document.querySelector('#train-weights .js-plotly-plot');"
                           " return el && el.data.length === 2; }", timeout=60_000)
    names = page.evaluate("() => document.querySelector('#train-weights .js-plotly-plot').data.map(t => t.name)")
    assert names[0] == "Min-SNR-γ (fixed)" and names[1].startswith("× EDM2 learned (uncertainty), at step ")
    page.locator("#train-weights").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "train-learned-weighting.png"))
    page.click("#train-stop")
    page.close()


def test_the_pages_own_html_shows_the_default_chart_before_gradio_has_built_the_page(browser, app_url):
    """app.first_paint.EarlyPaint: without any script the page already shows the default curves at both viewports;
    with scripts that chart is painted before Gradio's own first paint and is gone once Gradio's page stands. A
    linked page (another chart) gets none."""
    from app.explorer import build_explorer

    want = [t.name for t in build_explorer(params={"gamma": 5.0}).figure.data]
    for width, height in ((1400, 1000), (390, 844)):
        context = browser.new_context(viewport={"width": width, "height": height}, java_script_enabled=False)
        page = context.new_page()
        page.goto(app_url)
        titles = page.eval_on_selector_all("#early-paint polyline title", "els => els.map(e => e.textContent)")
        assert titles == want
        chart = page.locator("#early-paint svg").bounding_box()
        assert chart["y"] + chart["height"] < height and chart["height"] > 0.4 * min(width, 900) * 520 / 900
        page.screenshot(path=str(ARTIFACTS / f"explorer-early-paint-{width}x{height}.png"))
        context.close()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script("""window.__seen = {}; new MutationObserver(() => {
        for (const [name, selector] of [['early', '#early-paint svg'], ['gradio', '#explorer-first-paint svg']])
          if (!(name in window.__seen) && document.querySelector(selector)) window.__seen[name] = performance.now();
      }).observe(document, {childList: true, subtree: true});""")
    page = context.new_page()
    page.goto(app_url)
    page.wait_for_selector("#explorer-plot .js-plotly-plot", timeout=60_000)
    seen = page.evaluate("() => window.__seen")
    assert seen["early"] < seen["gradio"]
    assert page.locator("#early-paint").count() == 0 and page.locator("#explorer-plot .js-plotly-plot").is_visible()
    context.close()
    linked = urllib.request.urlopen(app_url + "?gamma=2&schedule=linear").read()
    assert b'<div id="early-paint">' in urllib.request.urlopen(app_url).read() and b'<div id="early-paint">' not in linked
