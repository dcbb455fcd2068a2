"""Every chart tells its curves apart without colour, says in words what it draws, and names its downloads; a run's
metrics come as a table (no browser here: tests/test_charts_browser.py downloads them in one)."""

import csv
import itertools
import math
import time
from pathlib import Path

import numpy as np
import pytest

from app.charts import describe_figure, describe_runs, rank_curves, words_html
from app.explorer import build_explorer
from app.figures import bucket_figure, loss_figure, metric_figure, weight_figure
from app.measured import measured_view
from minsnr_core.recorder import RunHistory, metrics_table, write_metrics_csv
from minsnr_core.schedules import get_schedule
from minsnr_core.styles import BACKGROUND, PALETTE, STYLE_ORDER, chart_styles, weighting_style
from minsnr_core.training import TrainEvent
from minsnr_core.weighting import STRATEGIES


def contrast(a: str, b: str) -> float:
    """WCAG 2's contrast ratio of two #RRGGBB colours."""
    def luminance(color: str) -> float:
        channels = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def history(losses, steps=(100, 200, 300), metrics=None) -> RunHistory:
    run = RunHistory()
    for step, loss in zip(steps, losses, strict=True):
        run.add(TrainEvent("log", step, 1.0, loss=loss, unweighted_loss=loss / 2, bucket_losses=[loss, loss / 10]))
    for step, value in (metrics or {}).items():
        run.add(TrainEvent("metric", step, 1.0, metric={"fd": value}))
    return run


def styles_of(figure) -> list[tuple]:
    """What tells each curve of a figure apart besides its colour: its dash and its marker (None when not drawn)."""
    return [(trace.line.dash or "solid", trace.marker.symbol if "markers" in (trace.mode or "") else None)
            for trace in figure.data]


def test_the_palette_keeps_3_to_1_on_white_and_each_weighting_its_own_dash_colour_and_marker():
    assert all(contrast(color, BACKGROUND) >= 3 for color in PALETTE), [contrast(c, BACKGROUND) for c in PALETTE]
    assert set(STYLE_ORDER) == set(STRATEGIES.names()), "every weighting has its place in the style order"
    styles = [weighting_style(name) for name in STRATEGIES.names()]
    assert len({(s.color, s.dash) for s in styles}) == len(styles) and len({s.symbol for s in styles}) == len(styles)
    # By registry name or display name alike, so a run's label gets its weighting's style.
    assert all(weighting_style(e.display_name) == weighting_style(e.name) for e in STRATEGIES)
    # A curve that names no weighting takes a style no weighting of its chart has.
    mixed = chart_styles(["min_snr", "snr+logit_normal", "plain"])
    assert len({(s.dash, s.symbol) for s in mixed}) == 3 and mixed[0] == weighting_style("min_snr")


@pytest.mark.parametrize("case", ["explorer", "explorer-all", "loss", "quality", "buckets", "learned", "measured"])
def test_any_two_curves_of_a_chart_differ_in_dash_or_marker_not_just_colour(case):
    runs = [("SNR (= plain ε-MSE)", history([1.0, 0.5, 0.25], metrics={100: 30.0, 300: 20.0})),
            ("Min-SNR-γ", history([0.8, 0.4, 0.2], metrics={100: 25.0, 300: 15.0})),
            ("a run without a weighting's name", history([0.9, 0.3, 0.1], metrics={100: 28.0, 300: 18.0}))]
    learned = RunHistory()
    learned.weight_curves, learned.samples_step = {"t": [0, 1, 2], "fixed": [1.0, 1.0, 1.0], "learned": [2.0, 1.0, 0.5]}, 9
    figure = {
        "explorer": lambda: build_explorer().figure,
        "explorer-all": lambda: build_explorer(strategies=STRATEGIES.names()).figure,
        "loss": lambda: loss_figure(runs, unweighted=True, target="eps"),
        "quality": lambda: metric_figure(runs),
        "buckets": lambda: bucket_figure(runs[0][1], 1000, "eps"),
        "learned": lambda: weight_figure(learned, "Min-SNR-γ", "EDM2 learned"),
        "measured": lambda: measured_view("mnist", "eps", "fd")[0],
    }[case]()
    curves = [trace for trace in figure.data if trace.showlegend is not False and trace.fill in (None, "none")]
    assert len(curves) >= 2
    styles = styles_of(figure.__class__(data=curves))
    for (i, a), (j, b) in itertools.combinations(enumerate(styles), 2):
        assert a != b, f"{case}: curves {curves[i].name!r} and {curves[j].name!r} differ only in colour"
    assert figure.layout.template.layout.plot_bgcolor == "white", "the palette's contrast is for a white plot area"


