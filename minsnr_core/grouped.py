"""Several runs of one architecture trained in one batched step: their parameters stacked along a new first
dimension and the model called once for all of them with ``torch.func.vmap`` (the "model ensembling" recipe of
``torch.func``: ``stack_module_state`` and ``functional_call``), so a step launches one set of kernels instead of
one per run.

Everything but the model's forward and backward pass stays each run's own: its batch, data order and noise (its
generator), its weighting, target and loss (:func:`minsnr_core.steps.step_losses`), its gradient clipping, AdamW
state and learning rate and its EMA (:func:`minsnr_core.steps.finish_step`), and its checkpoint, which its own
training loop writes. Runs do not mix: each
run's loss reads only its own slice of the stacked output, so the backward pass of the sum of the losses gives each
run the gradient it would get alone. The numbers match a run trained alone up to float rounding (the batched
convolutions and matrix products add in another order): ``tests/test_grouped.py`` bounds the difference over 50
steps.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch.func import functional_call, vmap

from .config import TrainConfig, resolve_device
from .steps import Batch, NonFiniteLoss, RunState, autocast, finish_step, step_losses

# Attention has no batching rule on the CPU: vmap runs it once per run (same numbers), and says so on every call.
warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented the "
                        "batching rule for aten::_scaled_dot_product", category=UserWarning)


def group_key(config: TrainConfig) -> tuple[Any, ...] | None:
    """Runs whose resolved configs have the same key train in one batched step: the same model preset, data (so the
    same example shape and classes), batch size and device. None for a run that cannot: a ``torch.compile``'d
    model."""
    if config.compile:
        return None
    return (config.model, config.dataset, config.data_root, config.image_size, config.batch_size,
            str(resolve_device(config.device)), config.class_conditional)


def step_groups(configs: list[TrainConfig]) -> list[list[int]]:
    """The indices of resolved configs whose runs share a batched step, a list per group of two or more."""
    members: dict[tuple[Any, ...], list[int]] = {}
    for index, config in enumerate(configs):
        key = group_key(config)
        if key is not None:
            members.setdefault(key, []).append(index)
    return [group for group in members.values() if len(group) > 1]


def why_not_grouped(configs: list[TrainConfig]) -> list[str]:
    """Per resolved config, in words, why its run takes steps of its own beside the others ("" for a run that shares
    a batched step)."""
    keys = [group_key(config) for config in configs]
    reasons = []
    for key in keys:
        if key is None:
            reasons.append("its model is compiled (torch.compile)")
        elif keys.count(key) > 1:
            reasons.append("")
        else:
            reasons.append("no other run has its model, data, batch size and device")
    return reasons


class GroupedStep:
    """The optimisation step of runs that share a :func:`group_key`, for whichever of them step at a call."""

    def __init__(self, model: torch.nn.Module) -> None:
        # The module's structure without its tensors: functional_call fills in each call's stacked parameters.
        self.skeleton = copy.deepcopy(model).to("meta")
        self.names = [name for name, _ in model.named_parameters()]
        self.buffer_names = [name for name, _ in model.named_buffers()]

    def _forward(self, parameters: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                 *inputs: torch.Tensor) -> torch.Tensor:
        return functional_call(self.skeleton, (parameters, buffers), inputs)

    def __call__(self, runs: list[RunState], batches: list[Batch], lrs: list[float],
                 checks: list[bool]) -> list[tuple[torch.Tensor, torch.Tensor] | Exception]:
        """One step of every run in ``runs`` (its batch, learning rate and whether to check its loss is finite, as
        :func:`minsnr_core.steps.train_step` takes them). Per run: its detached (loss, per-sample losses), or the
        :class:`~minsnr_core.steps.NonFiniteLoss` that :func:`~minsnr_core.steps.train_step` would raise; such a run
        is not updated, and the others step as usual."""
        # Stacked in the standard layout: the batched convolutions ran 1.2× slower on channels-last stacks (the
        # layout a CPU run trains its own steps in) on the 2-core CPU.
        own = [dict(run.model.named_parameters()) for run in runs]
        stacked = {name: torch.stack([tensors[name].detach() for tensors in own]).contiguous().requires_grad_()
                   for name in self.names}
        buffers = [dict(run.model.named_buffers()) for run in runs]
        stacked_buffers = {name: torch.stack([tensors[name] for tensors in buffers]).contiguous()
                           for name in self.buffer_names}
        # The inputs are stacked on dimension 1, (batch, run, …): a batched convolution then reads a run's channels
        # beside the others' without a copy (1.1× faster than stacked on dimension 0 on the 2-core CPU).
        x_t = torch.stack([run.diffusion.noised(batch.x0, batch.t, batch.noise)
                           for run, batch in zip(runs, batches, strict=True)], dim=1).contiguous()
        inputs = [x_t, torch.stack([batch.t for batch in batches], dim=1)]
        if batches[0].labels is not None:
            inputs.append(torch.stack([batch.labels for batch in batches], dim=1))
        with autocast(runs[0].device):
            predictions = vmap(self._forward, in_dims=(0, 0, *[1] * len(inputs)))(stacked, stacked_buffers, *inputs)
            losses = [step_losses(run, batch, prediction)
                      for run, batch, prediction in zip(runs, batches, predictions, strict=True)]
        checked = [index for index, check in enumerate(checks) if check]
        finite = [True] * len(runs)
        if checked:  # one device sync for every run that asks
            verdicts = torch.stack([torch.isfinite(losses[index][2]) for index in checked]).tolist()
            for index, verdict in zip(checked, verdicts, strict=True):
                finite[index] = verdict
        stepping = [index for index in range(len(runs)) if finite[index]]
        for index in stepping:  # before the backward pass, which gives EDM2's u (not stacked) its gradient directly
            runs[index].optimizer.zero_grad(set_to_none=True)
        if stepping:
            torch.stack([losses[index][2] for index in stepping]).sum().backward()
        results: list[tuple[torch.Tensor, torch.Tensor] | Exception] = []
        for index, (run, batch, lr) in enumerate(zip(runs, batches, lrs, strict=True)):
            loss, per_sample, objective = losses[index]
            if not finite[index]:
                results.append(NonFiniteLoss(float(objective.item())))
                continue
            try:  # one run's failure here is that run's alone
                for name, parameter in own[index].items():
                    gradient = stacked[name].grad
                    # A copy in the parameter's own layout (channels-last on the CPU), as a step alone would give it;
                    # none where the parameter took no part in the loss, as alone.
                    parameter.grad = None if gradient is None else torch.empty_like(parameter).copy_(gradient[index])
                finish_step(run, batch, lr, per_sample)
            except Exception as error:  # noqa: BLE001 - returned in its run's slot
                results.append(error)
                continue
            results.append((loss.detach(), per_sample.detach()))
        return results
