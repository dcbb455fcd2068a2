"""The experiment runner's Ray backend: each run of the grid a Ray Core task, on one machine or a cluster.

Ray is an optional extra (``pip install "minsnr[cluster]"``) and is imported only here, only when the Ray backend is
asked for. A task trains its run with the same function the local pool runs (:func:`experiment.run_rows`) and
returns the rows; the driver writes the run's record and appends its rows to ``results.csv`` as each run arrives, so
only the driver's machine needs the results folder. A task whose worker dies (killed, out of memory, its machine
lost) is retried by Ray from the start of its run; a run that fails (its training reports an error) is not.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .config import resolve_device
from .data import load_dataset
from .experiment import ExperimentSpec, run_rows
from .results_files import machine_of, write_record

INSTALL = 'pip install "minsnr[cluster]" (or pip install "ray>=2.9")'
# A task whose worker dies is tried again this many times before the grid stops with an error.
MAX_RETRIES = 3


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """How each run is placed: ``address`` of the cluster (None: a Ray started for this grid on this machine;
    "auto": the cluster this machine belongs to; "HOST:PORT": its head), ``gpus_per_run`` (a fraction shares a GPU
    between runs; 0: the runs train on CPUs) and ``cpus_per_run`` (also the run's torch threads)."""

    address: str | None = None
    gpus_per_run: float = 0.0
    cpus_per_run: int = 1


def import_ray() -> Any:
    """The ``ray`` module, or a ValueError saying what to install."""
    try:
        import ray
    except ImportError:
        raise ValueError(f"--backend ray needs Ray, which is not installed here: {INSTALL}") from None
    return ray


def check_ray_backend(options: RayOptions, device: str, workers: int = 1) -> None:
    """The rules of the Ray backend's options, each broken one said with its flag."""
    gpus, cpus = options.gpus_per_run, options.cpus_per_run
    if isinstance(gpus, bool) or not isinstance(gpus, int | float) or not 0 <= gpus < math.inf:
        raise ValueError(f"--gpus-per-run must be a number ≥ 0, got {gpus:g}" if isinstance(gpus, float | int)
                         else f"--gpus-per-run must be a number ≥ 0, got {gpus!r}")
    if gpus > 1 and gpus != int(gpus):
        raise ValueError(f"--gpus-per-run above 1 must be a whole number of GPUs (Ray's rule), got {gpus:g}")
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
        raise ValueError(f"--cpus-per-run must be an integer ≥ 1, got {cpus!r}")
    if options.address is not None and not options.address.strip():
        raise ValueError("--address must be auto or HOST:PORT, got an empty value")
    if workers != 1:
        raise ValueError("--workers is the local backend's pool; with --backend ray the cluster runs as many runs at "
                         "once as its CPUs and GPUs allow (--cpus-per-run, --gpus-per-run)")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device {device} cannot be used with --backend ray: Ray picks each run's GPU; "
                         "use --device auto, cpu or cuda")
    if device == "cuda" and gpus == 0:
        raise ValueError("--device cuda with --backend ray needs --gpus-per-run > 0 (e.g. 0.25: four runs per GPU)")
    if device == "cpu" and gpus > 0:
        raise ValueError(f"--gpus-per-run {gpus:g} reserves GPUs that --device cpu would leave unused")


def backend_options(backend: str, address: str | None, gpus_per_run: float | None, cpus_per_run: int | None,
                    workers: int | None, device: str) -> RayOptions | None:
    """The Ray backend's options from ``minsnr-experiment``'s flags (None: not given), checked, and Ray itself: a
    wrong flag or a missing Ray is said before anything trains. None for the local backend, which refuses them."""
    if backend != "ray":
        given = [flag for flag, value in (("--address", address), ("--gpus-per-run", gpus_per_run),
                                          ("--cpus-per-run", cpus_per_run)) if value is not None]
        if given:
            raise ValueError(f"{given[0]} is an option of the Ray backend; add --backend ray")
        return None
    options = RayOptions(address=address, gpus_per_run=0.0 if gpus_per_run is None else gpus_per_run,
                         cpus_per_run=1 if cpus_per_run is None else cpus_per_run)
    check_ray_backend(options, device, 1 if workers is None else workers)
    import_ray()
    return options


def task_device(requested: str, gpu_ids: list[Any], visible: str | None) -> str:
    """The torch device of a task: the GPU Ray assigned it (``ray.get_gpu_ids()``; Ray lists it in
    ``CUDA_VISIBLE_DEVICES``, ``visible``, so it is numbered by its place there), else the CPU, whatever GPUs the
    machine has."""
    if not gpu_ids or requested == "cpu":
        if requested == "cuda":
            raise RuntimeError("the task was given no GPU, so --device cuda cannot be honoured")
        return "cpu"
    listed = [name.strip() for name in visible.split(",")] if visible else []
    first = str(gpu_ids[0])
    return f"cuda:{listed.index(first) if first in listed else int(first)}"


def scorer_files(spec: ExperimentSpec) -> dict[str, bytes]:
    """The quality metric's classifier as the driver has it (trained there once, or read from its cache): each task
    scores with these very weights, so scores from different machines compare (a classifier trained on each machine
    would differ with its CPU and threads). Empty for datasets scored without one."""
    from . import metrics

    if spec.dataset not in metrics.CLASSIFIERS or not spec.data_root:
        return {}
    metrics.classifier(spec.dataset, spec.data_root)  # trained and cached here if it is not yet
    path = metrics.classifier_path(spec.dataset, load_dataset(spec.dataset, spec.data_root, download=False))
    return {path.name: path.read_bytes()}


