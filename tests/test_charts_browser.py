"""Each chart's downloads and text alternative in a real headless Chromium: the explorer's data (CSV), picture (PNG,
SVG) and words as γ moves in the page, and a toy run's metrics as a table. Screenshots at a 1400×1000 screen and a
390×844 phone go to artifacts/charts/."""

import csv
import io
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import torch

from app.explorer import build_explorer
from minsnr_core.schedules import get_schedule
from minsnr_core.weighting import STRATEGIES, loss_weight

from .conftest import ARTIFACTS
from .test_classroom import page_at

pytestmark = pytest.mark.browser
CHARTS = ARTIFACTS / "charts"
PLOT = "document.querySelector('#{id} .js-plotly-plot')"
WORDS = "document.getElementById('explorer-words').textContent"


def download(page, chart_id: str, label: str) -> tuple[str, bytes]:
    """Press a chart's download button: the file's name and bytes."""
    with page.expect_download() as info:
        page.locator(f"#{chart_id}").get_by_role("button", name=label).click()
    return info.value.suggested_filename, Path(info.value.path()).read_bytes()


def read_csv(data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
    return list(reader.fieldnames), list(reader)


def set_gamma(page, value: str) -> None:
    box = page.locator("#param-gamma input[type=number]")
    box.fill(value)
    box.press("Enter")
    page.wait_for_function(f"() => {WORDS}.includes('γ = {value} ')", timeout=10_000)


def check_min_snr_rows(rows: list[dict[str, str]], gamma: float) -> None:
    """The CSV's Min-SNR-γ rows: one per step, each the library's weight at that step's SNR."""
    snr = get_schedule("cosine", 1000).snr
    mine = [r for r in rows if r["curve"].startswith(f"Min-SNR-γ (gamma={gamma:g}) · ")]
    assert [int(r["t"]) for r in mine] == list(range(1000))
    for t in (0, 120, 260, 261, 500, 999):
        row = mine[t]
        assert float(row["snr"]) == pytest.approx(float(snr[t]), rel=1e-12)
        want = float(loss_weight("min_snr", torch.tensor([float(row["snr"])], dtype=torch.float64), "eps", gamma=gamma))
        assert float(row["weight"]) == pytest.approx(want, rel=1e-9), (t, gamma)


def test_the_explorer_chart_downloads_its_data_and_picture_and_says_where_the_clamp_begins(browser, app_url):
    CHARTS.mkdir(parents=True, exist_ok=True)
    page = page_at(browser, app_url, 1400, 1000)
    name, data = download(page, "explorer-plot", "Save CSV")
    assert name == "minsnr-weights-eps-gamma5.csv"
    header, rows = read_csv(data)
    assert header == ["curve", "t", "snr", "weight"]
    assert {r["curve"].split(" · ")[0] for r in rows} == {
        "SNR (= plain ε-MSE)", "Constant (x0)", "Min-SNR-γ (gamma=5)", "Soft-Min-SNR-γ (gamma=5)"}
    check_min_snr_rows(rows, 5.0)
    name, png = download(page, "explorer-plot", "Save PNG")
    assert name == "minsnr-weights-eps-gamma5.png" and png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    name, svg = download(page, "explorer-plot", "Save SVG")
    root = ElementTree.fromstring(svg)
    assert name == "minsnr-weights-eps-gamma5.svg" and root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) >= 4, "the curves are paths"
    assert page.evaluate(f"() => {WORDS}") == build_explorer(params={"gamma": 5.0}).summary
    # γ moved in the page: the chart is redrawn there, and its words and downloads follow without the server.
    set_gamma(page, "2")
    assert page.evaluate(f"() => {WORDS}") == build_explorer(params={"gamma": 2.0}).summary
    name, data = download(page, "explorer-plot", "Save CSV")
    assert name == "minsnr-weights-eps-gamma2.csv"
    check_min_snr_rows(read_csv(data)[1], 2.0)
    assert download(page, "explorer-plot", "Save SVG")[0] == "minsnr-weights-eps-gamma2.svg"
    page.locator("#explorer-plot").scroll_into_view_if_needed()
    page.screenshot(path=str(CHARTS / "explorer-desktop.png"))
    page.close()


@pytest.mark.parametrize("query", ["schedule=linear&target=v&x=log_snr&strategies=snr,min_snr,p2,constant",
                                   "view=sampler&strategies=min_snr,soft_min_snr,snr,max_snr",
                                   "view=effective&sampler=logit_normal&strategies=snr,min_snr"])