def test_a_weighting_keeps_its_style_in_every_chart():
    explorer = build_explorer(strategies=["snr", "min_snr"]).figure
    loss = loss_figure([("SNR (= plain ε-MSE)", history([1.0, 0.5, 0.25])), ("Min-SNR-γ", history([0.8, 0.4, 0.2]))])
    measured = {t.name: t for t in measured_view("mnist", "eps", "fd")[0].data if t.showlegend is not False}
    for index, name in enumerate(("SNR (= plain ε-MSE) (baseline)", "Min-SNR-γ")):
        drawn = {(t.line.color, t.line.dash, t.marker.symbol) for t in (explorer.data[index], loss.data[index],
                                                                        measured[name])}
        assert len(drawn) == 1, (name, drawn)


def test_the_explorer_in_words_names_where_the_clamp_begins_as_gamma_moves_from_5_to_2():
    snr = get_schedule("cosine", 1000).snr.numpy()
    words = {}
    for gamma in (5.0, 2.0):
        words[gamma] = build_explorer(params={"gamma": gamma}).summary
        last = int(np.flatnonzero(snr > gamma).max())
        assert (f"where SNR > γ = {gamma:g} (log-SNR λ > {math.log(gamma):.3g}), at t = 0–{last} of this schedule"
                in words[gamma]), words[gamma]
    assert words[5.0] != words[2.0]
    # Below the clamp Min-SNR's ε weight equals the plain ε loss's (both 1): the text names that range as a tie, from
    # the first step past the clamp (SNR ≤ γ) on, and the plain loss alone as the largest inside the clamp.
    last = int(np.flatnonzero(snr > 2).max())
    assert f"t 0–{last} (SNR {snr[0]:.3g} to {snr[last]:.3g}): SNR (= plain ε-MSE);" in words[2.0]
    assert f"t {last + 1}–" in words[2.0] and "SNR (= plain ε-MSE) and Min-SNR-γ (equal)" in words[2.0]
    # The weight range, from the curves: the constant-x0 ε weight 1/SNR spans the most.
    constant = 1 / snr
    assert f"from {constant.min():.3g} (Constant (x0), t = 0) to {constant.max():.3g} (Constant (x0), t = 999)" in words[2.0]
    # A γ above every step's SNR: no clamp.
    assert "never bites" in build_explorer(params={"gamma": 100.0}, schedule="linear", num_timesteps=10).summary


def test_a_loss_chart_in_words_gives_each_runs_last_lowest_and_trend_and_the_best():
    figure = loss_figure([("plain", history([1.0, 0.5, 0.25])), ("Min-SNR", history([0.8, 0.1, 0.2]))],
                         unweighted=True, target="eps")
    text = describe_runs(figure, higher_is_better=False)
    assert "Unweighted loss (one scale for every weighting): ε (noise) MSE, log scale against step, 2 curves." in text
    assert "- plain: last 0.125 at step 300; from 0.5 at step 100, down 4×; lowest 0.125 (step 300)" in text
    assert "- Min-SNR: last 0.1 at step 300; from 0.4 at step 100, down 4×; lowest 0.05 (step 200)" in text
    assert text.endswith("Best at its last point (lowest is better): Min-SNR, 0.1 at step 300.")
    quality = metric_figure([("plain", history([1, 1, 1], metrics={100: 30.0, 300: 20.0})),
                             ("Min-SNR", history([1, 1, 1], metrics={100: 25.0, 300: 22.0}))])
    assert describe_runs(quality, higher_is_better=False).endswith("lowest is better): plain, 20 at step 300.")
    assert describe_runs(quality, higher_is_better=True).endswith("highest is better): Min-SNR, 22 at step 300.")
    assert describe_figure(loss_figure([])) == "Nothing drawn yet."


def test_the_noise_levels_in_words_rank_the_levels_and_fold_their_list():
    run = history([1.0, 0.5, 0.25])
    figure = bucket_figure(run, 1000, "eps")
    text = describe_figure(figure, "step", rank=True)
    assert "At their last points t 0–499 is highest (0.25) and t 500–999 lowest (0.025)." in text
    found = [(t.name, np.asarray(t.x, float), np.asarray(t.y, float)) for t in figure.data]
    assert "Fell most since its first point: t 0–499 (4× lower)." in rank_curves(found)
    many = words_html("Head.\n" + "\n".join(f"- curve {i} <b>" for i in range(6)) + "\nTail.")
    assert many.startswith('<div class="chart-words"><p><strong>The chart in words.</strong> <span>Head.</span></p>')
    assert "<details><summary>Each curve (6)</summary><ul><li>curve 0 &lt;b&gt;</li>" in many and "<p>Tail.</p>" in many
    assert "<details>" not in words_html("Head.\n- one\n- two")


