import time

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError


def test_explorer_endpoint_of_the_running_app(app_url):
    client = Client(app_url, verbose=False)
    result = client.predict("linear", 1000, ["min_snr", "constant"], "eps", "t", 5.0, False, api_name="/explorer")
    names = [trace["name"] for trace in result["traces"]]
    assert names == ["Min-SNR-γ (gamma=5)", "Constant (x0)"]
    min_snr = result["traces"][0]["y"]
    assert min_snr[0] < 1e-3 and min_snr[-1] == 1.0
    assert result["traces"][0]["mean_weight"] == pytest.approx(sum(min_snr) / 1000)
    # With a timestep sampler: the weights of the same expected loss under uniform t, and the sampler's T·p(t).
    sampled = client.predict("linear", 1000, ["min_snr"], "eps", "t", 5.0, False, "logit_normal", api_name="/explorer")
    assert [t["name"] for t in sampled["traces"]] == ["Min-SNR-γ (gamma=5)", "Logit-normal T·p(t)"]
    density = sampled["traces"][1]["y"]
    assert sampled["traces"][0]["y"][500] == pytest.approx(min_snr[500] * density[500])
    # Zero terminal SNR: the unbounded constant-x0 ε weight loses its last point, with a notice.
    result = client.predict("linear", 1000, ["constant"], "eps", "t", 5.0, True, api_name="/explorer")
    assert len(result["traces"][0]["x"]) == 999 and "unbounded" in result["notices"][0]


@pytest.mark.parametrize(("args", "message"), [
    (("cosine", 10_000_000, ["min_snr"], "eps", "t", 5.0, False), "num_timesteps"),
    (("cosine", 1000, ["fancy"], "eps", "t", 5.0, False), "fancy"),
    (("cosine", 1000, ["min_snr"], "eps", "t", 0.0, False), "gamma"),
    (("cosine", 1000, ["min_snr"], "score", "t", 5.0, False), "target"),
    (("cosine", 1000, ["min_snr"], "eps", "t", 5.0, False, "importance"), "sampler: expects one of uniform"),
    (("cosine", 1000, ["min_snr"], "eps", "t", 5.0, False, "uniform", None, 0.0), r"schedule_shift must be a number in"),
])
def test_explorer_endpoint_refuses_what_its_controls_do_not_allow(app_url, args, message):
    """T = 10 million once grew the server by 4 GB: now every value is checked first, and the client is told why."""
    client = Client(app_url, verbose=False)
    started = time.time()
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/explorer")
    assert time.time() - started < 10


def test_denoise_marks_each_step_at_the_weight_the_run_trained_it_with(tmp_path):
    from app.denoise_ui import denoise, weight_marker
    from minsnr_core.runs import load_run
    from minsnr_core.training import TrainConfig, train

    config = TrainConfig(dataset="moons", steps=3, toy_size=64, batch_size=16, preview_every=0, device="cpu",
                         weighting="min_snr", weighting_params={"gamma": 2.0}, out_dir=str(tmp_path))
    for _ in train(config):
        pass
    result = denoise(str(tmp_path), "ddim", 5, 0, 1.0)
    weights = load_run(tmp_path, "cpu").diffusion.weights
    assert result.step_weights == [float(weights[t]) for t in result.trajectory.timesteps]
    assert (result.weighting, result.target, result.kind) == ("Min-SNR-γ", "eps", "points")
    marker = weight_marker(result, 2).data[1]
    assert marker.y[0] == result.step_weights[2] and f"t = {result.trajectory.timesteps[2]}" in marker.name


def test_the_budget_note_quotes_the_shipped_csv_at_the_last_evaluation_within_the_budget():
    from app.measured import RESULTS_CSV, budget_note
    from minsnr_core.experiment import read_csv

    rows = [r for r in read_csv(RESULTS_CSV) if r["group"] == "comparison" and r["target"] == "eps"
            and r["step"] == 500 and r["weighting"] == "min_snr"]
    share = sum(r["confident"] for r in rows) / len(rows)
    note = budget_note("mnist", "eps", 740, ["snr", "min_snr"])
    assert "step 500" in note and f"Min-SNR-γ {share:.1%}" in note and f"{len(rows)} seeds" in note
    assert "the `mnist` UNet at batch 64 and learning rate 0.002, unconditional" in note, "the settings it describes"
    assert "was not measured" in budget_note("mnist", "eps", 100) and budget_note("moons", "eps", 500) == ""


def test_the_compare_results_table_and_loss_plot_use_comparable_numbers():
    from app.figures import loss_figure
    from app.training_ui import results_table
    from minsnr_core.recorder import RunHistory
    from minsnr_core.training import TrainConfig, TrainEvent

    histories = []
    for fds in ([300.0, 200.0, 150.0], [250.0, 140.0, 90.0]):
        history = RunHistory()
        for step, fd in zip((100, 200, 300), fds, strict=True):
            history.add(TrainEvent("log", step, 1.0, loss=10.0 * step, unweighted_loss=1.0 / step))
            history.add(TrainEvent("metric", step, 1.0, metric={"fd": fd, "confident": 0.1}))
        history.add(TrainEvent("done", 300, 1.0))
        histories.append(history)

    class Finished:  # the parts of a finished comparison job the table reads
        finished, labels, histories = True, ["plain", "Min-SNR"], None
        configs = [TrainConfig(metric_samples=200)]

    job = Finished()
    job.histories = histories
    table = results_table(job)
    # Min-SNR reaches plain's final 150 between step 100 (250) and 200 (140): 100 + 100 · 100/110 ≈ 191.
    assert "| Min-SNR | 90 (step 300) | 191 |" in table and "| plain | 150 (step 300) | 300 |" in table
    assert "200 samples" in table
    figure = loss_figure(list(zip(job.labels, histories, strict=True)), unweighted=True, target="eps")
    assert list(figure.data[0].y) == [1 / 100, 1 / 200, 1 / 300] and "ε (noise) MSE" in figure.layout.yaxis.title.text


def test_a_missing_dataset_names_the_apps_data_root_flag(tmp_path):
    from app.jobs import JobManager
    from minsnr_core.training import TrainConfig

    manager = JobManager(1, tmp_path / "runs")
    try:
        job = manager.submit("data-owner-token-00000001", [TrainConfig(dataset="mnist", data_root=str(tmp_path),
                                                                       download=False, steps=2)])
        deadline = time.time() + 30
        while not job.finished and time.time() < deadline:
            time.sleep(0.1)
        assert job.status == "error" and "--data-root" in job.message and "DataUnavailableError" not in job.message
    finally:
        manager.close()
