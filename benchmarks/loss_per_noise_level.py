"""Where each baseline's error sits: the x0-space error per noise level of the four arms of docs/results.md's
primary comparison (plain ε, Min-SNR-5 ε, plain x0, Min-SNR-5 x0), after the grid's budget.

    python benchmarks/loss_per_noise_level.py --data-root ../shared/data [--steps 2000] [--seeds 0 1 2] \
        [--csv docs/results/mnist_2000_loss_per_level.csv]

Each run is trained exactly as the experiment grid trains it (``ExperimentSpec.config``: the `mnist` UNet, batch 64,
lr 2e-3, cosine schedule, unconditional), without the periodic quality metric, and kept in ``--out`` (a finished run
is reused). Its EMA model then denoises the same ``--images`` MNIST test digits with the same noise at each of
``--levels`` timesteps; every prediction is converted to x0 (``convert_prediction``) and clipped to the data range
[−1, 1] as the sampler clips it (x0 from an ε prediction divides by α, which vanishes at the noisy end), so the four
models are compared in one space. The table printed at the end is what docs/results.md quotes.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
from pathlib import Path

import torch

from minsnr_core.data import load_mnist
from minsnr_core.diffusion import convert_prediction, q_sample
from minsnr_core.experiment import BASELINE, ExperimentSpec
from minsnr_core.runs import load_run
from minsnr_core.training import train

ARMS = [("eps", "snr"), ("eps", "min_snr"), ("x0", "constant"), ("x0", "min_snr")]


def train_arm(spec: ExperimentSpec, target: str, weighting: str, seed: int, out: Path) -> Path:
    """The grid's run of this arm and seed (trained once; a finished run is reused)."""
    folder = out / f"{target}_{weighting}_s{seed}_n{spec.steps}"
    if (folder / "checkpoint.pt").exists():
        return folder
    run = {"weighting": weighting, "gamma": spec.gamma if weighting == "min_snr" else None, "target": target,
           "seed": seed, "lr": spec.lr}
    config = dataclasses.replace(spec.config(run), metric_every=0, out_dir=str(folder), checkpoint_every=spec.steps)
    for event in train(config):
        if event.kind == "error":
            raise SystemExit(f"{folder.name}: {event.message}")
    return folder


@torch.no_grad()
def x0_error_per_level(folder: Path, images: torch.Tensor, levels: list[int], seed: int) -> list[dict[str, float]]:
    """Mean squared x0 error (per pixel, x̂0 clipped to [−1, 1]) of the run's EMA model at each timestep of
    ``levels``, on ``images`` with noise drawn from ``seed`` (the same noise for every run)."""
    loaded = load_run(folder, "cpu")
    model, diffusion = loaded.model.eval(), loaded.diffusion
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for step in levels:
        noise = torch.randn(images.shape, generator=generator)
        t = torch.full((len(images),), step, dtype=torch.long)
        alpha, sigma = diffusion.alphas[t], diffusion.sigmas[t]
        x_t = q_sample(images, noise, alpha, sigma)
        x0_hat = convert_prediction(model(x_t, t), diffusion.target, x_t, alpha, sigma)["x0"].clamp(-1, 1)
        rows.append({"t": step, "log_snr": float(diffusion.schedule.log_snr[step]),
                     "mse_x0": float((x0_hat - images).pow(2).mean())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--images", type=int, default=512, help="test digits per noise level")
    parser.add_argument("--levels", type=int, default=21, help="timesteps evaluated, evenly spaced over 0 … T−1")
    parser.add_argument("--out", default="runs/loss-per-level")
    parser.add_argument("--csv", default=None, help="also write every measurement to this CSV")
    args = parser.parse_args()
    spec = ExperimentSpec(dataset="mnist", data_root=args.data_root, steps=args.steps, eval_every=args.steps)
    images = load_mnist(args.data_root, train=False, download=False)[: args.images].float()
    T = 1000
    levels = sorted({round(k * (T - 1) / (args.levels - 1)) for k in range(args.levels)})
    table = []
    for seed in args.seeds:
        for target, weighting in ARMS:
            folder = train_arm(spec, target, weighting, seed, Path(args.out))
            for row in x0_error_per_level(folder, images, levels, seed=1000 + seed):
                table.append({"seed": seed, "target": target, "weighting": weighting, "steps": args.steps, **row})
            print(f"seed {seed}: {target} {weighting} evaluated", flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as file:
            writer = csv.DictWriter(file, list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    print(f"\nx0-space MSE per pixel, mean over seeds {args.seeds}, {args.images} test digits per level, "
          f"after {args.steps} steps")
    print("| t | log SNR | plain ε | Min-SNR-5 ε | plain x0 | Min-SNR-5 x0 |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for step in levels:
        cells = []
        for target, weighting in ARMS:
            values = [r["mse_x0"] for r in table if (r["t"], r["target"], r["weighting"]) == (step, target, weighting)]
            cells.append(f"{sum(values) / len(values):.4g}")
        log_snr = next(r["log_snr"] for r in table if r["t"] == step)
        print(f"| {step} | {log_snr:+.2f} | " + " | ".join(cells) + " |")
    for target in ("eps", "x0"):
        ratios = []
        for step in levels:
            plain, weighted = ([r["mse_x0"] for r in table if (r["t"], r["target"], r["weighting"]) == (step, target, w)]
                               for w in (BASELINE[target], "min_snr"))
            ratios.append(math.exp(sum(math.log(b / a) for a, b in zip(plain, weighted, strict=True)) / len(plain)))
        print(f"{target}: Min-SNR-5 / plain x0 error per level (geometric mean over seeds): "
              + ", ".join(f"t {s} {r:.2f}" for s, r in zip(levels, ratios, strict=True)))


if __name__ == "__main__":
    main()
