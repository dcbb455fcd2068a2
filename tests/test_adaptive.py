"""Adaptive weightings: EDM2's learned uncertainty weighting recovers a known per-level loss scale, the loss-bucket
EMA follows its rule, both train a real toy run and resume exactly, and bad parameters are refused by name."""

import threading

import pytest
import torch

from minsnr_core.adaptive import ADAPTIVE_WEIGHTINGS, BucketEMAWeighting, UncertaintyWeighting, build_adaptive
from minsnr_core.schedules import get_schedule

TOY = dict(dataset="moons", log_every=10, preview_every=0, toy_size=2000, device="cpu")


def test_edm2_learns_the_expected_loss_of_each_noise_level():
    # A synthetic problem with a known answer: at step t the weighted loss is scale(t)·χ²₁ (mean scale(t)); the
    # optimum of E[L·e^{-u} + u] is e^{u(t)} = scale(t).
    schedule = get_schedule("cosine", 100)
    lam = schedule.log_snr.float()
    scale = torch.exp(0.8 * torch.sin(lam / 4)) * 0.3
    module = UncertaintyWeighting(schedule, seed=0)
    assert torch.equal(module.curve(), torch.ones(100, dtype=torch.float64)), "u = 0 at the start: the factor is 1"
    optimizer = torch.optim.Adam(module.parameters(), lr=0.02)
    generator = torch.Generator().manual_seed(0)
    for _ in range(1500):
        t = torch.randint(0, 100, (256,), generator=generator)
        loss = scale[t] * torch.randn(256, generator=generator) ** 2
        objective = (loss * module.factor(t) + module.regulariser(t)).mean()
        optimizer.zero_grad()
        objective.backward()
        optimizer.step()
    learned = 1 / module.curve().float()  # e^{u(t)}
    relative = (learned / scale - 1).abs()
    assert float(relative.median()) < 0.1 and float(relative.max()) < 0.3, relative


def test_loss_ema_follows_its_rule():
    schedule = get_schedule("cosine", 100)
    module = BucketEMAWeighting(schedule, loss_buckets=4, loss_decay=0.5)
    assert torch.equal(module.curve(), torch.ones(100, dtype=torch.float64)), "factor 1 before any loss"
    t = torch.tensor([0, 0, 99])
    first, last = int(module.bucket_of_step[0]), int(module.bucket_of_step[99])
    assert first != last
    module.observe(t, torch.tensor([2.0, 4.0, 8.0]))  # a bucket's first losses start its average
    assert module.ema[first] == pytest.approx(3.0) and module.ema[last] == pytest.approx(8.0)
    module.observe(torch.tensor([0]), torch.tensor([1.0]))  # then each batch moves it by 1 − decay
    assert module.ema[first] == pytest.approx(0.5 * 3.0 + 0.5 * 1.0)
    assert float(module.factor(torch.tensor([0]))) == pytest.approx(1 / 2.0)
    untouched = next(t for t in range(100) if int(module.bucket_of_step[t]) not in (first, last))
    assert float(module.factor(torch.tensor([untouched]))) == 1.0, "a bucket without losses keeps factor 1"


@pytest.mark.parametrize("name", ["edm2", "loss_ema"])
def test_a_toy_run_trains_with_it_and_resumes_exactly(name, tmp_path):
    from minsnr_core.checkpoint import load_checkpoint
    from minsnr_core.data import toy_points
    from minsnr_core.metrics import toy_score
    from minsnr_core.training import TrainConfig, train

    config = TrainConfig(**{**TOY, "preview_every": 200, "metric_every": 200, "metric_samples": 256}, steps=200,
                         adaptive_weighting=name, out_dir=str(tmp_path / "full"))
    events = list(train(config))
    score = [e for e in events if e.kind == "metric"][-1].metric["swd"]
    # The logged loss is the reweighted one, without EDM2's u(t) term: positive, so a log axis can draw it.
    assert all(e.loss > 0 for e in events if e.kind == "log")
    floor = sum(toy_score(toy_points("moons", 256, seed=s), "moons")["swd"] for s in range(10)) / 10
    assert score < 1.5 * floor, "the bar of tests/test_training.py's default run"
    learned = build_adaptive(name, get_schedule("cosine", 1000))
    learned.load_state_dict(load_checkpoint(tmp_path / "full")["adaptive_weighting"])
    assert not torch.allclose(learned.curve(), torch.ones(1000, dtype=torch.float64)), "it adapted"
    # Interrupted at step 30 and resumed: the same losses as straight through.
    settings = dict(**TOY, adaptive_weighting=name, steps=60)
    straight = [(e.step, e.loss) for e in train(TrainConfig(**settings)) if e.kind == "log"]
    stop, first = threading.Event(), []
    for event in train(TrainConfig(**settings, out_dir=str(tmp_path / "cut")), stop=stop):
        first.append(event)
        if event.kind == "log" and event.step == 30:
            stop.set()
    resumed = list(train(TrainConfig(**settings, out_dir=str(tmp_path / "cut")), resume=tmp_path / "cut"))
    assert [(e.step, e.loss) for e in first + resumed if e.kind == "log"] == straight


@pytest.mark.parametrize(("name", "params", "message"), [
    ("edm2", {"u_features": 0}, "edm2: parameter 'u_features' must be in [1, 256], got 0"),
    ("edm2", {"u_features": 2.5}, "edm2: parameter 'u_features' must be a whole number in [1, 256], got 2.5"),
    ("loss_ema", {"loss_decay": 1.0}, "loss_ema: parameter 'loss_decay' must be in [0, 1), got 1"),
    ("loss_ema", {"loss_buckets": float("nan")}, "loss_ema: parameter 'loss_buckets' must be finite"),
    ("none", {"loss_decay": 0.5}, "none: unknown parameter(s) ['loss_decay']"),
])
def test_bad_parameters_are_refused_by_name(name, params, message):
    from minsnr_core.training import TrainConfig

    with pytest.raises(ValueError) as error:
        TrainConfig(dataset="moons", adaptive_weighting=name, adaptive_params=params).resolved()
    assert str(error.value).startswith(message)
    allowed = ", ".join(ADAPTIVE_WEIGHTINGS.names())
    with pytest.raises(ValueError, match=f"unknown adaptive weighting 'fancy'; allowed: {allowed}"):
        TrainConfig(dataset="moons", adaptive_weighting="fancy").resolved()


def test_zero_terminal_snr_gives_a_finite_input():
    module = UncertaintyWeighting(get_schedule("linear", 50, zero_terminal_snr=True))
    assert torch.isfinite(module.log_snr).all() and torch.isfinite(module.curve()).all()
