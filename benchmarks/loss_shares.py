"""How much of the weighted loss each timestep carries, per arm of the experiment grid (docs/results.md, section 3).

    python benchmarks/loss_shares.py --data-root ../shared/data [--steps 300] [--batch 16]

For each target (ε, x0, v) it trains the target's plain loss for ``--steps`` steps with the report's settings
(unconditional, cosine schedule, T = 1000), measures that model's unweighted loss at every timestep on ``--batch``
test images, and prints, for every weighting, the share w_t·ℓ_t / Σ_s w_s·ℓ_s of the expected weighted loss
(uniform t) held by the last timestep, the last 1 % of timesteps and the noisiest tenth. An arm where one timestep
holds most of the loss trains on that timestep alone, whatever its name says.
"""

from __future__ import annotations

import argparse

import torch

from minsnr_core.data import load_mnist
from minsnr_core.experiment import BASELINE, REPORT_CONDITIONING
from minsnr_core.multitask import per_timestep_loss, weighted_loss_shares
from minsnr_core.runs import load_run
from minsnr_core.training import TrainConfig, train
from minsnr_core.weighting import STRATEGIES

ARMS = ["constant", "snr", "trunc_snr", "snr_plus_one", "min_snr", "soft_min_snr", "p2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16, help="test images per timestep")
    parser.add_argument("--out", default="runs/loss-shares")
    args = parser.parse_args()
    images = load_mnist(args.data_root, train=False, download=False)[: args.batch]
    print(f"plain-loss model of each target after {args.steps} steps; unweighted loss at all 1000 timesteps on "
          f"{args.batch} test images\n")
    print("| target | weighting | last step (t = 999) | last 1 % (t ≥ 990) | noisiest tenth (t ≥ 900) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for target in ("eps", "x0", "v"):
        out = f"{args.out}/{target}"
        config = TrainConfig(dataset="mnist", data_root=args.data_root, target=target, weighting=BASELINE[target],
                             steps=args.steps, preview_every=0, out_dir=out, device="cpu", **REPORT_CONDITIONING)
        for event in train(config):
            if event.kind == "error":
                raise SystemExit(event.message)
        loaded = load_run(out, "cpu")
        model, diffusion = loaded.model, loaded.diffusion
        steps = torch.arange(diffusion.num_timesteps)
        losses = per_timestep_loss(model, diffusion, images, steps, torch.Generator().manual_seed(0))
        for name in ARMS:
            shares = weighted_loss_shares(losses, steps, diffusion, name)
            print(f"| {target} | {STRATEGIES.get(name).display_name} | {shares[-1]:.3g} | {shares[990:].sum():.3g} | "
                  f"{shares[900:].sum():.3g} |")


if __name__ == "__main__":
    main()
