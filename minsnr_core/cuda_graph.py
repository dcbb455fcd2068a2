"""The training step replayed as one CUDA graph: the same step as :func:`minsnr_core.steps.train_step` (forward,
weighted loss, backward, then :func:`~minsnr_core.steps.apply_gradients`), recorded once and launched as a single
unit. A step of these small models is bound by launching its kernels rather than by computing them, and a replay
launches them all at once (docs/performance.md has the measurements).

:func:`minsnr_core.steps.stepper` picks this step or the eager one; :func:`uses_cuda_graph` says which runs can use it.
"""

from __future__ import annotations

import threading

import torch

from .config import TrainConfig
from .steps import Batch, NonFiniteLoss, RunState, apply_gradients, train_step
from .timesteps import TIMESTEP_SAMPLERS

# One capture at a time in this process: the app may train several runs in threads.
_CAPTURE_LOCK = threading.Lock()


def uses_cuda_graph(config: TrainConfig, device: torch.device) -> bool:
    """Whether the run's steps are replayed as one CUDA graph: on CUDA unless ``cuda_graph`` is off, with a timestep
    sampler and weighting that keep no statistics of their own (those read the device after each step)."""
    return (device.type == "cuda" and config.cuda_graph and config.adaptive_weighting == "none"
            and not TIMESTEP_SAMPLERS.get(config.timestep_sampling).adaptive)


def place_optimizer_steps(run: RunState) -> None:
    """AdamW's step counters where this run's optimizer keeps them: on the device when capturable (a CUDA graph
    updates them), on the CPU otherwise, whichever kind of run saved them."""
    group = run.optimizer.param_groups[0]
    device = run.device if group["capturable"] or group["fused"] else torch.device("cpu")
    for state in run.optimizer.state.values():
        if "step" in state:
            state["step"] = state["step"].to(device=device, dtype=torch.float32)


class CudaGraphStep:
    """:func:`~minsnr_core.steps.train_step` replayed as one CUDA graph. The first ``warmup`` calls are eager steps
    on a side stream (PyTorch's recipe before a capture, "CUDA Graphs" in the CUDA semantics notes); the next one
    captures the step and replays it, later ones copy their batch into the graph's inputs and replay. Same losses as
    the eager step from the same seed (the same kernels run). Where the capture fails, every later call is an eager
    step."""

    def __init__(self, run: RunState, warmup: int = 3) -> None:
        self.run, self.warmup, self.calls = run, warmup, 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager = False  # set when the capture failed
        self.side = torch.cuda.Stream(run.device)
        self.lr = torch.zeros((), device=run.device)  # the graph reads the learning rate from here
        # The EMA's update count on the device: a replay cannot read the CPU's count, so the graph computes the
        # EMA's warm-up from this one and advances it; __call__ advances the CPU's count after each replay.
        self.ema_count = torch.zeros((), device=run.device)

    def __call__(self, batch: Batch, lr: float, check_finite: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One step. The returned loss and per-sample losses are the graph's own tensors, overwritten by the next
        replay: use them (or copy them) before the next call."""
        run = self.run
        if batch.loss_factor is not None:  # only the adaptive samplers reweight, and uses_cuda_graph leaves them out
            raise ValueError("the CUDA-graph step does not reweight the loss by a timestep sampler")
        with torch.cuda.device(run.device):  # the graph's capture stream is made on the current device
            if self.graph is None and self.calls < self.warmup:
                return self._warmup_step(batch, lr, check_finite)
            if self.eager or (self.graph is None and not self._capture(batch)):
                return train_step(run, batch, lr, check_finite)  # this run could not be captured: eager steps
            self.inputs.x0.copy_(batch.x0)
            self.inputs.t.copy_(batch.t)
            self.inputs.noise.copy_(batch.noise)
            if batch.labels is not None:
                self.inputs.labels.copy_(batch.labels)
            self.lr.fill_(lr)
            self.graph.replay()
        if check_finite and not torch.isfinite(self.loss).item():
            # Found after the update (the graph has no host check inside); the loop stops without saving this state.
            raise NonFiniteLoss(float(self.loss.item()))
        run.ema.n_averaged += 1
        run.step += 1
        return self.loss, self.per_sample

    def _warmup_step(self, batch: Batch, lr: float, check_finite: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """An eager step on the side stream, before the capture."""
        self.calls += 1
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            result = train_step(self.run, batch, lr, check_finite)
        torch.cuda.current_stream().wait_stream(self.side)
        return result

    def _capture(self, batch: Batch) -> bool:
        """Record the step; False (and eager steps from then on) where the capture fails."""
        run = self.run
        self.inputs = Batch(batch.x0.clone(), batch.t.clone(), batch.noise.clone(),
                            None if batch.labels is None else batch.labels.clone())
        for group in run.optimizer.param_groups:
            group["lr"] = self.lr
        self.ema_count.fill_(float(run.ema.n_averaged))
        run.optimizer.zero_grad(set_to_none=True)  # the graph's backward writes fresh gradients each replay
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: the other runs' threads may use CUDA meanwhile.
            with _CAPTURE_LOCK, torch.cuda.graph(graph, capture_error_mode="thread_local"):
                # Without autocast's cast cache, as PyTorch requires for autocast in a captured graph.
                with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
                    loss, per_sample = run.diffusion.loss(run.model, self.inputs.x0, self.inputs.t,
                                                          self.inputs.noise, self.inputs.labels)
                loss.backward()
                apply_gradients(run, self.ema_count)
        except RuntimeError:
            for group in run.optimizer.param_groups:
                group["lr"] = float(self.lr)
            run.optimizer.zero_grad(set_to_none=True)
            self.eager = True
            return False
        self.graph = graph
        self.loss, self.per_sample = loss.detach(), per_sample.detach()
        return True
