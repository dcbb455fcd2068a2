"""The experiment runner's Ray backend (docs/cluster.md) against the local one, on a local Ray cluster started by
this module (``ray.init(num_cpus=2)``): the same CSV, a worker killed mid-run, the driver killed and started again.
Ray comes with the ``dev`` and ``cluster`` extras (scripts/test.sh installs both)."""

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from minsnr_core.cluster import RayOptions, task_device
from minsnr_core.experiment import ExperimentSpec, run_experiment
from tests.cli_run import command, run_cli

# A tiny grid on a 2D toy: 4 runs (the plain loss and Min-SNR, seeds 0 and 1), 2 scorings each, about a second a run.
GRID = {"dataset": "moons", "weightings": ["min_snr"], "targets": ["eps"], "ablation_gammas": [], "seeds": [0],
        "paired_seeds": [0, 1], "steps": 100, "eval_every": 50, "eval_samples": 32, "batch_size": 64, "device": "cpu"}
FLAGS = ["--dataset", "moons", "--weightings", "min_snr", "--targets", "eps", "--ablation-gammas", "--seeds", "0",
         "--paired-seeds", "0", "1", "--steps", "100", "--eval-every", "50", "--eval-samples", "32",
         "--batch-size", "64", "--device", "cpu"]
RUNS, ROWS = 4, 8


def require_ray():
    try:
        import ray
    except ImportError:
        pytest.fail('Ray is missing: pip install -e ".[dev,cluster]" (scripts/test.sh does)')
    return ray


def table(path: Path) -> list[list[str]]:
    """results.csv without its timing column: every value a run computes, as written."""
    with path.open(newline="") as file:
        lines = list(csv.reader(file))
    keep = [i for i, name in enumerate(lines[0]) if name != "elapsed_s"]
    return [[line[i] for i in keep] for line in lines]


