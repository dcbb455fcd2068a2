"""Self-conditioning (Chen, Zhang & Hinton 2022, "Analog Bits", arXiv 2208.04202 §3) as a measured lever, not a
product feature: importing this module registers the model preset ``mnist-small-selfcond`` for
``benchmarks/mnist_quality.py --self-condition``.

The UNet also sees its own x̂0 estimate as extra input channels. Training: on half of the batches (drawn from the
wrapper's own seeded generator) a first forward pass without gradients gives the estimate from a zero
condition, and the trained pass is conditioned on it (the other half sees zeros). Sampling: each step is
conditioned on the previous step's estimate (zeros at the first step, recognised by a rising t or a new batch
shape). With classifier-free guidance the doubled batch keeps one estimate per branch. The model's output is taken
as x̂0, so this holds for the x0 target only (the MNIST default); other targets are refused.
"""

from __future__ import annotations

import torch
from torch import nn

from minsnr_core.models import MODEL_PRESETS, ModelPreset, UNet


class SelfConditioned(nn.Module):
    """``forward(x, t, labels)`` of a UNet with twice the input channels: x and the previous x̂0 estimate."""

    def __init__(self, channels: int, num_classes: int, seed: int = 0) -> None:
        super().__init__()
        # Output channels are the input's (2c); the first c are the prediction (the head's extra c cost ~nothing).
        self.inner = UNet(2 * channels, 16, (1, 2, 2), 1, attention=True, patch=2, num_classes=num_classes)
        self.channels = channels
        self.num_classes = num_classes
        self.generator = torch.Generator().manual_seed(seed)
        self.previous: torch.Tensor | None = None  # sampling: the last estimate
        self.previous_t: torch.Tensor | None = None

    def _predict(self, x: torch.Tensor, condition: torch.Tensor, t: torch.Tensor,
                 labels: torch.Tensor | None) -> torch.Tensor:
        return self.inner(torch.cat([x, condition], dim=1), t, labels)[:, : self.channels]

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        condition = torch.zeros_like(x)
        if self.training:
            if torch.rand((), generator=self.generator) < 0.5:
                with torch.no_grad():
                    condition = self._predict(x, condition, t, labels).detach()
            return self._predict(x, condition, t, labels)
        fresh = (self.previous is None or self.previous.shape != x.shape
                 or bool((t > self.previous_t).any()))  # a new trajectory starts at the highest t
        if not fresh:
            condition = self.previous.to(x.dtype)
        out = self._predict(x, condition, t, labels)
        self.previous, self.previous_t = out.detach(), t.detach()
        return out


MODEL_PRESETS.register(ModelPreset(
    "mnist-small-selfcond", "MNIST UNet (small, self-conditioned)", "", "mnist-small with self-conditioning",
    "Chen et al. 2022", lambda c, k, size: SelfConditioned(c, k), (), "image", 32, 6e-3))
