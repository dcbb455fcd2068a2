"""Runs trained in one batched step (minsnr_core.grouped, through train_side_by_side): each run's losses stay within
float tolerance of the same run trained alone over 50 steps, its checkpoint is its own and resumes alone, a run that
cannot be grouped trains exactly as alone, a run that ends first leaves the group, and a failed batched pass leaves
the runs stepping on their own. (A diverging run in a group: tests/test_side_by_side.py.) Real MNIST, real steps."""

import threading

import pytest
import torch

from minsnr_core.checkpoint import load_checkpoint
from minsnr_core.grouped import group_key, why_not_grouped
from minsnr_core.side_by_side import train_side_by_side
from minsnr_core.training import TrainConfig, train

TOLERANCE = 1e-5  # relative, fp32 on the CPU, over 50 steps (the bound)


def mnist(data_root, **extra):
    settings = {"dataset": "mnist", "data_root": str(data_root), "steps": 50, "log_every": 1, "preview_every": 0,
                "metric_every": 0, "checkpoint_every": 0, "batch_size": 16, "device": "cpu", **extra}
    return TrainConfig(**settings)


def events_in_one_group(configs):
    """Each run's events, trained by train_side_by_side in one batched step."""
    together = [[] for _ in configs]
    for index, event in train_side_by_side(configs, group=True):
        together[index].append(event)
    return together


def losses(events):
    return torch.tensor([[e.loss, e.unweighted_loss] for e in events if e.kind == "log"], dtype=torch.float64)


def relative_gap(a, b):
    return ((a - b).abs() / b.abs().clamp(min=1e-12)).max().item()


def test_each_run_in_a_batched_step_matches_itself_alone_over_50_steps(data_root, tmp_path):
    # Four arms that share only the model: other weightings, targets, samplers, seeds and learning rates.
    arms = [dict(weighting="snr", target="eps", seed=0), dict(weighting="min_snr", target="eps", seed=1),
            dict(weighting="min_snr", target="x0", seed=2, lr=2e-3),
            dict(weighting="min_snr", target="v", seed=3, timestep_sampling="laplace")]
    configs = [mnist(data_root, out_dir=str(tmp_path / f"grouped{i}"), **arm) for i, arm in enumerate(arms)]
    together = events_in_one_group(configs)
    for index, arm in enumerate(arms):
        alone = list(train(mnist(data_root, out_dir=str(tmp_path / f"alone{index}"), **arm)))
        assert [e.kind for e in together[index]] == [e.kind for e in alone]
        grouped_losses, alone_losses = losses(together[index]), losses(alone)
        assert grouped_losses.shape == (50, 2)
        assert relative_gap(grouped_losses, alone_losses) <= TOLERANCE, index
        # The same checkpoint, up to the same rounding.
        kept_grouped = load_checkpoint(tmp_path / f"grouped{index}" / "checkpoint.pt")
        kept_alone = load_checkpoint(tmp_path / f"alone{index}" / "checkpoint.pt")
        assert kept_grouped["step"] == kept_alone["step"] == 50
        assert torch.equal(kept_grouped["generator"], kept_alone["generator"])  # the same batches and noise drawn
        for name, tensor in kept_alone["model"].items():
            assert torch.allclose(kept_grouped["model"][name], tensor, rtol=1e-4, atol=1e-6), name
        assert {**kept_grouped["config"], "out_dir": None} == {**kept_alone["config"], "out_dir": None}
    # The arms are different runs: a test that compared a run with itself could not fail.
    finals = [losses(events)[-1, 0].item() for events in together]
    assert len(set(finals)) == len(finals)


