"""The one training loop. It yields progress events; the CLI, the app and the notebooks only consume them.

    for event in train(TrainConfig(dataset="moons", steps=500)):
        print(event.kind, event.step, event.loss)

Same seed and config give the same run on the CPU: every random draw (batch indices, timesteps, noise) comes
from one seeded generator, and its state is part of the checkpoint, so a resumed run continues the same curve.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint, remove_orphans, save_checkpoint
from .config import (  # noqa: F401 - re-exported: the training API keeps its names
    DEFAULT_STEPS,
    LR_SCHEDULES,
    TrainConfig,
    check_sampling_guidance,
    continued_config,
    resolve_device,
    saved_config,
)
from .data import TOY_DATASETS, load_dataset, load_labels, sample_clip
from .diffusion import Diffusion
from .models import build_model, count_parameters
from .sampling import SamplingStopped, balanced_labels, ddim_sample
from .schedules import get_schedule


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


def ema_with_warmup(decay: float):
    """EMA update for ``AveragedModel``: decay min(d, (1 + n)/(10 + n)) so early averages are not stuck at init."""

    @torch.no_grad()
    def update(ema_params, params, num_averaged):
        n = float(num_averaged)
        weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(ema_params, params, weight)

    return update


@dataclass
class RunState:
    """A run being trained: its data, model, EMA, optimizer, random state and diffusion process. A checkpoint
    stores :meth:`state`; :func:`prepare_run` builds one, :func:`draw_batch` and :func:`train_step` advance it."""

    config: TrainConfig
    data: torch.Tensor
    labels: torch.Tensor | None
    num_classes: int
    device: torch.device
    model: torch.nn.Module
    ema: AveragedModel
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    diffusion: Diffusion
    forward: torch.nn.Module  # the model, or its torch.compile'd version
    step: int = 0

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])

    def state(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "generator": self.generator.get_state(),
            "channels": self.data.shape[1],
            "shape": list(self.sample_shape),
            "num_classes": self.num_classes,
        }


@dataclass
class Batch:
    x0: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor
    labels: torch.Tensor | None


class NonFiniteLoss(ArithmeticError):
    """The loss became NaN or infinite; no update was made."""


FINAL_LR_FRACTION = 0.05


def _lr_at(config: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up, then (``cosine``) a decay to 5 % of ``lr`` as the budget runs out.

    ``progress`` ∈ [0, 1] is the used share of the budget: steps, or wall-clock time with ``minutes``. A short
    run ends at a low learning rate, which sharpens its samples (Loshchilov & Hutter 2017, SGDR).
    """
    warmup = min(1.0, (step + 1) / max(1, config.warmup_steps))
    if config.lr_schedule == "constant":
        return config.lr * warmup
    decay = FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * warmup * decay


def prepare_run(
    config: TrainConfig,
    data: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    resume: str | Path | None = None,
    model: torch.nn.Module | None = None,
) -> RunState:
    """Load the data (unless given), build model, EMA, optimizer and generator from the config's seed, and restore
    a checkpoint's state when resuming. ``config`` must be resolved. ``model``: train this network instead of the
    config's preset (the throughput benchmark's reference model)."""
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    if data is None:
        data = load_dataset(config.dataset, config.data_root, download=config.download, toy_size=config.toy_size,
                            seed=config.seed, image_size=config.image_size)
    if config.class_conditional:
        if labels is None:
            labels = load_labels(config.dataset, config.data_root)
        if labels.shape != (len(data),):
            raise ValueError(f"labels must have one entry per training example ({len(data)}), got {tuple(labels.shape)}")
        if labels.is_floating_point() or labels.is_complex() or (len(labels) and int(labels.min()) < 0):
            raise ValueError("labels must be integer class indices ≥ 0")
        labels = labels.to(device=device, dtype=torch.long)
    else:
        labels = None
    num_classes = int(labels.max()) + 1 if labels is not None else 0
    # Images train channels-last on the CPU (faster convolutions there); points have no memory format.
    memory_format = torch.channels_last if config.kind == "image" and device.type == "cpu" else torch.preserve_format
    data = data.to(device).contiguous(memory_format=memory_format)
    model = model if model is not None else build_model(config.model, data.shape[1], num_classes)
    model = model.to(device, memory_format=memory_format)
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(config.ema_decay), use_buffers=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0, fused=device.type == "cuda")
    generator = torch.Generator(device=device).manual_seed(config.seed)
    schedule = get_schedule(config.schedule, config.timesteps, zero_terminal_snr=config.zero_terminal_snr)
    diffusion = Diffusion(schedule, config.target, config.weighting, config.weighting_params).to(device)
    run = RunState(config, data, labels, num_classes, device, model, ema, optimizer, generator, diffusion,
                   torch.compile(model) if config.compile else model)
    if resume is not None:
        _restore(run, load_checkpoint(resume))
    return run


