"""Accessibility (WCAG 2.1 AA) of the real app in a real headless Chromium, at a 1400×1000 screen and a 390×844 phone:
axe-core finds no serious or critical violation on any tab, every control the Tab key reaches shows a visible focus
ring, a student can explore γ and run and stop a training by the keyboard alone, and the page stops animating for
those who ask for reduced motion. The fixes are app/a11y.py, app/static/a11y.css and app/static/a11y.js.

axe-core comes from npm into the repository's (git-ignored) node_modules, fetched once if missing; the axe test is
skipped only when npm cannot fetch it. Screenshots go to artifacts/a11y/."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import ARTIFACTS, ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS / "a11y"
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = ("serious", "critical")
SIZES = [("desktop", 1400, 1000), ("phone", 390, 844)]
# The tabs every test expects (by their ids), each with an element that stands once its content is built. The tests
# visit every tab the page has, these and any other.
READY = {"explorer": "#explorer-plot", "train": "#train-start", "compare": "#compare-start", "denoise": "#denoise-start"}
TAB_LIST = "() => [...document.querySelectorAll('[role=\"tab\"]')].map((t) => [t.textContent.trim(), t.dataset.tabId])"
STEP_LIMIT = 250  # Tab presses that cross a whole tab many times over


def axe_source() -> str:
    """axe-core's browser bundle from node_modules; fetched there by npm once if missing (skip if it cannot be)."""
    if not AXE_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot fetch axe-core")
        try:
            done = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(ROOT),
                                   "axe-core@4"], capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip("npm did not fetch axe-core within 300 s")
        if done.returncode != 0 or not AXE_JS.exists():
            pytest.skip(f"npm could not fetch axe-core: {(done.stderr or done.stdout).strip()[-400:]}")
    return AXE_JS.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def axe() -> str:
    """axe-core's source, to evaluate in a page (it defines window.axe)."""
    return axe_source()


# Colours and contrast as WCAG 2.1 defines them (relative luminance), shared by the checks below.
COLOURS = """
const rgba = (text) => { const v = (text.match(/[\\d.]+/g) || ['0', '0', '0', '0']).map(Number);
                         return v.length > 3 ? v : [...v, 1]; };
const luminance = ([r, g, b]) => { const c = [r, g, b].map((v) => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; };
const contrast = (a, b) => { const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
                             return (hi + 0.05) / (lo + 0.05); };
const backdrop = (el) => { for (let a = el; a; a = a.parentElement) { const c = rgba(getComputedStyle(a).backgroundColor);
                             if (c[3] > 0.5) return c; } return [255, 255, 255, 1]; };
"""

RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
  return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help, count: v.nodes.length,
                                       targets: v.nodes.slice(0, 3).map((n) => n.target.join(' '))}));
}"""

# The tab bar's text, which axe leaves "incomplete" (the selected tab's underline is a pseudo-element): 4.5:1.
TAB_TEXT_CONTRAST = f"""() => {{ {COLOURS}
  return [...document.querySelectorAll('[role="tab"]')].map((t) =>
    [t.textContent.trim(), contrast(rgba(getComputedStyle(t).color), backdrop(t))]); }}"""

# The focused element, as the walks below name it; each element gets a number, so a walk knows where it has been.
FOCUSED = """() => { const e = document.activeElement;
  if (!e || e === document.body || e === document.documentElement) return null;
  window.__a11yIds = window.__a11yIds || new WeakMap();
  if (!window.__a11yIds.has(e)) window.__a11yIds.set(e, (window.__a11yNext = (window.__a11yNext || 0) + 1));
  const type = (e.getAttribute('type') || '').toLowerCase(), role = e.getAttribute('role') || '';
  const kind = role === 'tab' ? 'tab' : role === 'combobox' ? 'dropdown'
    : e.tagName === 'INPUT' && type === 'range' ? (e.id.endsWith('-log') ? 'log-gamma slider' : 'slider')
    : e.tagName === 'INPUT' && ['checkbox', 'radio'].includes(type) ? type
    : e.tagName === 'INPUT' && type === 'number' ? 'number box'
    : e.tagName === 'TEXTAREA' || e.tagName === 'INPUT' ? 'text box'
    : e.tagName === 'BUTTON' ? 'button' : e.tagName === 'A' ? 'link' : e.tagName.toLowerCase();
  const label = e.getAttribute('aria-label') || (e.labels && e.labels[0] && e.labels[0].textContent)
    || (e.closest('label') && e.closest('label').textContent) || e.textContent || '';
  const holder = e.closest('[id]');
  return {uid: window.__a11yIds.get(e), kind, id: e.id, name: label.trim().replace(/\\s+/g, ' ').slice(0, 60),
          holder: holder ? holder.id : '', selected: e.getAttribute('aria-selected') === 'true',
          closedAccordion: e.classList.contains('label-wrap') && !e.classList.contains('open')}; }"""

# What is wrong with the focused element's focus ring ('' when nothing): it must be drawn (:focus-visible matches, an
# outline of 2 px or more, on a control that is itself visible and not covered by another element), stand out 3:1
# from what is behind it (WCAG 1.4.11), and not be cut off by a box around it.
RING_PROBLEM = f"""() => {{ {COLOURS}
  const e = document.activeElement;
  if (!e || e === document.body) return 'nothing has the focus';
  const s = getComputedStyle(e), width = parseFloat(s.outlineWidth) || 0, offset = parseFloat(s.outlineOffset) || 0;
  if (!e.matches(':focus-visible')) return 'not :focus-visible';
  if (s.outlineStyle === 'none' || width < 2) return `no outline (${{s.outlineStyle}} ${{s.outlineWidth}})`;
  const ratio = contrast(rgba(s.outlineColor), backdrop(offset < 0 ? e : e.parentElement));
  if (ratio < 3) return `ring colour ${{s.outlineColor}} only ${{ratio.toFixed(2)}}:1 against its background`;
  const r = e.getBoundingClientRect(), grow = width + offset;
  if (r.width < 1 || r.height < 1) return 'the focused element is not drawn';
  const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
  if (!hit) return 'the focused element is outside the window';
  if (hit !== e && !e.contains(hit) && !(e.labels && [...e.labels].some((l) => l.contains(hit))))
    return `covered by ${{hit.tagName}}.${{String(hit.className.baseVal ?? hit.className).slice(0, 40)}}`;
  let opacity = 1;
  for (let a = e; a; a = a.parentElement) opacity *= Number(getComputedStyle(a).opacity);
  if (opacity < 0.9 || s.visibility !== 'visible') return `the focused element is hidden (opacity ${{opacity}})`;
  for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {{
    const as = getComputedStyle(a);
    // Only a box clips: not one that shows what overflows it, nor one laid out as its children (display: contents).
    if ((as.overflowX === 'visible' && as.overflowY === 'visible') || as.display === 'contents') continue;
    const b = a.getBoundingClientRect();
    if (r.left - grow < b.left - 0.5 || r.top - grow < b.top - 0.5 || r.right + grow > b.right + 0.5
        || r.bottom + grow > b.bottom + 0.5) return `ring cut off by ${{a.tagName}}.${{String(a.className).slice(0, 40)}}`;
  }}
  return ''; }}"""


# Resolves once the page's height has stood still for half a second (an opened section drawn, its chart loaded).
SETTLED = """async () => { let last = -1, still = 0;
  while (still < 5) { const h = document.documentElement.scrollHeight; still = h === last ? still + 1 : 0; last = h;
                      await new Promise((done) => setTimeout(done, 100)); }
  return true; }"""


def open_app(browser: Browser, url: str, width: int, height: int, **context_options: Any) -> tuple[BrowserContext, Page]:
    """A new context (``context_options``: Playwright's, such as reduced_motion) and page on ``url``, its chart drawn."""
    context = browser.new_context(viewport={"width": width, "height": height}, **context_options)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#explorer-plot .js-plotly-plot", timeout=60_000)
    return context, page


def focused(page: Page) -> dict | None:
    """The focused element as :data:`FOCUSED` describes it (None: nothing has the focus)."""
    return page.evaluate(FOCUSED)


def press_until(page: Page, wanted: Callable[[dict], bool], key: str = "Tab", limit: int = STEP_LIMIT) -> dict:
    """Press ``key`` until the focused element satisfies ``wanted`` (a predicate on :data:`FOCUSED`'s answer)."""
    seen = []
    for _ in range(limit):
        page.keyboard.press(key)
        stop = focused(page)
        if stop is not None and wanted(stop):
            return stop
        seen.append(stop and f"{stop['kind']} {stop['name']!r} ({stop['holder']})")
    raise AssertionError(f"{key} never reached the control; its stops: {seen}")


def app_tabs(page: Page) -> list[tuple[str, str]]:
    """The page's tabs as (label, id), in their order; the four this file's tests rely on among them."""
    tabs = [tuple(tab) for tab in page.evaluate(TAB_LIST)]
    assert set(READY) <= {slug for _, slug in tabs}, tabs
    return tabs


def wait_for_tab(page: Page, name: str, slug: str) -> None:
    """Until tab ``name`` is the selected one and its content stands."""
    page.wait_for_function("(name) => [...document.querySelectorAll('[role=\"tab\"]')].some((t) =>"
                           " t.textContent.trim() === name && t.getAttribute('aria-selected') === 'true')", arg=name,
                           timeout=10_000)
    if slug in READY:
        page.locator(READY[slug]).wait_for(state="visible", timeout=30_000)
    page.wait_for_timeout(800)  # the tab's content drawn (a tab this file does not know has no element to wait for)


def open_tab_by_keyboard(page: Page, name: str, slug: str) -> None:
    """From anywhere: Tab to the tab bar, the arrow keys along it (app/static/a11y.js), Enter to open ``name``."""
    stop = focused(page)
    if stop is None or stop["kind"] != "tab":
        press_until(page, lambda s: s["kind"] == "tab")
    page.keyboard.press("Home")
    if focused(page)["name"] != name:
        press_until(page, lambda s: s["kind"] == "tab" and s["name"] == name, key="ArrowRight", limit=20)
    page.keyboard.press("Enter")
    wait_for_tab(page, name, slug)


@pytest.mark.parametrize(("size", "width", "height"), SIZES)
def test_axe_finds_no_serious_or_critical_wcag_violation_on_any_tab(browser, app_url, axe, size, width, height):
    """axe-core's WCAG 2.1 A and AA rules on each tab, its folded sections opened; and the tab bar's text, which axe
    cannot judge, at 4.5:1. A screenshot of each tab goes to artifacts/a11y/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, page = open_app(browser, app_url, width, height)
    page.evaluate(axe)
    report, blocking = [], []
    for name, slug in app_tabs(page):
        page.get_by_role("tab", name=name, exact=True).click()
        wait_for_tab(page, name, slug)
        for accordion in page.locator("button.label-wrap:not(.open)").all():
            if accordion.is_visible():
                accordion.click()
        page.wait_for_timeout(800)  # the opened sections drawn
        violations = page.evaluate(RUN_AXE, WCAG_TAGS)
        for v in violations:
            line = f"{name} @ {width}x{height}: {v['id']} ({v['impact']}, {v['count']} elements) {v['targets']}"
            report.append(line)
            if v["impact"] in BLOCKING:
                blocking.append(line)
        for tab, ratio in page.evaluate(TAB_TEXT_CONTRAST):
            if ratio < 4.5:
                blocking.append(f"{name} @ {width}x{height}: the tab {tab!r}'s text is {ratio:.2f}:1 (4.5:1 needed)")
        page.screenshot(path=str(SHOTS / f"{slug}-{size}.png"), full_page=True)
    context.close()
    print("\n".join(report) or f"axe: no violations at {width}x{height}")
    assert not blocking, "serious or critical accessibility violations:\n" + "\n".join(blocking)


@pytest.mark.parametrize(("size", "width", "height"), SIZES)
def test_every_control_the_tab_key_reaches_shows_a_visible_focus_ring(browser, app_url, size, width, height):
    """Tab through each whole tab (its folded sections opened with Enter on the way): every stop draws a ring of
    2 px or more, 3:1 against its background and not cut off; among them every kind of control the app has."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, page = open_app(browser, app_url, width, height)
    problems, kinds = [], set()
    for name, slug in app_tabs(page):
        open_tab_by_keyboard(page, name, slug)
        left_tab_bar = False
        for _ in range(STEP_LIMIT):
            page.keyboard.press("Tab")
            stop = focused(page)
            if stop is None:  # past the page's end, before it starts again
                continue
            if stop["kind"] == "tab":
                if left_tab_bar:
                    break  # round the whole page
            else:
                left_tab_bar = True
            try:
                page.wait_for_function(f"() => ({RING_PROBLEM})() === ''", timeout=5_000)  # a ring fades in
            except Exception:
                problems.append(f"{name}: {stop['kind']} {stop['name']!r} ({stop['holder']}): {page.evaluate(RING_PROBLEM)}")
            if stop["kind"] not in kinds:
                kinds.add(stop["kind"])
                box = page.evaluate("() => { const r = document.activeElement.getBoundingClientRect();"
                                    " return {x: r.x, y: r.y, width: r.width, height: r.height}; }")
                clip = {"x": max(box["x"] - 16, 0), "y": max(box["y"] - 16, 0),
                        "width": min(box["width"] + 32, width), "height": min(box["height"] + 32, height)}
                page.screenshot(path=str(SHOTS / f"focus-{stop['kind'].replace(' ', '-')}-{size}.png"), clip=clip)
            if stop["closedAccordion"]:
                page.keyboard.press("Enter")  # its controls are Tab stops too
                page.wait_for_function("() => document.activeElement.classList.contains('open')", timeout=10_000)
                page.wait_for_function(SETTLED, timeout=30_000)  # else its content would move the next stop away
        else:
            raise AssertionError(f"{name}: {STEP_LIMIT} Tab presses did not come round to the tab bar")
    context.close()
    assert not problems, "focus rings missing or not visible:\n" + "\n".join(problems)
    expected = {"tab", "button", "slider", "log-gamma slider", "dropdown", "checkbox", "radio", "number box", "link"}
    assert expected <= kinds, f"the walk reached no {sorted(expected - kinds)}"


PLOT = "document.querySelector('#explorer-plot .js-plotly-plot')"
STATUS = "document.querySelector('#train-status').innerText"


def test_keyboard_alone_moves_gamma_then_starts_and_stops_a_training(browser, app_url):
    """Only the keyboard: the log-scale γ slider's arrow key redraws the chart, Space ticks a strategy, the arrow
    keys and Enter open the Train tab, typing picks the toy dataset and the steps, Enter starts and Space stops."""
    context, page = open_app(browser, app_url, 1400, 1000)
    gamma = page.locator("#param-gamma input[type=number]")
    assert gamma.input_value() == "5"
    press_until(page, lambda s: s["id"] == "param-gamma-log")
    page.keyboard.press("ArrowRight")  # 5 → 6, the next rung of the ladder (app/static/gamma_log.js)
    page.wait_for_function(f"() => {PLOT}.data.some((t) => t.name.startsWith('Min-SNR-γ (gamma=6) · '))", timeout=15_000)
    assert gamma.input_value() == "6"
    assert page.locator("#param-gamma-log").get_attribute("aria-valuetext") == "γ = 6"
    press_until(page, lambda s: s["kind"] == "checkbox" and s["name"] == "P2")
    page.keyboard.press("Space")
    page.wait_for_function(f"() => {PLOT}.data.some((t) => t.name.startsWith('P2 '))", timeout=15_000)

    page.keyboard.press("Shift+Tab")  # back towards the tab bar
    press_until(page, lambda s: s["kind"] == "tab", key="Shift+Tab")
    open_tab_by_keyboard(page, "Train", "train")
    press_until(page, lambda s: s["holder"] == "train-dataset")
    page.keyboard.type("Gauss")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_function("() => (document.querySelector('#train-dataset input')?.value ?? '') === '2D toy: 8 Gaussians'",
                           timeout=10_000)
    press_until(page, lambda s: s["holder"] == "train-steps")
    page.keyboard.press("Control+a")
    page.keyboard.type("20000")  # long enough to be seen running
    page.keyboard.press("Tab")
    page.wait_for_function("() => (document.querySelector('#explorer-link textarea, #explorer-link input')?.value ?? '')"
                           ".includes('train_steps=20000')", timeout=10_000)
    press_until(page, lambda s: s["id"] == "train-start")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => {STATUS}.includes('running') && {STATUS}.includes('/ 20000')", timeout=120_000)
    page.screenshot(path=str(SHOTS / "keyboard-train-running.png"))
    press_until(page, lambda s: s["id"] == "train-stop")
    page.keyboard.press("Space")
    page.wait_for_function(f"() => {STATUS}.includes('stopped')", timeout=60_000)
    page.screenshot(path=str(SHOTS / "keyboard-train-stopped.png"))
    context.close()


# The durations of what Gradio and Plotly animate on the explorer's page: a strategy's label and a reset button
# fading their colours, the selected tab's underline growing in, the chart toolbar's fade.
MOTION = """() => {
  const seconds = (list) => Math.max(...list.split(',').map((d) => d.trim().endsWith('ms') ? parseFloat(d) / 1000
                                                                                           : parseFloat(d)));
  const style = (selector, pseudo) => getComputedStyle(document.querySelector(selector), pseudo);
  return {label: seconds(style('#strategies label').transitionDuration),
          reset: seconds(style('#param-gamma .reset-button').transitionDuration),
          underline: seconds(style('[role="tab"][aria-selected="true"]', '::after').animationDuration),
          toolbar: seconds(style('#explorer-plot .modebar-group').transitionDuration),
          reduce: matchMedia('(prefers-reduced-motion: reduce)').matches}; }"""
PLOT_TRANSITIONS = """() => [...document.querySelectorAll('.js-plotly-plot')].map((gd) => {
  const t = (gd._fullLayout && gd._fullLayout.transition) || gd.layout.transition;
  return t && t.duration > 0 ? t.duration : 0; })"""


def test_reduced_motion_stops_the_pages_animations(browser, app_url):
    """With the system's reduced-motion setting no transition or animation lasts more than a millisecond (without
    it the same ones run, so the measure is real), and no chart animates its redraw."""
    durations = {}
    for motion in ("no-preference", "reduce"):
        context, page = open_app(browser, app_url, 1400, 1000, reduced_motion=motion)
        page.locator("#explorer-plot .modebar-group").first.wait_for(state="attached", timeout=30_000)
        durations[motion] = page.evaluate(MOTION)
        press_until(page, lambda s: s["id"] == "param-gamma-log")
        page.keyboard.press("ArrowRight")  # a redraw in the page (app/static/explorer.js)
        page.wait_for_function(f"() => {PLOT}.data.some((t) => t.name.startsWith('Min-SNR-γ (gamma=6) · '))",
                               timeout=15_000)
        transitions = page.evaluate(PLOT_TRANSITIONS)
        assert transitions and not any(transitions), f"a chart animates its redraw: {transitions} ms"
        context.close()
    normal, reduced = durations["no-preference"], durations["reduce"]
    assert reduced.pop("reduce") and not normal.pop("reduce")
    assert all(seconds > 0.05 for seconds in normal.values()), normal
    assert all(seconds <= 0.001 for seconds in reduced.values()), reduced
