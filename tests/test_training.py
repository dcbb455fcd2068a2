import threading

import pytest
import torch

from minsnr_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minsnr_core.cuda_graph import uses_cuda_graph
from minsnr_core.data import load_labels, load_mnist, toy_points
from minsnr_core.experiment import ExperimentSpec
from minsnr_core.metrics import toy_score
from minsnr_core.runs import load_run
from minsnr_core.training import TrainConfig, train

TOY = dict(dataset="moons", log_every=10, preview_every=0, toy_size=2000, device="cpu")


def run(config, **kwargs):
    return list(train(config, **kwargs))


def logs(events):
    return [e for e in events if e.kind == "log"]


def test_toy_training_lowers_the_loss_and_events_carry_what_they_promise():
    events = run(TrainConfig(**{**TOY, "preview_every": 100, "metric_every": 100, "metric_samples": 256}, steps=200))
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    log = logs(events)
    assert len(log) == 20 and [e.step for e in log] == list(range(10, 201, 10))
    assert sum(e.loss for e in log[-5:]) < 0.8 * sum(e.loss for e in log[:5])
    for e in log:
        assert len(e.bucket_losses) == 10 and e.images_per_sec > 0 and e.eta_s is not None
        assert all(b is None or b >= 0 for b in e.bucket_losses)
    assert events[0].parameters > 10_000 and events[0].device == "cpu"
    previews = [e for e in events if e.kind == "preview"]
    assert [e.step for e in previews] == [100, 200] and previews[0].samples.shape == (512, 2)
    metric = [e for e in events if e.kind == "metric"]
    # The score improves from step 100 to 200 and ends near the metric's floor: 256 real points score 0.08–0.22
    # (10 draws, mean 0.16); this run measured 0.250 → 0.216.
    floor = sum(toy_score(toy_points("moons", 256, seed=s), "moons")["swd"] for s in range(10)) / 10
    assert metric[-1].metric["swd"] < metric[0].metric["swd"] and metric[-1].metric["swd"] < 1.5 * floor


def test_real_mnist_steps_lower_the_loss(data_root, tmp_path):
    data, labels = load_mnist(data_root)[:2000], load_labels("mnist", data_root)[:2000]
    config = TrainConfig(dataset="mnist", data_root=str(data_root), batch_size=32, steps=60, log_every=10,
                         preview_every=30, preview_count=4, preview_sample_steps=5, device="cpu", out_dir=str(tmp_path),
                         metric_every=60, metric_samples=20)
    events = run(config, data=data, labels=labels)
    metric = [e.metric for e in events if e.kind == "metric"]
    assert len(metric) == 1 and 0 <= metric[0]["as_requested"] <= metric[0]["confident"] <= 1
    log = logs(events)
    assert log[-1].loss < 0.7 * log[0].loss
    preview = [e for e in events if e.kind == "preview"][-1].samples
    assert preview.shape == (4, 1, 28, 28) and preview.min() >= -1 and preview.max() <= 1
    # MNIST has labels, so the run is class-conditional by default; the checkpoint knows its ten classes.
    loaded = load_run(tmp_path, "cpu")
    model, saved = loaded.model, loaded.config
    assert saved.class_conditional and model.num_classes == 10 and model.class_embedding.weight.abs().sum() > 0
    with pytest.raises(ValueError, match="one entry per training example"):
        run(config, data=data, labels=labels[:10])
    with pytest.raises(ValueError, match="integer class indices"):
        run(config, data=data, labels=labels - 1)


@pytest.mark.parametrize(("dropout", "learned", "untouched"), [(1.0, [10], list(range(10))), (0.0, list(range(10)), [10])])
def test_label_dropout_decides_which_class_embeddings_learn(data_root, tmp_path, dropout, learned, untouched):
    # Row 10 is "no label": with every label dropped only it learns; with none dropped only the digits' rows do.
    data, labels = load_mnist(data_root)[:300], load_labels("mnist", data_root)[:300]
    config = TrainConfig(dataset="mnist", data_root=str(data_root), batch_size=64, steps=4, preview_every=0,
                         device="cpu", label_dropout=dropout, guidance=1.0, out_dir=str(tmp_path))
    run(config, data=data, labels=labels)
    model = load_run(tmp_path, "cpu").model
    rows = model.class_embedding.weight.abs().sum(1)
    assert (rows[learned] > 0).all() and (rows[untouched] == 0).all()


