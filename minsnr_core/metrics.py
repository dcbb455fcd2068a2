"""Sample-quality metrics that run offline on a CPU.

MNIST and CIFAR-10: a small classifier the project trains itself on first use (a minute or two on a CPU) and
caches in the user cache dir, keyed by a hash of its code and of the training data. For a batch of samples it
reports
- ``fd``: the Fréchet distance (Heusel et al. 2017) between the classifier's penultimate features of the samples
  and of the test set (lower is better; real test images score near 0, only sampling noise remains),
- ``confident``: the fraction classified as one class with probability > 0.9 (recognisable images); the
  classifier has an 11th class, "not an image", trained on noise, heavy blur and overlaid images, so that noise
  cannot pass as a confident digit,
- ``label_entropy``: the entropy in bits of the predicted labels (log2 10 ≈ 3.32 when all classes appear; a
  collapse onto few classes shows as a low value).
The CIFAR-10 classifier learns from what ``data_root`` holds (4,000 images in the shared subset), so it is a weak
classifier (its ``confident`` share is low even on real images) but its features still rank samples: compare fd
values with each other and with the real test images' score, not with published FIDs.
2D toys: the sliced Wasserstein-1 distance to fresh samples of the true distribution.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .data import load_dataset, load_labels, toy_points
from .models import global_generator

CONFIDENCE = 0.9
NOT_A_DIGIT = 10  # the classifier's extra class for images that show nothing at all


class Classifier(nn.Module):
    """Convolutional features → 128 penultimate features → 10 classes + "not an image"."""

    def __init__(self, conv: nn.Sequential, flat_features: int) -> None:
        super().__init__()
        self.conv = conv
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(flat_features, 128), nn.ReLU())
        self.classify = nn.Linear(128, NOT_A_DIGIT + 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate features, logits) for images in [−1, 1]."""
        features = self.features(self.conv(x))
        return features, self.classify(features)


def _mnist_net() -> Classifier:
    return Classifier(nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    ), 64 * 7 * 7)


def _cifar_net() -> Classifier:
    return Classifier(nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    ), 64 * 4 * 4)


@dataclass(frozen=True)
class ClassifierSetup:
    shape: tuple[int, int, int]
    build: Callable[[], Classifier]
    batches: int | None  # optimisation steps of 256 images; None: 2 epochs
    augment: bool  # random flips and shifts, for a small training set of natural images
    # Whether its training images score like new real images, so that they give a floor for samples. Not for the
    # CIFAR-10 subset: the classifier fits its 4,000 training images (FD 68.5 ± 17.6 against 30.6 for samples of a
    # 5-minute run, docs/performance.md), and its test images are the reference, so no held-out images remain.
    floor: bool = True


CLASSIFIERS = {
    "mnist": ClassifierSetup((1, 28, 28), _mnist_net, None, False),
    "cifar10": ClassifierSetup((3, 32, 32), _cifar_net, 600, True, floor=False),
}


