"""What a student reads on screen, checked on the built page (no server): a help line under every control of the
explorer, Train and Compare tabs; the guided tour's steps (each sets what a link would, opens a tab the page has, and
quotes docs/results.md exactly); and the server's folders shown by name, never by path."""

from __future__ import annotations

import json
import math
import re

import gradio as gr
import pytest

from app import urlstate as us
from app.help import controls_in, missing_help
from app.jobs import ClassLimits
from app.main import build_app, link_fields
from app.phone import fold_narrow
from app.settings import default_settings, make_config, source_names
from app.tour import STEPS, page_fields, step_markdown, step_values
from minsnr_core.schedules import get_schedule
from minsnr_core.settings import SETTINGS

from .conftest import ROOT


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The app built with a data folder and an image folder of the server's; its tabs by id."""
    data, images = tmp_path_factory.mktemp("course-data"), tmp_path_factory.mktemp("course-images")
    demo = build_app([str(data)], [str(images)])
    return demo, {block.id: block for block in demo.blocks.values() if isinstance(block, gr.Tab)}, data, images


def test_every_control_of_the_explorer_train_compare_and_denoise_tabs_has_a_one_line_help(built):
    _, tabs, _, _ = built
    for tab in ("explorer", "train", "compare", "denoise"):
        controls = list(controls_in(tabs[tab]))
        assert len(controls) >= (5 if tab == "denoise" else 20), f"the {tab} tab's controls were not found"
        assert missing_help(tabs[tab]) == [], f"controls of the {tab} tab without help"
        assert all("\n" not in control.info for control in controls)
    by_id = {control.elem_id: control for tab in tabs.values() for control in controls_in(tab) if control.elem_id}
    # The range is the control's own (the server's cap on steps, the slider's γ), what it is comes from the table or
    # the registry, and what to watch is said once.
    assert "0.01 to 100" in by_id["param-gamma"].info and "shaded band" in by_id["param-gamma"].info
    assert by_id["train-param-gamma"].info == by_id["compare-param-gamma"].info
    assert f"0 to {ClassLimits().max_steps:,}" in by_id["train-steps"].info
    assert SETTINGS["class_conditional"].auto_help.removeprefix("on ") in by_id["train-labels"].info
    assert by_id["train-param-k"].info.startswith("A parameter of P2; 0.1 to 100")
    assert SETTINGS["weighting"].help.lower() in by_id["compare-weightings"].info.lower()


def test_each_tour_step_sets_what_a_link_with_its_settings_sets_and_opens_a_tab_of_the_page(built):
    _, tabs, _, _ = built
    fields = link_fields(ClassLimits())
    keys = [f.key for f in fields]
    assert [s.title for s in STEPS] == ["Why weight the loss?", "SNR and schedules", "One weight in three spaces",
                                        "The clamp and γ", "Train and compare", "What we measured"]
    for number, step in enumerate(STEPS, start=1):
        assert step.tab in tabs, step.tab
        read, notices = us.read_query(fields, step.settings)
        assert notices == [] and set(step.settings) <= set(keys)
        values = step_values(fields, number)
        for key, value, expected in zip(keys, values, read, strict=True):
            explorer_step = any(not k.startswith("train_") for k in step.settings)
            if key in step.settings or (explorer_step and not key.startswith("train_")):
                assert value == expected, (number, key)  # the step's value, or the explorer's default: its view
            elif not key.startswith("train_") or not any(k.startswith("train_") for k in step.settings):
                assert isinstance(value, type(gr.skip())), (number, key)  # left as the student has it
        text = step_markdown(number)
        assert step.text in text and f"?tour={number}" in text
        assert f"<summary>Question: {step.question}</summary>" in text and step.answer in text.split("</summary>")[1]
    # ?tour=N and ?tab=ID are read like every link parameter: a value outside the tour or the tabs is refused.
    page = page_fields(list(tabs))
    assert us.read_query(page, {"tour": "3", "tab": "train"}) == (["train", 3], [])
    for bad in ({"tour": str(len(STEPS) + 1)}, {"tour": "0"}, {"tab": "admin"}):
        assert us.read_query(page, bad)[1], bad


def test_the_first_step_quotes_the_cosine_schedules_snr():
    snr = get_schedule("cosine", 1000).snr
    answer = STEPS[0].answer
    assert f"{snr[0]:.1e}" == "2.4e+04" and "2.4·10⁴ at t = 0" in answer
    assert f"{snr[-1]:.1e}" == "2.4e-09" and "2.4·10⁻⁹ at t = 999" in answer
    assert round(math.log10(snr[0] / snr[-1])) == 13 and "13 orders of magnitude" in answer


def test_what_we_measured_quotes_docs_results_md_exactly():
    """Every number of step 6 is a number of docs/results.md, every interval one of its section 1, each beside its n."""
    results = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    section = results[results.index("## 1. "):results.index("## 2. ")]
    step = STEPS[-1]
    said = " ".join([step.text, step.question, step.answer])
    intervals = re.findall(r"\[[^\]]+\]", said)
    assert len(intervals) >= 6
    for interval in intervals:
        assert interval in section, interval
    for number in re.findall(r"(?<![\w.])[−+]?\d+(?:\.\d+)?×?(?![\w.])", said):
        assert re.search(rf"(?<![\w.]){re.escape(number)}(?![\w.])", results), number
    for quoted in ("1.97× [1.66, 2.33]", "1.37× [1.09, 1.74]", "+0.0 [−4.4, +4.4]", "−44.6 [−67.4, −21.7]"):
        assert quoted in section and quoted.split(" ")[-1] in said
    assert "5 paired seeds" in step.text and "p = 0.057" in step.text and "not established" in step.text


def test_the_page_shows_data_folders_by_name_and_the_server_maps_the_name_back(built, tmp_path):
    demo, tabs, data, images = built
    page = json.dumps(demo.config, default=str)  # what the page is sent (functions: their names)
    assert str(data) not in page and str(images) not in page, "a server path reached the page"
    dropdowns = [c for tab in ("train", "compare") for c in controls_in(tabs[tab]) if (c.elem_id or "").endswith("-data-root")]
    assert len(dropdowns) == 2 and all(d.choices == [(data.name, data.name)] for d in dropdowns)
    assert source_names(["/srv/a/data", "/home/b/data", "/x/cifar/"]) == {
        "data": "/srv/a/data", "data (2)": "/home/b/data", "cifar": "/x/cifar"}
    settings = default_settings(data_root=data.name, dataset="moons")
    assert make_config({}, "min_snr", settings, [str(data)]).data_root == str(data)
    with pytest.raises(ValueError, match="data folder must be one of the server's, by name"):
        make_config({}, "min_snr", {**settings, "data_root": str(data)}, [str(data)])


def test_a_folded_text_keeps_its_heading_and_its_whole_body():
    folded = fold_narrow("# Title\nFirst line\nsecond line", "More")
    assert folded.startswith("# Title\n") and "<summary>More</summary>" in folded
    assert "First line\nsecond line" in folded.split("</summary>")[1].split("</details>")[0]