@contextlib.contextmanager
def torch_threads(count: int):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The grid on the local backend, one process, one torch thread (a Ray task with --cpus-per-run 1 has the same):
    the results folder, its CSV written run by run."""
    out = tmp_path_factory.mktemp("local")
    seen = []

    def progress(index, total, run, done):
        seen.append(len(table(out / "results.csv")) - 1 if (out / "results.csv").exists() else 0)

    with torch_threads(1):
        run_experiment(ExperimentSpec(**GRID), out, progress)
    assert seen[:RUNS] == [0, 2, 4, 6], "each run's rows are in results.csv as soon as it finishes"
    assert len(table(out / "results.csv")) == ROWS + 1
    return out


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs in this process; its address lets a driver process join it."""
    ray = require_ray()
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_the_ray_backend_writes_the_local_backends_csv(reference, cluster, tmp_path):
    started = time.perf_counter()
    result = run_cli("experiment", *FLAGS, "--backend", "ray", "--cpus-per-run", "1", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert table(tmp_path / "results.csv") == table(reference / "results.csv")  # identical values, in grid order
    assert sorted(p.name for p in (tmp_path / "runs").glob("*.json")) == sorted(
        p.name for p in (reference / "runs").glob("*.json"))
    # Each record names the machine of the task that trained it, as the local backend's names its own.
    machines = {json.loads(p.read_text())["machine"] for folder in (tmp_path, reference)
                for p in (folder / "runs").glob("*.json")}
    assert len(machines) == 1 and next(iter(machines)).endswith(
        f" with {torch.backends.cpu.get_cpu_capability()} kernels, 1 thread"), machines
    assert f"Trained on: {machines.pop()} ({RUNS} runs)." in (tmp_path / "summary.md").read_text()
    print(f"the grid on Ray (a cluster already started): {time.perf_counter() - started:.1f} s")
    # Finished runs are skipped on Ray as on the local backend.
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")}
    seen = []
    run_experiment(ExperimentSpec(**GRID), tmp_path, lambda i, n, run, done: seen.append(done), backend="ray")
    assert all(seen) and {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")} == before


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _descends_from_this_test(pid: int) -> bool:
    while pid > 1:
        try:
            pid = _parent(pid)
        except (OSError, IndexError, ValueError):
            return False
        if pid == os.getpid():
            return True
    return False


def _title(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _training_workers() -> list[int]:
    """The Ray workers of this test's cluster that are training a run now (Ray titles a busy worker with its task's
    name, ``ray::minsnr:<key>``)."""
    pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    return [pid for pid in pids if _title(pid).startswith(b"ray::minsnr:") and _descends_from_this_test(pid)]


def test_a_run_whose_worker_is_killed_is_trained_again(reference, cluster, tmp_path):
    errors, killed = [], []

    def driver():
        try:
            run_experiment(ExperimentSpec(**GRID), tmp_path, backend="ray", ray_options=RayOptions(cpus_per_run=1))
        except BaseException as error:  # noqa: B036 - handed to the test's thread
            errors.append(error)

    thread = threading.Thread(target=driver)
    thread.start()
    deadline = time.time() + 180
    while not killed and thread.is_alive() and time.time() < deadline:
        for pid in _training_workers():
            title = _title(pid)
            if title.startswith(b"ray::minsnr:"):  # still on its run
                os.kill(pid, signal.SIGKILL)
                killed.append(title.split(b"\0")[0].decode())
                break
        time.sleep(0.02)
    thread.join(timeout=300)
    assert not thread.is_alive() and not errors, errors
    assert killed, "no worker was seen training a run"
    assert table(tmp_path / "results.csv") == table(reference / "results.csv"), f"after killing {killed[0]}"


def test_a_killed_driver_started_again_leaves_no_duplicate_or_missing_row(reference, cluster, tmp_path):
    args = [*FLAGS, "--backend", "ray", "--address", cluster, "--cpus-per-run", "1", "--out", tmp_path]
    csv_path = tmp_path / "results.csv"
    with (tmp_path.parent / "driver.log").open("w") as log:
        driver = subprocess.Popen(command("experiment", *args), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline, rows = time.time() + 240, 0
            while time.time() < deadline and driver.poll() is None:
                rows = len(table(csv_path)) - 1 if csv_path.exists() and csv_path.stat().st_size else 0
                if rows:
                    break
                time.sleep(0.02)
            assert driver.poll() is None, (tmp_path.parent / "driver.log").read_text()[-2000:]
            driver.send_signal(signal.SIGKILL)
        finally:
            driver.kill()
            driver.wait(timeout=60)
    records = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")}
    assert 0 < rows < ROWS and 0 < len(records) < RUNS, "the driver was killed after some runs, before the last"

    # The same command again (in this process: its Ray workers are warm).
    again = run_cli("experiment", *args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert table(csv_path) == table(reference / "results.csv")
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")}
    assert {name: after[name] for name in records} == records, "the runs finished before the kill were not trained again"


def test_a_run_that_fails_on_ray_stops_the_grid_with_the_local_backends_error(cluster, tmp_path):
    """A run's own error (here: an image folder without images) is not retried; the grid stops with the same
    message, exit 2, as on the local backend."""
    (tmp_path / "no-images").mkdir()
    flags = ["--dataset", "folder", "--data-root", tmp_path / "no-images", "--weightings", "min_snr", "--targets", "eps",
             "--ablation-gammas", "--seeds", "0", "--steps", "20", "--eval-every", "10"]
    local = run_cli("experiment", *flags, "--out", tmp_path / "local")
    on_ray = run_cli("experiment", *flags, "--backend", "ray", "--out", tmp_path / "ray")
    assert local.returncode == on_ray.returncode == 2
    said = [result.stderr[result.stderr.index("minsnr-experiment: error:"):] for result in (local, on_ray)]
    assert said[0].splitlines()[0] == said[1].splitlines()[0] and "holds no images" in said[1]
    assert "Traceback" not in on_ray.stderr
    assert not list((tmp_path / "ray" / "runs").glob("*.json"))


def test_the_table_is_rebuilt_from_the_records_at_the_start(reference, tmp_path):
    """A table left with a duplicate run and half a row (a driver killed while appending) is whole again when the
    same command starts (every run already finished: nothing trains)."""
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    (out / "results.csv").write_text("".join(lines + lines[1:3]) + lines[3][:20])
    seen = []
    run_experiment(ExperimentSpec(**GRID), out, lambda i, n, run, done: seen.append(done))
    assert all(seen)
    assert (out / "results.csv").read_text() == (reference / "results.csv").read_text()


def test_without_ray_the_backend_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    result = run_cli("experiment", *FLAGS, "--backend", "ray", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert 'pip install "minsnr[cluster]"' in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, says", [
    (["--device", "auto", "--gpus-per-run", "0.5"],
     "--gpus-per-run 0.5: no machine of the Ray cluster has that many GPUs (the most: 0)"),
    (["--cpus-per-run", "3"], "--cpus-per-run 3: no machine of the Ray cluster has that many CPUs (the most: 2)"),
])
def test_a_run_no_machine_could_start_is_refused_not_left_waiting(cluster, tmp_path, flags, says):
    result = run_cli("experiment", *FLAGS, "--backend", "ray", *flags, "--out", tmp_path / "out")
    assert result.returncode == 2
    said = result.stderr[result.stderr.index("minsnr-experiment: error:"):].strip()
    assert said == f"minsnr-experiment: error: {says}, so no run could start"


def test_an_address_where_no_ray_answers_is_said_at_once(tmp_path):
    from tests.conftest import free_port

    require_ray()
    started = time.perf_counter()
    result = run_cli("experiment", *FLAGS, "--backend", "ray", "--address", f"127.0.0.1:{free_port()}",
                     "--out", tmp_path / "out")
    assert result.returncode == 2 and time.perf_counter() - started < 30
    said = result.stderr[result.stderr.index("minsnr-experiment: error:"):].strip()
    assert said.count("\n") == 0 and "--address 127.0.0.1:" in said and "no Ray head answers there" in said, said


@pytest.mark.parametrize("flags, says", [
    (["--backend", "ray", "--gpus-per-run", "-1"], "--gpus-per-run must be a number ≥ 0, got -1"),
    (["--backend", "ray", "--gpus-per-run", "1.5"], "--gpus-per-run above 1 must be a whole number"),
    (["--backend", "ray", "--cpus-per-run", "0"], "--cpus-per-run must be an integer ≥ 1, got 0"),
    (["--backend", "ray", "--workers", "2"], "--workers is the local backend's pool"),
    (["--backend", "ray", "--device", "cuda:1", "--gpus-per-run", "1"], "--device cuda:1 cannot be used with --backend ray"),
    (["--backend", "ray", "--device", "cuda"], "--device cuda with --backend ray needs --gpus-per-run > 0"),
    (["--backend", "ray", "--device", "cpu", "--gpus-per-run", "0.5"], "--gpus-per-run 0.5 reserves GPUs"),
    (["--address", "auto"], "--address is an option of the Ray backend; add --backend ray"),
    (["--gpus-per-run", "0.5"], "--gpus-per-run is an option of the Ray backend"),
    (["--cpus-per-run", "2"], "--cpus-per-run is an option of the Ray backend"),
])
def test_a_bad_backend_flag_is_one_line_naming_it(flags, says, tmp_path):
    result = run_cli("experiment", *FLAGS, *flags, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.startswith("minsnr-experiment: error: ")
    assert says in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_task_trains_on_the_gpu_ray_gave_it_else_on_the_cpu():
    assert task_device("auto", [], None) == "cpu"  # never "cuda if available"
    assert task_device("cpu", [], "0") == "cpu"
    assert task_device("auto", ["3"], "3") == "cuda:0"  # Ray lists the task's GPUs in CUDA_VISIBLE_DEVICES
    assert task_device("cuda", [3], "1,3") == "cuda:1"
    assert task_device("auto", ["2"], None) == "cuda:2"  # where Ray was told not to set it
    with pytest.raises(RuntimeError, match="no GPU"):
        task_device("cuda", [], None)


def test_every_task_scores_with_the_drivers_classifier(monkeypatch, tmp_path):
    """The MNIST metric's classifier travels from the driver to each task's machine, into the cache where the metric
    looks for it, so no machine trains its own (whose scores would differ with its CPU and threads)."""
    from minsnr_core import metrics
    from minsnr_core.cluster import install_scorer, scorer_files
    from minsnr_core.data import load_dataset
    from tests.conftest import DATA_ROOT

    spec = ExperimentSpec(**{**GRID, "dataset": "mnist", "data_root": str(DATA_ROOT)})
    files = scorer_files(spec)
    images = load_dataset("mnist", DATA_ROOT, download=False)
    driver_path = metrics.classifier_path("mnist", images)
    assert files == {driver_path.name: driver_path.read_bytes()}
    monkeypatch.setenv("MINSNR_CACHE", str(tmp_path / "worker-cache"))
    install_scorer(files)
    assert metrics.classifier_path("mnist", images).read_bytes() == driver_path.read_bytes()
    assert scorer_files(ExperimentSpec(**GRID)) == {}  # the toys are scored without a classifier