def test_unconditional_mnist_run_and_resume_keeps_its_conditioning(data_root, tmp_path):
    data = load_mnist(data_root)[:500]
    config = TrainConfig(dataset="mnist", data_root=str(data_root), batch_size=8, steps=2, preview_every=0,
                         device="cpu", out_dir=str(tmp_path), class_conditional=False)
    run(config, data=data)
    loaded = load_run(tmp_path, "cpu")
    model, saved = loaded.model, loaded.config
    assert not saved.class_conditional and model.num_classes == 0 and model.class_embedding is None
    # Resuming must keep the run's conditioning.
    with pytest.raises(CheckpointError, match="class_conditional"):
        run(TrainConfig(**{**config.to_dict(), "class_conditional": True}), data=data,
            labels=load_labels("mnist", data_root)[:500], resume=tmp_path)
    # A config saved before class conditioning existed describes an unconditional, deterministically sampled run.
    old = {k: v for k, v in config.to_dict().items() if k not in ("class_conditional", "guidance", "sample_eta")}
    restored = TrainConfig.from_dict(old).resolved()
    assert restored.class_conditional is False and restored.sample_eta == 0.0


def test_same_seed_same_run_other_seed_other_run():
    first = [e.loss for e in logs(run(TrainConfig(**TOY, steps=50)))]
    second = [e.loss for e in logs(run(TrainConfig(**TOY, steps=50)))]
    other = [e.loss for e in logs(run(TrainConfig(**TOY, steps=50, seed=1)))]
    assert first == second
    assert first != other


