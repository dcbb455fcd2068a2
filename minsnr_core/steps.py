"""The parts of a training run that :func:`minsnr_core.training.train` puts together: the run's state, its batches,
one optimisation step (eager here, or on CUDA replayed as one CUDA graph by :mod:`minsnr_core.cuda_graph`), the
learning-rate schedule and resuming from a checkpoint. The throughput benchmark times the same step (:func:`stepper`).

:mod:`minsnr_core.cuda_graph` builds on this module (it replays :func:`train_step`), so the functions here that need
it import it where they use it.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from .adaptive import AdaptiveWeighting, build_adaptive
from .checkpoint import CheckpointError, load_checkpoint
from .config import TrainConfig, resolve_device, resume_differences, saved_config
from .data import load_dataset, load_labels
from .diffusion import Diffusion
from .models import build_model, global_generator
from .schedules import get_schedule
from .timesteps import TimestepDistribution


@torch.no_grad()
def move_ema(averaged: list[torch.Tensor], current: list[torch.Tensor], n: float | torch.Tensor, decay: float) -> None:
    """The EMA update after ``n`` earlier ones: each averaged tensor moves toward the model's by the weight
    1 − min(decay, (1 + n)/(10 + n)), so early averages are not stuck at init. ``n`` is a number in an eager step; in
    a CUDA graph it is a device tensor (a replay cannot read the CPU), and the weight is computed on the device."""
    warm = (1.0 + n) / (10.0 + n)
    if isinstance(warm, torch.Tensor):
        # The foreach lerp takes no tensor weight: the same update as sub, mul, add.
        difference = torch._foreach_sub(current, averaged)
        torch._foreach_mul_(difference, 1.0 - warm.clamp(max=decay))
        torch._foreach_add_(averaged, difference)
    else:
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, warm))


def ema_with_warmup(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """The EMA update for ``AveragedModel`` (its ``multi_avg_fn``): :func:`move_ema`."""

    def update(ema_params: list[torch.Tensor], params: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        move_ema(ema_params, params, float(num_averaged), decay)

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
    timesteps: TimestepDistribution
    adaptive: AdaptiveWeighting
    forward: torch.nn.Module  # the model, or its torch.compile'd version
    step: int = 0
    session_start: int = 0  # the step this session started from (a resumed run's earlier steps)

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
            "session_start": self.session_start,
            "timestep_sampler": self.timesteps.state_dict(),
            "adaptive_weighting": self.adaptive.state_dict(),
        }


@dataclass
class Batch:
    x0: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor
    labels: torch.Tensor | None
    # The importance sampler's 1/(T·p_t) per sample (None: the loss is not reweighted for how t was drawn).
    loss_factor: torch.Tensor | None = None


class NonFiniteLoss(ArithmeticError):
    """The loss became NaN or infinite. The eager step raises it before any update; the CUDA-graph step finds it
    after its update, and the training loop then stops without saving that state."""


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


def compiled(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``torch.compile`` of the model's forward pass. On CUDA in mode "reduce-overhead" (CUDA graphs): a step of
    these small models is bound by launching its kernels, a cost that mode removes and the default mode hardly
    touches (docs/performance.md). Used for eager steps only: a :class:`~minsnr_core.cuda_graph.CudaGraphStep` replays the
    whole step without compiling."""
    return torch.compile(model, mode="reduce-overhead" if device.type == "cuda" else None)


def training_memory_format(config: TrainConfig, device: torch.device) -> torch.memory_format:
    """Images train channels-last on the CPU (faster convolutions there); points have no memory format."""
    return torch.channels_last if config.kind == "image" and device.type == "cpu" else torch.preserve_format


