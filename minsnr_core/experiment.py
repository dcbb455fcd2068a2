"""The paper's comparison at small scale: a grid of runs, one tidy table, figures and a summary.

Every run goes through the one training loop with the quality metric on; each finished run is written to
``OUT/runs/<key>.json`` and skipped when the experiment is run again (resumable). The speed-up is reported the
paper's way: the steps each weighting needs to reach the quality that the target's plain loss (the baseline)
reaches at the end of its budget.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .adaptive import ADAPTIVE_WEIGHTINGS
from .config import resolve_device
from .results_files import (  # noqa: F401 - re-exported
    ResultsTable,
    load_rows,
    machine_of,
    read_csv,
    record_machines,
    write_csv,
    write_record,
)
from .side_by_side import train_side_by_side
from .timesteps import TIMESTEP_SAMPLERS
from .training import TrainConfig, TrainEvent, train
from .weighting import STRATEGIES, check_target

if TYPE_CHECKING:
    from .cluster import RayOptions

# The unweighted loss of each target space: the baseline the paper measures speed-ups against.
BASELINE = {"eps": "snr", "x0": "constant", "v": "snr_plus_one"}


def arm_name(label: str) -> str:
    """The display name of a comparison arm: a weighting, or "<weighting>+<sampler or adaptive weighting>"."""
    weighting, _, extra = label.partition("+")
    name = STRATEGIES.get(weighting).display_name
    if extra in TIMESTEP_SAMPLERS:
        return f"{name} + {TIMESTEP_SAMPLERS.get(extra).display_name} t"
    if extra in ADAPTIVE_WEIGHTINGS:
        return f"{name} × {ADAPTIVE_WEIGHTINGS.get(extra).display_name}"
    return name
HIGHER_IS_BETTER = {"confident": True, "label_entropy": True, "fd": False, "swd": False}


def check_metric(dataset: str, metric: str | None) -> None:
    """The metric a report may rank by: one the dataset's evaluation produces (None: the default)."""
    from .data import TOY_DATASETS
    from .metrics import CLASSIFIERS

    allowed = ["fd", "confident", "label_entropy"] if dataset in CLASSIFIERS else ["swd"] if dataset in TOY_DATASETS else []
    if metric is not None and metric not in allowed:
        raise ValueError(f"metric must be one of {', '.join(allowed) or 'none (no quality metric for this dataset)'} "
                         f"for dataset {dataset!r}; got {metric!r}")
# The budget of the MNIST report in docs/results.md; the app's Compare preset and notebook 03 use the same.
REPORT_STEPS, REPORT_EVAL_EVERY, REPORT_EVAL_SAMPLES = 300, 100, 200
# docs/results.md was measured with unconditional models scored on deterministic DDIM samples; the runner, the
# app's Compare preset and notebook 03 keep to that, whatever the training defaults are.
REPORT_CONDITIONING = {"class_conditional": False, "sample_eta": 0.0}
# Likewise its model presets and learning rate (the training defaults of that time; batch 64 for images).
REPORT_MODELS, REPORT_LR = {"mnist": "mnist", "cifar10": "cifar", "folder": "cifar"}, 2e-3


def report_model(dataset: str, model: str | None = None) -> str | None:
    """The model of docs/results.md's runs for ``dataset`` unless ``model`` names one (None for the toys: the
    default toy MLP)."""
    return model or REPORT_MODELS.get(dataset)


