"""Runs trained side by side (train_side_by_side, the Compare tab): each run computes what it computes alone (exactly
when each takes its own steps; the batched step's tolerance is tests/test_grouped.py's), the runs advance together,
each time budget counts the run's own time, and Stop stops them all. Real training steps."""

import threading
import time

import pytest
import torch

from app.jobs import JobManager
from minsnr_core.checkpoint import load_checkpoint
from minsnr_core.recorder import RunHistory
from minsnr_core.side_by_side import train_side_by_side
from minsnr_core.training import TrainConfig, train

WEIGHTINGS = ["snr", "min_snr", "p2"]


def toy(weighting, **extra):
    settings = {"dataset": "moons", "weighting": weighting, "target": "eps", "steps": 60, "toy_size": 256,
                "batch_size": 32, "log_every": 10, "preview_every": 30, "metric_every": 30, "metric_samples": 64,
                "preview_sample_steps": 5, "checkpoint_every": 0, "seed": 3, "device": "cpu", **extra}
    return TrainConfig(**settings)


def numbers(event):
    """What an event says about the run's computation (not its timing)."""
    return (event.kind, event.step, event.loss, event.unweighted_loss, event.bucket_losses, event.metric)


def same_tensors(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_tensors(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_each_run_side_by_side_computes_what_it_computes_alone(tmp_path):
    alone = []
    for index, weighting in enumerate(WEIGHTINGS):
        alone.append(list(train(toy(weighting, out_dir=str(tmp_path / f"alone{index}")))))
    together = [[] for _ in WEIGHTINGS]
    order = []
    configs = [toy(w, out_dir=str(tmp_path / f"together{i}")) for i, w in enumerate(WEIGHTINGS)]
    for index, event in train_side_by_side(configs, group=False):
        together[index].append(event)
        order.append((index, event.kind, event.step))
    for index in range(len(WEIGHTINGS)):
        assert [numbers(e) for e in together[index]] == [numbers(e) for e in alone[index]]
        samples = [(e.samples, t.samples) for e, t in zip(alone[index], together[index], strict=True) if e.samples is not None]
        assert len(samples) == 2 and all(torch.equal(a, b) for a, b in samples)
        kept_alone = load_checkpoint(tmp_path / f"alone{index}" / "checkpoint.pt")
        kept_together = load_checkpoint(tmp_path / f"together{index}" / "checkpoint.pt")
        for part in ("model", "ema", "optimizer", "generator", "step"):
            assert same_tensors(kept_alone[part], kept_together[part]), part
    # The runs are different runs (a test of the above that cannot pass by comparing a run with itself).
    assert together[0][-2].metric != together[1][-2].metric
    # They advance together: no run logs a step while another has not yet logged the step before it.
    logged = {index: 0 for index in range(len(WEIGHTINGS))}
    for index, kind, step in order:
        if kind == "log":
            assert all(last >= step - 10 for last in logged.values()), order
            logged[index] = step


@pytest.mark.parametrize("group", [False, True])
def test_each_time_budget_counts_the_runs_own_time(group):
    budget_s = 1.8
    configs = [toy(w, steps=None, minutes=budget_s / 60, preview_every=0, metric_every=0) for w in WEIGHTINGS[:2]]
    began = time.perf_counter()
    ends = {index: event for index, event in train_side_by_side(configs, group=group) if event.kind == "done"}
    wall = time.perf_counter() - began
    assert sorted(ends) == [0, 1]
    # Each run had its own budget, not a share of one: in turn as one after the other would; in one batched step
    # both at once, so the two budgets pass together.
    assert all(budget_s <= end.elapsed_s <= budget_s + 1.5 for end in ends.values()), ends
    assert wall >= 2 * budget_s if not group else wall < 2 * budget_s
    assert all(end.step > 10 for end in ends.values())


def test_stop_stops_every_run_side_by_side():
    stop = threading.Event()
    last = {}
    for index, event in train_side_by_side([toy(w, steps=100_000) for w in WEIGHTINGS], stop=stop):
        last[index] = event
        if event.kind == "log" and event.step >= 20:
            stop.set()
    assert [last[i].kind for i in range(len(WEIGHTINGS))] == ["stopped"] * len(WEIGHTINGS)


def test_a_comparison_grows_every_runs_curve_at_once(tmp_path):
    """The app's Compare job: the second weighting has logged steps before the first has finished, each run's
    metrics are in its own folder, and the job ends done."""
    manager = JobManager(1, tmp_path)
    job = manager.submit("owner-token-0000000000000000", [toy(w, steps=200) for w in WEIGHTINGS[:2]],
                         kind="compare")
    seen = []
    deadline = time.time() + 120
    while not job.finished and time.time() < deadline:
        seen.append((job.histories[0].status, job.histories[1].step))
        time.sleep(0.005)
    assert job.status == "done", job.message
    assert any(status == "running" and step > 0 for status, step in seen), "the runs trained one after the other"
    assert all(h.status == "done" and h.step == 200 for h in job.histories)
    assert all((run_dir / "metrics.jsonl").stat().st_size > 0 for run_dir in job.run_dirs)
    manager.close()


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("fails", [0, 1])
def test_a_run_that_diverges_side_by_side_leaves_the_other_running(tmp_path, monkeypatch, fails, batched):
    from minsnr_core import side_by_side

    real = side_by_side.load_dataset

    def poisoned_for_seed_99(*args, **kwargs):  # the run with seed 99 trains on NaN points: its loss is NaN
        data = real(*args, **kwargs)
        return torch.full_like(data, float("nan")) if kwargs.get("seed") == 99 else data

    monkeypatch.setattr(side_by_side, "load_dataset", poisoned_for_seed_99)
    manager = JobManager(1, tmp_path, batched_compare=batched)
    configs = [toy("min_snr", steps=60), toy("snr", steps=60)]
    configs[fails] = toy("snr", steps=60, seed=99)
    job = manager.submit("owner-token-0000000000000001", configs, ["first", "second"], kind="compare")
    deadline = time.time() + 120
    while not job.finished and time.time() < deadline:
        time.sleep(0.02)
    assert job.status == "error"
    assert job.histories[fails].status == "error" and job.histories[1 - fails].status == "done"
    assert job.histories[1 - fails].step == 60
    assert job.message.startswith(["first", "second"][fails] + ": loss became"), job.message
    manager.close()


def test_a_run_that_raises_side_by_side_ends_alone_with_its_error(monkeypatch):
    """An exception in one run (here its preview fails) ends that run with an error event naming it; the other run
    trains to its end."""
    from minsnr_core import training

    real = training.preview_samples

    def failing_for_seed_99(run, stop=None):
        if run.config.seed == 99:
            raise RuntimeError("the preview failed")
        return real(run, stop)

    monkeypatch.setattr(training, "preview_samples", failing_for_seed_99)
    ends = {}
    for index, event in train_side_by_side([toy("min_snr"), toy("snr", seed=99)]):
        ends[index] = event
    assert ends[0].kind == "done" and ends[0].step == 60
    assert ends[1].kind == "error" and ends[1].message == "RuntimeError: the preview failed" and ends[1].step == 30


def test_a_batched_comparison_says_which_runs_take_their_own_steps(tmp_path, monkeypatch):
    """A server started with --batched-compare: the two runs that share a model step together, the third (another
    batch size) takes its own steps, and the page's status says so; the time left adds the group's longest once."""
    from app.job_text import status_text
    from minsnr_core.grouped import GroupedStep

    sizes = []
    real = GroupedStep.__call__
    monkeypatch.setattr(GroupedStep, "__call__", lambda self, runs, *rest: sizes.append(len(runs)) or real(self, runs, *rest))
    manager = JobManager(1, tmp_path, batched_compare=True)
    configs = [toy("min_snr", steps=200), toy("snr", steps=200), toy("p2", steps=200, batch_size=16)]
    job = manager.submit("owner-token-0000000000000002", configs, ["a", "b", "c"], kind="compare")
    assert job.batched and job.alone_reasons() == ["", "", "no other run has its model, data, batch size and device"]
    texts = []
    deadline = time.time() + 120
    while not job.finished and time.time() < deadline:
        texts.append(status_text(manager, job))
        time.sleep(0.01)
    assert job.status == "done", job.message
    assert all(h.status == "done" and h.step == 200 for h in job.histories)
    assert sizes == [2] * 200  # the two runs that share a model took every step together
    assert any("runs that share a model in one batched step" in text for text in texts)
    final = status_text(manager, job)
    assert "runs that share a model in one batched step" in final
    assert "c: step **200** / 200 (its own steps: no other run has its model" in final
    for history, eta in zip(job.histories, (30.0, 40.0, 5.0), strict=True):
        history.status, history.eta_s = "running", eta
    job.status = "running"
    assert job.remaining_s() == 40.0 + 5.0
    # While a finishes the step it shared with b, it is not alone; once it steps past where b ended, it is, and the
    # page says so instead of the configured grouping.
    job.histories[1].status = "done"
    assert job.alone_reasons()[0] == "" and job.stepping_together()
    job.histories[1].step, job.histories[0].step = 100, 120
    assert job.alone_reasons()[0] == "the other runs of its batched step have ended"
    text = status_text(manager, job)
    assert "one step of each in turn" in text and "batched step" not in text.split("\n")[0], text
    assert "a: step **120** / 200 (its own steps: the other runs of its batched step have ended)" in text
    # Two groups: a group whose runs all ended no longer steps together while the other group's last run goes on.
    job.configs, job.labels = [*job.configs, job.configs[2]], ["a", "b", "c", "d"]  # groups a, b and c, d
    job.histories = [RunHistory() for _ in range(4)]
    for history, (status, step) in zip(job.histories, [("done", 50), ("done", 50), ("done", 80), ("running", 90)],
                                       strict=True):
        history.status, history.step = status, step
    assert job.alone_reasons() == ["", "", "", "the other runs of its batched step have ended"]
    assert not job.stepping_together()
    job.histories[3].status = "done"
    assert job.stepping_together()  # all ended: the grouping as configured
    manager.close()
    # Without the flag a comparison takes one step of each run in turn.
    plain = JobManager(1, tmp_path / "other")
    assert not plain.submit("owner-token-0000000000000003", configs[:2], kind="compare").batched
    plain.stop("owner-token-0000000000000003")
    plain.close()
