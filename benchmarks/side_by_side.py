"""Compare's arms three ways, as a class watches them: one after the other; side by side, each arm taking its own
steps in turn (``train_side_by_side(group=False)``); and in one batched step (``train_side_by_side``, the arms' models
stacked and called once: :mod:`minsnr_core.grouped`). The MNIST default (its UNet, batch 32) with the Compare preset's
four weightings, on this machine (run by hand).

    python benchmarks/side_by_side.py --data-root ../shared/data [--steps 100] [--log-every 10] [--repeats 2]
        [--model mnist-small] [--arms 4]

Prints, per way and repeat: the wall time until every arm has drawn its first point of the loss curve (its first
log), until every arm has reached step ``--steps`` (the whole comparison), and the arms' final losses: equal between
the first two ways (the same computation, the same numbers on the CPU), and within float rounding in the batched
step (the largest relative difference is printed). Previews and quality metrics are off so that only training steps
are timed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from minsnr_core.data import load_dataset, load_labels
from minsnr_core.side_by_side import train_side_by_side
from minsnr_core.training import TrainConfig, train

WEIGHTINGS = ["snr", "min_snr", "soft_min_snr", "p2"]


def configs(args: argparse.Namespace) -> list[TrainConfig]:
    names = [WEIGHTINGS[index % len(WEIGHTINGS)] for index in range(args.arms)]
    return [TrainConfig(dataset="mnist", data_root=args.data_root, weighting=name, target="eps", steps=args.steps,
                        log_every=args.log_every, preview_every=0, metric_every=0, checkpoint_every=0,
                        seed=index // len(WEIGHTINGS), model=args.model, device="cpu", download=False)
            for index, name in enumerate(names)]


def in_turn(args: argparse.Namespace, data: torch.Tensor, labels: torch.Tensor | None) -> tuple[float, float, list]:
    began, first_points, finals = time.perf_counter(), [], []
    for config in configs(args):
        conditional = config.resolved().class_conditional
        for event in train(config, data=data, labels=labels if conditional else None):
            if event.kind == "log" and len(first_points) == len(finals):
                first_points.append(time.perf_counter() - began)
            if event.kind == "log" and event.step == args.steps:
                finals.append(event.loss)
    return max(first_points), time.perf_counter() - began, finals


def together(args: argparse.Namespace, group: bool) -> tuple[float, float, list]:
    began, first_points, finals = time.perf_counter(), {}, {}
    for index, event in train_side_by_side(configs(args), group=group):
        if event.kind == "log":
            first_points.setdefault(index, time.perf_counter() - began)
            if event.step == args.steps:
                finals[index] = event.loss
    return max(first_points.values()), time.perf_counter() - began, [finals[i] for i in sorted(finals)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default=None, help="model preset (default: MNIST's)")
    parser.add_argument("--arms", type=int, default=len(WEIGHTINGS), help="arms (the preset's weightings in turn)")
    args = parser.parse_args()
    first = configs(args)[0].resolved()
    data = load_dataset("mnist", args.data_root, download=False, image_size=first.image_size)
    labels = load_labels("mnist", args.data_root) if first.class_conditional else None
    print(f"{args.arms} arms: {first.model}, batch {first.batch_size}, {args.steps} steps, log every "
          f"{args.log_every}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    results = {"one after the other": [], "side by side": [], "batched step": []}
    for repeat in range(args.repeats):
        for way in (list(results) if repeat % 2 == 0 else list(reversed(results))):  # alternate the order: drift
            outcome = (in_turn(args, data, labels) if way == "one after the other"
                       else together(args, group=way == "batched step"))
            results[way].append(outcome)
            print(f"repeat {repeat + 1}, {way}: every arm's first point after {outcome[0]:.1f} s, all {args.steps} "
                  f"steps after {outcome[1]:.1f} s; final losses {', '.join(f'{x:.6f}' for x in outcome[2])}")
    for way, outcomes in results.items():
        print(f"{way}: first point of every arm median {statistics.median(o[0] for o in outcomes):.1f} s, whole "
              f"comparison median {statistics.median(o[1] for o in outcomes):.1f} s")
    same = all(a[2] == b[2] for a, b in zip(results["one after the other"], results["side by side"], strict=True))
    print("final losses equal, one after the other and side by side:", same)
    gap = max(abs(b - a) / abs(a) for alone, grouped in zip(results["one after the other"], results["batched step"],
                                                              strict=True) for a, b in zip(alone[2], grouped[2], strict=True))
    print(f"final losses in the batched step: largest relative difference from one after the other {gap:.1e}")


if __name__ == "__main__":
    main()
