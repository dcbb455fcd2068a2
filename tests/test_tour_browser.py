"""The classroom features in a real headless Chromium: the phone's first screen (the explorer's chart and γ within
the top 844 px of a 390×844 screen), the guided tour at 1400×1000 and 390×844 (each step, its question, its button,
a link to a step), and the app framed by a page of another origin. Screenshots go to artifacts/tour/."""

from __future__ import annotations

import functools
import http.server
import threading
import urllib.request

import pytest

from app.tour import STEPS

from .conftest import ARTIFACTS, free_port

pytestmark = pytest.mark.browser
SHOTS = ARTIFACTS / "tour"
SIZES = [("desktop", 1400, 1000), ("phone", 390, 844)]
PLOT = "#explorer-plot .js-plotly-plot"
SELECTED_TAB = "[role='tab'][aria-selected='true']"
LINK_BOX = "#explorer-link textarea, #explorer-link input"


def open_page(browser, url: str, width: int, height: int, ready: str = PLOT):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.locator(ready).first.wait_for(state="visible", timeout=90_000)
    return page


def link_box_has(page, text: str) -> None:
    """Until the explorer's link box (the page writes it after every change of a linked control) holds ``text``."""
    page.wait_for_function("([selector, text]) => (document.querySelector(selector)?.value || '').includes(text)",
                           arg=[LINK_BOX, text], timeout=30_000)


def test_a_phone_opens_on_the_chart_and_gamma_with_the_introductions_folded(browser, app_url):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = open_page(browser, app_url, 390, 844)
    page.wait_for_timeout(500)  # the page's last layout pass after Plotly's first draw
    plot, gamma = page.locator("#explorer-plot").bounding_box(), page.locator("#param-gamma").bounding_box()
    page.screenshot(path=str(SHOTS / "explorer-390x844.png"))
    assert plot["y"] < 844, f"the chart starts below the first screen: {plot}"
    assert gamma["y"] + gamma["height"] <= 844, f"γ is not wholly within the first screen: {gamma}"
    assert plot["y"] < gamma["y"], "on a phone the chart comes first, γ right under it"
    # The title's measured paragraph and the explorer's introduction wait behind one line each.
    measured = page.locator("#app-title details")
    assert measured.locator("summary").is_visible() and not measured.locator("p").first.is_visible()
    measured.locator("summary").click()
    measured.locator("p").first.wait_for(state="visible", timeout=5_000)
    assert "1.97×" in measured.inner_text()
    assert page.locator("#explorer-intro summary").is_visible()
    page.close()
    # On a wide screen the same texts read as plain text: no summary line, the paragraph shown.
    wide = open_page(browser, app_url, 1400, 1000)
    assert wide.locator("#app-title details p").first.is_visible()
    assert not wide.locator("#app-title summary").is_visible()
    assert wide.locator("#explorer-intro details p").first.is_visible()
    wide.close()


@pytest.mark.parametrize(("size", "width", "height"), SIZES)
def test_the_tour_walks_through_six_steps_and_each_answer_opens_on_a_click(browser, app_url, size, width, height):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = open_page(browser, app_url + "?tab=tour", width, height, ready="#tour-text-1")
    assert page.locator(SELECTED_TAB).inner_text().strip() == "Tour"
    for number, step in enumerate(STEPS, start=1):
        text = page.locator(f"#tour-text-{number}")
        text.wait_for(state="visible", timeout=10_000)
        assert step.title in text.inner_text()
        others = [n for n in range(1, len(STEPS) + 1) if n != number]
        assert not any(page.locator(f"#tour-text-{n}").is_visible() for n in others), "one step at a time"
        answer = text.locator("details p").first
        assert not answer.is_visible(), "the answer waits for a click"
        text.locator("summary").click()
        answer.wait_for(state="visible", timeout=5_000)
        assert step.answer[:40] in text.locator("details").inner_text()
        page.locator(f"#tour-go-{number}").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"step-{number}-{width}x{height}.png"), full_page=True)
        if number < len(STEPS):
            page.locator(f"#tour-next-{number}").click()
    page.close()


def test_a_steps_button_sets_the_explorer_or_the_train_tab_and_a_link_opens_a_step(browser, app_url):
    page = open_page(browser, app_url + "?tour=3", 390, 844, ready="#tour-text-3")
    assert page.locator(SELECTED_TAB).inner_text().strip() == "Tour"
    assert not page.locator("#tour-text-1").is_visible()
    page.locator("#tour-go-3").click()  # ε target, four weightings: SNR + 1 among them
    page.locator(PLOT).wait_for(state="visible", timeout=30_000)
    assert page.locator(SELECTED_TAB).inner_text().strip() == "Weight explorer"
    link_box_has(page, "strategies=snr,constant,snr_plus_one,min_snr")
    page.wait_for_function("() => (document.querySelector('#explorer-plot')?.textContent ?? '').includes('SNR + 1')",
                           timeout=30_000)
    page.screenshot(path=str(SHOTS / "step-3-button-390x844.png"))
    page.get_by_role("tab", name="Tour", exact=True).click()
    page.locator("#tour-step label", has_text="5. Train and compare").click()
    page.locator("#tour-go-5").click()
    page.locator("#train-start").wait_for(state="visible", timeout=30_000)
    assert page.locator(SELECTED_TAB).inner_text().strip() == "Train"
    link_box_has(page, "train_target=eps")  # the step's ε target, written into the page's link like any change
    page.close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request log in the test's output
        pass


def test_the_app_renders_framed_by_another_origin_and_a_tour_link_opens_in_the_frame(browser, app_url, tmp_path):
    headers = urllib.request.urlopen(app_url, timeout=30).headers
    assert headers.get("X-Frame-Options") is None
    assert "frame-ancestors" not in (headers.get("Content-Security-Policy") or "")
    # A course page, as docs/embedding.md gives it, served from another port (another origin).
    (tmp_path / "index.html").write_text(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Course page</title></head><body><h1>Week 3</h1>'
        f'<p><a id="step-4" href="{app_url}?tour=4" target="minsnr">The clamp and γ</a></p>'
        f'<iframe name="minsnr" src="{app_url}" title="minsnr: Min-SNR-γ loss weighting" width="100%" height="900"'
        ' style="border: 0"></iframe></body></html>', encoding="utf-8")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()),
                                             functools.partial(QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        frame = page.frame_locator("iframe[name='minsnr']")
        frame.locator(PLOT).wait_for(state="visible", timeout=90_000)
        page.screenshot(path=str(SHOTS / "embedded-1400x1000.png"))
        page.locator("#step-4").click()
        step = frame.locator("#tour-text-4")
        step.wait_for(state="visible", timeout=90_000)
        assert STEPS[3].title in step.inner_text()
        page.screenshot(path=str(SHOTS / "embedded-step-4-1400x1000.png"))
        page.close()
    finally:
        server.shutdown()
        server.server_close()
