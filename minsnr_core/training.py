"""The one training loop. It yields progress events; the CLI, the app and the notebooks only consume them.

    for event in train(TrainConfig(dataset="moons", steps=500)):
        print(event.kind, event.step, event.loss)

Same seed and config give the same run on the CPU: every random draw (batch indices, timesteps, noise) comes
from one seeded generator, and its state is part of the checkpoint, so a resumed run continues the same curve.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CHECKPOINT_NAME, remove_orphans, save_checkpoint
from .config import TrainConfig, continued_config  # noqa: F401 - continued_config re-exported
from .data import TOY_DATASETS, sample_clip
from .models import count_parameters
from .progress import REPORTS, Clock, LossMeter, ReportSchedule, bucket_steps  # noqa: F401 - bucket_steps re-exported
from .sampling import SamplingStopped, balanced_labels, ddim_sample
from .steps import (
    Batch,
    NonFiniteLoss,
    RunState,
    _lr_at,
    draw_batch,
    prepare_run,
    stepper,
    weight_curves,
)

METRIC_SAMPLE_STEPS = 50  # the quality metric scores DDIM-50 samples
FINAL_KINDS = ("done", "stopped", "error")  # the kinds of a run's last event


@dataclass
class TrainEvent:
    """One progress report. ``kind``: start, log, measuring (a metric begins), preview, metric, checkpoint, done,
    stopped or error. ``bucket_losses``: the unweighted MSE (target space) per timestep bucket."""

    kind: str
    step: int
    elapsed_s: float
    total_steps: int | None = None
    loss: float | None = None
    unweighted_loss: float | None = None  # the plain MSE in the target's space: comparable across weightings
    bucket_losses: list[float | None] | None = None
    images_per_sec: float | None = None
    eta_s: float | None = None
    samples: torch.Tensor | None = None
    metric: dict[str, float] | None = None
    message: str = ""
    device: str = ""
    parameters: int = 0
    checkpoint: str | None = None
    # A preview's weight curves when the weighting adapts: {"t", "fixed", "learned"}, each divided by its mean over t.
    weight_curves: dict[str, list[float]] | None = None


@dataclass
class StepDue:
    """What :func:`training_loop` asks of whoever drives it: one optimisation step of ``run`` on ``batch`` at
    ``lr`` (``check``: raise on a non-finite loss, as :func:`~minsnr_core.steps.train_step` takes it). The driver
    sends back the step's (loss, per-sample losses), or throws :class:`~minsnr_core.steps.NonFiniteLoss` in."""

    run: RunState
    batch: Batch
    lr: float
    check: bool


def train(
    config: TrainConfig,
    stop: threading.Event | None = None,
    resume: str | Path | None = None,
    data: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    clock: Clock = time.perf_counter,
) -> Iterator[TrainEvent]:
    """Train and yield events: :func:`training_loop`, each step taken by the run's own step
    (:func:`~minsnr_core.steps.stepper`: eager, or on CUDA one CUDA graph)."""
    loop = training_loop(config, stop, resume, data, labels, clock)
    step = None
    try:
        item = next(loop)
        while True:
            if isinstance(item, StepDue):
                step = step or stepper(item.run)
                try:
                    result = step(item.batch, item.lr, item.check)
                except NonFiniteLoss as error:
                    item = loop.throw(error)
                else:
                    item = loop.send(result)
            else:
                yield item
                item = next(loop)
    except StopIteration:
        return
    finally:
        loop.close()


