"""Sample-quality metrics that run offline on a CPU.

MNIST: a small classifier the project trains itself on first use (about a minute on a CPU) and caches in the
user cache dir, keyed by a hash of its code and of the training data. For a batch of samples it reports
- ``fd``: the Fréchet distance (Heusel et al. 2017) between the classifier's penultimate features of the samples
  and of the MNIST test set (lower is better; real test digits score ≈ 0),
- ``confident``: the fraction classified as one digit with probability > 0.9 (recognisable digits); the
  classifier has an 11th class, "not a digit", trained on noise, heavy blur and overlaid digits, so that noise
  cannot pass as a confident digit,
- ``label_entropy``: the entropy in bits of the predicted labels (log2 10 ≈ 3.32 when all digits appear; a
  collapse onto few digits shows as a low value).
2D toys: the sliced Wasserstein-1 distance to fresh samples of the true distribution.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .data import load_mnist, load_mnist_labels, toy_points

CONFIDENCE = 0.9
NOT_A_DIGIT = 10  # the classifier's extra class for images that are no digit at all


class MnistClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU())
        self.classify = nn.Linear(128, NOT_A_DIGIT + 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate features, logits) for images in [−1, 1]."""
        features = self.features(self.conv(x))
        return features, self.classify(features)


def _not_digits(digits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Images that must not count as digits: noise, heavy blur, two digits overlaid, digits drowned in noise."""
    n = len(digits)
    kind = torch.randint(0, 4, (n,), generator=generator)
    noise = torch.rand(digits.shape, generator=generator) * 2 - 1
    blurred = F.avg_pool2d(F.pad(digits, (3, 3, 3, 3), mode="replicate"), 7, 1)
    overlay = torch.maximum(digits, digits.roll(1, 0))
    drowned = 0.4 * digits + 0.6 * torch.randn(digits.shape, generator=generator).clamp(-1, 1)
    options = torch.stack([noise, blurred, overlay, drowned])
    return options[kind, torch.arange(n)]


def _train_classifier(images: torch.Tensor, labels: torch.Tensor, epochs: int = 2, seed: int = 0) -> MnistClassifier:
    """Digits 0–9 plus an 11th class "not a digit", so that noise cannot score as a confident digit."""
    torch.manual_seed(seed)
    model = MnistClassifier()
    optimizer = torch.optim.Adam(model.parameters(), 2e-3)
    batches = (len(images) + 255) // 256
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=epochs * batches)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), 256):
            batch = order[start:start + 256]
            x, y = images[batch], labels[batch]
            negatives = _not_digits(x[: len(x) // 5], generator)
            x = torch.cat([x, negatives])
            y = torch.cat([y, torch.full((len(negatives),), NOT_A_DIGIT)])
            loss = F.cross_entropy(model(x)[1], y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def cache_dir() -> Path:
    base = os.environ.get("MINSNR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "minsnr")
    return Path(base)


def _cache_key(images: torch.Tensor) -> str:
    code = "".join(inspect.getsource(f) for f in (MnistClassifier, _not_digits, _train_classifier))
    digest = hashlib.sha256(code.encode())
    digest.update(images.numpy().tobytes())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def mnist_classifier(data_root: str) -> MnistClassifier:
    """The cached classifier for the MNIST under ``data_root``; trained and saved on first use."""
    images = load_mnist(data_root, train=True, download=False)
    path = cache_dir() / f"mnist-classifier-{_cache_key(images)}.pt"
    model = MnistClassifier()
    if path.exists():
        model.load_state_dict(load_checkpoint(path)["model"])
        return model.eval()
    model = _train_classifier(images, load_mnist_labels(data_root, train=True))
    save_checkpoint(path, {"model": model.state_dict()})
    return model


@torch.no_grad()
def _features(model: MnistClassifier, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    feats, probs = [], []
    for start in range(0, len(images), 1000):
        f, logits = model(images[start:start + 1000].float())
        feats.append(f.double())
        probs.append(logits.softmax(1))
    return torch.cat(feats), torch.cat(probs)


@functools.lru_cache(maxsize=4)
def _reference_stats(data_root: str) -> tuple[torch.Tensor, torch.Tensor]:
    features, _ = _features(mnist_classifier(data_root), load_mnist(data_root, train=False, download=False))
    return features.mean(0), torch.cov(features.T)


def _sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(√Σ1 Σ2 √Σ1)^½) (Dowson & Landau 1982; FID's formula)."""
    root1 = _sqrtm_psd(cov1)
    cross = _sqrtm_psd(root1 @ cov2 @ root1)
    return float((mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * torch.trace(cross))


def mnist_score(samples: torch.Tensor, data_root: str | Path) -> dict[str, float]:
    """Quality of generated MNIST digits (N, 1, 28, 28) in [−1, 1]: fd, confident, label_entropy."""
    if samples.dim() != 4 or samples.shape[1:] != (1, 28, 28):
        raise ValueError(f"samples must have shape (N, 1, 28, 28), got {tuple(samples.shape)}")
    if len(samples) < 2:
        raise ValueError("samples must hold at least 2 images for a Fréchet distance")
    if not torch.isfinite(samples).all():
        raise ValueError("samples contain NaN or inf")
    root = str(Path(data_root).expanduser().resolve())
    features, probs = _features(mnist_classifier(root), samples.clamp(-1, 1))
    mu, cov = _reference_stats(root)
    confidence, labels = probs[:, :NOT_A_DIGIT].max(1)
    frequencies = torch.bincount(labels, minlength=NOT_A_DIGIT).double() / len(labels)
    entropy = -(frequencies[frequencies > 0] * frequencies[frequencies > 0].log2()).sum()
    return {
        "fd": frechet_distance(features.mean(0), torch.cov(features.T), mu, cov),
        "confident": float((confidence > CONFIDENCE).double().mean()),
        "label_entropy": abs(float(entropy)),  # never print −0.0
    }


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
