"""The one training loop. It yields progress events; the CLI, the app and the notebooks only consume them.

    for event in train(TrainConfig(dataset="moons", steps=500)):
        print(event.kind, event.step, event.loss)

Same seed and config give the same run on the CPU: every random draw (batch indices, timesteps, noise) comes
from one seeded generator, and its state is part of the checkpoint, so a resumed run continues the same curve.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CHECKPOINT_NAME, remove_orphans, save_checkpoint
from .config import TrainConfig, continued_config  # noqa: F401 - continued_config re-exported
from .data import TOY_DATASETS, sample_clip
from .models import count_parameters
from .sampling import SamplingStopped, balanced_labels, ddim_sample
from .steps import NonFiniteLoss, RunState, _lr_at, draw_batch, prepare_run, stepper, weight_curves

METRIC_SAMPLE_STEPS = 50  # the quality metric scores DDIM-50 samples


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


class _LossMeter:
    """Since the last log, kept on the device: the mean weighted loss, the mean unweighted loss (in the target's
    space: comparable across weightings of one target) and per timestep bucket; the training rate, without the time
    spent on previews and metrics, and its running average (what the ETA uses, so it does not jump)."""

    def __init__(self, buckets: int, timesteps: int, device: torch.device) -> None:
        self.buckets, self.timesteps = buckets, timesteps
        self.bucket_sum = torch.zeros(buckets, device=device)
        self.bucket_count = torch.zeros(buckets, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.unweighted_sum = torch.zeros((), device=device)
        self.steps, self.started, self.paused_s = 0, time.perf_counter(), 0.0
        self.smoothed_rate: float | None = None

    def add(self, t: torch.Tensor, loss: torch.Tensor, per_sample: torch.Tensor) -> None:
        per_sample = per_sample.float()
        bucket = (t * self.buckets) // self.timesteps
        self.bucket_sum.index_add_(0, bucket, per_sample)
        self.bucket_count.index_add_(0, bucket, torch.ones_like(per_sample))
        self.loss_sum += loss.float()
        self.unweighted_sum += per_sample.mean()
        self.steps += 1

    def pause(self, seconds: float) -> None:
        """Time spent on reports, not on training steps."""
        self.paused_s += seconds

    def read(self, batch_size: int) -> dict[str, Any]:
        """The log event's fields; then starts a new interval."""
        now = time.perf_counter()
        rate = self.steps * batch_size / max(now - self.started - self.paused_s, 1e-9)
        self.smoothed_rate = rate if self.smoothed_rate is None else 0.7 * self.smoothed_rate + 0.3 * rate
        counts = self.bucket_count.cpu()
        means = (self.bucket_sum.cpu() / counts.clamp(min=1)).tolist()
        fields = {"loss": (self.loss_sum / self.steps).item(),
                  "unweighted_loss": (self.unweighted_sum / self.steps).item(),
                  "images_per_sec": rate,
                  "bucket_losses": [m if c > 0 else None for m, c in zip(means, counts.tolist(), strict=True)]}
        self.bucket_sum.zero_(), self.bucket_count.zero_(), self.loss_sum.zero_(), self.unweighted_sum.zero_()
        self.steps, self.started, self.paused_s = 0, now, 0.0
        return fields


