"""The real app in a real headless Chromium: what a user sees and does. Screenshots go to artifacts/."""

import json

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
    before = page.evaluate(PLOT_Y, "#explorer-plot")
    gamma_box = page.locator("#param-gamma input[type=number]")
    gamma_box.fill("1")
    gamma_box.press("Enter")
    page.wait_for_function(f"(before) => JSON.stringify(({PLOT_Y})('#explorer-plot')) !== before",
                           arg=json.dumps(before), timeout=30_000)
    after = page.evaluate(PLOT_Y, "#explorer-plot")
    # With γ = 1 the ε weight min(1, γ/SNR) is smaller wherever SNR > 1.
    assert after[0][0] < before[0][0]
    assert "gamma=1" in page.url
    page.screenshot(path=str(ARTIFACTS / "explorer-gamma-1.png"), full_page=True)
    page.close()


def test_link_opens_on_its_settings_and_bad_values_show_a_notice(browser, app_url):
    page = open_page(browser, app_url + "?schedule=linear&gamma=nope&strategies=p2,min_snr")
    page.wait_for_selector("#url-notice :text('gamma=nope')", timeout=30_000)
    traces = page.evaluate("() => document.querySelector('#explorer-plot .js-plotly-plot').data.map(t => t.name)")
    assert traces == ["P2 (k=1, p2_gamma=1)", "Min-SNR-γ (gamma=5)"]
    assert "linear" in page.locator("#explorer-plot").inner_text()
    page.screenshot(path=str(ARTIFACTS / "explorer-bad-link.png"), full_page=True)
    page.close()