def install_scorer(files: dict[str, bytes]) -> None:
    """Put the driver's classifier into this machine's cache, where the metric looks for it (written whole)."""
    from . import metrics

    folder = metrics.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if not (folder / name).exists():
            temporary = folder / f".{name}.{os.getpid()}.tmp"
            temporary.write_bytes(content)
            temporary.replace(folder / name)


def train_run_task(spec: ExperimentSpec, run: dict[str, Any],
                   scorer: dict[str, bytes] | None = None) -> tuple[list[dict[str, Any]], str]:
    """A run of the grid as a Ray task: its device from the GPUs Ray assigned, its torch threads from its CPUs, the
    driver's classifier for its quality metric, then the same computation as the local backend's. Its rows and the
    machine it trained on (:func:`~minsnr_core.results_files.machine_of`), for its record."""
    import ray

    install_scorer(scorer or {})
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    device = task_device(spec.device, ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES"))
    rows = run_rows(dataclasses.replace(spec, device=device), run)
    return rows, machine_of(resolve_device(device))


def _check_reachable(address: str) -> None:
    """A HOST:PORT where nothing answers is said at once (Ray itself would retry for minutes)."""
    host, _, port = address.rpartition("://")[2].rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray judges itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as error:
        raise ValueError(f"--address {address}: no Ray head answers there ({error.strerror or error}); start one with "
                         "`ray start --head`, or check HOST:PORT") from None


def _connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at ``address`` (or start Ray on this machine); True when this call started the
    connection, which the grid then closes. A Ray already initialised in this process is used as it is."""
    if address is not None:
        _check_reachable(address)
    if ray.is_initialized():
        return False
    try:
        if address is None:
            ray.init(include_dashboard=False)
        else:
            ray.init(address=address)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"--address {address}" if address else "a Ray on this machine"
        raise ValueError(f"cannot start the Ray backend ({where}): {str(error).strip().splitlines()[0]}") from None
    return True


# How long a grid on a cluster it joined waits for machines that give one run its CPUs and GPUs (workers may still be
# joining) before it says no run could start.
RESOURCE_WAIT_S = 60.0


def _check_resources(ray: Any, options: RayOptions, wait_s: float) -> None:
    """Refuse, naming the flag, a run that no machine of the cluster could ever start (Ray would wait for it for
    ever); on a cluster it joined, after waiting ``wait_s`` for more machines."""
    deadline = time.monotonic() + wait_s
    while True:
        nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
        if any(node.get("CPU", 0) >= options.cpus_per_run and node.get("GPU", 0) >= options.gpus_per_run for node in nodes):
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(2)
    most_cpus = max((node.get("CPU", 0) for node in nodes), default=0)
    most_gpus = max((node.get("GPU", 0) for node in nodes), default=0)
    if most_gpus < options.gpus_per_run:
        raise ValueError(f"--gpus-per-run {options.gpus_per_run:g}: no machine of the Ray cluster has that many GPUs "
                         f"(the most: {most_gpus:g}), so no run could start")
    raise ValueError(f"--cpus-per-run {options.cpus_per_run}: no machine of the Ray cluster has that many CPUs"
                     f"{' with the GPUs asked for' if options.gpus_per_run else ''} (the most: {most_cpus:g}), so no run "
                     "could start")


def _failure(ray: Any, run: dict[str, Any], error: Exception) -> Exception:
    """What a failed task raises: the run's own error, as the local backend raises it, or that its worker kept
    dying."""
    cause = getattr(error, "cause", None)
    if isinstance(error, ray.exceptions.RayTaskError) and isinstance(cause, Exception):
        return cause
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return RuntimeError(f"run {run['key']} was lost {MAX_RETRIES + 1} times on the Ray cluster ({first})")


def run_on_ray(spec: ExperimentSpec, pending: list[dict[str, Any]], paths: dict[str, Path], options: RayOptions,
               finished: Callable[[dict[str, Any]], None]) -> None:
    """Train ``pending`` as Ray tasks; as each run arrives its record is written to ``paths[key]`` and
    ``finished(run)`` is called (the table's append, the progress bar). A failed run stops the grid: the runs not
    started are cancelled, the finished ones stay."""
    ray = import_ray()
    # Settings travel by name; a relative data folder would be read from each worker's own working directory.
    if spec.data_root:
        spec = dataclasses.replace(spec, data_root=str(Path(spec.data_root).resolve()))
    started = _connect(ray, options.address)
    try:
        _check_resources(ray, options, RESOURCE_WAIT_S if options.address is not None else 0.0)
        # A GPU task gets a fresh worker (max_calls=1): a reused one would keep the CUDA context of the GPU its
        # previous task was given. Ray sets that only when num_gpus is given here, not through .options().
        task = ray.remote(num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run,
                          max_calls=1 if options.gpus_per_run else 0)(train_run_task)
        placing = {"max_retries": MAX_RETRIES, "retry_exceptions": False}
        spec_ref, scorer_ref = ray.put(spec), ray.put(scorer_files(spec))
        refs = {task.options(**placing, name=f"minsnr:{run['key']}").remote(spec_ref, run, scorer_ref): run
                for run in pending}
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    run = refs.pop(ref)
                    try:
                        rows, machine = ray.get(ref)
                    except ray.exceptions.RayError as error:
                        raise _failure(ray, run, error) from None
                    write_record(paths[run["key"]], run, rows, machine)
                    finished(run)
        except BaseException:
            # A failed run or Ctrl-C: what finished is kept (runs done but not yet collected too), nothing new starts.
            done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0) if refs else ([], [])
            for ref in done:
                run = refs.pop(ref)
                try:
                    rows, machine = ray.get(ref)
                except ray.exceptions.RayError:
                    continue
                write_record(paths[run["key"]], run, rows, machine)
                finished(run)
            for ref in refs:
                ray.cancel(ref)
            raise
    finally:
        if started:
            ray.shutdown()