def train(
    config: TrainConfig,
    stop: threading.Event | None = None,
    resume: str | Path | None = None,
    data: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> Iterator[TrainEvent]:
    """Train and yield events. ``stop`` ends the run between steps; ``resume`` continues from a checkpoint
    (its model, EMA, optimizer, step and random state; ``config`` supplies the new budget); ``data`` skips
    loading when the caller already holds the training tensor (and ``labels`` its class labels, for a
    class-conditional run).

    The rules, in order: each step first honours ``stop``, then the budget (steps, or minutes of wall-clock time
    since the start, previews and metrics included); a spent budget ends with a last preview and metric of the
    final state (unless this step already had them) and a checkpoint. Then one step (:func:`stepper`); every
    ``log_every`` steps a log event, and previews, metrics and checkpoints at their intervals.

    A time budget keeps room for the final preview and metric (as long as they last took; before the first, one
    of its sampling steps is timed at the start and multiplied by its steps, plus a metric's scoring), and skips a
    periodic one that would not end before then, so the run ends on time. ``stop`` is also honoured between the sampling
    steps of a preview or metric. A "measuring" event announces a metric before it starts."""
    config = config.resolved()
    stop = stop or threading.Event()
    started = time.perf_counter()
    run = prepare_run(config, data, labels, resume)
    out_dir = Path(config.out_dir) if config.out_dir else None
    if out_dir is not None:
        remove_orphans(out_dir)  # half-written checkpoints of a killed run
    parameters = count_parameters(run.model)
    deadline = started + config.minutes * 60 if config.minutes else None

    def event(kind: str, **extra: Any) -> TrainEvent:
        return TrainEvent(kind, run.step, time.perf_counter() - started, config.steps, device=str(run.device),
                          parameters=parameters, **extra)

    def checkpoint() -> str | None:
        return None if out_dir is None else str(save_checkpoint(out_dir / CHECKPOINT_NAME, run.state()))

    report_s = {"preview": 0.0, "metric": 0.0}  # how long each last took (or will take): the room a budget keeps
    reported_at = {"preview": -1, "metric": -1}  # the step each last showed

    def final_reports_s() -> float:
        return (report_s["preview"] if config.preview_every else 0.0) + (report_s["metric"] if config.metric_every else 0.0)

    def reports(periodic: bool) -> Iterator[TrainEvent]:
        """The previews and metrics due: at their intervals (``periodic``), or of the final state unless it was
        just shown."""
        for kind, every in (("preview", config.preview_every), ("metric", config.metric_every)):
            if not every or reported_at[kind] == run.step or (periodic and run.step % every):
                continue
            if periodic and deadline and time.perf_counter() + report_s[kind] > deadline - final_reports_s():
                continue  # would end after the budget: the final report shows this state's successor instead
            began = time.perf_counter()
            if kind == "preview":
                report = event("preview", samples=preview_samples(run, stop.is_set), weight_curves=weight_curves(run))
            else:
                yield event("measuring", message=f"measuring sample quality on {config.metric_samples} samples")
                report = event("metric", metric=evaluate_quality(run, stop.is_set))
            report_s[kind], reported_at[kind] = time.perf_counter() - began, run.step
            meter.pause(report_s[kind])
            yield report

    def ends_now() -> bool:
        if config.steps is not None and run.step >= config.steps:
            return True
        return bool(deadline) and time.perf_counter() >= deadline - final_reports_s()

    yield event("start", message=f"{config.dataset}: {len(run.data)} examples, {parameters:,} parameters on "
                f"{run.device}")
    run.model.train()
    step = stepper(run)
    try:
        if deadline:  # a final report that comes before any periodic one must not overshoot the budget
            if config.preview_every:
                report_s["preview"] = _first_report_s(run, config.preview_count, config.preview_sample_steps, False,
                                                      stop.is_set)
            if config.metric_every:
                report_s["metric"] = _first_report_s(run, config.metric_samples, METRIC_SAMPLE_STEPS, True,
                                                     stop.is_set)
        meter = _LossMeter(config.buckets, config.timesteps, run.device)
        while True:
            if stop.is_set():
                yield event("stopped", message="stopped on request", checkpoint=checkpoint())
                return
            if ends_now():
                yield from reports(periodic=False)
                yield event("done", message=f"finished after {run.step} steps", checkpoint=checkpoint())
                return
            # The share of the budget used; a time budget ends early by the room kept for its final reports.
            progress = max(run.step / config.steps if config.steps else 0.0,
                           (time.perf_counter() - started) / max(1e-9, deadline - final_reports_s() - started)
                           if deadline else 0.0)
            batch = draw_batch(run)
            try:
                check = run.device.type == "cpu" or (run.step + 1) % config.log_every == 0
                loss, per_sample = step(batch, _lr_at(config, run.step, progress), check)
            except NonFiniteLoss as error:
                kept = out_dir / CHECKPOINT_NAME if out_dir and (out_dir / CHECKPOINT_NAME).exists() else None
                yield event("error", loss=error.args[0], checkpoint=str(kept) if kept else None,
                            message=f"loss became {error.args[0]} at step {run.step + 1}; run stopped. "
                            + ("The last good checkpoint is kept (checkpoint.pt in the run folder)." if kept
                               else "No checkpoint was written yet.")
                            + " Try a lower learning rate.")
                return
            meter.add(batch.t, loss, per_sample)
            if run.step % config.log_every == 0:
                fields = meter.read(config.batch_size)
                yield event("log", eta_s=_eta(config, run.step, meter.smoothed_rate, deadline, report_s), **fields)
            yield from reports(periodic=True)
            if config.checkpoint_every and run.step % config.checkpoint_every == 0 and out_dir is not None:
                yield event("checkpoint", checkpoint=checkpoint())

    except SamplingStopped:  # Stop pressed during a preview or metric
        yield event("stopped", message="stopped on request", checkpoint=checkpoint())


def _eta(config: TrainConfig, step: int, images_per_sec: float | None, deadline: float | None,
         report_s: dict[str, float]) -> float | None:
    """Seconds left: a time budget's remainder, or the remaining steps at the smoothed rate plus the remaining
    previews and metrics at the duration they last took."""
    remaining = []
    if config.steps is not None and images_per_sec:
        left = config.steps - step
        # the periodic reports still due, and a final one unless the last step is itself on the interval
        reports = sum(report_s[kind] * (config.steps // every - step // every + (1 if config.steps % every else 0))
                      for kind, every in (("preview", config.preview_every), ("metric", config.metric_every)) if every)
        remaining.append(left * config.batch_size / images_per_sec + reports)
    if deadline is not None:
        remaining.append(max(0.0, deadline - time.perf_counter()))
    return min(remaining) if remaining else None


def _first_report_s(run: RunState, count: int, steps: int, score: bool, stop: Callable[[], bool]) -> float:
    """How long a preview or metric will take before any has: one of its sampling steps, timed, times its steps,
    plus a metric's scoring of those samples (it costs the same on any). Timed twice: the first call in a process
    also pays one-time set-up (a metric's classifier)."""
    for _ in range(2):
        began = time.perf_counter()
        samples = _fixed_seed_samples(run, count, 1, run.config.seed, stop)
        sampled = time.perf_counter()
        if score:
            score_samples(run, samples)
        estimate = (sampled - began) * steps + time.perf_counter() - sampled
    return estimate


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
