"""Runs × steps per second of N runs in one batched step (:class:`minsnr_core.grouped.GroupedStep`) against the same
N runs each taking its own step in turn (:func:`minsnr_core.steps.stepper`: eager on the CPU, a CUDA graph on CUDA),
for N in ``--counts`` (run by hand).

    python benchmarks/grouped_step.py --data-root ../shared/data [--device cpu] [--counts 1 2 4] [--steps 10]
        [--model mnist-small] [--repeats 3]

The runs are the MNIST default's (its model and batch size) with different weightings and seeds. Each way is timed
over ``--steps`` steps after two warm-up steps (on CUDA: five, and synchronised before each clock read), the two ways
alternating per repeat against drift; the median of the repeats is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from minsnr_core.grouped import GroupedStep
from minsnr_core.steps import draw_batch, prepare_run, stepper
from minsnr_core.training import TrainConfig

WEIGHTINGS = ["snr", "min_snr", "soft_min_snr", "p2"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(step, runs, steps: int, warmup: int) -> float:
    """Runs × steps per second of ``step`` (called with no arguments: one step of every run)."""
    for _ in range(warmup):
        step()
    sync(runs[0].device)
    began = time.perf_counter()
    for _ in range(steps):
        step()
    sync(runs[0].device)
    return len(runs) * steps / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--model", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    for count in args.counts:
        measure(args, count)


def measure(args: argparse.Namespace, count: int) -> None:
    """Print both ways' rates for ``count`` runs."""
    configs = [TrainConfig(dataset="mnist", data_root=args.data_root, weighting=WEIGHTINGS[i % len(WEIGHTINGS)],
                           seed=i, model=args.model, device=args.device, download=False).resolved()
               for i in range(count)]
    # Each way trains its own copies of the runs: a CUDA-graph step and a batched step must not share a run's state.
    runs, batch_runs = [prepare_run(config) for config in configs], [prepare_run(config) for config in configs]
    lr = configs[0].lr
    own_steps = [stepper(run) for run in runs]
    grouped = GroupedStep(batch_runs[0].model)

    def in_turn() -> None:
        for run, step in zip(runs, own_steps, strict=True):
            step(draw_batch(run), lr, False)

    def batched() -> None:
        grouped(batch_runs, [draw_batch(run) for run in batch_runs], [lr] * count, [False] * count)

    warmup = 5 if runs[0].device.type == "cuda" else 2
    rates: dict[str, list[float]] = {"in turn": [], "batched": []}
    for repeat in range(args.repeats):
        ways = [("in turn", in_turn), ("batched", batched)]
        for name, way in ways if repeat % 2 == 0 else ways[::-1]:
            rates[name].append(timed(way, runs, args.steps, warmup))
    turn, batch = statistics.median(rates["in turn"]), statistics.median(rates["batched"])
    print(f"{count:3d} runs ({configs[0].model}, batch {configs[0].batch_size}): in turn {turn:7.1f} run-steps/s, "
          f"batched {batch:7.1f} run-steps/s, batched/in turn {batch / turn:.2f}× "
          f"(repeats: {', '.join(f'{r:.1f}' for r in rates['in turn'])} | "
          f"{', '.join(f'{r:.1f}' for r in rates['batched'])})")

if __name__ == "__main__":
    main()