def place_data(config: TrainConfig, data: torch.Tensor) -> torch.Tensor:
    """The training tensor on the run's device in the layout it trains in (a no-op for data already placed, which
    lets runs side by side share one copy)."""
    device = resolve_device(config.device)
    return data.to(device).contiguous(memory_format=training_memory_format(config, device))


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
    from .cuda_graph import uses_cuda_graph

    device = resolve_device(config.device)
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
    data = place_data(config, data)
    memory_format = training_memory_format(config, device)
    if model is None:
        with global_generator(config.seed):
            model = build_model(config.model, data.shape[1], num_classes, tuple(data.shape[2:]) or None)
    model = model.to(device, memory_format=memory_format)
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(config.ema_decay), use_buffers=True)
    schedule = get_schedule(config.schedule, config.timesteps, zero_terminal_snr=config.zero_terminal_snr,
                            shift=config.schedule_shift)
    adaptive = build_adaptive(config.adaptive_weighting, schedule, config.adaptive_params, config.seed).to(device)
    # A learned weighting (EDM2's u) trains with the model, in the same optimizer.
    graphed = uses_cuda_graph(config, device)
    optimizer = torch.optim.AdamW([*model.parameters(), *adaptive.parameters()], lr=config.lr, weight_decay=0.0,
                                  fused=device.type == "cuda", capturable=graphed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    diffusion = Diffusion(schedule, config.target, config.weighting, config.weighting_params).to(device)
    timesteps = TimestepDistribution(config.timestep_sampling, schedule, config.timestep_params)
    run = RunState(config, data, labels, num_classes, device, model, ema, optimizer, generator, diffusion, timesteps,
                   adaptive, compiled(model, device) if config.compile and not graphed else model)
    if resume is not None:
        _restore(run, load_checkpoint(resume))
        run.session_start = run.step
    return run


def draw_batch(run: RunState) -> Batch:
    """Example indices, timesteps, noise and (class-conditional runs) labels, all from the run's generator.
    Label dropout: a share of each batch learns the unconditional model (class index K)."""
    config, generator, device = run.config, run.generator, run.device
    index = torch.randint(0, len(run.data), (config.batch_size,), generator=generator, device=device)
    x0 = run.data[index]
    t, loss_factor = run.timesteps.sample(config.batch_size, generator, device)
    noise = torch.randn(x0.shape, generator=generator, device=device).contiguous(
        memory_format=torch.channels_last if x0.dim() == 4 and device.type == "cpu" else torch.preserve_format)
    y = None
    if run.labels is not None:
        y = run.labels[index]
        drop = torch.rand(config.batch_size, generator=generator, device=device) < config.label_dropout
        y = torch.where(drop, torch.full_like(y, run.num_classes), y)
    return Batch(x0, t, noise, y, loss_factor)


def train_step(run: RunState, batch: Batch, lr: float, check_finite: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step: the weighted loss (bf16 autocast on CUDA), backward, gradient norm clipped at 1,
    AdamW at ``lr``, EMA update. Returns the detached (loss, per-sample losses); with an adaptive weighting the
    loss is the reweighted one without EDM2's u(t) term (that term trains u but makes the objective negative).
    With ``check_finite`` a NaN or infinite loss raises :class:`NonFiniteLoss` before any update (it costs a device
    sync, so a GPU run checks only at its log steps)."""
    with autocast(run.device):
        loss, per_sample, objective = step_losses(run, batch)
    if check_finite and not torch.isfinite(objective).item():
        raise NonFiniteLoss(float(objective.item()))
    run.optimizer.zero_grad(set_to_none=True)
    objective.backward()
    finish_step(run, batch, lr, per_sample)
    return loss.detach(), per_sample.detach()


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; nothing on the CPU (fp32, so a CPU run is deterministic)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def step_losses(run: RunState, batch: Batch, prediction: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A step's (weighted loss, per-sample losses, objective): the objective adds EDM2's u(t) term to the loss of an
    adaptive weighting. ``prediction``: the model's output for the batch's x_t when a grouped step
    (:mod:`minsnr_core.grouped`) computed it for several runs at once; else the run's model is called here."""
    adapting = run.config.adaptive_weighting != "none"
    factor = batch.loss_factor
    if adapting:
        learned = run.adaptive.factor(batch.t)
        factor = learned if factor is None else factor * learned
    if prediction is None:
        loss, per_sample = run.diffusion.loss(run.forward, batch.x0, batch.t, batch.noise, batch.labels, factor)
    else:
        loss, per_sample = run.diffusion.prediction_loss(prediction, batch.x0, batch.t, batch.noise, factor)
    objective = loss
    if adapting:  # EDM2's + u(t), reweighted like the loss so an importance sampler keeps its optimum e^u = E[w·ℓ]
        regulariser = run.adaptive.regulariser(batch.t)
        if batch.loss_factor is not None:
            regulariser = regulariser * batch.loss_factor
        objective = loss + regulariser.mean()
    return loss, per_sample, objective


def finish_step(run: RunState, batch: Batch, lr: float, per_sample: torch.Tensor) -> None:
    """A step after its backward pass: :func:`apply_gradients` at ``lr``, then what the timestep sampler and the
    adaptive weighting learn from the step's per-sample losses, and the step count."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    apply_gradients(run)
    if run.timesteps.entry.adaptive:  # it learns from the weighted loss at each t (a device sync on a GPU)
        run.timesteps.observe(batch.t, per_sample.detach() * run.diffusion.weights[batch.t])
    if run.config.adaptive_weighting != "none":
        run.adaptive.observe(batch.t, per_sample.detach() * run.diffusion.weights[batch.t])
    run.step += 1


def apply_gradients(run: RunState, ema_count: torch.Tensor | None = None) -> None:
    """The end of a training step, after backward, in the eager step and in the CUDA graph alike: the gradient norm
    clipped at 1, one AdamW step, then the EMA update (:func:`move_ema`).

    ``ema_count``: None in an eager step, where the ``AveragedModel`` counts its updates on the CPU (its first one
    copies the model). A CUDA graph passes its own count, a device tensor that the update reads and advances."""
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.optimizer.step()
    if ema_count is None:
        run.ema.update_parameters(run.model)
        return
    averaged, current = [], []  # the floating-point parameters and buffers (the EMA averages buffers too)
    ema_tensors = itertools.chain(run.ema.module.parameters(), run.ema.module.buffers())
    for ema_tensor, tensor in zip(ema_tensors, itertools.chain(run.model.parameters(), run.model.buffers()), strict=True):
        if tensor.is_floating_point():
            averaged.append(ema_tensor)
            current.append(tensor)
    move_ema(averaged, current, ema_count, run.config.ema_decay)
    ema_count.add_(1.0)


def stepper(run: RunState) -> Callable[[Batch, float, bool], tuple[torch.Tensor, torch.Tensor]]:
    """The run's optimisation step, called as ``step(batch, lr, check_finite)``: a
    :class:`~minsnr_core.cuda_graph.CudaGraphStep` where :func:`~minsnr_core.cuda_graph.uses_cuda_graph` allows,
    else :func:`train_step`."""
    from .cuda_graph import CudaGraphStep, uses_cuda_graph

    if uses_cuda_graph(run.config, run.device):
        return CudaGraphStep(run)
    return functools.partial(train_step, run)


def _restore(run: RunState, state: dict[str, Any]) -> None:
    """Load a checkpoint into ``run`` after checking it trains the same thing. A checkpoint may come from another
    device: the optimizer keeps this run's way of stepping, and a generator of another device type is replaced by
    one seeded from the run's seed and step."""
    from .cuda_graph import place_optimizer_steps

    # What a continued run must keep is the settings table's (on_resume): the checkpoint's config was resolved
    # when it was saved, so the two compare value for value.
    for name, before, after in resume_differences(saved_config(state), run.config)[:1]:
        hint = " (set class_conditional, or --unconditional, to match)" if name == "class_conditional" else ""
        raise CheckpointError(f"cannot resume: checkpoint has {name}={before!r}, this run has {after!r}{hint}")
    if int(state.get("num_classes", 0)) != run.num_classes:
        raise CheckpointError(f"cannot resume: checkpoint has {state.get('num_classes', 0)} classes, "
                              f"this run's labels have {run.num_classes}")
    try:
        run.model.load_state_dict(state["model"])
        run.ema.load_state_dict(state["ema"])
        flags = [{key: group[key] for key in ("fused", "capturable", "foreach")} for group in run.optimizer.param_groups]
        run.optimizer.load_state_dict(state["optimizer"])
        for group, own in zip(run.optimizer.param_groups, flags, strict=True):  # how this run steps, not the saver
            group.update(own, lr=float(group["lr"]))
        place_optimizer_steps(run)
        generator_state = state["generator"].to(run.generator.get_state().device)
        if generator_state.numel() == run.generator.get_state().numel():
            run.generator.set_state(generator_state)
        else:  # another device type's generator (a GPU run resumed on the CPU): its stream cannot carry over
            run.generator.manual_seed(run.config.seed + int(state["step"]))
        run.timesteps.load_state_dict(state.get("timestep_sampler", {}))
        run.adaptive.load_state_dict(state.get("adaptive_weighting", run.adaptive.state_dict()))
        run.step = int(state["step"])
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        raise CheckpointError(f"cannot resume from this checkpoint: {error}") from None


def weight_curves(run: RunState, points: int = 100) -> dict[str, list[float]] | None:
    """The fixed weighting w(t) and the weighting being trained with, w(t) times the adaptive factor, at up to
    ``points`` steps, each divided by its mean over all steps (their shapes compare; their scales differ by design).
    None when the weighting does not adapt."""
    if run.config.adaptive_weighting == "none":
        return None
    fixed = run.diffusion.weights.double().cpu()
    learned = fixed * run.adaptive.curve()
    steps = torch.linspace(0, len(fixed) - 1, min(points, len(fixed)), dtype=torch.float64).round().long()
    return {"t": steps.tolist(), "fixed": (fixed / fixed.mean())[steps].tolist(),
            "learned": (learned / learned.mean())[steps].tolist()}
