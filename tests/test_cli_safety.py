"""The command line never damages a run and answers bad input with one line (exit 2), through the console entry
points a user runs."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
import torch

from minsnr_core.checkpoint import save_checkpoint
from minsnr_core.recorder import RunRecorder, read_metrics
from minsnr_core.training import TrainEvent

from .cli_run import command, run_cli


def cli(name, *args, code=0):
    result = run_cli(name, *args)
    assert result.returncode == code, result.stderr
    if code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        return lines[0]
    return result.stdout


def toy_run(out, steps=40, *extra):
    return cli("train", "--dataset", "moons", "--steps", steps, "--preview-every", 20, *extra, "--out", out)


def test_a_run_folder_is_never_overwritten_by_accident(tmp_path):
    out = tmp_path / "a"
    toy_run(out)
    metrics, checkpoint = (out / "metrics.jsonl").read_bytes(), (out / "checkpoint.pt").read_bytes()
    # A failed start (no data) into the finished run: refused before anything is written.
    message = cli("train", "--dataset", "mnist", "--data-root", tmp_path / "nonexistent", "--no-download", "--steps", 5,
                  "--out", out, code=2)
    assert "already holds a run" in message and "--resume" in message and "--overwrite" in message
    message = cli("train", "--dataset", "mnist", "--data-root", tmp_path / "nonexistent", "--no-download", "--steps", 5,
                  "--overwrite", "--out", out, code=2)
    assert "MNIST not found" in message
    assert (out / "metrics.jsonl").read_bytes() == metrics and (out / "checkpoint.pt").read_bytes() == checkpoint
    # --overwrite with a valid run replaces it.
    toy_run(out, 20, "--overwrite")
    assert [r["step"] for r in read_metrics(out) if r["kind"] == "log"] == [5, 10, 15, 20]
    (tmp_path / "file").write_text("x")
    assert "is a file" in cli("train", "--dataset", "moons", "--out", tmp_path / "file", code=2)


def test_resume_refuses_changed_training_flags_and_accepts_the_budget(tmp_path):
    out = tmp_path / "run"
    toy_run(out)
    message = cli("train", "--resume", out, "--weighting", "snr", "--lr", "0.5", "--batch-size", 7, "--dataset",
                  "gaussians", "--steps", 60, "--out", out, code=2)
    for flag in ("--weighting snr", "--lr 0.5", "--batch-size 7", "--dataset gaussians"):
        assert flag in message
    assert read_metrics(out)[-1]["step"] == 40, "the refused resume wrote nothing"
    # Repeating a flag with the run's own value is fine; budget and intervals may change.
    cli("train", "--resume", out, "--dataset", "moons", "--lr", "0.002", "--steps", 60, "--preview-every", 10,
        "--out", out)
    assert [r["step"] for r in read_metrics(out) if r["kind"] == "log"] == list(range(5, 65, 5))
    # Without a budget, --resume runs the last session's budget again (40 → 60 was 20 steps; the core's rule, as
    # the app's "Keep training").
    cli("train", "--resume", out, "--out", out, "--no-cuda-graph")  # how the steps run on CUDA, not what they train
    assert read_metrics(out)[-1]["step"] == 80


@pytest.mark.parametrize(("args", "message"), [
    (("--dataset", "moons", "--timesteps", 10**9), "timesteps must be an integer in [2, 100000]"),
    (("--dataset", "moons", "--batch-size", 10**9), "batch_size must be an integer in [1, 8192]"),
    (("--dataset", "moons", "--device", "mps"), "MPS is not available"),
])
def test_impossible_settings_fail_in_one_line(tmp_path, args, message):
    assert message in cli("train", *args, "--steps", 2, "--out", tmp_path / "x", code=2)
    assert not (tmp_path / "x").exists()


def test_damaged_data_is_named(tmp_path, data_root):
    folder = tmp_path / "images" / "cats"
    folder.mkdir(parents=True)
    (folder / "broken.png").write_bytes(b"not a png at all")
    message = cli("train", "--dataset", "folder", "--data-root", tmp_path / "images", "--steps", 2, "--out",
                  tmp_path / "f", code=2)
    assert "broken.png" in message
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in os.listdir(data_root / "MNIST" / "raw"):
        shutil.copyfile(data_root / "MNIST" / "raw" / name, raw / name)
    with open(raw / "train-images-idx3-ubyte", "r+b") as file:
        file.truncate(1000)
    message = cli("train", "--dataset", "mnist", "--data-root", tmp_path / "mnist", "--no-download", "--steps", 2,
                  "--out", tmp_path / "m", code=2)
    assert "MNIST files" in message and "are damaged" in message


def test_bad_checkpoints_are_refused_in_one_line(tmp_path):
    bad_config = tmp_path / "bad-config"
    save_checkpoint(bad_config / "checkpoint.pt", {"config": "nonsense", "step": 3})
    assert "config is missing or malformed" in cli("sample", "--run", bad_config, "--out", tmp_path / "s.npy", code=2)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    torch.save({"format": "minsnr-checkpoint-v1", "payload": object()}, pickled / "checkpoint.pt")
    message = cli("train", "--resume", pickled, "--out", tmp_path / "r", code=2)
    assert "never loaded" in message and "weights_only" not in message


def test_sample_output_names(tmp_path):
    run = tmp_path / "run"
    toy_run(run, 10)
    (tmp_path / "folder").mkdir()
    assert "is a folder" in cli("sample", "--run", run, "--n", 2, "--out", tmp_path / "folder", code=2)
    printed = cli("sample", "--run", run, "--n", 2, "--sample-steps", 3, "--out", tmp_path / "new" / "points")
    assert str(tmp_path / "new" / "points.npy") in printed and (tmp_path / "new" / "points.npy").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("--metric", "foo"), "metric must be one of fd, confident, label_entropy"),
    (("--ablation-gammas", "-1"), "gamma"),
    (("--eval-every", "0"), "eval_every must be an integer ≥ 1"),
])
def test_experiment_grid_is_checked_before_anything_trains(tmp_path, data_root, args, message):
    out = tmp_path / "grid"
    started = time.time()
    assert message in cli("experiment", "--data-root", data_root, "--steps", 20, "--eval-every", 10, *args,
                          "--out", out, code=2)
    assert not out.exists() and time.time() - started < 60


def test_kill_9_then_resume_keeps_each_step_once_and_no_orphans(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(command("train", "--dataset", "moons", "--steps", 100_000, "--preview-every", 0,
                                       "--checkpoint-every", 100, "--out", out),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        records = read_metrics(out) if (out / "metrics.jsonl").exists() else []
        if (out / "checkpoint.pt").exists() and records and records[-1]["step"] % 100 > 30:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    orphan = out / "checkpoint.pt.12345.tmp"
    orphan.write_bytes(b"half a checkpoint")
    logged = [r["step"] for r in read_metrics(out) if r["kind"] == "log"]
    saved = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert logged[-1] > saved, "the killed run had logged past its checkpoint"
    cli("train", "--resume", out, "--steps", saved + 50, "--out", out)
    steps = [r["step"] for r in read_metrics(out) if r["kind"] == "log"]
    assert steps == sorted(set(steps)) and steps[-1] == saved + 50
    assert not orphan.exists()


def test_a_nan_loss_is_written_as_json_null(tmp_path):
    recorder = RunRecorder(tmp_path)
    recorder(TrainEvent("log", 10, 1.0, loss=float("nan"), bucket_losses=[1.0, float("inf"), None]))
    line = (tmp_path / "metrics.jsonl").read_text()
    record = json.loads(line)  # strict JSON parsers accept it: no NaN token
    assert "NaN" not in line and record["loss"] is None and record["bucket_losses"] == [1.0, None, None]
