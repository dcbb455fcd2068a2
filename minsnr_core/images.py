"""Turning samples into pictures: uint8 arrays, grids, PNG files, and a point-cloud raster for 2D toys."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch


def to_uint8(samples: torch.Tensor) -> np.ndarray:
    """Images in [−1, 1] of shape (N, C, H, W) → uint8 (N, H, W) for one channel, (N, H, W, C) otherwise."""
    if samples.dim() != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(samples.shape)}")
    array = ((samples.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return array[:, 0] if array.shape[1] == 1 else array.transpose(0, 2, 3, 1)


def image_grid(samples: torch.Tensor, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """A (rows·H, columns·W, 3) uint8 grid of images in [−1, 1]."""
    images = to_uint8(samples)
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=3)
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.full((rows * (h + padding) + padding, columns * (w + padding) + padding, c), 255, np.uint8)
    for i, image in enumerate(images):
        r, k = divmod(i, columns)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[top:top + h, left:left + w] = image
    return grid


def point_raster(points: torch.Tensor, size: int = 256, extent: float = 3.0) -> np.ndarray:
    """A (size, size, 3) uint8 picture of 2D points in [−extent, extent]², dark where points are dense."""
    xy = points.detach().float().cpu().numpy()
    finite = np.isfinite(xy).all(axis=1)
    counts, _, _ = np.histogram2d(xy[finite, 1], xy[finite, 0], bins=size, range=[[-extent, extent], [-extent, extent]])
    shade = 255 - np.clip(np.sqrt(counts) / max(1.0, np.sqrt(counts).max()) * 255, 0, 255)
    shade = np.minimum(shade, np.roll(shade, 1, axis=0))  # draw each point as a 2×2 dot, visible when scaled down
    shade = np.minimum(shade, np.roll(shade, 1, axis=1))
    return np.repeat(shade[::-1, :, None], 3, axis=2).astype(np.uint8)


def samples_picture(samples: torch.Tensor) -> np.ndarray:
    """A grid for images, a raster for 2D points."""
    return image_grid(samples) if samples.dim() == 4 else point_raster(samples)


def save_png(picture: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 picture as PNG atomically (a viewer never sees half a file)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    Image.fromarray(picture).save(temporary, format="PNG")
    os.replace(temporary, path)
    return path
