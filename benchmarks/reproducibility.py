"""Is a run reproducible to every digit? Two checks behind docs/results.md section 8 (run by hand, on the CPU).

    python benchmarks/reproducibility.py losses --data-root ../shared/data --steps 100 --threads 2 --save a.json
    python benchmarks/reproducibility.py losses --data-root ../shared/data --steps 100 --threads 1 --against a.json
    python benchmarks/reproducibility.py classifier --data-root ../shared/data [samples.pt ...]

``losses``: the first ``--steps`` logged losses of seed 0's plain ε run of the MNIST grid (``ExperimentSpec.config``:
the `mnist` UNet, batch 64, lr 2e-3), trained with ``--threads`` torch threads; saved to a JSON file, or compared
with one: the first step whose loss differs and the largest relative difference. ``classifier``: the SHA-256 digest
of the MNIST metric's classifier weights (trained on first use into ``MINSNR_CACHE``) and the score of each sample
file (a tensor saved with ``torch.save``). Both run unchanged on older commits of minsnr (put the commit's checkout
first on ``PYTHONPATH``), which is how section 8 compared the code of two commits.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

import torch

from minsnr_core.experiment import ExperimentSpec
from minsnr_core.training import train


def logged_losses(data_root: str, steps: int) -> list[float]:
    spec = ExperimentSpec(dataset="mnist", data_root=data_root, steps=steps, eval_every=steps)
    run = {"weighting": "snr", "gamma": None, "target": "eps", "seed": 0, "lr": 0.002}
    with tempfile.TemporaryDirectory() as folder:
        config = dataclasses.replace(spec.config(run), metric_every=0, log_every=1, out_dir=folder,
                                     checkpoint_every=steps)
        return [event.loss for event in train(config) if event.kind == "log"]


def compare_losses(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    losses = logged_losses(args.data_root, args.steps)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(losses)} logged losses; "
          f"first {losses[0]:.10g}, last {losses[-1]:.10g}")
    if args.save:
        Path(args.save).write_text(json.dumps(losses))
    if args.against:
        other = json.loads(Path(args.against).read_text())
        differing = [i for i, (a, b) in enumerate(zip(losses, other, strict=True)) if a != b]
        largest = max(abs(a - b) / abs(b) for a, b in zip(losses, other, strict=True))
        first = f"the {differing[0] + 1}th logged step" if differing else "none"
        print(f"against {args.against}: first differing loss {first}; largest relative difference {largest:.3g}")


def classifier_digest(args: argparse.Namespace) -> None:
    from minsnr_core import metrics

    root = str(Path(args.data_root).resolve())
    model = metrics.classifier("mnist", root)
    digest = hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in model.state_dict().values()))
    print(f"classifier cache {metrics.cache_dir()}: weights SHA-256 {digest.hexdigest()}")
    for path in args.samples:
        score = metrics.image_score(torch.load(path), "mnist", root)
        print(f"{Path(path).name}: fd {score['fd']!r}, confident {score['confident']!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    losses = commands.add_parser("losses")
    losses.add_argument("--data-root", required=True)
    losses.add_argument("--steps", type=int, default=100)
    losses.add_argument("--threads", type=int, default=torch.get_num_threads())
    losses.add_argument("--save")
    losses.add_argument("--against")
    scores = commands.add_parser("classifier")
    scores.add_argument("--data-root", required=True)
    scores.add_argument("samples", nargs="*")
    args = parser.parse_args()
    compare_losses(args) if args.command == "losses" else classifier_digest(args)


if __name__ == "__main__":
    main()
