"""The explorer's weight table and its check of an uploaded file, in Chromium against the real app: the table saved
by the page equals the CLI's for the same view (after γ typed in the page), a port bug is named from an upload, the
file never reaches the server's disk, a bad file gets one clear sentence, and the open panel keeps axe-core
at zero serious or critical violations."""

import glob
import os
import tempfile

import numpy as np

from minsnr_core.schedules import get_schedule

from .cli_run import run_cli
from .test_accessibility import RUN_AXE, WCAG_TAGS, axe_source
from .test_charts_browser import set_gamma
from .test_classroom import page_at


def open_panel(page):
    page.locator("#weights-panel").get_by_text("Weight tables, and checking your own weights").click()
    page.locator("#weights-table-button").wait_for(state="visible")


def test_the_weight_table_saved_by_the_page_is_the_clis_for_the_same_view(browser, app_url):
    page = page_at(browser, f"{app_url}?schedule=linear&target=v&strategies=min_snr", 1400, 1000)
    page.wait_for_function("() => document.querySelector('#explorer-plot .js-plotly-plot').layout.meta.target === 'v'")
    set_gamma(page, "3")
    open_panel(page)
    with page.expect_download() as info:
        page.locator("#weights-table-button").click()
    assert info.value.suggested_filename == "minsnr-weight-table-linear-T1000-v-min_snr-gamma3.csv"
    saved = open(info.value.path(), encoding="utf-8").read()
    cli = run_cli("weights", "table", "--schedule", "linear", "--target", "v", "--strategy", "min_snr", "--gamma", "3")
    assert saved == cli.stdout, "the page saves exactly the CLI's golden table"
    assert "1,000 rows, columns t, alpha_bar, snr, log_snr, weight" in page.locator("#weights-table-notice").inner_text()
    page.close()


def test_an_uploaded_port_bug_is_named_its_copy_deleted_and_a_bad_file_refused(browser, app_url, tmp_path):
    page = page_at(browser, f"{app_url}?target=v&strategies=min_snr", 1400, 1000)
    page.wait_for_function("() => document.querySelector('#explorer-plot .js-plotly-plot').layout.meta.target === 'v'")
    open_panel(page)
    snr = get_schedule("cosine", 1000).snr.numpy()
    bug = tmp_path / "my_v_weights.csv"
    bug.write_text("t,weight\n" + "".join(f"{t},{w!r}\n" for t, w in enumerate((np.minimum(snr + 1, 5) / (snr + 1))
                                                                               .tolist())))
    before = set(get_upload_folder_files())
    page.locator("#weights-upload input[type=file]").set_input_files(str(bug))
    verdict = page.locator("#weights-verdict")
    verdict.get_by_text("Known port bug").wait_for(timeout=60_000)
    words = verdict.inner_text()
    assert "SNR + 1 through the ε formula" in words and "issue #5654" in words and "cosine schedule, T = 1000" in words
    assert not [p for p in set(get_upload_folder_files()) - before if p.endswith("my_v_weights.csv")], \
        "the page sends the file's text: no copy of it is stored on the server"
    bad = tmp_path / "bad.csv"
    bad.write_text("t,weight\n0,1\n1,abc\n")
    page.locator("#weights-upload input[type=file]").set_input_files(str(bad))
    verdict.get_by_text("row 2 (line 3): weight must be a number, got 'abc'").wait_for(timeout=30_000)
    page.add_script_tag(content=axe_source())
    for width, height in ((1400, 1000), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        serious = [v for v in page.evaluate(RUN_AXE, WCAG_TAGS) if v["impact"] in ("serious", "critical")]
        assert serious == [], (width, serious)
    page.close()


def get_upload_folder_files():
    """Every file under the apps' Gradio caches on this machine (each app keeps its own in its private folder)."""
    folders = glob.glob(os.path.join(tempfile.gettempdir(), "minsnr-app-*", "gradio-cache"))
    return [os.path.join(folder, name) for root in folders for folder, _, names in os.walk(root) for name in names]


def test_the_app_saves_the_explorer_as_the_one_html_file_the_cli_writes(browser, app_url, tmp_path):
    from app.export_explorer import main as export

    page = page_at(browser, app_url, 1400, 1000)
    with page.expect_download(timeout=60_000) as info:
        page.locator("#explorer-file-button").click()
    assert info.value.suggested_filename == "minsnr-explorer.html"
    export([str(tmp_path / "cli.html")])
    assert open(info.value.path(), "rb").read() == (tmp_path / "cli.html").read_bytes()
    page.close()