def test_runs_built_at_once_in_two_threads_start_from_their_own_seeds_weights(monkeypatch):
    """The app trains jobs in threads (--max-jobs > 1), and torch's layers draw their initial weights from the one
    global generator: a build that pauses (here 50 ms, as a slow one would) must not let the other thread's seed in."""
    import time

    import minsnr_core.steps as steps

    configs = {seed: TrainConfig(**TOY, steps=1, seed=seed).resolved() for seed in (1, 2)}
    alone = {seed: steps.prepare_run(config).model.state_dict() for seed, config in configs.items()}
    real_build = steps.build_model

    def slow_build(*args, **kwargs):
        time.sleep(0.05)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(steps, "build_model", slow_build)
    together, start = {}, threading.Barrier(2)

    def build(seed):
        start.wait()
        together[seed] = steps.prepare_run(configs[seed]).model.state_dict()

    threads = [threading.Thread(target=build, args=(seed,)) for seed in configs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not torch.equal(alone[1]["inp.weight"], alone[2]["inp.weight"])
    for seed in configs:
        assert alone[seed].keys() == together[seed].keys()
        assert all(torch.equal(alone[seed][k], together[seed][k]) for k in alone[seed]), seed


def test_a_model_loaded_in_another_thread_does_not_disturb_a_seeded_build(monkeypatch, tmp_path):
    """The Denoise tab loads runs (minsnr_core.runs.load_run) while a job may be building its model: the loaded
    model's layers are built while that job's build pauses after its seed, and must not draw from its generator."""
    import time

    import minsnr_core.steps as steps

    run(TrainConfig(**TOY, steps=2, out_dir=str(tmp_path)))
    config = TrainConfig(**TOY, steps=1, seed=1).resolved()
    alone = steps.prepare_run(config).model.state_dict()
    real_build, inside = steps.build_model, threading.Event()

    def slow_build(*args, **kwargs):
        inside.set()
        time.sleep(0.2)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(steps, "build_model", slow_build)
    built = {}
    job = threading.Thread(target=lambda: built.update(steps.prepare_run(config).model.state_dict()))
    job.start()
    assert inside.wait(10)
    load_run(tmp_path, device="cpu")  # builds a toy model of its own meanwhile
    job.join()
    assert all(torch.equal(alone[k], built[k]) for k in alone)


def test_stop_request_ends_the_run_between_steps():
    stop = threading.Event()
    seen = []
    for event in train(TrainConfig(**TOY, steps=100_000), stop=stop):
        seen.append(event)
        if event.kind == "log" and event.step == 30:
            stop.set()
    assert seen[-1].kind == "stopped" and seen[-1].step == 30


def test_checkpoint_resume_continues_the_same_curve(tmp_path):
    straight = [(e.step, e.loss) for e in logs(run(TrainConfig(**TOY, steps=60)))]
    stop, first = threading.Event(), []
    for event in train(TrainConfig(**TOY, steps=60, out_dir=str(tmp_path)), stop=stop):
        first.append(event)
        if event.kind == "log" and event.step == 30:
            stop.set()  # interrupted half-way; the checkpoint is written on stop
    assert first[-1].kind == "stopped" and load_checkpoint(tmp_path)["step"] == 30
    resumed = run(TrainConfig(**TOY, steps=60, out_dir=str(tmp_path)), resume=tmp_path)
    assert [(e.step, e.loss) for e in logs(first) + logs(resumed)] == straight


def test_a_checkpoint_of_a_cuda_graph_run_resumes_on_the_cpu(tmp_path):
    """A CUDA-graph run saves AdamW groups marked fused and capturable, with a tensor learning rate; resumed on the
    CPU, the optimizer steps as a CPU run does (a capturable CPU AdamW refuses to step) and the curve continues."""
    straight = [(e.step, e.loss) for e in logs(run(TrainConfig(**TOY, steps=60)))]
    stop, first = threading.Event(), []
    for event in train(TrainConfig(**TOY, steps=60, out_dir=str(tmp_path)), stop=stop):
        first.append(event)
        if event.kind == "log" and event.step == 30:
            stop.set()
    state = load_checkpoint(tmp_path)
    for group in state["optimizer"]["param_groups"]:
        group.update(fused=True, capturable=True, lr=torch.tensor(group["lr"]))
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    resumed = run(TrainConfig(**TOY, steps=60, out_dir=str(tmp_path)), resume=tmp_path)
    assert [(e.step, e.loss) for e in logs(first) + logs(resumed)] == straight
    groups = load_checkpoint(tmp_path)["optimizer"]["param_groups"]
    assert [(g["fused"], g["capturable"], type(g["lr"])) for g in groups] == [(False, False, float)] * len(groups)
    # A CUDA generator's state (16 bytes) cannot seed the CPU's: the resumed run draws from seed + step, the same
    # batches each time it is resumed so.
    state = load_checkpoint(tmp_path)
    state["generator"] = torch.zeros(16, dtype=torch.uint8)
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    again = [[(e.step, e.loss) for e in logs(run(TrainConfig(**TOY, steps=80, out_dir=str(tmp_path / f"r{i}")),
                                                 resume=tmp_path))] for i in range(2)]
    assert again[0] == again[1] and [step for step, _ in again[0]] == [70, 80]


def test_the_cuda_graph_step_is_chosen_only_on_cuda_and_for_runs_it_can_replay():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    mnist = TrainConfig(dataset="mnist").resolved()
    assert uses_cuda_graph(mnist, cuda) and not uses_cuda_graph(mnist, cpu)
    assert not uses_cuda_graph(TrainConfig(dataset="mnist", cuda_graph=False).resolved(), cuda)
    assert uses_cuda_graph(TrainConfig(dataset="mnist", timestep_sampling="logit_normal").resolved(), cuda)
    # Samplers and weightings that learn from each step's losses read the device after it: eager steps.
    assert not uses_cuda_graph(TrainConfig(dataset="mnist", timestep_sampling="importance").resolved(), cuda)
    assert not uses_cuda_graph(TrainConfig(dataset="mnist", adaptive_weighting="edm2").resolved(), cuda)
    with pytest.raises(ValueError, match="cuda_graph must be true or false"):
        TrainConfig(dataset="mnist", cuda_graph="yes").resolved()


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    run(TrainConfig(**TOY, steps=20, out_dir=str(tmp_path)))
    poisoned = torch.full((100, 2), float("nan"))
    events = run(TrainConfig(**TOY, steps=40, out_dir=str(tmp_path)), resume=tmp_path, data=poisoned)
    assert events[-1].kind == "error" and "nan" in events[-1].message.lower()
    assert "last good checkpoint is kept" in events[-1].message
    assert str(tmp_path) not in events[-1].message, "no server path in a message a browser shows"
    assert events[-1].checkpoint == str(tmp_path / "checkpoint.pt")
    state = load_checkpoint(tmp_path)
    assert state["step"] == 20
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_corrupt_and_foreign_checkpoints_give_clear_errors(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or foreign"):
        load_checkpoint(tmp_path / "garbage.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not written by minsnr"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    save_checkpoint(tmp_path / "other.pt", {"config": {**TrainConfig(**TOY).to_dict(), "dataset": "swissroll"}})
    with pytest.raises(CheckpointError, match="dataset"):
        run(TrainConfig(**TOY, steps=5), resume=tmp_path / "other.pt")


def test_automatic_model_batch_size_and_lr_come_from_the_dataset_and_the_model_preset():
    def chosen(**settings):
        config = TrainConfig(**settings).resolved()
        return config.model, config.batch_size, config.lr

    # MNIST trains the small UNet at its measured settings (docs/performance.md: 90-second and 5-minute runs).
    assert chosen(dataset="mnist") == ("mnist-small", 32, 6e-3)
    assert chosen(dataset="mnist", batch_size=16, lr=1e-3) == ("mnist-small", 16, 1e-3)
    assert chosen(dataset="mnist", model="mnist") == ("mnist", 64, 2e-3)  # a preset naming none: the defaults
    assert chosen(dataset="cifar10") == ("cifar", 64, 2e-3)
    assert chosen(**TOY) == ("toy-mlp", 512, 2e-3)
    # The runner of docs/results.md keeps the settings its numbers were measured with.
    spec = ExperimentSpec()
    experiment = spec.config(spec.runs()[0]).resolved()
    assert (experiment.model, experiment.batch_size, experiment.lr) == ("mnist", 64, 2e-3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dataset": "imagenet"}, "dataset must be one of"),
        ({"weighting": "fancy"}, "unknown weighting strategy"),
        ({"weighting_params": {"gamma": -1}}, r"parameter 'gamma' must be in \(0, 100\], got -1"),
        ({"target": "score"}, "target must be one of"),
        ({"timesteps": 1}, r"timesteps must be an integer in \[2, 100000\]; got 1"),
        ({"lr": 0}, r"lr must be a number in \(0, 1\) or None \(automatic\); got 0"),
        ({"lr": True}, r"lr must be a number in \(0, 1\) or None \(automatic\); got True"),
        ({"steps": 0}, r"steps must be an integer ≥ 1 or None \(automatic\); got 0"),
        ({"minutes": -1}, r"minutes must be a number > 0 or None \(automatic\); got -1"),
        ({"batch_size": 0}, r"batch_size must be an integer in \[1, 8192\] or None \(automatic\); got 0"),
        ({"device": "tpu"}, "device must be"),
        ({"zero_terminal_snr": True, "target": "eps"}, "zero_terminal_snr needs target"),
        ({"model": "mnist"}, "does not fit"),
        ({"class_conditional": True}, "class_conditional needs a dataset with labels"),
        ({"label_dropout": 1.5}, "label_dropout must be a number in"),
        ({"guidance": -2}, "guidance must be a number"),
        ({"dataset": "mnist", "data_root": ".", "label_dropout": 0}, "label_dropout 0 has no unconditional mode"),
    ],
)
def test_bad_config_is_rejected_with_the_parameter_named(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{**TOY, **changes}).resolved()


def test_stop_takes_effect_during_a_quality_measurement():
    """Stop pressed while the metric samples: the measurement is abandoned between two sampling steps."""
    stop = threading.Event()
    config = TrainConfig(**{**TOY, "metric_every": 50, "metric_samples": 20_000}, steps=400)
    events = []
    for event in run_events(config, stop):
        events.append(event)
        if event.kind == "measuring":
            threading.Timer(0.2, stop.set).start()
    kinds = [e.kind for e in events]
    assert kinds[-1] == "stopped" and events[-1].step == 50
    assert "metric" not in kinds, "the measurement in progress is dropped, not finished"
    assert events[-1].elapsed_s - next(e.elapsed_s for e in events if e.kind == "measuring") < 2.0


def test_a_time_budget_keeps_room_for_its_final_preview_and_metric():
    """Each metric here takes about a second: without room kept for the final one the run would overshoot by that."""
    config = TrainConfig(**{**TOY, "preview_every": 50, "metric_every": 100, "metric_samples": 6000}, minutes=0.06)
    events = list(run_events(config))
    measured = [e for e in events if e.kind == "metric"]
    done = events[-1]
    assert done.kind == "done" and measured and measured[-1].step == done.step, "the final state is measured"
    durations = [m.elapsed_s - s.elapsed_s for s, m in zip([e for e in events if e.kind == "measuring"], measured,
                                                            strict=True)]
    # Without the room the run overshoots by a whole metric; with it, by what the last metric's duration missed
    # (the same 0.75 allowance as the test below: a loaded 2-core CPU slows one metric more than another).
    assert done.elapsed_s <= 0.06 * 60 + 0.75 * max(durations), (done.elapsed_s, durations)
    assert all(e.message.startswith("measuring sample quality on 6000") for e in events if e.kind == "measuring")


def test_a_time_budget_keeps_room_for_a_final_metric_that_no_periodic_one_timed():
    """The interval is never reached: the only metric is the final one, so its room comes from timing one of its
    sampling steps and its scoring at the start (without that, the run overshoots by the whole metric)."""
    config = TrainConfig(**{**TOY, "preview_every": 0, "metric_every": 10**6, "metric_samples": 6000}, minutes=0.15)
    events = list(run_events(config))
    measuring, metric, done = (next(e for e in events if e.kind == kind) for kind in ("measuring", "metric", "done"))
    assert done.step == metric.step and done.step > 0
    # Without the room the run overshoots by the whole metric; with it, by what the estimate missed (a slower CPU
    # during the metric than during its timing at the start: 0.61 of the metric once in a full suite on 2 cores).
    assert done.elapsed_s <= 0.15 * 60 + 0.75 * (metric.elapsed_s - measuring.elapsed_s), (done.elapsed_s, metric)


def run_events(config, stop=None):
    yield from train(config, stop=stop)


def test_each_continuation_adds_the_last_sessions_budget_again(tmp_path):
    """Keep training twice after a 30-step run: 30 → 60 → 90 steps, not 30 → 60 → 120."""
    from minsnr_core.checkpoint import load_checkpoint
    from minsnr_core.config import continued_config

    config = TrainConfig(**TOY, steps=30, out_dir=str(tmp_path))
    run(config)
    for expected in (60, 90):
        state = load_checkpoint(tmp_path)
        saved = TrainConfig.from_dict(state["config"])
        again = continued_config(saved, int(state["step"]), session_start=int(state["session_start"]))
        assert again.steps == expected
        assert list(train(again, resume=tmp_path))[-1].step == expected
    # A run with both budgets keeps both kinds.
    both = continued_config(TrainConfig(**TOY, steps=100, minutes=2.0), 100)
    assert (both.steps, both.minutes) == (200, 2.0)
