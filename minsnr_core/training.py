"""The one training loop. It yields progress events; the CLI, the app and the notebooks only consume them.

    for event in train(TrainConfig(dataset="moons", steps=500)):
        print(event.kind, event.step, event.loss)

Same seed and config give the same run on the CPU: every random draw (batch indices, timesteps, noise) comes
from one seeded generator, and its state is part of the checkpoint, so a resumed run continues the same curve.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import Iterator
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
from .data import TOY_DATASETS, load_dataset, load_labels
from .diffusion import Diffusion
from .models import build_model, count_parameters
from .sampling import balanced_labels, ddim_sample
from .schedules import get_schedule


@dataclass
class TrainEvent:
    """One progress report. ``kind``: start, log, preview, metric, checkpoint, done, stopped or error."""

    kind: str
    step: int
    elapsed_s: float
    total_steps: int | None = None
    loss: float | None = None
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
class _Run:
    """The live state of a run: what a checkpoint stores."""

    config: TrainConfig
    model: torch.nn.Module
    ema: AveragedModel
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0

    def state(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "generator": self.generator.get_state(),
        }


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


def load_run_model(
    path: str | Path, device: str = "auto"
) -> tuple[torch.nn.Module, Diffusion, TrainConfig, tuple[int, ...]]:
    """The EMA model, its diffusion process, config and the shape of one sample, from a run folder or checkpoint."""
    state = load_checkpoint(path)
    config = dataclasses.replace(saved_config(state), device=device).resolved()  # sampled where it is loaded
    try:
        shape = tuple(state["shape"])
        num_classes = int(state.get("num_classes", 0))  # checkpoints from before class conditioning have none
        model = build_model(config.model, state["channels"], num_classes)
        ema = AveragedModel(model)
        ema.load_state_dict(state["ema"])
    except (KeyError, RuntimeError, TypeError) as error:
        raise CheckpointError(f"{path}: checkpoint does not match its model ({error})") from None
    dev = resolve_device(device)
    diffusion = Diffusion(get_schedule(config.schedule, config.timesteps, zero_terminal_snr=config.zero_terminal_snr),
                          config.target, config.weighting, config.weighting_params).to(dev)
    return ema.module.to(dev).eval(), diffusion, config, shape


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
    class-conditional run)."""
    config = config.resolved()
    stop = stop or threading.Event()
    device = resolve_device(config.device)
    started = time.perf_counter()

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
    num_classes = int(labels.max()) + 1 if config.class_conditional else 0
    data = data.to(device)
    is_image = data.dim() == 4
    memory_format = torch.channels_last if is_image and device.type == "cpu" else torch.preserve_format
    if is_image:
        data = data.contiguous(memory_format=memory_format)
    channels = data.shape[1]
    model = build_model(config.model, channels, num_classes).to(device, memory_format=memory_format)
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(config.ema_decay), use_buffers=True)
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0, fused=fused)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    run = _Run(config, model, ema, optimizer, generator)
    if resume is not None:
        _restore(run, load_checkpoint(resume), device, num_classes)

    schedule = get_schedule(config.schedule, config.timesteps, zero_terminal_snr=config.zero_terminal_snr)
    diffusion = Diffusion(schedule, config.target, config.weighting, config.weighting_params).to(device)
    step_fn = torch.compile(model) if config.compile else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    out_dir = Path(config.out_dir) if config.out_dir else None
    if out_dir is not None:
        remove_orphans(out_dir)  # half-written checkpoints of a killed run
    parameters = count_parameters(model)
    deadline = started + config.minutes * 60 if config.minutes else None

    def event(kind: str, **extra: Any) -> TrainEvent:
        return TrainEvent(kind, run.step, time.perf_counter() - started, config.steps, device=str(device),
                          parameters=parameters, **extra)

    def checkpoint() -> str | None:
        if out_dir is None:
            return None
        extra = {"channels": channels, "shape": list(data.shape[1:]), "num_classes": num_classes}
        return str(save_checkpoint(out_dir / CHECKPOINT_NAME, {**run.state(), **extra}))

    yield event("start", message=f"{config.dataset}: {len(data)} examples, {parameters:,} parameters on {device}")
    bucket_sum = torch.zeros(config.buckets, device=device)
    bucket_count = torch.zeros(config.buckets, device=device)
    loss_sum = torch.zeros((), device=device)
    interval_start, interval_steps = time.perf_counter(), 0
    model.train()
    while True:
        if stop.is_set():
            path = checkpoint()
            yield event("stopped", message="stopped on request", checkpoint=path)
            return
        if (config.steps is not None and run.step >= config.steps) or (deadline and time.perf_counter() >= deadline):
            if config.preview_every and run.step % config.preview_every:  # the final state, not an older preview
                yield event("preview", samples=preview_samples(ema.module, diffusion, config, data.shape[1:], device))
            if config.metric_every and run.step % config.metric_every:
                yield event("metric", metric=evaluate_quality(ema.module, diffusion, config, data.shape[1:], device))
            path = checkpoint()
            yield event("done", message=f"finished after {run.step} steps", checkpoint=path)
            return

        index = torch.randint(0, len(data), (config.batch_size,), generator=generator, device=device)
        x0 = data[index]
        t = torch.randint(0, config.timesteps, (config.batch_size,), generator=generator, device=device)
        noise = torch.randn(x0.shape, generator=generator, device=device)
        if is_image:
            noise = noise.contiguous(memory_format=memory_format)
        y = None
        if num_classes:  # label dropout: a share of each batch learns the unconditional model (index K)
            y = labels[index]
            drop = torch.rand(config.batch_size, generator=generator, device=device) < config.label_dropout
            y = torch.where(drop, torch.full_like(y, num_classes), y)
        with autocast:
            loss, per_sample = diffusion.loss(step_fn, x0, t, noise, y)
        if device.type == "cpu" or (run.step + 1) % config.log_every == 0:
            if not torch.isfinite(loss).item():
                kept = out_dir / CHECKPOINT_NAME if out_dir and (out_dir / CHECKPOINT_NAME).exists() else None
                yield event("error", loss=float(loss.item()), checkpoint=str(kept) if kept else None,
                            message=f"loss became {loss.item()} at step {run.step + 1}; run stopped. "
                            + ("The last good checkpoint is kept (checkpoint.pt in the run folder)." if kept
                               else "No checkpoint was written yet.")
                            + " Try a lower learning rate.")
                return
        progress = max(run.step / config.steps if config.steps else 0.0,
                       (time.perf_counter() - started) / (config.minutes * 60) if config.minutes else 0.0)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(config, run.step, progress)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        ema.update_parameters(model)
        run.step += 1
        interval_steps += 1

        bucket = (t * config.buckets) // config.timesteps
        bucket_sum.index_add_(0, bucket, per_sample.detach().float())
        bucket_count.index_add_(0, bucket, torch.ones_like(per_sample, dtype=torch.float32))
        loss_sum += loss.detach().float()

        if run.step % config.log_every == 0:
            now = time.perf_counter()
            rate = interval_steps * config.batch_size / max(now - interval_start, 1e-9)
            counts = bucket_count.cpu()
            means = (bucket_sum.cpu() / counts.clamp(min=1)).tolist()
            yield event("log", loss=(loss_sum / interval_steps).item(), images_per_sec=rate,
                        bucket_losses=[m if c > 0 else None for m, c in zip(means, counts.tolist(), strict=True)],
                        eta_s=_eta(config, run.step, rate, deadline))
            bucket_sum.zero_(), bucket_count.zero_(), loss_sum.zero_()
            interval_steps = 0
        if config.preview_every and run.step % config.preview_every == 0:
            samples = preview_samples(ema.module, diffusion, config, data.shape[1:], device)
            yield event("preview", samples=samples)
        if config.metric_every and run.step % config.metric_every == 0:
            yield event("metric", metric=evaluate_quality(ema.module, diffusion, config, data.shape[1:], device))
        if config.checkpoint_every and run.step % config.checkpoint_every == 0 and out_dir is not None:
            yield event("checkpoint", checkpoint=checkpoint())
        if run.step % config.log_every == 0:
            interval_start = time.perf_counter()


