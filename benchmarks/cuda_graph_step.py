"""Run by hand on a CUDA machine: the training step replayed as one CUDA graph (``minsnr_core.cuda_graph.CudaGraphStep``,
what ``train()`` uses on CUDA) against the eager step, from the same seed.

    python benchmarks/cuda_graph_step.py --data-root DATA [--model mnist] [--batch-size 64] [--lr 0.002]

Prints the loss of the first steps of both runs (same initial weights, batches and noise: the losses should
agree), the largest difference between their weights and EMA weights after those steps, and the steps/s of each.
Sample quality after a short run: ``benchmarks/mnist_quality.py --minutes 0.3333 --device cuda`` (the graph) or
with ``--set cuda_graph=false`` (eager).
"""

from __future__ import annotations

import argparse
import time

import torch

from minsnr_core.config import TrainConfig
from minsnr_core.data import load_labels, load_mnist
from minsnr_core.steps import draw_batch, prepare_run, stepper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--steps", type=int, default=30, help="steps compared from the same seed")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device")
    data, labels = load_mnist(args.data_root), load_labels("mnist", args.data_root)
    runs, steps = {}, {}
    for name, graph in (("eager", False), ("graph", True)):
        config = TrainConfig(dataset="mnist", data_root=args.data_root, model=args.model, batch_size=args.batch_size,
                             lr=args.lr, device="cuda", steps=10**6, cuda_graph=graph).resolved()
        runs[name] = prepare_run(config, data, labels)
        steps[name] = stepper(runs[name])
    print(f"model {config.model}, batch {config.batch_size}, lr {config.lr:g}; "
          f"graph step: {type(steps['graph']).__name__}, eager step: {type(steps['eager']).__name__}")
    losses = {name: [float(steps[name](draw_batch(runs[name]), config.lr, True)[0]) for _ in range(args.steps)]
              for name in runs}
    print(f"steps 1-{args.steps}, eager/graph:",
          " ".join(f"{a:.4f}/{b:.4f}" for a, b in zip(losses["eager"][:8], losses["graph"][:8], strict=True)), "…")
    print(f"largest relative loss difference: "
          f"{max(abs(a - b) / abs(a) for a, b in zip(losses['eager'], losses['graph'], strict=True)):.3g}")
    for part in ("model", "ema"):
        eager, graph = (getattr(runs[name], part).state_dict() for name in ("eager", "graph"))
        worst = max(float((eager[key].float() - graph[key].float()).abs().max()) for key in eager)
        print(f"largest {part} state difference after {args.steps} steps: {worst:.3g}")
    for name in runs:
        for _ in range(10):
            steps[name](draw_batch(runs[name]), config.lr, False)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(300):
            steps[name](draw_batch(runs[name]), config.lr, False)
        torch.cuda.synchronize()
        rate = 300 / (time.perf_counter() - started)
        print(f"{name}: {rate:.0f} steps/s, {rate * config.batch_size:.0f} images/s (batch {config.batch_size})")


if __name__ == "__main__":
    main()
