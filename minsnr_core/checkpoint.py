"""Checkpoints: written atomically (temp file + rename), read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import errno
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "minsnr-checkpoint-v1"
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, or not written by minsnr."""


class CheckpointSaveError(OSError):
    """A checkpoint that could not be written (a full disk, a folder without write permission); the one before it
    is intact, since a checkpoint is only ever replaced whole."""

    def __str__(self) -> str:  # one line, without OSError's "[Errno 28]"
        return self.strerror or super().__str__()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, numbers, strings, nested dicts/lists) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Serialised in memory first: a write that fails then raises the system's own error (ENOSPC), where torch's
    # writer reports only "[enforce fail at inline_container.cc] … file write failed".
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "wb") as file:
            file.write(buffer.getbuffer())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)  # atomic on POSIX and Windows: readers see the old or the new file
    except OSError as error:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        intact = "the last checkpoint is intact" if path.exists() else "no earlier checkpoint exists"
        reason = "no space left" if error.errno == errno.ENOSPC else (error.strerror or str(error)).lower()
        raise CheckpointSaveError(error.errno, f"{reason} on {path.parent} while saving the checkpoint; {intact}") from None
    except BaseException:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        raise
    return path


def remove_orphans(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed process left behind while writing a checkpoint (the checkpoint itself
    is untouched: it is only ever replaced whole)."""
    removed = []
    for orphan in Path(folder).glob(f"{CHECKPOINT_NAME}.*.tmp"):
        orphan.unlink(missing_ok=True)
        removed.append(orphan)
    return removed


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; anything else raises :class:`CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - unpickling errors come in many types
        # torch's message suggests weights_only=False, i.e. running the file's code: never do that, never say it.
        reason = ("it holds objects other than tensors and plain data, which are never loaded"
                  if "Unsupported global" in str(error) else "corrupt or foreign: not a checkpoint file")
        raise CheckpointError(f"{path} is not a readable minsnr checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} was not written by minsnr (expected format {FORMAT!r})")
    return state
