"""The explorer as a student feels it, in a real headless Chromium against the real app (run by hand, loopback only).

    python benchmarks/explorer_speed.py [--changes 20] [--loads 5]

Prints, for the page at 1400×1000:
1. page load → the default chart in the page's own HTML painted (before Gradio's script has run), → Gradio's page
   with its first chart (the server's static SVG, app/first_paint.py) and → Plotly's interactive chart (median and
   max of ``--loads`` fresh pages);
2. a γ change → the chart redrawn with the new γ: ``--changes`` changes typed into γ's box, each timed in the page
   from the input event of the typed value to the second animation frame after it, to the end of the first frame's
   rendering, by the browser's Event Timing API, the redraw alone, and through Playwright (an upper bound);
3. bytes the browser received from the server during those γ changes (Chrome DevTools protocol);
4. bytes received for one schedule change, which still asks the server for the figure.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PLOT = "document.querySelector('#explorer-plot .js-plotly-plot')"
# In the page, from navigation start: when each chart is first painted (the frame after it is in the document; a
# timer after requestAnimationFrame runs once that frame is drawn). Measured in the page because Playwright's own
# wait cannot answer while the page runs Plotly's 1.2–1.7-s start-up task.
PAINT_TIMES_JS = """
window.__paint = {};
const mark = (name) => requestAnimationFrame(() => setTimeout(() => {
  if (!(name in window.__paint)) window.__paint[name] = performance.now(); }));
new MutationObserver(() => {
  if (!window.__paintSeen) window.__paintSeen = {};
  for (const [name, selector] of [["early", "#early-paint svg"], ["first", "#explorer-first-paint svg"],
                                  ["plotly", "#explorer-plot .js-plotly-plot"]]) {
    if (!window.__paintSeen[name] && document.querySelector(selector)) { window.__paintSeen[name] = true; mark(name); }
  }
}).observe(document, {childList: true, subtree: true});
"""


def start_app() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "app.main", "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server, f"http://127.0.0.1:{port}/"
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the app did not start")


def received_bytes(page):
    """A counter of the bytes the page receives (all responses, streams included)."""
    session = page.context.new_cdp_session(page)
    session.send("Network.enable")
    total = [0]
    session.on("Network.dataReceived", lambda event: total.__setitem__(0, total[0] + event["encodedDataLength"]))
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    server, url = start_app()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            early, first, loads = [], [], []
            for _ in range(args.loads):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.add_init_script(PAINT_TIMES_JS)
                page = context.new_page()
                page.goto(url)
                page.wait_for_selector("#explorer-plot .js-plotly-plot", timeout=60_000)
                page.wait_for_function("() => window.__paint.plotly !== undefined", timeout=10_000)
                times = page.evaluate("() => window.__paint")
                early.append(times["early"] / 1000)
                first.append(times["first"] / 1000)
                loads.append(times["plotly"] / 1000)
                context.close()
            print(f"page load → the chart in the page's own HTML painted (app.first_paint.EarlyPaint): median "
                  f"{statistics.median(early):.2f} s, max {max(early):.2f} s; → Gradio's page with its first chart "
                  f"(the server's static SVG) painted: median {statistics.median(first):.2f} s, max {max(first):.2f} s; "
                  f"→ Plotly's interactive chart: median {statistics.median(loads):.2f} s, max {max(loads):.2f} s "
                  f"({args.loads} loads, in the page from navigation start: "
                  f"{', '.join(f'{a:.2f}/{b:.2f}/{c:.2f}' for a, b, c in zip(early, first, loads, strict=True))})")

            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector("#explorer-plot .js-plotly-plot", timeout=60_000)
            page.wait_for_timeout(1500)  # the load chain settles
            counter = received_bytes(page)
            before = counter[0]
            # In the page: when the new value reaches γ's box (its input event, seen first at the window), and the
            # second animation frame after it, by which the redrawn chart has been painted.
            # Also the frame's end (a timer queued by the first animation frame runs once that frame's rendering is
            # done) and the browser's own measure, the Event Timing API's duration of the input event (its
            # timestamp to the next paint after its handlers, in steps of 8 ms; the basis of INP). Only the typed
            # events: the page hands Gradio its own copy of each after the paint (app/explorer_js.py).
            page.evaluate("() => { window.__inputs = []; new PerformanceObserver((list) => { for (const e of "
                          "list.getEntries()) if (e.name === 'input') window.__inputs.push(e.duration); })"
                          ".observe({type: 'event', durationThreshold: 16});"
                          " window.addEventListener('input', (event) => { if (!event.isTrusted) return;"
                          " const t = performance.now(); "
                          "window.__typed = t; window.__next = 0; requestAnimationFrame(() => { "
                          "setTimeout(() => { window.__next = performance.now(); }, 0); requestAnimationFrame(() => { "
                          "window.__painted = performance.now(); }); }); }, true); }")
            box = page.locator("#param-gamma input[type=number]")
            latencies, in_page, frame_end, compute, plotly = [], [], [], [], []
            for i in range(args.changes):
                gamma = f"{1.5 + 0.5 * i:g}"
                started = time.perf_counter()
                box.fill(gamma)
                box.press("Enter")
                page.wait_for_function(f"() => {PLOT}.data.some(t => t.name.includes('gamma={gamma})')) && "
                                       "window.__painted > window.__typed && window.__next > window.__typed",
                                       polling="raf")
                latencies.append((time.perf_counter() - started) * 1000)
                compute.append(page.evaluate(f"() => Number({PLOT}.dataset.redrawMs)"))
                plotly.append(page.evaluate(f"() => Number({PLOT}.dataset.plotlyMs)"))
                in_page.append(page.evaluate("() => window.__painted - window.__typed"))
                frame_end.append(page.evaluate("() => window.__next - window.__typed"))
            page.wait_for_timeout(1000)  # the link updates that follow each change
            durations = page.evaluate("() => window.__inputs")
            per_change = (counter[0] - before) / args.changes
            print(f"γ change → redrawn chart, in the page (value typed → painted): median {statistics.median(in_page):.0f} ms, "
                  f"max {max(in_page):.0f} ms ({args.changes} changes); the redraw itself: median "
                  f"{statistics.median(compute):.1f} ms (Plotly.react {statistics.median(plotly):.1f} ms of it); "
                  f"through Playwright (typing included): median "
                  f"{statistics.median(latencies):.0f} ms")
            print(f"the same changes, typed → the end of the redrawn frame: median {statistics.median(frame_end):.0f} ms, "
                  f"max {max(frame_end):.0f} ms; the browser's Event Timing (input event → next paint): median "
                  + (f"{statistics.median(durations):.0f} ms, max {max(durations):.0f} ms ({len(durations)} of "
                     f"{args.changes} events at ≥ 16 ms)" if durations else "none at ≥ 16 ms"))
            print(f"received per γ change: {per_change / 1000:.1f} kB (the link update; the curves are not sent)")
            before = counter[0]
            page.locator("#schedule input").click()
            page.get_by_role("option", name="Linear (DDPM)").click()
            page.wait_for_function(f"() => {PLOT}.layout.title.text.startsWith('linear')", timeout=30_000)
            page.wait_for_timeout(1000)
            print(f"received for a schedule change (the server draws the figure): {(counter[0] - before) / 1000:.1f} kB")
            browser.close()
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