def _not_digits(digits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Images that must not count as an image of a class: noise, heavy blur, two images overlaid, images drowned
    in noise."""
    n = len(digits)
    kind = torch.randint(0, 4, (n,), generator=generator)
    noise = torch.rand(digits.shape, generator=generator) * 2 - 1
    blurred = F.avg_pool2d(F.pad(digits, (3, 3, 3, 3), mode="replicate"), 7, 1)
    overlay = torch.maximum(digits, digits.roll(1, 0))
    drowned = 0.4 * digits + 0.6 * torch.randn(digits.shape, generator=generator).clamp(-1, 1)
    options = torch.stack([noise, blurred, overlay, drowned])
    return options[kind, torch.arange(n)]


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to 2 pixels (reflect padding)."""
    flip = torch.rand(len(x), generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dy, dx = torch.randint(0, 5, (2,), generator=generator).tolist()
    size = x.shape[-1]
    return F.pad(x, (2, 2, 2, 2), mode="reflect")[..., dy:dy + size, dx:dx + size]


def _train_classifier(images: torch.Tensor, labels: torch.Tensor, setup: ClassifierSetup, epochs: int = 2,
                      seed: int = 0) -> Classifier:
    """Ten classes plus an 11th class "not an image", so that noise cannot score as a confident class."""
    with global_generator(seed):
        model = setup.build()
    optimizer = torch.optim.Adam(model.parameters(), 2e-3)
    per_epoch = (len(images) + 255) // 256
    total = setup.batches or epochs * per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=total)
    generator = torch.Generator().manual_seed(seed)
    done = 0
    while done < total:
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), 256):
            if done == total:
                break
            batch = order[start:start + 256]
            x, y = images[batch], labels[batch]
            if setup.augment:
                x = _augment(x, generator)
            negatives = _not_digits(x[: len(x) // 5], generator)
            x = torch.cat([x, negatives])
            y = torch.cat([y, torch.full((len(negatives),), NOT_A_DIGIT)])
            loss = F.cross_entropy(model(x)[1], y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            done += 1
    return model.eval()


def cache_dir() -> Path:
    base = os.environ.get("MINSNR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "minsnr")
    return Path(base)


def _cache_key(dataset: str, images: torch.Tensor) -> str:
    code = "".join(inspect.getsource(f) for f in (Classifier, CLASSIFIERS[dataset].build, _not_digits, _augment,
                                                   _train_classifier))
    setup = CLASSIFIERS[dataset]
    digest = hashlib.sha256(code.encode())
    # The settings, not the setup's repr: that names ``build`` by its memory address, new in every process.
    digest.update(repr((setup.shape, setup.batches, setup.augment)).encode())
    digest.update(images.numpy().tobytes())
    return digest.hexdigest()[:16]


def _check_dataset(dataset: str) -> ClassifierSetup:
    if dataset not in CLASSIFIERS:
        raise ValueError(f"dataset must be one of {', '.join(CLASSIFIERS)} for an image-quality score; got {dataset!r}")
    return CLASSIFIERS[dataset]


def classifier_path(dataset: str, images: torch.Tensor) -> Path:
    """Where the classifier of ``dataset`` trained on ``images`` (its training set) is cached."""
    return cache_dir() / f"{dataset}-classifier-{_cache_key(dataset, images)}.pt"


@functools.lru_cache(maxsize=4)
def classifier(dataset: str, data_root: str) -> Classifier:
    """The cached classifier for ``dataset`` (mnist or cifar10) under ``data_root``; trained and saved on first use."""
    setup = _check_dataset(dataset)
    images = load_dataset(dataset, data_root, download=False)
    path = classifier_path(dataset, images)
    if path.exists():
        with global_generator():  # the saved weights replace these
            model = setup.build()
        model.load_state_dict(load_checkpoint(path)["model"])
        return model.eval()
    model = _train_classifier(images, load_labels(dataset, data_root), setup)
    save_checkpoint(path, {"model": model.state_dict()})
    return model


def mnist_classifier(data_root: str) -> Classifier:
    return classifier("mnist", data_root)


@torch.no_grad()
def _features(model: Classifier, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    feats, probs = [], []
    for start in range(0, len(images), 1000):
        f, logits = model(images[start:start + 1000].float())
        feats.append(f.double())
        probs.append(logits.softmax(1))
    return torch.cat(feats), torch.cat(probs)


@functools.lru_cache(maxsize=4)
def _reference_stats(dataset: str, data_root: str) -> tuple[torch.Tensor, torch.Tensor]:
    test = load_dataset(dataset, data_root, train=False, download=False)
    features, _ = _features(classifier(dataset, data_root), test)
    return features.mean(0), torch.cov(features.T)


def _sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(√Σ1 Σ2 √Σ1)^½) (Dowson & Landau 1982; FID's formula)."""
    root1 = _sqrtm_psd(cov1)
    cross = _sqrtm_psd(root1 @ cov2 @ root1)
    return float((mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * torch.trace(cross))


def image_score(
    samples: torch.Tensor, dataset: str, data_root: str | Path, requested: torch.Tensor | None = None
) -> dict[str, float]:
    """Quality of generated images in [−1, 1] of ``dataset`` (mnist: (N, 1, 28, 28), cifar10: (N, 3, 32, 32)):
    fd, confident, label_entropy; with the classes a conditional model was asked for (``requested``, (N,)), also
    as_requested: the share recognised with p > 0.9 as that class."""
    shape = _check_dataset(dataset).shape
    if samples.dim() != 4 or tuple(samples.shape[1:]) != shape:
        raise ValueError(f"samples must have shape (N, {', '.join(map(str, shape))}), got {tuple(samples.shape)}")
    if len(samples) < 2:
        raise ValueError("samples must hold at least 2 images for a Fréchet distance")
    if not torch.isfinite(samples).all():
        raise ValueError("samples contain NaN or inf")
    if requested is not None and tuple(requested.shape) != (len(samples),):
        raise ValueError(f"requested must hold one class per sample ({len(samples)}), got {tuple(requested.shape)}")
    root = str(Path(data_root).expanduser().resolve())
    features, probs = _features(classifier(dataset, root), samples.clamp(-1, 1))
    mu, cov = _reference_stats(dataset, root)
    confidence, labels = probs[:, :NOT_A_DIGIT].max(1)
    frequencies = torch.bincount(labels, minlength=NOT_A_DIGIT).double() / len(labels)
    entropy = -(frequencies[frequencies > 0] * frequencies[frequencies > 0].log2()).sum()
    score = {
        "fd": frechet_distance(features.mean(0), torch.cov(features.T), mu, cov),
        "confident": float((confidence > CONFIDENCE).double().mean()),
        "label_entropy": abs(float(entropy)),  # never print −0.0
    }
    if requested is not None:
        hits = (confidence > CONFIDENCE) & (labels == requested.to(labels.device))
        score["as_requested"] = float(hits.double().mean())
    return score


def real_data_floor(dataset: str, data_root: str | Path, count: int, sets: int = 5) -> dict[str, Any]:
    """The score of real training images at the sample count of an evaluation: ``sets`` disjoint sets of ``count``
    images, each scored like generated samples; {"samples", "sets", "scores": {metric: {"mean", "sd"}}}. Samples
    cannot be expected to beat this floor, which is not 0 (finite-sample noise of the Fréchet distance). Raises
    ``ValueError`` for a dataset whose classifier gives no floor (:attr:`ClassifierSetup.floor`)."""
    from .stats import t_interval

    if not _check_dataset(dataset).floor:
        raise ValueError(f"{dataset} has no real-data floor: its classifier was trained on the training images, which "
                         "therefore score unlike new images, and its test images are the reference")

    images = load_dataset(dataset, str(data_root), download=False)
    sets = min(sets, len(images) // count)
    if sets < 1:
        raise ValueError(f"count must be at most the {len(images)} training images, got {count}")
    scores = [image_score(images[i * count:(i + 1) * count], dataset, data_root) for i in range(sets)]
    summary = {m: t_interval([s[m] for s in scores]) for m in scores[0]}
    return {"samples": count, "sets": sets, "scores": {m: {"mean": v["mean"], "sd": v["sd"]} for m, v in summary.items()}}


def mnist_score(
    samples: torch.Tensor, data_root: str | Path, requested: torch.Tensor | None = None
) -> dict[str, float]:
    """:func:`image_score` for MNIST digits (N, 1, 28, 28)."""
    return image_score(samples, "mnist", data_root, requested)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between two equal-size 2D point sets (mean over random directions)."""
    if a.shape != b.shape:
        raise ValueError(f"point sets must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    generator = torch.Generator().manual_seed(seed)
    angles = torch.rand(projections, generator=generator, dtype=torch.float64) * math.pi
    directions = torch.stack([angles.cos(), angles.sin()], 1)
    pa = (a.double() @ directions.T).sort(0).values
    pb = (b.double() @ directions.T).sort(0).values
    return float((pa - pb).abs().mean())


def toy_score(samples: torch.Tensor, dataset: str, seed: int = 999) -> dict[str, float]:
    """Sliced Wasserstein distance (``swd``) of 2D samples to fresh points of the true toy distribution."""
    if not torch.isfinite(samples).all():
        raise ValueError("samples contain NaN or inf")
    reference = toy_points(dataset, len(samples), seed)
    return {"swd": sliced_wasserstein(samples.cpu(), reference)}