@dataclass
class ExperimentSpec:
    dataset: str = "mnist"
    data_root: str | None = None
    weightings: list[str] = field(default_factory=lambda: ["constant", "snr", "trunc_snr", "min_snr", "soft_min_snr", "p2"])
    targets: list[str] = field(default_factory=lambda: ["eps", "x0"])
    gamma: float = 5.0
    ablation_gammas: list[float] = field(default_factory=lambda: [1.0, 2.0, 5.0, 10.0, 20.0])
    ablation_target: str = "eps"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    # More seeds for the comparison that matters most, each target's plain loss against Min-SNR-γ (None: ``seeds``).
    paired_seeds: list[int] | None = None
    # The fairness check: these learning rates for the plain loss and Min-SNR-γ of ``lr_check_target``.
    lr_check: list[float] = field(default_factory=list)
    lr_check_target: str = "x0"
    lr_check_seeds: list[int] = field(default_factory=lambda: [0, 1])
    steps: int = REPORT_STEPS
    eval_every: int = REPORT_EVAL_EVERY
    eval_samples: int = REPORT_EVAL_SAMPLES
    batch_size: int | None = None
    lr: float = REPORT_LR
    model: str | None = None  # None: report_model(dataset)
    device: str = "auto"
    # Extra arms of the comparison, each on top of the target's plain loss with the paired seeds: a timestep sampler
    # (e.g. logit_normal) or an adaptive weighting (e.g. edm2). Their rows are labelled "<weighting>+<name>".
    samplings: list[str] = field(default_factory=list)
    adaptives: list[str] = field(default_factory=list)

    def runs(self) -> list[dict[str, Any]]:
        """Every run of the grid, most important first, so that a grid cut short by a time limit still holds
        complete seed pairs: each target's plain loss and Min-SNR-γ seed by seed, then the other weightings, the
        learning-rate check, and the Min-SNR γ ablation. The sampler and adaptive-weighting arms go with the paired
        seeds. A run shared by two parts is listed once."""
        for name in self.weightings:
            STRATEGIES.get(name)
        for target in [*self.targets, self.ablation_target, self.lr_check_target]:
            check_target(target)
        paired_seeds = self.seeds if self.paired_seeds is None else self.paired_seeds
        for name in self.samplings:
            TIMESTEP_SAMPLERS.get(name)
        for name in self.adaptives:
            ADAPTIVE_WEIGHTINGS.get(name)
        extras = [*self.samplings, *self.adaptives]
        grid = [("comparison", w, self.gamma, t, s, self.lr) for s in paired_seeds for t in self.targets
                for w in (BASELINE[t], "min_snr", *(f"{BASELINE[t]}+{e}" for e in extras))
                if w == BASELINE[t] or w in self.weightings or "+" in w]
        others = [w for w in self.weightings if w != "min_snr"]
        grid += [("comparison", w, self.gamma, t, s, self.lr) for s in self.seeds for t in self.targets
                 for w in dict.fromkeys([BASELINE[t], *others])]
        grid += [("lr_check", w, self.gamma, self.lr_check_target, s, lr) for lr in self.lr_check
                 for s in self.lr_check_seeds for w in (BASELINE[self.lr_check_target], "min_snr")]
        grid += [("ablation", "min_snr", g, self.ablation_target, s, self.lr)
                 for g, s in itertools.product(self.ablation_gammas, self.seeds)]
        runs, seen = [], set()
        for group, label, gamma, target, seed, lr in grid:
            weighting, _, extra = label.partition("+")
            uses_gamma = any(p.name == "gamma" for p in STRATEGIES.get(weighting).params)
            key = (f"{self.dataset}_{label}" + (f"-g{gamma:g}" if uses_gamma else "") + f"_{target}_s{seed}"
                   + f"_n{self.steps}" + (f"_lr{lr:g}" if lr != self.lr else ""))
            if key in seen:
                continue
            seen.add(key)
            runs.append({"key": key, "group": group, "weighting": label, "gamma": gamma if uses_gamma else None,
                         "target": target, "seed": seed, "lr": lr,
                         "timestep_sampling": extra if extra in TIMESTEP_SAMPLERS else "uniform",
                         "adaptive_weighting": extra if extra in ADAPTIVE_WEIGHTINGS else "none"})
        return runs

    def validate(self) -> list[dict[str, Any]]:
        """Every run of the grid, each config checked, before anything trains: a bad value fails in a second, not
        after the grid has run for hours."""
        return self.validate_for(self.device)

    def validate_for(self, device: str) -> list[dict[str, Any]]:
        """:meth:`validate`, each config checked on ``device`` (the Ray backend checks on the driver what its
        tasks will run on a GPU)."""
        for name, low in (("steps", 1), ("eval_every", 1), ("eval_samples", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}")
        if self.eval_every > self.steps:
            raise ValueError(f"eval_every ({self.eval_every}) must be at most steps ({self.steps})")
        runs = self.runs()
        for run in runs:
            dataclasses.replace(self.config(run), device=device).resolved()
        return runs

    def config(self, run: dict[str, Any]) -> TrainConfig:
        params = {"gamma": run["gamma"]} if run["gamma"] is not None else {}
        return TrainConfig(dataset=self.dataset, data_root=self.data_root, weighting=run["weighting"].partition("+")[0],
                           weighting_params=params, timestep_sampling=run.get("timestep_sampling", "uniform"),
                           adaptive_weighting=run.get("adaptive_weighting", "none"), target=run["target"],
                           steps=self.steps, seed=run["seed"], batch_size=self.batch_size, lr=run.get("lr", self.lr),
                           model=report_model(self.dataset, self.model), device=self.device, preview_every=0,
                           metric_every=self.eval_every, metric_samples=self.eval_samples, checkpoint_every=0,
                           **REPORT_CONDITIONING)


def quick_spec(dataset: str = "mnist", data_root: str | None = None) -> ExperimentSpec:
    """A minute-long version for CI: two weightings, one seed, a tiny budget, and a two-point γ ablation."""
    return ExperimentSpec(dataset=dataset, data_root=data_root, weightings=["snr", "min_snr"], targets=["eps"],
                          ablation_gammas=[1.0, 5.0], seeds=[0], steps=20, eval_every=10, eval_samples=32,
                          batch_size=16)


# Settings shared by every run of a results folder (the grid itself may grow between invocations).
SHARED_SETTINGS = ("dataset", "batch_size", "lr", "model", "eval_every", "eval_samples")


def _check_same_settings(spec: ExperimentSpec, path: Path) -> None:
    """Finished runs are reused by key, so a folder must not mix runs trained or evaluated differently."""
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    for name in SHARED_SETTINGS:
        if name in saved and saved[name] != getattr(spec, name):
            raise ValueError(f"{path.parent} holds runs made with {name}={saved[name]!r}, this grid has "
                             f"{name}={getattr(spec, name)!r}; use another results folder (--out)")


def _metric_row(spec: ExperimentSpec, run: dict[str, Any], event: TrainEvent) -> dict[str, Any]:
    """The row of the table that a run's metric event gives."""
    return {**{k: run[k] for k in ("group", "weighting", "gamma", "target", "seed")},
            "lr": run.get("lr", spec.lr), "dataset": spec.dataset,
            "model": report_model(spec.dataset, spec.model), "step": event.step,
            "samples": spec.eval_samples, "elapsed_s": round(event.elapsed_s, 2), **event.metric}


def run_rows(spec: ExperimentSpec, run: dict[str, Any]) -> list[dict[str, Any]]:
    """Train one run of the grid and return its rows of the table: the one computation both backends run (the local
    pool through :func:`_train_runs`, Ray through ``cluster.train_run_task``)."""
    rows = []
    for event in train(spec.config(run)):
        if event.kind == "metric":
            rows.append(_metric_row(spec, run, event))
        elif event.kind == "error":
            raise RuntimeError(f"run {run['key']} failed: {event.message}")
    return rows


def _train_runs(spec: ExperimentSpec, runs: list[dict[str, Any]], paths: list[Path]) -> list[str]:
    """Train runs of the grid and write each one's record as it ends (the local backend: in the driver or a pool
    worker); their keys. One run trains alone; several train together, in one batched step
    (:func:`~minsnr_core.side_by_side.train_side_by_side`), and a failing one ends them all."""
    machine = machine_of(resolve_device(spec.device), group=len(runs))
    if len(runs) == 1:
        write_record(paths[0], runs[0], run_rows(spec, runs[0]), machine)
        return [runs[0]["key"]]
    rows: list[list[dict[str, Any]]] = [[] for _ in runs]
    for index, event in train_side_by_side([spec.config(run) for run in runs], group=True):
        if event.kind == "metric":
            rows[index].append(_metric_row(spec, runs[index], event))
        elif event.kind == "error":
            raise RuntimeError(f"run {runs[index]['key']} failed: {event.message}")
        elif event.kind == "done":
            write_record(paths[index], runs[index], rows[index], machine)
    return [run["key"] for run in runs]


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


BACKENDS = ("local", "ray")


def grid_runs(spec: ExperimentSpec, backend: str = "local") -> list[dict[str, Any]]:
    """The grid, validated for where it trains: on the Ray backend each task takes the GPU Ray gives it, so the
    driver (a login node, a CPU head) checks a ``cuda`` grid as if on the CPU."""
    return spec.validate_for("cpu" if backend == "ray" and spec.device == "cuda" else spec.device)


def run_experiment(spec: ExperimentSpec, out_dir: str | Path,
                   progress: Callable[[int, int, dict[str, Any], bool], None] | None = None,
                   workers: int = 1, backend: str = "local", ray_options: RayOptions | None = None,
                   group_runs: int = 1) -> list[dict[str, Any]]:
    """Train every run not finished yet, then write ``results.csv``; returns the table's rows. Each run's rows are
    appended to ``results.csv`` as the run finishes (:class:`ResultsTable`).

    ``workers`` > 1 trains that many runs at once in separate processes: worth it on a GPU, where one small model
    leaves most of the device idle; on a CPU the cores are shared out between the workers. ``backend="ray"`` makes
    each run a Ray task instead (``ray_options``: a :class:`minsnr_core.cluster.RayOptions`; Ray is imported only
    then): on the machines of a Ray cluster, each run with the CPUs and share of a GPU the options give it.
    ``group_runs`` > 1 (local backend) trains up to that many runs of the grid together in one batched step
    (:mod:`minsnr_core.grouped`; every run of a grid shares its model and batch size), a group per worker."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    for name, value in (("workers", workers), ("group_runs", group_runs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} (--{name.replace('_', '-')}) must be an integer ≥ 1, got {value!r}")
    if group_runs > 1 and backend != "local":
        raise ValueError(f"group_runs (--group-runs) applies to the local backend (each Ray task trains one run); "
                         f"got {group_runs} with backend {backend!r}")
    if backend == "ray":
        from .cluster import RayOptions, check_ray_backend, import_ray

        ray_options = ray_options or RayOptions()
        check_ray_backend(ray_options, spec.device, workers)
        import_ray()  # said before anything trains
    runs = grid_runs(spec, backend)
    out = Path(out_dir)
    _check_same_settings(spec, out / "spec.json")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(asdict(spec), indent=2))
    paths = {run["key"]: out / "runs" / f"{run['key']}.json" for run in runs}
    table = ResultsTable(out, [run["key"] for run in runs])
    table.rebuild()
    try:
        pending, group = [], []
        in_driver = workers == 1 and backend == "local"

        def train_group() -> None:
            """Train the runs gathered in ``group`` here, in the driver (the bar names the group's first run)."""
            first, run = group[0]
            if progress:
                progress(first, len(runs), run, False)
            for key in _train_runs(spec, [run for _, run in group], [paths[run["key"]] for _, run in group]):
                table.add(key)
            group.clear()

        for index, run in enumerate(runs):
            done = paths[run["key"]].exists()
            if done and progress:
                progress(index, len(runs), run, True)
            if done:
                continue
            if not in_driver:
                pending.append(run)
                continue
            group.append((index, run))
            if len(group) == group_runs:
                train_group()
        if group:  # the grid's last runs, fewer than group_runs
            train_group()
        finished = len(runs) - len(pending)

        def finished_run(run: dict[str, Any]) -> None:
            nonlocal finished
            table.add(run["key"])
            finished += 1
            if progress:
                progress(finished, len(runs), run, False)

        if pending and backend == "ray":
            from .cluster import run_on_ray

            run_on_ray(spec, pending, paths, ray_options, finished_run)
        elif pending:
            threads = max(1, torch.get_num_threads() // workers)
            context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(threads,)) as pool:
                groups = [pending[start:start + group_runs] for start in range(0, len(pending), group_runs)]
                futures = {pool.submit(_train_runs, spec, group, [paths[run["key"]] for run in group]): group
                           for group in groups}
                try:
                    for future in as_completed(futures):
                        future.result()
                        for run in futures[future]:
                            finished_run(run)
                except BaseException:
                    for future in futures:  # a failed run or Ctrl-C: start nothing new; runs in flight still finish
                        future.cancel()
                    raise
    except BaseException:
        table.rebuild()  # a failed run or Ctrl-C: the table holds every run whose record was written, in grid order
        raise
    if progress:
        progress(len(runs), len(runs), {}, True)
    return table.rebuild()