def test_the_explorers_words_written_in_the_page_equal_pythons(browser, app_url, query):
    """After the page's own redraw (a linked view, then γ typed) its words are the server's for the same view."""
    page = page_at(browser, f"{app_url}?{query}", 1400, 1000)
    query_values = dict(part.split("=") for part in query.split("&"))
    displays = sorted(STRATEGIES.get(name).display_name for name in query_values["strategies"].split(","))
    # the page first shows the default view; wait for the one the link asks for (its strategies, its view)
    page.wait_for_function("([displays, view]) => { const meta = " + PLOT.format(id="explorer-plot") + ".layout.meta;"
                           " return JSON.stringify(meta.strategies.map(s => s.display).sort()) === JSON.stringify(displays)"
                           " && (view === null || meta.view === view); }",
                           arg=[displays, query_values.get("view")], timeout=15_000)
    for gamma in ("0.5", "12"):
        set_gamma(page, gamma)
        meta = page.evaluate(f"() => {PLOT.format(id='explorer-plot')}.layout.meta")
        names = [next(e.name for e in STRATEGIES if e.display_name == s["display"]) for s in meta["strategies"]]
        want = build_explorer(query_values.get("schedule", "cosine"), 1000, names, {"gamma": float(gamma)},
                              meta["target"], meta["x_axis"], meta["view"],
                              sampler=query_values.get("sampler", "uniform")).summary
        assert page.evaluate(f"() => {WORDS}") == want
    page.close()


@pytest.mark.parametrize(("size", "width", "height"), [("desktop", 1400, 1000), ("phone", 390, 844)])
def test_the_download_buttons_and_words_fit_beside_and_under_the_chart(browser, app_url, size, width, height):
    CHARTS.mkdir(parents=True, exist_ok=True)
    page = page_at(browser, app_url, width, height)
    plot = page.locator("#explorer-plot")
    label = plot.locator("label[data-testid=block-label]").bounding_box()
    buttons = [plot.get_by_role("button", name=n).bounding_box() for n in ("Save CSV", "Save PNG", "Save SVG")]
    assert all(b["x"] + b["width"] <= width for b in buttons), "every button on the screen"
    assert label["x"] + label["width"] <= buttons[0]["x"] or label["y"] + label["height"] <= buttons[0]["y"], \
        "the chart's label is not covered"
    words = page.locator("#explorer-plot-summary").bounding_box()
    chart = plot.bounding_box()
    assert words["y"] >= chart["y"] + chart["height"] - 1 and words["x"] + words["width"] <= width
    plot.scroll_into_view_if_needed()
    page.screenshot(path=str(CHARTS / f"explorer-{size}-buttons.png"))
    page.close()


def test_a_toy_runs_metrics_and_loss_chart_download_as_tables_with_a_row_per_logged_step(browser, app_url):
    CHARTS.mkdir(parents=True, exist_ok=True)
    page = page_at(browser, app_url + "?train_dataset=moons&train_steps=60", 1400, 1000)
    page.get_by_role("tab", name="Train").click()
    page.click("#train-start")
    page.wait_for_function("() => (document.querySelector('#train-status')?.innerText ?? '').includes('done')", timeout=120_000)
    link = page.locator("#train-files a[download$='.csv']")
    link.wait_for(timeout=20_000)
    with page.expect_download() as info:
        link.click()
    assert info.value.suggested_filename == "minsnr-train-metrics-min-snr-gamma5-eps-moons.csv"
    header, rows = read_csv(Path(info.value.path()).read_bytes())
    assert header == ["step", "elapsed_s", "weighted_loss", "unweighted_loss", "images_per_sec",
                      *[f"unweighted_loss_t{b * 100}_{b * 100 + 99}" for b in range(10)], "quality_swd"]
    loss = page.evaluate(f"() => {{ const d = {PLOT.format(id='train-loss')}.data[0]; return [d.x, d.y]; }}")
    quality_steps = page.evaluate(f"() => {PLOT.format(id='train-quality')}.data[0].x")
    logged = sorted(set(loss[0]) | set(quality_steps))
    assert [int(r["step"]) for r in rows] == logged and len(rows) == len(loss[0]) == 12, "one row per logged step"
    by_step = {int(r["step"]): r for r in rows}
    assert [float(by_step[s]["weighted_loss"]) for s in loss[0]] == pytest.approx(loss[1], rel=1e-6)
    assert by_step[60]["quality_swd"] != "" and by_step[5]["quality_swd"] == ""
    # The loss chart's own data, and its words, say the same.
    name, data = download(page, "train-loss", "Save CSV")
    assert name == "minsnr-train-loss-min-snr-gamma5-eps-moons.csv"
    header, chart_rows = read_csv(data)
    assert header == ["curve", "step", "weighted_loss"] and len(chart_rows) == len(loss[0])
    assert {r["curve"] for r in chart_rows} == {"Min-SNR-γ"}
    words = page.locator("#train-loss-summary").inner_text()
    assert f"last {loss[1][-1]:.3g} at step 60" in words
    assert download(page, "train-buckets", "Save PNG")[0] == "minsnr-train-loss-per-noise-level-min-snr-gamma5-eps-moons.png"
    page.locator("#train-loss").scroll_into_view_if_needed()
    page.screenshot(path=str(CHARTS / "train-desktop.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#train-loss").scroll_into_view_if_needed()
    # The chart and its toolbar fit the phone's width.
    page.wait_for_function("() => { const r = document.querySelector('#train-loss .js-plotly-plot')"
                           ".getBoundingClientRect(); return r.left >= 0 && r.right <= 390; }", timeout=10_000)
    page.screenshot(path=str(CHARTS / "train-phone.png"))
    page.screenshot(path=str(CHARTS / "train-phone-full.png"), full_page=True)
    page.close()
