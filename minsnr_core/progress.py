"""A run's progress bookkeeping: the loss meter a log event reads, and the schedule of its logs, reports, saves and
budget. The training loop (:mod:`minsnr_core.training`) asks them; nothing here trains."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .config import TrainConfig

Clock = Callable[[], float]  # seconds, as time.perf_counter counts them


class LossMeter:
    """Since the last log, kept on the device: the mean weighted loss, the mean unweighted loss (in the target's
    space: comparable across weightings of one target) and per timestep bucket; the training rate, without the time
    spent on previews and metrics, and its running average (what the ETA uses, so it does not jump)."""

    def __init__(self, buckets: int, timesteps: int, device: torch.device, clock: Clock = time.perf_counter) -> None:
        self.buckets, self.timesteps, self.clock = buckets, timesteps, clock
        self.bucket_sum = torch.zeros(buckets, device=device)
        self.bucket_count = torch.zeros(buckets, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.unweighted_sum = torch.zeros((), device=device)
        self.steps, self.started, self.paused_s = 0, clock(), 0.0
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
        now = self.clock()
        rate = self.steps * batch_size / max(now - self.started - self.paused_s, 1e-9)
        self.smoothed_rate = rate if self.smoothed_rate is None else 0.7 * self.smoothed_rate + 0.3 * rate
        counts = self.bucket_count.cpu()
        means = (self.bucket_sum.cpu() / counts.clamp(min=1)).tolist()
        fields = {"loss": (self.loss_sum / self.steps).item(),
                  "unweighted_loss": (self.unweighted_sum / self.steps).item(),
                  "images_per_sec": rate,
                  "bucket_losses": [m if c > 0 else None for m, c in zip(means, counts.tolist(), strict=True)]}
        for total in (self.bucket_sum, self.bucket_count, self.loss_sum, self.unweighted_sum):
            total.zero_()
        self.steps, self.started, self.paused_s = 0, now, 0.0
        return fields


def bucket_steps(bucket: int, buckets: int, timesteps: int) -> tuple[int, int]:
    """The first and last timestep t of the loss meter's ``bucket`` (of ``buckets``; t goes to bucket ⌊t·buckets/T⌋)."""
    return -(-bucket * timesteps // buckets), -(-(bucket + 1) * timesteps // buckets) - 1


REPORTS = ("preview", "metric")  # the reports that sample the model, in the order a step makes them


@dataclass
class ReportSchedule:
    """When a run logs, reports and saves, and when its budget ends. ``every``: each kind's interval in steps (log,
    preview, metric, checkpoint; 0 or None: never). The budget: ``steps``, and/or a wall-clock ``deadline`` (from
    ``minutes``, previews and metrics included).

    A time budget keeps room for the final preview and metric, as long as each last took (``took_s``; before the
    first, an estimate), and skips a periodic one that would not end before then, so the run ends on time."""

    started: float
    steps: int | None
    deadline: float | None
    every: dict[str, int | None]
    took_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(REPORTS, 0.0))
    shown_at: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REPORTS, -1))  # the step each last showed
    clock: Clock = time.perf_counter  # the run's time, which ``started``, ``deadline`` and ``now`` are read on

    @classmethod
    def of(cls, config: TrainConfig, started: float, clock: Clock = time.perf_counter) -> ReportSchedule:
        """The schedule of a resolved ``config`` whose run started at ``started`` (read on ``clock``)."""
        every = {"log": config.log_every, "preview": config.preview_every, "metric": config.metric_every,
                 "checkpoint": config.checkpoint_every}
        return cls(started, config.steps, started + config.minutes * 60 if config.minutes else None, every,
                   clock=clock)

    def due(self, kind: str, step: int) -> bool:
        """Whether ``step`` is on ``kind``'s interval."""
        every = self.every[kind]
        return bool(every) and step % every == 0

    def report_due(self, kind: str, step: int, now: float, final: bool) -> bool:
        """Whether a preview or metric is due: on its interval if it would end before the room kept for the final
        reports, or (``final``) of the final state; never twice for one step."""
        if not self.every[kind] or self.shown_at[kind] == step:
            return False
        if final:
            return True
        return self.due(kind, step) and (self.deadline is None or now + self.took_s[kind] <= self.end_of_training())

    def reported(self, kind: str, step: int, seconds: float) -> None:
        """A preview or metric of ``step`` took ``seconds``."""
        self.took_s[kind], self.shown_at[kind] = seconds, step

    def final_reports_s(self) -> float:
        """The room a time budget keeps for the final preview and metric."""
        return sum(self.took_s[kind] for kind in REPORTS if self.every[kind])

    def end_of_training(self) -> float:
        """When a time budget stops training: its deadline less the room for the final reports."""
        return self.deadline - self.final_reports_s()

    def ends(self, step: int, now: float) -> bool:
        """Whether the budget is spent."""
        if self.steps is not None and step >= self.steps:
            return True
        return self.deadline is not None and now >= self.end_of_training()

    def progress(self, step: int, now: float) -> float:
        """The share of the budget used (what the learning-rate schedule follows); a time budget ends early by the
        room kept for its final reports."""
        by_steps = step / self.steps if self.steps else 0.0
        by_time = (now - self.started) / max(1e-9, self.end_of_training() - self.started) if self.deadline else 0.0
        return max(by_steps, by_time)

    def eta_s(self, step: int, images_per_sec: float | None, batch_size: int, now: float) -> float | None:
        """Seconds left: a time budget's remainder, or the remaining steps at the smoothed rate plus the remaining
        previews and metrics at the duration they last took."""
        remaining = []
        if self.steps is not None and images_per_sec:
            reports = 0.0
            for kind in REPORTS:
                every = self.every[kind]
                if not every:
                    continue
                # the periodic reports still due, and a final one unless the last step is on the interval
                still_due = self.steps // every - step // every + (1 if self.steps % every else 0)
                reports += self.took_s[kind] * still_due
            remaining.append((self.steps - step) * batch_size / images_per_sec + reports)
        if self.deadline is not None:
            remaining.append(max(0.0, self.deadline - now))
        return min(remaining) if remaining else None
