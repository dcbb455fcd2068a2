"""Score the images ``minsnr-sample`` wrote, with ``minsnr_core.metrics`` (run by hand):

    minsnr-sample --run RUN --n 1000 --sampler ddim --sample-steps 50 --seed 0 --out s.npy
    python benchmarks/score_samples.py s.npy --dataset mnist --data-root ../shared/data [--conditional] [--grid g.png]

Prints the Fréchet distance in the classifier's features, the share confidently recognised (p > 0.9) and, with
``--conditional`` (samples drawn as ``minsnr-sample`` draws them from a class-conditional run without ``--label``:
the classes in turn), the share recognised as the class asked for; then real training images scored the same way
at the same count (the floor a model cannot be expected to beat). ``--grid`` writes the first 100 as a PNG.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from minsnr_core.data import load_dataset
from minsnr_core.metrics import CLASSIFIERS, image_score, real_data_floor
from minsnr_core.sampling import balanced_labels


def as_images(array: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C), as ``minsnr-sample`` writes them → float (N, C, H, W) in [−1, 1]."""
    if array.dtype != np.uint8 or array.ndim not in (3, 4):
        raise ValueError(f"expected uint8 images (N, H, W) or (N, H, W, C), got {array.dtype} {array.shape}")
    images = torch.from_numpy(array).float() / 127.5 - 1
    return images[:, None] if images.dim() == 3 else images.permute(0, 3, 1, 2).contiguous()


def nearest_training_distance(images: torch.Tensor, training: torch.Tensor) -> torch.Tensor:
    """Per image, the RMS pixel distance (images in [−1, 1]) to its nearest training image."""
    flat = training.flatten(1).double()
    return torch.cat([torch.cdist(chunk.flatten(1).double(), flat).min(1).values
                      for chunk in images.split(250)]) / flat.shape[1] ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("samples", help=".npy written by minsnr-sample")
    parser.add_argument("--dataset", choices=list(CLASSIFIERS), default="mnist")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--conditional", action="store_true",
                        help="the samples asked for the classes in turn (minsnr-sample's default for such a run)")
    parser.add_argument("--grid", default=None, help="write the first 100 samples as a 10×10 PNG here")
    parser.add_argument("--no-floor", action="store_true", help="skip scoring real images")
    parser.add_argument("--nearest", action="store_true",
                        help="copies? each sample's distance to its nearest training image, beside held-out test images'")
    args = parser.parse_args()
    images = as_images(np.load(args.samples))
    requested = balanced_labels(len(images), 10) if args.conditional else None
    score = image_score(images, args.dataset, args.data_root, requested)
    print(f"{len(images)} samples:", json.dumps({k: round(v, 4) for k, v in score.items()}))
    if not args.no_floor and not CLASSIFIERS[args.dataset].floor:
        print(f"no real-data floor for {args.dataset}: its classifier was trained on the training images")
    elif not args.no_floor:
        floor = real_data_floor(args.dataset, args.data_root, len(images))
        print(f"real training images, {floor['sets']} sets of {floor['samples']}:",
              json.dumps({k: f"{v['mean']:.4f} ± {v['sd']:.4f}" for k, v in floor["scores"].items()},
                         ensure_ascii=False))
    if args.nearest:
        training = load_dataset(args.dataset, args.data_root, download=False)
        held_out = load_dataset(args.dataset, args.data_root, train=False, download=False)[: len(images)]
        test_near = nearest_training_distance(held_out, training)
        near = nearest_training_distance(images, training)
        close = float((near < test_near.quantile(0.01)).double().mean())
        print(f"RMS distance to the nearest of {len(training)} training images: samples median {near.median():.3f} "
              f"(min {near.min():.3f}), {len(held_out)} test images median {test_near.median():.3f} "
              f"(min {test_near.min():.3f}); samples closer than 99 % of test images: {close:.1%}")
    if args.grid:
        from torchvision.utils import save_image

        save_image(images[:100] * 0.5 + 0.5, args.grid, nrow=10, padding=1)
        print(f"wrote {args.grid}")


if __name__ == "__main__":
    main()