def draw_batch(run: RunState) -> Batch:
    """Example indices, timesteps, noise and (class-conditional runs) labels, all from the run's generator.
    Label dropout: a share of each batch learns the unconditional model (class index K)."""
    config, generator, device = run.config, run.generator, run.device
    index = torch.randint(0, len(run.data), (config.batch_size,), generator=generator, device=device)
    x0 = run.data[index]
    t = torch.randint(0, config.timesteps, (config.batch_size,), generator=generator, device=device)
    noise = torch.randn(x0.shape, generator=generator, device=device).contiguous(
        memory_format=torch.channels_last if x0.dim() == 4 and device.type == "cpu" else torch.preserve_format)
    y = None
    if run.labels is not None:
        y = run.labels[index]
        drop = torch.rand(config.batch_size, generator=generator, device=device) < config.label_dropout
        y = torch.where(drop, torch.full_like(y, run.num_classes), y)
    return Batch(x0, t, noise, y)


def train_step(run: RunState, batch: Batch, lr: float, check_finite: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step: the weighted loss (bf16 autocast on CUDA), backward, gradient norm clipped at 1,
    AdamW at ``lr``, EMA update. Returns the detached (loss, per-sample losses). With ``check_finite`` a NaN or
    infinite loss raises :class:`NonFiniteLoss` before any update (it costs a device sync, so a GPU run checks
    only at its log steps)."""
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if run.device.type == "cuda"
                else contextlib.nullcontext())
    with autocast:
        loss, per_sample = run.diffusion.loss(run.forward, batch.x0, batch.t, batch.noise, batch.labels)
    if check_finite and not torch.isfinite(loss).item():
        raise NonFiniteLoss(float(loss.item()))
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.optimizer.step()
    run.ema.update_parameters(run.model)
    run.step += 1
    return loss.detach(), per_sample.detach()


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
    final state (unless this step already had them) and a checkpoint. Then one :func:`train_step`; every
    ``log_every`` steps a log event, and previews, metrics and checkpoints at their intervals.

    A time budget keeps room for the final preview and metric (as long as they last took), and skips a periodic
    one that would not end before then, so the run ends on time. ``stop`` is also honoured between the sampling
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

    report_s = {"preview": 0.0, "metric": 0.0}  # how long each last took: the room a time budget keeps for it
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
                report = event("preview", samples=preview_samples(run, stop.is_set))
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
    meter = _LossMeter(config.buckets, config.timesteps, run.device)
    run.model.train()
    try:
        while True:
            if stop.is_set():
                yield event("stopped", message="stopped on request", checkpoint=checkpoint())
                return
            if ends_now():
                yield from reports(periodic=False)
                yield event("done", message=f"finished after {run.step} steps", checkpoint=checkpoint())
                return
            progress = max(run.step / config.steps if config.steps else 0.0,
                           (time.perf_counter() - started) / (config.minutes * 60) if config.minutes else 0.0)
            batch = draw_batch(run)
            try:
                check = run.device.type == "cpu" or (run.step + 1) % config.log_every == 0
                loss, per_sample = train_step(run, batch, _lr_at(config, run.step, progress), check_finite=check)
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
        reports = sum(report_s[kind] * (left // every + 1) for kind, every in
                      (("preview", config.preview_every), ("metric", config.metric_every)) if every)
        remaining.append(left * config.batch_size / images_per_sec + reports)
    if deadline is not None:
        remaining.append(max(0.0, deadline - time.perf_counter()))
    return min(remaining) if remaining else None


def _restore(run: RunState, state: dict[str, Any]) -> None:
    saved = saved_config(state)
    for name in ("dataset", "model", "schedule", "timesteps", "target", "zero_terminal_snr", "class_conditional"):
        if getattr(saved, name) != getattr(run.config, name):
            hint = " (set class_conditional, or --unconditional, to match)" if name == "class_conditional" else ""
            raise CheckpointError(f"cannot resume: checkpoint has {name}={getattr(saved, name)!r}, "
                                  f"this run has {getattr(run.config, name)!r}{hint}")
    if int(state.get("num_classes", 0)) != run.num_classes:
        raise CheckpointError(f"cannot resume: checkpoint has {state.get('num_classes', 0)} classes, "
                              f"this run's labels have {run.num_classes}")
    try:
        run.model.load_state_dict(state["model"])
        run.ema.load_state_dict(state["ema"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.generator.set_state(state["generator"].to(run.generator.get_state().device))
        run.step = int(state["step"])
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        raise CheckpointError(f"cannot resume from this checkpoint: {error}") from None


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
    from . import metrics

    config = run.config
    samples = _fixed_seed_samples(run, config.metric_samples, 50, config.seed + 54321, stop)
    if config.dataset in TOY_DATASETS:
        return metrics.toy_score(samples, config.dataset)
    if config.dataset in metrics.CLASSIFIERS:
        requested = balanced_labels(len(samples), run.num_classes)  # what the samples were asked for
        return metrics.image_score(samples, config.dataset, config.data_root, requested)
    return {}
