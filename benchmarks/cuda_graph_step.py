"""Prototype, run by hand on a CUDA machine: the whole training step (forward, weighted loss, backward, gradient
clipping, AdamW, EMA) captured as one CUDA graph and replayed, against the eager step of ``minsnr_core.steps``.

    python benchmarks/cuda_graph_step.py --data-root DATA [--seconds 20] [--batch-size 64] [--lr 0.002]

A step of these small models is bound by launching its kernels (docs/performance.md: about 26 steps/s on an H200
whatever the batch); ``torch.compile(mode="reduce-overhead")`` graphs the forward and backward passes after 44 s of
compiling. Capturing the whole step needs no compiler. It prints: (1) the loss of the first steps eagerly and
replayed from the graph, from the same seed (batches, noise and initial weights are the same; bf16 rounding
differs a little), (2) steps/s of each, (3) a class-conditional MNIST run trained for ``--seconds`` with the graph,
scored on 1000 DDIM-50 samples as ``benchmarks/mnist_quality.py`` scores them. The batch is drawn outside the
graph by ``draw_batch`` (the run's generator, as in ``train``) and copied into the graph's input tensors.
"""

from __future__ import annotations

import argparse
import time

import torch

from minsnr_core.config import TrainConfig
from minsnr_core.data import load_labels, load_mnist
from minsnr_core.metrics import mnist_score
from minsnr_core.sampling import balanced_labels, ddim_sample
from minsnr_core.steps import RunState, _lr_at, draw_batch, prepare_run, train_step


class GraphedStep:
    """The run's training step as one CUDA graph. Uniform timesteps and no adaptive weighting (their bookkeeping
    reads the device); the optimizer is replaced by a capturable fused AdamW with the same settings and a tensor
    learning rate, and the EMA is updated on the device with the run's decay warm-up."""

    def __init__(self, run: RunState, warmup: int = 3) -> None:
        config = run.config
        if config.timestep_sampling != "uniform" or config.adaptive_weighting != "none":
            raise ValueError("the graphed step supports uniform timesteps without an adaptive weighting")
        self.run = run
        batch = draw_batch(run)
        self.x0, self.t, self.noise = batch.x0.clone(), batch.t.clone(), batch.noise.clone()
        self.labels = None if batch.labels is None else batch.labels.clone()
        self.lr = torch.tensor(float(config.lr), device=run.device)
        self.optimizer = torch.optim.AdamW(run.model.parameters(), lr=self.lr, weight_decay=0.0, fused=True,
                                           capturable=True)
        self.params = list(run.model.parameters())
        self.ema_params = list(run.ema.module.parameters())
        self.decay = float(config.ema_decay)
        # The EMA's update count on the device (AveragedModel keeps its own on the CPU, which a graph cannot update).
        self.n = torch.tensor(float(run.ema.n_averaged), device=run.device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up steps outside the graph (allocations, optimizer state), each on a
            for i in range(warmup):    # fresh batch like the eager loop's
                if i:
                    self._load(draw_batch(run))
                self.optimizer.zero_grad(set_to_none=True)
                self._body(ema=bool(self.n))
                if not self.n:  # AveragedModel's first update copies the weights
                    run.ema.update_parameters(run.model)
                    self.n.fill_(1.0)
        torch.cuda.current_stream().wait_stream(side)
        run.step += warmup
        self.graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.loss, self.per_sample = self._body(ema=True)

    def _load(self, batch) -> None:
        self.x0.copy_(batch.x0)
        self.t.copy_(batch.t)
        self.noise.copy_(batch.noise)
        if self.labels is not None:
            self.labels.copy_(batch.labels)

    def _body(self, ema: bool) -> tuple[torch.Tensor, torch.Tensor]:
        run = self.run
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            loss, per_sample = run.diffusion.loss(run.model, self.x0, self.t, self.noise, self.labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0, foreach=True)
        self.optimizer.step()
        if ema:
            with torch.no_grad():  # decay min(d, (1 + n)/(10 + n)), as steps.ema_with_warmup
                weight = 1.0 - torch.clamp((1.0 + self.n) / (10.0 + self.n), max=self.decay)
                difference = torch._foreach_sub(self.params, self.ema_params)
                torch._foreach_mul_(difference, weight)
                torch._foreach_add_(self.ema_params, difference)
                self.n.add_(1.0)
        return loss.detach(), per_sample.detach()

    def __call__(self, lr: float) -> torch.Tensor:
        self._load(draw_batch(self.run))
        self.lr.fill_(lr)
        self.graph.replay()
        self.run.step += 1
        return self.loss


def config_for(args: argparse.Namespace, **changes) -> TrainConfig:
    return TrainConfig(dataset="mnist", data_root=args.data_root, model=args.model, batch_size=args.batch_size,
                       lr=args.lr, device="cuda", **changes).resolved()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device")
    data, labels = load_mnist(args.data_root), load_labels("mnist", args.data_root)
    mnist_score(data[:16], args.data_root)  # the classifier is ready before the clock starts

    # (1) the same seed eagerly and from the graph; (2) steps/s of each
    config = config_for(args, steps=10**6)
    eager = prepare_run(config, data, labels)
    graphed_run = prepare_run(config, data, labels)
    eager_losses = [float(train_step(eager, draw_batch(eager), config.lr, check_finite=False)[0]) for _ in range(3)]
    started = time.perf_counter()
    step = GraphedStep(graphed_run)  # its warm-up makes the same three steps
    print(f"capture (3 warm-up steps included): {time.perf_counter() - started:.2f} s")
    pairs = [(float(train_step(eager, draw_batch(eager), config.lr, check_finite=False)[0]), float(step(config.lr)))
             for _ in range(20)]
    print("first eager losses", [round(v, 4) for v in eager_losses])
    print("steps 4-23, eager vs graph:", " ".join(f"{a:.4f}/{b:.4f}" for a, b in pairs[:8]), "…")
    print(f"largest relative difference: {max(abs(a - b) / abs(a) for a, b in pairs):.3g}")
    for name, advance in (("eager", lambda: train_step(eager, draw_batch(eager), config.lr, check_finite=False)),
                          ("graph", lambda: step(config.lr))):
        for _ in range(10):
            advance()
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(200):
            advance()
        torch.cuda.synchronize()
        rate = 200 / (time.perf_counter() - started)
        print(f"{name}: {rate:.0f} steps/s, {rate * config.batch_size:.0f} images/s (batch {config.batch_size})")

    # (3) a short run with the graph: warm-up and cosine decay over the budget as train() does
    config = config_for(args, minutes=args.seconds / 60)
    started = time.perf_counter()
    run = prepare_run(config, data, labels)
    step = GraphedStep(run)
    deadline = started + args.seconds
    while (now := time.perf_counter()) < deadline:
        loss = step(_lr_at(config, run.step, (now - started) / args.seconds))
    torch.cuda.synchronize()
    print(f"trained {run.step} steps in {time.perf_counter() - started:.1f} s (setup and capture included), "
          f"last loss {float(loss):.4f}")
    model = run.ema.module.eval()
    requested = balanced_labels(args.samples, run.num_classes)
    samples, _ = ddim_sample(model, run.diffusion, (args.samples, *run.sample_shape), 50, config.sample_eta,
                             generator=torch.Generator(device="cuda").manual_seed(0), device="cuda",
                             labels=requested, guidance=config.guidance)
    print(f"{args.samples} DDIM-50 samples (guidance {config.guidance:g}, eta {config.sample_eta:g}):",
          mnist_score(samples.float().cpu(), args.data_root, requested))


if __name__ == "__main__":
    main()