def test_a_grouped_runs_checkpoint_resumes_alone(data_root, tmp_path):
    """Stopped at step 20 of 30 in a group, the first arm resumes alone and continues its own curve."""
    arms = [dict(weighting="min_snr", seed=4), dict(weighting="snr", seed=5)]
    configs = [mnist(data_root, steps=30, out_dir=str(tmp_path / f"arm{i}"), **arm) for i, arm in enumerate(arms)]
    stop, first = threading.Event(), []
    for index, event in train_side_by_side(configs, stop=stop, group=True):
        if index == 0:
            first.append(event)
            if event.kind == "log" and event.step == 20:
                stop.set()
    assert first[-1].kind == "stopped" and load_checkpoint(tmp_path / "arm0")["step"] == 20
    continued = list(train(configs[0], resume=tmp_path / "arm0"))
    straight = list(train(mnist(data_root, steps=30, **arms[0])))
    assert continued[-1].kind == "done" and continued[-1].step == 30
    assert relative_gap(losses(first + continued), losses(straight)) <= TOLERANCE


def test_a_run_that_cannot_be_grouped_trains_exactly_as_alone(data_root, tmp_path):
    """Another batch size: that arm takes its own steps (the same numbers as alone, bit for bit); the two arms that
    share a model still step together, and the reasons read so."""
    arms = [dict(seed=0), dict(seed=1), dict(seed=2, batch_size=8)]
    configs = [mnist(data_root, steps=12, **arm) for arm in arms]
    resolved = [config.resolved() for config in configs]
    assert group_key(resolved[0]) == group_key(resolved[1]) != group_key(resolved[2])
    reasons = why_not_grouped(resolved)
    assert reasons[:2] == ["", ""] and "batch size" in reasons[2]
    together = events_in_one_group(configs)
    alone = list(train(configs[2]))
    assert torch.equal(losses(together[2]), losses(alone))
    assert relative_gap(losses(together[0]), losses(list(train(configs[0])))) <= TOLERANCE


@pytest.mark.parametrize("adaptive", ["edm2", "loss_ema"])
def test_adaptive_weightings_in_a_batched_step_match_alone(adaptive):
    """EDM2's u(t) trains in each run's own optimizer beside the stacked model; its gradient must survive."""
    configs = [TrainConfig(dataset="moons", toy_size=256, steps=50, log_every=1, preview_every=0, metric_every=0,
                           checkpoint_every=0, batch_size=32, device="cpu", seed=seed, adaptive_weighting=adaptive)
               for seed in (0, 1)]
    together = events_in_one_group(configs)
    for index, config in enumerate(configs):
        assert relative_gap(losses(together[index]), losses(list(train(config)))) <= TOLERANCE


def test_a_vit_and_class_labels_train_in_a_batched_step(data_root):
    configs = [mnist(data_root, steps=10, model="vit-mnist", seed=seed) for seed in (0, 1)]
    assert configs[0].resolved().class_conditional
    together = events_in_one_group(configs)
    for index, config in enumerate(configs):
        assert relative_gap(losses(together[index]), losses(list(train(config)))) <= TOLERANCE


def test_a_run_that_ends_first_leaves_the_group_and_the_other_steps_on(data_root):
    """Arms of 10 and 30 steps: after step 10 the second arm takes its own steps, and both match themselves alone."""
    configs = [mnist(data_root, steps=10, seed=0), mnist(data_root, steps=30, seed=1)]
    together = events_in_one_group(configs)
    for index, config in enumerate(configs):
        assert together[index][-1].kind == "done" and together[index][-1].step == config.steps
        assert relative_gap(losses(together[index]), losses(list(train(config)))) <= TOLERANCE


def test_a_batched_pass_that_fails_leaves_its_runs_stepping_on_their_own(data_root, monkeypatch):
    """The batched forward pass fails (as out of memory would) before any update: the runs take their own steps from
    then on, so each computes exactly what it computes alone."""
    from minsnr_core.grouped import GroupedStep

    calls = []

    def out_of_memory(self, runs, *rest):
        calls.append(len(runs))
        raise RuntimeError("out of memory")

    monkeypatch.setattr(GroupedStep, "__call__", out_of_memory)
    configs = [mnist(data_root, steps=8, seed=0), mnist(data_root, steps=8, seed=1)]
    together = events_in_one_group(configs)
    assert calls == [2]
    for index, config in enumerate(configs):
        assert torch.equal(losses(together[index]), losses(list(train(config))))
