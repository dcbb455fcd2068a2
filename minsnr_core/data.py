"""Training data as one tensor in [−1, 1]: MNIST, CIFAR-10, any image folder, and 2D toy distributions.

The whole training set is loaded once (onto the training device when it fits), so a training step only indexes
a tensor: no DataLoader, no per-step decoding.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .registry import Entry, Registry

IMAGE_DATASETS = ("mnist", "cifar10", "folder")
LABELLED_DATASETS = IMAGE_DATASETS  # class-conditional training needs labels: the toys have none
TOY_DATASETS: Registry[Entry] = Registry("toy dataset")
DOWNLOAD_TIMEOUT_S = 20.0


class DataUnavailableError(RuntimeError):
    """The dataset is neither on disk nor downloadable; the message says how to get it."""


def _toy(name: str, display: str, description: str) -> Callable:
    def decorate(fn: Callable[[int, torch.Generator], torch.Tensor]) -> Callable:
        TOY_DATASETS.register(Entry(name, display, "", description, "", fn))
        return fn

    return decorate


@_toy("moons", "Two moons", "two interleaving half circles")
def two_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=generator) * math.pi
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    points = torch.stack([x - 0.5, y - 0.25], 1) * 1.6
    return points + 0.05 * torch.randn(n, 2, generator=generator)


@_toy("swissroll", "Swiss roll", "a 2D spiral")
def swiss_roll(n: int, generator: torch.Generator) -> torch.Tensor:
    turn = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
    points = torch.stack([turn * torch.cos(turn), turn * torch.sin(turn)], 1) / 7.0
    return points + 0.05 * torch.randn(n, 2, generator=generator)


@_toy("gaussians", "8 Gaussians", "eight Gaussians on a circle")
def eight_gaussians(n: int, generator: torch.Generator) -> torch.Tensor:
    which = torch.randint(0, 8, (n,), generator=generator).float()
    centers = torch.stack([torch.cos(which * math.pi / 4), torch.sin(which * math.pi / 4)], 1) * 1.5
    return centers + 0.1 * torch.randn(n, 2, generator=generator)


@_toy("checkerboard", "Checkerboard", "alternating squares of a 4×4 board")
def checkerboard(n: int, generator: torch.Generator) -> torch.Tensor:
    x = torch.rand(n, generator=generator) * 4 - 2
    row = torch.randint(0, 2, (n,), generator=generator) * 2
    y = torch.rand(n, generator=generator) - torch.floor(x) % 2 + row - 1
    return torch.stack([x, y], 1) * 0.8


def toy_points(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` points of a toy distribution (float32, shape (n, 2)), reproducible from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return TOY_DATASETS.get(name).function(n, generator).float()


DATA_KINDS = ("points", "image")


def data_kind(dataset: str) -> str:
    """"points" for the 2-D toys, "image" for the rest: the one place that decides how a dataset's samples are
    modelled (MLP or UNet), previewed (scatter or grid), clipped and scored."""
    return "points" if dataset in TOY_DATASETS else "image"


def sample_clip(kind: str) -> float:
    """Clip range of x̂0 while sampling: the data range, [−1, 1] for images, ±4 for the toys (all within ±3)."""
    if kind not in DATA_KINDS:
        raise ValueError(f"kind must be one of {', '.join(DATA_KINDS)}; got {kind!r}")
    return 1.0 if kind == "image" else 4.0


def dataset_names() -> list[str]:
    return [*IMAGE_DATASETS, *TOY_DATASETS.names()]


def _to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float().div(127.5).sub(1.0)


def _with_download(fn: Callable[[bool], object], name: str, root: Path, download: bool) -> object:
    """Try the files on disk first; download only when allowed, with a timeout so no network never hangs."""
    def damaged(error: Exception) -> DataUnavailableError:
        return DataUnavailableError(f"the {name} files under data_root={root} are damaged ({type(error).__name__}: "
                                    f"{str(error).splitlines()[0] if str(error) else 'unreadable'}); delete them and "
                                    "download again, or pass a data_root that holds a good copy")

    try:
        return fn(False)
    except (ValueError, IndexError, OSError) as error:  # the files are there but truncated or not what they claim
        raise damaged(error) from None
    except RuntimeError as error:
        if "not found" not in str(error).lower():
            raise damaged(error) from None
        if not download:
            raise DataUnavailableError(
                f"{name} not found under data_root={root}; pass a data_root that holds it, or allow download "
                "(needs internet)"
            ) from None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return fn(True)
    except Exception as error:  # noqa: BLE001 - any network failure becomes one clear message
        raise DataUnavailableError(
            f"{name} is not under data_root={root} and downloading it failed ({type(error).__name__}: {error}). "
            f"Download it on a machine with internet (torchvision.datasets.{name}(root, download=True)) "
            "and pass that folder as data_root, or train on a toy dataset (moons, swissroll, gaussians, checkerboard)."
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def load_mnist(root: str | Path, train: bool = True, download: bool = True) -> torch.Tensor:
    """MNIST as (N, 1, 28, 28) in [−1, 1] through torchvision (``root`` holds ``MNIST/raw``)."""
    from torchvision.datasets import MNIST

    root = Path(root).expanduser()
    dataset = _with_download(lambda dl: MNIST(str(root), train=train, download=dl), "MNIST", root, download)
    return _to_unit_range(dataset.data[:, None])


def load_image_folder(root: str | Path, image_size: int = 32, limit: int | None = None) -> torch.Tensor:
    """Every image of a torchvision ``ImageFolder`` (class sub-folders), resized to a square, as (N, C, S, S)."""
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataUnavailableError(f"image folder {root} does not exist")
    try:
        dataset = ImageFolder(str(root), transform=transforms.Compose([
            transforms.Resize(image_size), transforms.CenterCrop(image_size), transforms.PILToTensor()]))
    except (FileNotFoundError, RuntimeError) as error:
        raise DataUnavailableError(f"{root} holds no images in class sub-folders: {error}") from None
    count = len(dataset) if limit is None else min(limit, len(dataset))
    images = []
    for i in range(count):
        try:
            images.append(dataset[i][0])
        except OSError as error:  # PIL cannot read it: a damaged or mislabelled file
            raise DataUnavailableError(f"cannot read image {dataset.samples[i][0]}: {error}") from None
    return _to_unit_range(torch.stack(images))


def load_cifar10(root: str | Path, train: bool = True, download: bool = True) -> torch.Tensor:
    """CIFAR-10 as (N, 3, 32, 32) in [−1, 1]: torchvision's pickled batches, or a folder-per-class copy of it.

    A copy in ImageFolder layout is accepted at ``root/cifar10-subset/{train,test}`` or ``root/{train,test}``.
    """
    from torchvision.datasets import CIFAR10

    root = Path(root).expanduser()
    split = "train" if train else "test"
    for folder in (root / "cifar10-subset" / split, root / split):
        if folder.is_dir():
            return load_image_folder(folder, 32)
    dataset = _with_download(lambda dl: CIFAR10(str(root), train=train, download=dl), "CIFAR10", root, download)
    return _to_unit_range(torch.from_numpy(np.asarray(dataset.data)).permute(0, 3, 1, 2))


def load_labels(name: str, root: str | Path | None, train: bool = True) -> torch.Tensor:
    """The class labels (int64) of MNIST, CIFAR-10 or an image folder (its class sub-folders) on disk, in the order
    of :func:`load_dataset`'s images."""
    from torchvision.datasets import CIFAR10, MNIST, ImageFolder

    if name not in LABELLED_DATASETS:
        raise ValueError(f"labels are available for {', '.join(LABELLED_DATASETS)}, not {name!r}")
    if root is None:
        raise ValueError(f"dataset {name!r} needs a data_root to read its labels from")
    root = Path(root).expanduser()
    if name == "mnist":
        return _with_download(lambda dl: MNIST(str(root), train=train, download=dl), "MNIST", root, False).targets
    if name == "folder":
        return torch.tensor(ImageFolder(str(root)).targets)
    split = "train" if train else "test"
    for folder in (root / "cifar10-subset" / split, root / split):
        if folder.is_dir():
            return torch.tensor(ImageFolder(str(folder)).targets)
    dataset = _with_download(lambda dl: CIFAR10(str(root), train=train, download=dl), "CIFAR10", root, False)
    return torch.tensor(dataset.targets)


def load_dataset(
    name: str,
    data_root: str | Path | None = None,
    *,
    train: bool = True,
    download: bool = True,
    toy_size: int = 20_000,
    seed: int = 0,
    image_size: int = 32,
) -> torch.Tensor:
    """The whole training set of ``name`` as one float tensor in [−1, 1] (toys: roughly unit scale)."""
    if name in TOY_DATASETS:
        return toy_points(name, toy_size, seed if train else seed + 1)
    if name not in IMAGE_DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(dataset_names())}; got {name!r}")
    if data_root is None:
        raise ValueError(f"dataset {name!r} needs a data_root (a folder to read it from or download it to)")
    if name == "mnist":
        return load_mnist(data_root, train, download)
    if name == "cifar10":
        return load_cifar10(data_root, train, download)
    return load_image_folder(data_root, image_size)
