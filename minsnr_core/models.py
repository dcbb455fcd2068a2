"""Denoisers: a compact time-conditioned UNet and a vanilla ViT for images, and a small MLP for 2D toy data.

The UNet follows the DDPM/improved-diffusion design (residual blocks with GroupNorm, a sinusoidal time
embedding added inside each block, self-attention only at the lowest resolution), cut down so that it trains
at useful speed on a laptop CPU. ``patch`` > 1 folds p×p pixel patches into channels first (pixel-unshuffle),
so the network works at 1/p the resolution, the trick ViT-style diffusion models use to save compute.
With ``num_classes`` > 0 the UNet is class-conditional: a learned class embedding is added to the time embedding,
and the extra index ``num_classes`` means "no label", which classifier-free guidance needs (Ho & Salimans 2022).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Entry, Registry


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (integer or real) timesteps, as in Vaswani et al. 2017 / Ho et al. 2020."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity (improved-diffusion's zero_module)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, channels * 3, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        attended = F.scaled_dot_product_attention(q, k, v)  # (b, heads, hw, c/heads)
        return x + self.out(attended.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """Time-conditioned UNet: ``forward(x, t, labels)`` with x of shape (B, C, H, W) and integer t of shape (B,).

    ``labels`` (B,) in [0, num_classes] only for a class-conditional model; None (or the index ``num_classes``)
    asks for the unconditional prediction.
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 32,
        channel_mults: tuple[int, ...] = (1, 2),
        blocks_per_level: int = 1,
        attention: bool = False,
        patch: int = 1,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.patch = patch
        self.num_classes = num_classes
        emb_dim = base_channels * 4
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_embedding = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        if self.class_embedding is not None:
            nn.init.zeros_(self.class_embedding.weight)  # starts as the unconditional model
        self.base_channels = base_channels
        io_channels = in_channels * patch * patch
        self.stem = nn.Conv2d(io_channels, base_channels, 3, padding=1)
        widths = [base_channels * m for m in channel_mults]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, ch = [base_channels], base_channels
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(blocks_per_level):
                blocks.append(ResBlock(ch, width, emb_dim))
                ch = width
                skips.append(ch)
            self.down.append(blocks)
            last = level == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(ch, ch, 3, stride=2, padding=1))
            if not last:
                skips.append(ch)
        self.mid1 = ResBlock(ch, ch, emb_dim)
        self.mid_attn = SelfAttention(ch) if attention else nn.Identity()
        self.mid2 = ResBlock(ch, ch, emb_dim)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(blocks_per_level + 1):
                blocks.append(ResBlock(ch + skips.pop(), width, emb_dim))
                ch = width
            self.up.append(blocks)
            self.upsample.append(nn.Identity() if level == 0 else nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)))
        self.head = nn.Sequential(nn.GroupNorm(_groups(ch), ch), nn.SiLU(), nn.Conv2d(ch, io_channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        size = x.shape[-2:]
        if self.patch > 1:
            pad = [(-s) % self.patch for s in size]
            x = F.pixel_unshuffle(F.pad(x, (0, pad[1], 0, pad[0])), self.patch)
        emb = self.time_mlp(timestep_embedding(t, self.base_channels))
        if self.class_embedding is not None:
            if labels is None:
                labels = torch.full_like(t, self.num_classes, dtype=torch.long)
            emb = emb + self.class_embedding(labels)
        elif labels is not None:
            raise ValueError("labels given, but this model was trained without class labels")
        h = self.stem(x)
        hs = [h]
        for blocks, downsample in zip(self.down, self.downsample, strict=True):
            for block in blocks:
                h = block(h, emb)
                hs.append(h)
            if not isinstance(downsample, nn.Identity):
                h = downsample(h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for blocks, upsample in zip(self.up, self.upsample, strict=True):
            for block in blocks:
                skip = hs.pop()
                if h.shape[-2:] != skip.shape[-2:]:  # odd sizes (7 → 4 → 8): crop back to the skip's size
                    h = h[..., : skip.shape[-2], : skip.shape[-1]]
                h = block(torch.cat([h, skip], dim=1), emb)
            h = upsample(h)
        out = self.head(h)
        if self.patch > 1:
            out = F.pixel_shuffle(out, self.patch)[..., : size[0], : size[1]]
        return out


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: multi-head self-attention, then a 4× GELU MLP, each as a residual branch."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v)  # (b, heads, n, w/heads)
        x = x + self.proj(attended.transpose(1, 2).reshape(b, n, w))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """The vanilla ViT denoiser of Hang et al. 2023 (§4.1; the official repository's
    ``guided_diffusion/vision_transformer.py``): the image cut into p×p patches, each linearly embedded as a token;
    the time (sinusoidal embedding through an MLP) and the class label enter as two more input tokens; a learned
    absolute position embedding over all tokens; pre-norm transformer blocks; a linear layer maps each patch token
    back to its p×p pixels (un-patchify), initialised at zero so the model starts by predicting 0. No adaLN: the
    condition reaches the image tokens through attention only.

    ``image_size`` (H, W) fixes the position embedding; sizes that are not multiples of ``patch`` are padded.
    The same ``forward(x, t, labels)`` as :class:`UNet`.
    """

    def __init__(self, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), patch: int = 4,
                 width: int = 128, depth: int = 6, heads: int = 4, num_classes: int = 0) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
        self.patch, self.width, self.num_classes = patch, width, num_classes
        self.image_size = tuple(image_size)
        self.grid = tuple(-(-s // patch) for s in self.image_size)
        self.patch_embed = nn.Conv2d(in_channels, width, patch, stride=patch)  # a linear map of each patch
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.class_embedding = nn.Embedding(num_classes + 1, width) if num_classes else None
        extra = 2 if num_classes else 1  # the time token, and the class token for a conditional model
        self.position = nn.Parameter(torch.zeros(1, extra + self.grid[0] * self.grid[1], width))
        self.blocks = nn.ModuleList(TransformerBlock(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.unpatchify = nn.Linear(width, patch * patch * in_channels)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.position, std=0.02)
        if self.class_embedding is not None:
            nn.init.trunc_normal_(self.class_embedding.weight, std=0.02)
        nn.init.zeros_(self.unpatchify.weight)
        nn.init.zeros_(self.unpatchify.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        if size != self.image_size:
            raise ValueError(f"this ViT was built for {self.image_size[0]}×{self.image_size[1]} images, "
                             f"got {size[0]}×{size[1]}")
        pad = [(-s) % self.patch for s in size]
        patches = self.patch_embed(F.pad(x, (0, pad[1], 0, pad[0])))  # (B, width, gh, gw)
        tokens = [self.time_mlp(timestep_embedding(t, self.width))[:, None]]
        if self.class_embedding is not None:
            if labels is None:
                labels = torch.full_like(t, self.num_classes, dtype=torch.long)
            tokens.append(self.class_embedding(labels)[:, None])
        elif labels is not None:
            raise ValueError("labels given, but this model was trained without class labels")
        h = torch.cat([*tokens, patches.flatten(2).transpose(1, 2)], dim=1) + self.position
        for block in self.blocks:
            h = block(h)
        out = self.unpatchify(self.norm(h[:, len(tokens):]))  # (B, gh·gw, p·p·C)
        gh, gw = self.grid
        out = out.transpose(1, 2).reshape(x.shape[0], -1, gh, gw)  # channels ordered (C, p, p), as pixel_shuffle
        return F.pixel_shuffle(out, self.patch)[..., : size[0], : size[1]]


class MLPDenoiser(nn.Module):
    """A small residual MLP for 2D toy data: ``forward(x, t)`` with x of shape (B, 2)."""

    def __init__(self, dim: int = 2, hidden: int = 128, layers: int = 3, emb_dim: int = 32) -> None:
        super().__init__()
        self.num_classes = 0
        self.emb_dim = emb_dim
        self.inp = nn.Linear(dim + emb_dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(),
                                                  nn.Linear(hidden, hidden)) for _ in range(layers))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None:
            raise ValueError("labels given, but the toy MLP is unconditional")
        h = self.inp(torch.cat([x, timestep_embedding(t, self.emb_dim)], dim=1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(F.silu(h))


@dataclass(frozen=True)
class ModelPreset(Entry):
    """A model preset; ``kind``: the data it denoises, "image" or "points" (:data:`minsnr_core.data.DATA_KINDS`).
    ``batch_size`` and ``lr``: the training settings measured best for it, used where a config leaves them
    automatic (None: the defaults of :mod:`minsnr_core.config`)."""

    kind: str = "image"
    batch_size: int | None = None
    lr: float | None = None


MODEL_PRESETS: Registry[ModelPreset] = Registry("model preset")


def _preset(name: str, display: str, description: str, kind: str, build, batch_size: int | None = None,
            lr: float | None = None) -> None:
    MODEL_PRESETS.register(ModelPreset(name, display, "", description, "", build, (), kind, batch_size, lr))


_preset("mnist", "MNIST UNet (fast)", "2×2 patches, widths 32/64/64 (14×14 → 4×4), attention at 4×4",
        "image", lambda c, k, size: UNet(c, 32, (1, 2, 2), 1, attention=True, patch=2, num_classes=k))
# Batch 32 at lr 6e-3: on a 2-core CPU the most digits recognised after a short budget of the settings tried
# (docs/performance.md).
_preset("mnist-small", "MNIST UNet (small)", "2×2 patches, widths 16/32/32, attention at 4×4 — the MNIST default",
        "image", lambda c, k, size: UNet(c, 16, (1, 2, 2), 1, attention=True, patch=2, num_classes=k),
        batch_size=32, lr=6e-3)
_preset("mnist-large", "MNIST UNet (large)", "2×2 patches, widths 64/128, attention at 7×7 — for a GPU",
        "image", lambda c, k, size: UNet(c, 64, (1, 2), 1, attention=True, patch=2, num_classes=k))
_preset("cifar", "CIFAR UNet", "2×2 patches, widths 64/128/128, attention at 4×4",
        "image", lambda c, k, size: UNet(c, 64, (1, 2, 2), 1, attention=True, patch=2, num_classes=k))
_preset("cifar-large", "CIFAR UNet (large)", "full resolution, widths 64/128/128, attention at 8×8 — for a GPU",
        "image", lambda c, k, size: UNet(c, 64, (1, 2, 2), 1, attention=True, patch=1, num_classes=k))
# The paper's backbone (Hang et al. 2023 §4.1, ViT-B/2 on 32×32×4 latents): here cut to CPU size. The MNIST one has
# about the `mnist` UNet's parameter count (1.2M against 1.06M).
_preset("vit-mnist", "MNIST ViT", "4×4 patches (7×7 tokens), width 128, 6 blocks, 4 heads — the paper's backbone",
        "image", lambda c, k, size: ViT(c, size, patch=4, width=128, depth=6, heads=4, num_classes=k))
_preset("vit-cifar", "CIFAR ViT", "4×4 patches (8×8 tokens), width 192, 6 blocks, 6 heads",
        "image", lambda c, k, size: ViT(c, size, patch=4, width=192, depth=6, heads=6, num_classes=k))
_preset("vit-large", "ViT-S/2 (large)", "2×2 patches (16×16 tokens on CIFAR, as the paper's 256 latent tokens), "
        "width 384, 12 blocks, 6 heads — for a GPU",
        "image", lambda c, k, size: ViT(c, size, patch=2, width=384, depth=12, heads=6, num_classes=k))
_preset("toy-mlp", "Toy MLP", "3 residual blocks of width 128 for 2D points",
        "points", lambda c, k, size: MLPDenoiser(c, 128, 3))


def build_model(preset: str, channels: int, num_classes: int = 0,
                image_size: tuple[int, int] | None = None) -> nn.Module:
    """A fresh model of ``preset`` for data with ``channels`` channels (or point dimension); ``num_classes`` > 0
    makes an image model class-conditional; ``image_size`` (H, W): the images' size, which a ViT's position
    embedding needs (None: 28×28 for one channel, else 32×32)."""
    entry = MODEL_PRESETS.get(preset)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be an integer ≥ 0, got {num_classes!r}")
    if num_classes and entry.kind != "image":
        raise ValueError(f"model {preset!r} cannot be class-conditional; only the image models take labels")
    if image_size is None:
        image_size = (28, 28) if channels == 1 else (32, 32)
    return entry.function(channels, num_classes, tuple(int(s) for s in image_size))


# Torch's layers draw their initial weights from its global generator, which every thread of the process shares: two
# runs built at once (the app's job threads) would interleave their draws and start from other weights than alone.
_GLOBAL_GENERATOR_LOCK = threading.Lock()


@contextlib.contextmanager
def global_generator(seed: int | None = None) -> Iterator[None]:
    """Torch's global generator for this thread alone (seeded to ``seed`` unless None) while the block runs: the same
    seed gives the same initial weights whatever other threads build meanwhile. Every layer built in the library is
    built inside one; a build whose weights are then loaded passes no seed."""
    with _GLOBAL_GENERATOR_LOCK:
        if seed is not None:
            torch.manual_seed(seed)
        yield


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
