import csv
import json
import subprocess
import sys

import pytest
import torch

from minsnr_core.curves import far_runs, mean_curves, steps_to_threshold
from minsnr_core.experiment import ExperimentSpec, quick_spec, read_csv, record_machines, run_experiment
from minsnr_core.report import write_report
from minsnr_core.results_files import NOT_RECORDED


def test_quick_experiment_end_to_end_and_resume(tmp_path, data_root):
    # Two worker processes: the path a GPU user takes; the resume below goes through the one-process path.
    out = tmp_path / "quick"
    result = subprocess.run([sys.executable, "-c", "from minsnr_core.cli import experiment_entry; experiment_entry()",
                             "--quick", "--workers", "2", "--data-root", str(data_root), "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    with (out / "results.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert {"group", "weighting", "gamma", "target", "seed", "lr", "step", "samples", "confident", "fd",
            "label_entropy"} <= set(rows[0])
    assert {r["samples"] for r in rows} == {"32"}  # the sample count each evaluation was scored on
    assert {r["model"] for r in rows} == {"mnist"}  # the model preset each row was trained with
    keys = {(r["group"], r["weighting"], r["gamma"]) for r in rows}
    assert keys == {("comparison", "snr", ""), ("comparison", "min_snr", "5.0"), ("ablation", "min_snr", "1.0")}
    assert sorted({int(r["step"]) for r in rows}) == [10, 20]
    summary = (out / "summary.md").read_text()
    assert "Steps to reach the baseline" in summary and "Min-SNR-γ ablation" in summary and "Metric: **fd**" in summary
    # Each record names the machine its run trained on (each of the 2 workers has half of this machine's threads),
    # and the summary counts the runs per machine; runs from two machines are flagged.
    records = [json.loads(path.read_text()) for path in (out / "runs").glob("*.json")]
    threads = max(1, torch.get_num_threads() // 2)
    machines = {record["machine"] for record in records}
    assert len(records) == 3 and len(machines) == 1, machines
    machine = machines.pop()
    assert machine.startswith(f"torch {torch.__version__}, ") and machine.endswith(
        f" with {torch.backends.cpu.get_cpu_capability()} kernels, {threads} thread{'s' * (threads != 1)}"), machine
    assert f"Trained on: {machine} (3 runs)." in summary and "more than one way" not in summary
    rows = read_csv(out / "results.csv")
    for name, counts, flagged in (("mixed", {machine: 2, "another": 1}, True),
                                  ("resumed", {NOT_RECORDED: 2, machine: 1}, False)):
        (tmp_path / name).mkdir()
        text = write_report(rows, tmp_path / name, machines=counts).read_text()
        assert "Trained on: " + "; ".join(f"{m} ({n} run{'s' * (n > 1)})" for m, n in counts.items()) + "." in text
        assert ("more than one way" in text) == flagged, name
    for name in ("quality_eps.html", "gamma_ablation.html", "steps_to_threshold.html"):
        assert (out / name).stat().st_size > 1000

    # Resumable: a second run trains nothing and reports every run as already done.
    before = {p.name: p.stat().st_mtime for p in (out / "runs").glob("*.json")}
    seen = []
    run_experiment(quick_spec("mnist", str(data_root)), out, lambda i, n, run, done: seen.append(done))
    assert all(seen) and {p.name: p.stat().st_mtime for p in (out / "runs").glob("*.json")} == before
    # A folder never mixes runs trained differently: another batch size is refused before any training.
    other = quick_spec("mnist", str(data_root))
    other.batch_size = 32
    with pytest.raises(ValueError, match="batch_size=16.*batch_size=32.*--out"):
        run_experiment(other, out)


def test_grid_has_no_duplicate_runs_and_validates_names():
    spec = ExperimentSpec(weightings=["snr", "min_snr"], targets=["eps", "x0"], ablation_gammas=[1, 5], seeds=[0, 1])
    runs = spec.runs()
    # x0 adds its baseline (constant); the γ = 5 ablation run is the comparison's Min-SNR-5 ε run.
    assert len(runs) == len({r["key"] for r in runs}) == (2 + 3) * 2 + 1 * 2
    assert {r["weighting"] for r in runs if r["target"] == "x0"} == {"snr", "min_snr", "constant"}
    v_runs = ExperimentSpec(weightings=["min_snr"], targets=["v"], ablation_gammas=[], seeds=[0]).runs()
    assert [r["weighting"] for r in v_runs] == ["snr_plus_one", "min_snr"]
    try:
        ExperimentSpec(weightings=["fancy"]).runs()
    except ValueError as error:
        assert "fancy" in str(error)
    else:
        raise AssertionError("unknown weighting accepted")


def test_grid_puts_complete_seed_pairs_first_then_the_rest_and_the_lr_check():
    """A grid cut short by a time limit must still hold whole (baseline, Min-SNR) pairs, seed by seed."""
    spec = ExperimentSpec(weightings=["min_snr", "p2"], targets=["eps", "x0"], ablation_gammas=[], seeds=[0, 1],
                          paired_seeds=[0, 1, 2], lr_check=[1e-3, 4e-3], lr_check_seeds=[0])
    runs = spec.runs()
    head = [(r["seed"], r["target"], r["weighting"]) for r in runs[:12]]
    assert head == [(s, t, w) for s in (0, 1, 2) for t, base in (("eps", "snr"), ("x0", "constant")) for w in (base, "min_snr")]
    assert [(r["weighting"], r["seed"]) for r in runs[12:16]] == [("p2", 0), ("p2", 0), ("p2", 1), ("p2", 1)]
    checks = [r for r in runs if r["group"] == "lr_check"]
    assert [(r["weighting"], r["lr"], r["target"]) for r in checks] == [
        ("constant", 1e-3, "x0"), ("min_snr", 1e-3, "x0"), ("constant", 4e-3, "x0"), ("min_snr", 4e-3, "x0")]
    assert checks[0]["key"].endswith("_lr0.001") and spec.config(checks[0]).lr == 1e-3
    assert len(runs) == len({r["key"] for r in runs}) == 12 + 4 + 4
    with pytest.raises(ValueError, match=r"lr must be a number in \(0, 1\)"):
        ExperimentSpec(lr_check=[2.0]).validate()  # each run's config is checked, the lr check's too


def test_sampler_and_adaptive_arms_join_the_paired_comparison():
    spec = ExperimentSpec(weightings=["min_snr"], targets=["eps"], ablation_gammas=[], seeds=[0],
                          paired_seeds=[0, 1, 2], samplings=["logit_normal"], adaptives=["edm2"])
    runs = spec.runs()
    assert [(r["seed"], r["weighting"]) for r in runs] == [
        (s, w) for s in (0, 1, 2) for w in ("snr", "min_snr", "snr+logit_normal", "snr+edm2")]
    arm = next(r for r in runs if r["weighting"] == "snr+logit_normal")
    config = spec.config(arm)
    assert (config.weighting, config.timestep_sampling, config.adaptive_weighting) == ("snr", "logit_normal", "none")
    config = spec.config(next(r for r in runs if r["weighting"] == "snr+edm2"))
    assert (config.weighting, config.timestep_sampling, config.adaptive_weighting) == ("snr", "uniform", "edm2")
    # A grid without arms keeps the keys of the runs it already finished.
    plain = ExperimentSpec(weightings=["min_snr"], targets=["eps"], ablation_gammas=[], seeds=[0]).runs()
    assert [r["key"] for r in plain] == ["mnist_snr_eps_s0_n300", "mnist_min_snr-g5_eps_s0_n300"]
    from minsnr_core.experiment import arm_name

    assert arm_name("snr+logit_normal") == "SNR (= plain ε-MSE) + Logit-normal t"
    assert arm_name("snr+edm2") == "SNR (= plain ε-MSE) × EDM2 learned (uncertainty)"
    with pytest.raises(ValueError, match="unknown timestep sampler 'beta'"):
        ExperimentSpec(samplings=["beta"]).runs()


def test_a_grid_with_arms_trains_and_reports_them_by_name(tmp_path):
    spec = ExperimentSpec(dataset="moons", weightings=["min_snr"], targets=["eps"], ablation_gammas=[], seeds=[0],
                          paired_seeds=[0, 1], steps=20, eval_every=10, eval_samples=32, batch_size=64,
                          samplings=["logit_normal"], adaptives=["edm2"], device="cpu")
    rows = run_experiment(spec, tmp_path)
    assert {r["weighting"] for r in rows} == {"snr", "min_snr", "snr+logit_normal", "snr+edm2"}
    summary = write_report(rows, tmp_path, "swd").read_text()
    for name in ("SNR (= plain ε-MSE) + Logit-normal t", "SNR (= plain ε-MSE) × EDM2 learned (uncertainty)"):
        assert f"| eps | {name} |" in summary, name


def test_steps_to_threshold_interpolates_against_the_baseline():
    curves = {"snr": [0.1, 0.2, 0.4], "min_snr": [0.2, 0.5, 0.6]}
    rows = [{"group": "comparison", "target": "eps", "weighting": w, "seed": 0, "step": s, "confident": v}
            for w, values in curves.items() for s, v in zip((100, 200, 300), values, strict=True)]
    table = {r["weighting"]: r for r in steps_to_threshold(mean_curves(rows, "confident"), "confident")}
    assert table["snr"]["steps_to_threshold"] == 300 and table["snr"]["speedup"] == 1
    assert abs(table["min_snr"]["steps_to_threshold"] - (100 + 100 * (0.4 - 0.2) / (0.5 - 0.2))) < 1e-9
    assert abs(table["min_snr"]["speedup"] - 300 / table["min_snr"]["steps_to_threshold"]) < 1e-9


@pytest.mark.parametrize(("options", "message"), [
    ({"workers": 0}, r"workers \(--workers\) must be an integer ≥ 1"),
    ({"group_runs": 0}, r"group_runs \(--group-runs\) must be an integer ≥ 1"),
    ({"group_runs": True}, r"group_runs \(--group-runs\) must be an integer ≥ 1"),
    ({"group_runs": 2, "backend": "ray"}, r"group_runs \(--group-runs\) applies to the local backend")])
def test_bad_worker_or_group_count_is_refused_before_any_training(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        run_experiment(quick_spec("mnist"), tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_grouped_runs_give_the_rows_the_runs_give_alone(tmp_path, data_root, monkeypatch):
    """--group-runs 2 on the quick grid's three runs: a group of two in one batched step, then the last run alone.
    Every row is there, in grid order, with the scores of the runs trained alone up to float rounding."""
    from minsnr_core.grouped import GroupedStep

    alone = run_experiment(quick_spec("mnist", str(data_root)), tmp_path / "alone")
    sizes, seen = [], []
    real = GroupedStep.__call__
    monkeypatch.setattr(GroupedStep, "__call__", lambda self, runs, *rest: sizes.append(len(runs)) or real(self, runs, *rest))
    grouped = run_experiment(quick_spec("mnist", str(data_root)), tmp_path / "grouped",
                             lambda index, total, run, done: seen.append((index, done)), group_runs=2)
    assert sizes == [2] * 20  # the first two runs took their 20 steps together
    assert seen == [(0, False), (2, False), (3, True)]  # the bar: each group as it starts, then the end
    assert [(r["weighting"], r["gamma"], r["step"]) for r in grouped] == [
        (r["weighting"], r["gamma"], r["step"]) for r in alone]
    assert len(alone) == 6
    for one, other in zip(alone, grouped, strict=True):
        for column in ("fd", "confident", "label_entropy"):
            assert abs(float(one[column]) - float(other[column])) <= 1e-3 * max(1.0, abs(float(one[column]))), column
    assert len({float(r["fd"]) for r in grouped}) == len(grouped)  # distinct runs and steps, not one run copied
    # The records say which runs shared a batched step (their digits may differ from the runs alone) and which did not.
    machines = record_machines(tmp_path / "grouped", [run["key"] for run in quick_spec("mnist").runs()])
    assert sorted(machines.values()) == [1, 2] and sum("in one batched step of 2 runs" in m for m in machines) == 1


def test_far_runs_names_the_diverged_cifar_runs_and_not_a_slower_weighting():
    """On the shipped CSVs: the three CIFAR-10 x0 runs that diverged (docs/results.md §4.1) are far from their
    weighting's other seeds; MNIST's plain ε loss, slower than Min-SNR in every seed, has no run far from its own."""
    from app.measured import MEASURED

    cifar = read_csv(MEASURED["cifar10"].csv)
    assert far_runs(cifar, "x0") == ([("constant", 1), ("min_snr", 0), ("min_snr", 4)], 10)
    assert far_runs(cifar, "eps") == ([], 10)
    # The app shows CIFAR-10's x0 target from the learning-rate check at 1e-3, where none of the 10 runs diverged.
    from app.measured import target_rows

    shown, lr, _ = target_rows(MEASURED["cifar10"], "x0")
    assert lr == 1e-3 and {row["lr"] for row in shown} == {1e-3} and far_runs(shown, "x0") == ([], 10)
    mnist = read_csv(MEASURED["mnist"].csv)
    final = {r["weighting"]: r["fd"] for r in mnist if r["group"] == "comparison" and r["target"] == "eps"
             and r["step"] == 2000 and r["seed"] == 2}
    assert final["snr"] > 3 * final["min_snr"], "the plain loss is far behind Min-SNR, yet not a run far from its own"
    assert far_runs(mnist, "eps")[0] == []
