"""The explorer as one HTML file (`minsnr-export-explorer`), as a student opening it feels it: headless Chromium, the
file opened from file:// with every other request blocked (run by hand).

    python benchmarks/export_explorer.py [--loads 7] [--changes 20] [--out explorer.html]

Prints:
1. the file's size (goal: ≤ 5 MB);
2. opening → interactive: in the page from navigation start, each load in a fresh browser context, until the first
   chart is drawn and its controls answer (explorer_static.js's ``ready``); with the part of it that Plotly's own
   script takes to load (until it defines window.Plotly) and the page's first contentful paint (goal: ≤ 1 s);
3. a typed γ → the redrawn chart painted: ``--changes`` values typed into γ's box, each timed in the page from the
   typed value's input event to the end of the first frame after it (a timer queued by that frame's animation
   callback runs once the frame is rendered), to the second animation frame after it (an upper bound), and by the
   browser's Event Timing API (input event → next paint, in steps of 8 ms), as benchmarks/explorer_speed.py times the
   app; and the redraw itself (goal: median ≤ 50 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from app.export_explorer import main as export

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PLOT = "document.querySelector('#explorer-plot .js-plotly-plot')"
# When Plotly's script has run: its last statement sets window.Plotly.
PLOTLY_LOADED = """(() => { let plotly;
  Object.defineProperty(window, 'Plotly', {configurable: true, get: () => plotly,
    set: (value) => { plotly = value; if (window.__plotlyAt === undefined) window.__plotlyAt = performance.now(); }});
})();"""
# Each typed value: its input event (seen first, at the window), the end of the first frame after it and the second
# animation frame after it; and the Event Timing API's durations of the input events (≥ 16 ms are reported).
TYPED = """() => { window.__inputs = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.name === 'input') window.__inputs.push(e.duration);
  }).observe({type: 'event', durationThreshold: 16});
  window.addEventListener('input', (event) => { if (!event.isTrusted) return;
  window.__typed = performance.now();
  requestAnimationFrame(() => { setTimeout(() => { window.__frameEnd = performance.now(); }, 0);
    requestAnimationFrame(() => { window.__painted = performance.now(); }); }); }, true); }"""


def blocked(off_file: list[str]):
    def guard(route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            off_file.append(route.request.url)
            route.abort()
    return guard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=7)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--out", type=Path, help="where to write the file (default: a temporary folder)")
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory()
    out = args.out or Path(folder.name) / "explorer.html"
    started = time.perf_counter()
    export([str(out)])
    size = out.stat().st_size
    print(f"file: {size:,} bytes = {size / 1e6:.3f} MB (goal ≤ 5 MB); written in {time.perf_counter() - started:.1f} s")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other work slows these numbers down)")
    off_file: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        ready, plotly, paint = [], [], []
        for _ in range(args.loads):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_init_script(PLOTLY_LOADED)
            context.route("**/*", blocked(off_file))
            page = context.new_page()
            page.goto(out.as_uri())
            page.wait_for_function("document.documentElement.dataset.ready", timeout=60_000)
            ready.append(float(page.evaluate("document.documentElement.dataset.ready")))
            plotly.append(page.evaluate("window.__plotlyAt"))
            paint.append(page.evaluate("performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN"))
            context.close()
        print(f"opening → interactive (first chart drawn, controls live), in the page from navigation start: median "
              f"{statistics.median(ready):.0f} ms, min {min(ready):.0f}, max {max(ready):.0f} ({args.loads} loads in "
              f"fresh contexts; goal ≤ 1000 ms); of it Plotly's script loaded at median {statistics.median(plotly):.0f} ms; "
              f"first contentful paint median {statistics.median(paint):.0f} ms")
        print("  each load (interactive / Plotly loaded, ms): "
              + ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(ready, plotly, strict=True)))

        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.route("**/*", blocked(off_file))
        page = context.new_page()
        page.goto(out.as_uri())
        page.wait_for_function("document.documentElement.dataset.ready", timeout=60_000)
        page.evaluate(TYPED)
        box = page.locator("#box-gamma")
        painted, frame_end, redraw, react = [], [], [], []
        for i in range(args.changes):
            gamma = f"{1.5 + 0.5 * i:g}"
            box.fill(gamma)
            page.wait_for_function(f"() => {PLOT}.data.some((t) => t.name.includes('gamma={gamma})')) && "
                                   "window.__painted > window.__typed && window.__frameEnd > window.__typed",
                                   polling="raf", timeout=10_000)
            painted.append(page.evaluate("window.__painted - window.__typed"))
            frame_end.append(page.evaluate("window.__frameEnd - window.__typed"))
            redraw.append(page.evaluate(f"Number({PLOT}.dataset.redrawMs)"))
            react.append(page.evaluate(f"Number({PLOT}.dataset.plotlyMs)"))
        page.wait_for_timeout(500)  # the last Event Timing entries
        durations = page.evaluate("window.__inputs")
        print(f"typed γ → redrawn chart painted ({args.changes} changes, goal median ≤ 50 ms), in the page from the input "
              f"event: to the end of the first frame median {statistics.median(frame_end):.0f} ms, max "
              f"{max(frame_end):.0f} ms; to the second animation frame median {statistics.median(painted):.0f} ms, max "
              f"{max(painted):.0f} ms; Event Timing (input → next paint) "
              + (f"{len(durations)} of {args.changes} at ≥ 16 ms, their median {statistics.median(durations):.0f} ms, "
                 f"max {max(durations):.0f} ms" if durations else "all below 16 ms")
              + f"; the redraw itself median {statistics.median(redraw):.1f} ms (Plotly.react "
                f"{statistics.median(react):.1f} ms)")
        context.close()
        browser.close()
    print(f"requests off the file: {len(off_file)}" + (f" ({off_file[:3]})" if off_file else "")
          + f"; load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
