"""Compare's arms one after the other against side by side (``train_side_by_side``), as a class watches them: the
MNIST default (its UNet, batch 32) with the Compare preset's four weightings, on this machine (run by hand).

    python benchmarks/side_by_side.py --data-root ../shared/data [--steps 100] [--log-every 10] [--repeats 2]

Prints, per way and repeat: the wall time until every arm has drawn its first point of the loss curve (its first
log), until every arm has reached step ``--steps`` (the whole comparison), and the arms' final losses, which must be
equal between the two ways (the same computation, the same numbers on the CPU). Previews and quality metrics are
off so that only training steps are timed.
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
    return [TrainConfig(dataset="mnist", data_root=args.data_root, weighting=name, target="eps", steps=args.steps,
                        log_every=args.log_every, preview_every=0, metric_every=0, checkpoint_every=0, seed=0,
                        device="cpu", download=False) for name in WEIGHTINGS]


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


def together(args: argparse.Namespace) -> tuple[float, float, list]:
    began, first_points, finals = time.perf_counter(), {}, {}
    for index, event in train_side_by_side(configs(args)):
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
    args = parser.parse_args()
    first = configs(args)[0].resolved()
    data = load_dataset("mnist", args.data_root, download=False, image_size=first.image_size)
    labels = load_labels("mnist", args.data_root) if first.class_conditional else None
    print(f"{len(WEIGHTINGS)} arms: {first.model}, batch {first.batch_size}, {args.steps} steps, log every "
          f"{args.log_every}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    results = {"one after the other": [], "side by side": []}
    for repeat in range(args.repeats):
        for way in (results if repeat % 2 == 0 else reversed(results)):  # alternate the order against drift
            outcome = in_turn(args, data, labels) if way == "one after the other" else together(args)
            results[way].append(outcome)
            print(f"repeat {repeat + 1}, {way}: every arm's first point after {outcome[0]:.1f} s, all {args.steps} "
                  f"steps after {outcome[1]:.1f} s; final losses {', '.join(f'{x:.6f}' for x in outcome[2])}")
    for way, outcomes in results.items():
        print(f"{way}: first point of every arm median {statistics.median(o[0] for o in outcomes):.1f} s, whole "
              f"comparison median {statistics.median(o[1] for o in outcomes):.1f} s")
    same = all(a[2] == b[2] for a, b in zip(results["one after the other"], results["side by side"], strict=True))
    print("final losses equal between the two ways:", same)


if __name__ == "__main__":
    main()