def test_each_chart_names_its_downloads_and_csv_columns():
    assert build_explorer().figure.layout.meta["export"] == {
        "name": "minsnr-weights-eps-gamma{gamma}", "x": "t", "y": "weight", "custom": [None, "snr"]}
    other = build_explorer(strategies=["p2", "snr"], target="v", x_axis="log_snr", view="effective", schedule="linear")
    assert other.figure.layout.meta["export"] == {
        "name": "minsnr-effective-weights-v-k{k}-p2-gamma{p2_gamma}-linear-by-log-snr", "x": "log_snr",
        "y": "effective_weight", "custom": ["t", "snr"]}
    run = history([1.0, 0.5, 0.25], metrics={300: 20.0})
    assert loss_figure([("x", run)], file_name="minsnr-train-loss-r").layout.meta["export"]["name"] == "minsnr-train-loss-r"
    assert metric_figure([("x", run)]).layout.meta["export"]["y"] == "frechet_distance"
    assert bucket_figure(run, 1000, "v").layout.meta["export"]["y"] == "unweighted_v_mse"


def test_a_runs_metrics_table_has_one_row_per_logged_step_with_its_quality(tmp_path):
    records = [{"kind": "log", "step": 5, "elapsed_s": 0.1, "loss": 2.0, "unweighted_loss": 1.0, "images_per_sec": 50.0,
                "bucket_losses": [1.5, None]},
               {"kind": "log", "step": 10, "elapsed_s": 0.2, "loss": 1.0, "unweighted_loss": 0.5, "images_per_sec": 60.0,
                "bucket_losses": [0.7, 0.3]},
               {"kind": "metric", "step": 10, "elapsed_s": 0.3, "metric": {"swd": 0.25}},
               {"kind": "stopped", "step": 12, "elapsed_s": 0.4, "message": "stopped on request"}]
    columns, rows = metrics_table(records, num_timesteps=999)
    assert columns == ["step", "elapsed_s", "weighted_loss", "unweighted_loss", "images_per_sec",
                       "unweighted_loss_t0_499", "unweighted_loss_t500_998", "quality_swd"]
    assert rows == [[5, 0.1, 2.0, 1.0, 50.0, 1.5, None, None], [10, 0.2, 1.0, 0.5, 60.0, 0.7, 0.3, 0.25]]
    with write_metrics_csv(records, tmp_path / "m.csv").open() as file:
        table = list(csv.DictReader(file))
    assert [r["step"] for r in table] == ["5", "10"] and table[0]["quality_swd"] == "" and table[1]["quality_swd"] == "0.25"
    assert "unweighted_loss_bucket1" in table[0], "without T the buckets are numbered"


def test_a_comparisons_runs_each_offer_their_metrics_as_a_table_named_after_the_run(tmp_path):
    from app.jobs import JobManager
    from minsnr_core.config import TrainConfig

    settings = {"dataset": "moons", "steps": 20, "toy_size": 256, "batch_size": 32, "preview_every": 0, "log_every": 5,
                "checkpoint_every": 0, "device": "cpu", "target": "eps"}
    manager = JobManager(1, tmp_path / "runs")
    try:
        job = manager.submit("chart-owner-token-0000001", [
            TrainConfig(weighting="snr", **settings),
            TrainConfig(weighting="min_snr", weighting_params={"gamma": 2.5}, **settings)], kind="compare")
        assert manager.downloads(job) == [], "nothing before the job has ended"
        deadline = time.time() + 120
        while not job.finished and time.time() < deadline:
            time.sleep(0.05)
        assert job.status == "done", job.message
        tables = {Path(f).name: f for f in manager.downloads(job) if f.endswith(".csv")}
        assert sorted(tables) == ["minsnr-compare-metrics-run1-snr-eps-moons.csv",
                                  "minsnr-compare-metrics-run2-min-snr-gamma2.5-eps-moons.csv"]
        for name, history in zip(sorted(tables), job.histories, strict=True):
            with open(tables[name]) as file:
                rows = list(csv.DictReader(file))
            assert [int(r["step"]) for r in rows] == history.steps == [5, 10, 15, 20]
            assert [float(r["weighted_loss"]) for r in rows] == pytest.approx(history.losses)
    finally:
        manager.close()


def test_a_scatter_of_samples_is_described_from_its_points_and_downloads_them():
    import torch

    from app.charts import describe_points
    from app.figures import scatter_figure

    points = torch.tensor([[0.0, 0.0], [2.0, 4.0], [4.0, 8.0]])
    figure = scatter_figure(points, "Samples at step 7", torch.zeros(5, 2), file_name="minsnr-train-samples-step7")
    words = describe_points(figure)
    assert words.startswith("Samples at step 7: 2 point clouds.")
    assert "model: 3 points; mean (2, 4)" in words and "data: 5 points; mean (0, 0)" in words
    assert figure.layout.meta["export"]["name"] == "minsnr-train-samples-step7"
    assert describe_points(scatter_figure(None)) == "No samples drawn yet."