def training_loop(
    config: TrainConfig,
    stop: threading.Event | None = None,
    resume: str | Path | None = None,
    data: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    clock: Clock = time.perf_counter,
) -> Generator[TrainEvent | StepDue, Any, None]:
    """The one training loop: it yields events, and a :class:`StepDue` where a step is to be taken, which
    :func:`train` takes with the run's own step and :func:`minsnr_core.side_by_side.train_side_by_side` with one
    batched step for several runs. ``stop`` ends the run between steps; ``resume`` continues from a checkpoint
    (its model, EMA, optimizer, step and random state; ``config`` supplies the new budget); ``data`` skips
    loading when the caller already holds the training tensor (and ``labels`` its class labels, for a
    class-conditional run). ``clock``: the run's time in seconds (its budget, ``elapsed_s``, rates and ETA);
    :func:`minsnr_core.side_by_side.train_side_by_side` gives each run one that stands still while the other runs train.

    The rules, in order: each step first honours ``stop``, then the budget (steps, or minutes of wall-clock time
    since the start, previews and metrics included); a spent budget ends with a last preview and metric of the
    final state (unless this step already had them) and a checkpoint. Then one step; every ``log_every`` steps a
    log event, and previews, metrics and checkpoints at their intervals.

    A time budget keeps room for the final preview and metric (:class:`ReportSchedule`; before the first, one of its
    sampling steps is timed at the start and multiplied by its steps, plus a metric's scoring). ``stop`` is also
    honoured between the sampling steps of a preview or metric. A "measuring" event announces a metric before it
    starts."""
    config = config.resolved()
    stop = stop or threading.Event()
    schedule = ReportSchedule.of(config, clock(), clock)
    run = prepare_run(config, data, labels, resume)
    out_dir = Path(config.out_dir) if config.out_dir else None
    if out_dir is not None:
        remove_orphans(out_dir)  # half-written checkpoints of a killed run
    yield _event(run, schedule, "start", message=f"{config.dataset}: {len(run.data)} examples, "
                 f"{count_parameters(run.model):,} parameters on {run.device}")
    run.model.train()
    try:
        if schedule.deadline is not None:  # a final report that comes before any periodic one must not overshoot
            for kind in REPORTS:
                if schedule.every[kind]:
                    schedule.took_s[kind] = _first_report_s(run, kind, stop.is_set)
        meter = LossMeter(config.buckets, config.timesteps, run.device, clock)
        while True:
            if stop.is_set():
                yield _event(run, schedule, "stopped", message="stopped on request", checkpoint=_save(run, out_dir))
                return
            if schedule.ends(run.step, clock()):
                yield from _reports(run, schedule, meter, stop, final=True)
                yield _event(run, schedule, "done", message=f"finished after {run.step} steps",
                             checkpoint=_save(run, out_dir))
                return
            lr = _lr_at(config, run.step, schedule.progress(run.step, clock()))
            batch = draw_batch(run)
            check = run.device.type == "cpu" or (run.step + 1) % config.log_every == 0  # a check syncs a GPU
            try:
                loss, per_sample = yield StepDue(run, batch, lr, check)
            except NonFiniteLoss as error:
                yield _non_finite(run, schedule, out_dir, error.args[0])
                return
            meter.add(batch.t, loss, per_sample)
            if schedule.due("log", run.step):
                fields = meter.read(config.batch_size)
                eta_s = schedule.eta_s(run.step, meter.smoothed_rate, config.batch_size, clock())
                yield _event(run, schedule, "log", eta_s=eta_s, **fields)
            yield from _reports(run, schedule, meter, stop, final=False)
            if out_dir is not None and schedule.due("checkpoint", run.step):
                yield _event(run, schedule, "checkpoint", checkpoint=_save(run, out_dir))
    except SamplingStopped:  # Stop pressed during a preview or metric
        yield _event(run, schedule, "stopped", message="stopped on request", checkpoint=_save(run, out_dir))


def _event(run: RunState, schedule: ReportSchedule, kind: str, **fields: Any) -> TrainEvent:
    """An event of ``kind`` at the run's current step."""
    return TrainEvent(kind, run.step, schedule.clock() - schedule.started, schedule.steps, device=str(run.device),
                      parameters=count_parameters(run.model), **fields)


def _save(run: RunState, out_dir: Path | None) -> str | None:
    """Write the run's checkpoint (none without a run folder); its path."""
    return None if out_dir is None else str(save_checkpoint(out_dir / CHECKPOINT_NAME, run.state()))


def _reports(run: RunState, schedule: ReportSchedule, meter: LossMeter, stop: threading.Event,
             final: bool) -> Iterator[TrainEvent]:
    """The previews and metrics due now (:meth:`ReportSchedule.report_due`). Their time is not training time."""
    for kind in REPORTS:
        if not schedule.report_due(kind, run.step, schedule.clock(), final):
            continue
        began = schedule.clock()  # the "measuring" event below may wait while other runs train
        if kind == "preview":
            report = _event(run, schedule, "preview", samples=preview_samples(run, stop.is_set),
                            weight_curves=weight_curves(run))
        else:
            yield _event(run, schedule, "measuring",
                         message=f"measuring sample quality on {run.config.metric_samples} samples")
            report = _event(run, schedule, "metric", metric=evaluate_quality(run, stop.is_set))
        took = schedule.clock() - began
        schedule.reported(kind, run.step, took)
        meter.pause(took)
        yield report


