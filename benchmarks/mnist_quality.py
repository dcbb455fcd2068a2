"""MNIST sample quality after a wall-clock budget, with the CLI's defaults (run by hand).

    python benchmarks/mnist_quality.py --minutes 5 --data-root ../shared/data
    python benchmarks/mnist_quality.py --minutes 2 --track-every 500   # on a GPU: time to recognisable digits

Trains through the same loop as ``minsnr-train``, then draws 1000 DDIM-50 samples from the EMA model and prints
the metric of ``minsnr_core.metrics`` (target: ``confident`` ≥ 0.80) for deterministic (η = 0) and
stochastic (η = 1) DDIM, plus real test digits for reference. The default run is class-conditional: it draws
every digit equally often (100 of each) with the run's classifier-free guidance, or each ``--guidance`` given,
and ``as_requested`` counts the samples recognised as the digit they were asked for.
"""

from __future__ import annotations

import argparse
import json
import time

from minsnr_core.config import check_sampling_guidance
from minsnr_core.data import load_mnist
from minsnr_core.metrics import mnist_score
from minsnr_core.runs import load_run
from minsnr_core.sampling import balanced_labels
from minsnr_core.training import TrainConfig, train


def _override(item: str) -> tuple[str, object]:
    """``name=value`` with a JSON value (numbers, true/false, lists) or, failing that, a string."""
    name, _, value = item.partition("=")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--out", default="runs/bench-mnist")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--eta", type=float, nargs="+", default=[0.0, 1.0],
                        help="DDIM stochasticity of the scored samples: 0 deterministic, 1 ancestral over 50 steps")
    parser.add_argument("--guidance", type=float, nargs="+", default=None,
                        help="classifier-free guidance scales to score (default: the run's; 1: none)")
    parser.add_argument("--track-every", type=int, default=0,
                        help="also score --samples fresh samples every N steps while training and print the curve")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. batch_size=64 lr=0.003")
    parser.add_argument("--self-condition", action="store_true",
                        help="the default UNet with self-conditioning (benchmarks/self_conditioning.py; x0 target)")
    args = parser.parse_args()
    if args.samples < 2:
        parser.error(f"--samples must be at least 2, got {args.samples}")
    if not all(0.0 <= eta <= 1.0 for eta in args.eta):
        parser.error(f"--eta values must be in [0, 1], got {args.eta}")  # before training, not after
    if args.guidance is not None and not all(w >= 0 for w in args.guidance):
        parser.error(f"--guidance values must be ≥ 0, got {args.guidance}")
    # The classifier (trained on first use) and the test set's statistics are ready before the clock starts.
    mnist_score(load_mnist(args.data_root, train=False)[:16], args.data_root)
    overrides = dict(_override(item) for item in args.set)
    if args.self_condition:
        import self_conditioning  # noqa: F401  (registers the preset)

        overrides["model"] = "mnist-small-selfcond"
    config = TrainConfig(dataset="mnist", data_root=args.data_root, minutes=args.minutes, out_dir=args.out,
                         device=args.device, preview_every=0, metric_every=args.track_every,
                         metric_samples=args.samples, **overrides)
    if args.self_condition and config.resolved().target != "x0":
        parser.error("--self-condition takes the model's output as x̂0: it needs the x0 target")
    started = time.perf_counter()
    last, measuring_s, measuring_since = None, 0.0, 0.0
    for event in train(config):
        if event.kind == "log":
            last = event
        if event.kind == "measuring":
            measuring_since = event.elapsed_s
        if event.kind == "metric":  # training time: the run's time so far without the scoring
            measuring_s += event.elapsed_s - measuring_since
            print(f"step {event.step:6d}  {event.elapsed_s:6.1f} s ({event.elapsed_s - measuring_s:5.1f} s training)  "
                  + "  ".join(f"{name} {value:.3f}" for name, value in event.metric.items()), flush=True)
        if event.kind in ("done", "error"):
            print(event.message)
            final = event
    rate = f"last {last.images_per_sec:.0f} img/s, " if last else ""
    print(f"trained {final.step} steps in {time.perf_counter() - started:.0f} s, {rate}"
          f"{final.parameters:,} parameters on {final.device}")
    run = load_run(args.out, args.device)
    labels = balanced_labels(args.samples, run.num_classes)  # what run.sample asks for, to score against
    guidances = (args.guidance or [run.config.guidance]) if labels is not None else [1.0]
    for guidance in guidances:
        check_sampling_guidance(run.config, guidance)
    for guidance in guidances:
        for eta in args.eta:
            t0 = time.perf_counter()
            samples, _ = run.sample(args.samples, "ddim", 50, seed=0, guidance=guidance, eta=eta)
            setting = f"eta {eta:g}" + (f", guidance {guidance:g}" if labels is not None else ", unconditional")
            print(f"sampled {len(samples)} DDIM-50 ({setting}) in {time.perf_counter() - t0:.0f} s")
            print(f"generated, {setting}:", mnist_score(samples, args.data_root, labels))
    print("real test digits:", mnist_score(load_mnist(args.data_root, train=False)[: args.samples], args.data_root))


if __name__ == "__main__":
    main()
