"""The server's memory: warmed up before it opens, and freed memory given back to the system while it is idle."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import torch

from minsnr_core.training import TrainConfig, train


def warm_up() -> None:
    """Two training steps of a toy and of the MNIST UNet on made-up data, each with a preview and a metric, before
    the server opens: the first run of a class then starts as fast as the rest, and the one-time memory of loading
    kernels and thread pools is part of the server's start,
    not of a student's run (docs/performance.md, soak benchmark)."""
    toy = TrainConfig(dataset="moons", steps=2, toy_size=64, batch_size=16, preview_every=2, metric_every=2,
                      metric_samples=16, preview_sample_steps=2, checkpoint_every=0, log_every=1)
    digits = TrainConfig(dataset="mnist", steps=2, batch_size=4, preview_every=2, preview_count=2,
                         preview_sample_steps=2, checkpoint_every=0, log_every=1, class_conditional=False)
    for _ in train(toy):
        pass
    for _ in train(digits, data=torch.zeros(8, 1, 32, 32)):
        pass


def release_memory() -> None:
    """Give freed memory back to the operating system once sessions have ended.

    glibc's allocator keeps freed blocks (training batches, figures, session state) mapped for reuse, so the server's
    resident memory stays at its peak long after the sessions that used it are gone; ``malloc_trim`` returns the free
    pages (docs/performance.md, soak benchmark). Elsewhere than glibc only the garbage collector runs."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return
    trim(0)