def _non_finite(run: RunState, schedule: ReportSchedule, out_dir: Path | None, loss: float) -> TrainEvent:
    """The error event of a loss that became NaN or infinite. The state is not saved: the last good checkpoint stays."""
    kept = out_dir / CHECKPOINT_NAME if out_dir and (out_dir / CHECKPOINT_NAME).exists() else None
    advice = ("The last good checkpoint is kept (checkpoint.pt in the run folder)." if kept
              else "No checkpoint was written yet.")
    return _event(run, schedule, "error", loss=loss, checkpoint=str(kept) if kept else None,
                  message=f"loss became {loss} at step {run.step + 1}; run stopped. {advice} Try a lower learning rate.")


def _first_report_s(run: RunState, kind: str, stop: Callable[[], bool]) -> float:
    """How long a preview or metric will take before any has: one of its sampling steps, timed, times its steps,
    plus a metric's scoring of those samples (it costs the same on any). Timed twice: the first call in a process
    also pays one-time set-up (a metric's classifier). The least of three timings: one step slowed by another
    process would otherwise be multiplied by the step count and could leave no room for training."""
    config = run.config
    if kind == "preview":
        count, steps = config.preview_count, config.preview_sample_steps
    else:
        count, steps = config.metric_samples, METRIC_SAMPLE_STEPS
    estimates = []
    for _ in range(3):
        began = time.perf_counter()
        samples = _fixed_seed_samples(run, count, 1, config.seed, stop)
        sampled = time.perf_counter()
        if kind == "metric":
            score_samples(run, samples)
        estimates.append((sampled - began) * steps + time.perf_counter() - sampled)
    return min(estimates[1:])


@torch.no_grad()
def _fixed_seed_samples(run: RunState, count: int, steps: int, seed: int,
                        stop: Callable[[], bool] | None = None) -> torch.Tensor:
    """DDIM samples of the EMA model (CPU float tensor) from a fixed seed, so successive evaluations are
    comparable; a class-conditional model draws every class equally often, with the run's guidance and η."""
    model, config = run.ema.module, run.config
    generator = torch.Generator(device=run.device).manual_seed(seed)
    was_training = model.training
    model.eval()
    labels = balanced_labels(count, run.num_classes)
    samples, _ = ddim_sample(model, run.diffusion, (count, *run.sample_shape), steps, config.sample_eta,
                             generator=generator, device=run.device, clip=sample_clip(config.kind), labels=labels,
                             guidance=config.guidance, stop=stop)
    model.train(was_training)
    return samples.float().cpu()


def preview_samples(run: RunState, stop: Callable[[], bool] | None = None) -> torch.Tensor:
    """The preview batch: ``preview_count`` images, or points for a toy scatter. ``stop``: see :func:`ddim_sample`."""
    return _fixed_seed_samples(run, run.config.preview_count, run.config.preview_sample_steps, run.config.seed + 12345,
                               stop)


def evaluate_quality(run: RunState, stop: Callable[[], bool] | None = None) -> dict[str, float]:
    """The quality metric of :mod:`minsnr_core.metrics` on fresh DDIM-50 samples (MNIST, CIFAR-10 and the toys)."""
    samples = _fixed_seed_samples(run, run.config.metric_samples, METRIC_SAMPLE_STEPS, run.config.seed + 54321, stop)
    return score_samples(run, samples)


def score_samples(run: RunState, samples: torch.Tensor) -> dict[str, float]:
    """The quality metric of :mod:`minsnr_core.metrics` for ``samples`` of this run's dataset ({} if it has none)."""
    from . import metrics

    config = run.config
    if config.dataset in TOY_DATASETS:
        return metrics.toy_score(samples, config.dataset)
    if config.dataset in metrics.CLASSIFIERS:
        requested = balanced_labels(len(samples), run.num_classes)  # what the samples were asked for
        return metrics.image_score(samples, config.dataset, config.data_root, requested)
    return {}