def _eta(config: TrainConfig, step: int, images_per_sec: float, deadline: float | None) -> float | None:
    remaining = []
    if config.steps is not None and images_per_sec > 0:
        remaining.append((config.steps - step) * config.batch_size / images_per_sec)
    if deadline is not None:
        remaining.append(max(0.0, deadline - time.perf_counter()))
    return min(remaining) if remaining else None


def _restore(run: _Run, state: dict[str, Any], device: torch.device, num_classes: int) -> None:
    saved = saved_config(state)
    for name in ("dataset", "model", "schedule", "timesteps", "target", "zero_terminal_snr", "class_conditional"):
        if getattr(saved, name) != getattr(run.config, name):
            hint = " (set class_conditional, or --unconditional, to match)" if name == "class_conditional" else ""
            raise CheckpointError(f"cannot resume: checkpoint has {name}={getattr(saved, name)!r}, "
                                  f"this run has {getattr(run.config, name)!r}{hint}")
    if int(state.get("num_classes", 0)) != num_classes:
        raise CheckpointError(f"cannot resume: checkpoint has {state.get('num_classes', 0)} classes, "
                              f"this run's labels have {num_classes}")
    try:
        run.model.load_state_dict(state["model"])
        run.ema.load_state_dict(state["ema"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.generator.set_state(state["generator"].to(run.generator.get_state().device))
        run.step = int(state["step"])
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        raise CheckpointError(f"cannot resume from this checkpoint: {error}") from None


def sample_clip(shape: tuple[int, ...]) -> float:
    """Clip range of x̂0 while sampling: the data range, [−1, 1] for images, ±4 for the toys (all within ±3)."""
    return 1.0 if len(shape) == 3 else 4.0


@torch.no_grad()
def _fixed_seed_samples(model: torch.nn.Module, diffusion: Diffusion, shape: tuple[int, ...], count: int, steps: int,
                        seed: int, device: torch.device, guidance: float = 1.0, eta: float = 0.0) -> torch.Tensor:
    """DDIM samples (CPU float tensor) from a fixed seed, so successive evaluations are comparable; a
    class-conditional model draws every class equally often, with classifier-free ``guidance``."""
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    labels = balanced_labels(count, getattr(model, "num_classes", 0))
    samples, _ = ddim_sample(model, diffusion, (count, *shape), steps, eta, generator=generator, device=device,
                             clip=sample_clip(shape), labels=labels, guidance=guidance)
    model.train(was_training)
    return samples.float().cpu()


def preview_samples(
    model: torch.nn.Module, diffusion: Diffusion, config: TrainConfig, shape: tuple[int, ...], device: torch.device
) -> torch.Tensor:
    """The preview batch: ``preview_count`` images, or at least 512 points for a toy scatter."""
    count = config.preview_count if len(shape) == 3 else max(config.preview_count, 512)
    return _fixed_seed_samples(model, diffusion, shape, count, config.preview_sample_steps, config.seed + 12345, device,
                              config.guidance, config.sample_eta)


def evaluate_quality(
    model: torch.nn.Module, diffusion: Diffusion, config: TrainConfig, shape: tuple[int, ...], device: torch.device
) -> dict[str, float]:
    """The quality metric of :mod:`minsnr_core.metrics` on fresh DDIM samples (MNIST, CIFAR-10 and the toys)."""
    from . import metrics

    samples = _fixed_seed_samples(model, diffusion, shape, config.metric_samples, 50, config.seed + 54321, device,
                                 config.guidance, config.sample_eta)
    if config.dataset in TOY_DATASETS:
        return metrics.toy_score(samples, config.dataset)
    if config.dataset in metrics.CLASSIFIERS:
        requested = balanced_labels(len(samples), getattr(model, "num_classes", 0))  # what the samples were asked for
        return metrics.image_score(samples, config.dataset, config.data_root, requested)
    return {}
