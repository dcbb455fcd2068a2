"""A grid's results folder: each finished run's record (``runs/<key>.json``, the record of truth) and the table of
every run's rows, ``results.csv``, both written whole so that a reader, or a killed runner, never leaves half a
file."""

from __future__ import annotations

import csv
import json
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

NOT_RECORDED = "not recorded (a record written before records named their machine)"


def _cpu_name() -> str:
    """The CPU's model name where the system tells it (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "an unnamed CPU"


def machine_of(device: torch.device, group: int = 1) -> str:
    """Where and how a run trained, in words: the torch release; the GPU, or the CPU's name, the kernels torch picked
    for it and the thread count; and ``group``, the runs it shared a batched step with (:mod:`minsnr_core.grouped`).
    Two records that differ here may differ in their digits (another CPU, GPU, thread count or grouping rounds
    differently; docs/results.md section 8); the same words have not been shown to guarantee the same digits."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        backend = f"ROCm {torch.version.hip}" if torch.version.hip else f"CUDA {torch.version.cuda}"
        where = f"{torch.cuda.get_device_name(index)} ({backend})"
    elif device.type == "cpu":
        threads = torch.get_num_threads()
        where = (f"{_cpu_name()} with {torch.backends.cpu.get_cpu_capability()} kernels, "
                 f"{threads} thread{'s' * (threads != 1)}")
    else:
        where = f"{device.type} on {platform.processor() or platform.machine()}"
    batched = f", in one batched step of {group} runs" if group > 1 else ""
    return f"torch {torch.__version__}, {where}{batched}"


def write_record(path: Path, run: dict[str, Any], rows: list[dict[str, Any]], machine: str) -> None:
    """A run's record, ``runs/<key>.json``: the record of truth for results.csv, and ``machine``
    (:func:`machine_of`), where it trained. Written whole or not at all (a temporary file renamed), so a run counts
    as finished only once its file exists."""
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"run": run, "rows": rows, "machine": machine}))
    temporary.replace(path)


def record_machines(out_dir: Path, keys: Iterable[str]) -> dict[str, int]:
    """How many of the finished runs ``keys`` trained on each machine (:func:`machine_of`)."""
    counts: dict[str, int] = {}
    for key in keys:
        path = out_dir / "runs" / f"{key}.json"
        if path.exists():
            machine = json.loads(path.read_text()).get("machine", NOT_RECORDED)
            counts[machine] = counts.get(machine, 0) + 1
    return counts


class ResultsTable:
    """``results.csv`` while the grid runs. The runs' records are the record of truth: at the start the table is
    rebuilt from the finished runs' records (in grid order: a driver killed mid-append or between a record and its
    rows leaves neither a duplicate nor a gap), each run that finishes then has its rows appended and flushed to
    disk, and at the end the table is rebuilt once more in grid order (the same file as one written at the end)."""

    def __init__(self, out: Path, keys: list[str]) -> None:
        self.out, self.keys, self.path = out, keys, out / "results.csv"

    def rebuild(self) -> list[dict[str, Any]]:
        """The table of every finished run of the grid, in grid order (no finished run: no file); returns its rows."""
        rows = load_rows(self.out, [key for key in self.keys if (self.out / "runs" / f"{key}.json").exists()])
        if rows:
            write_csv(rows, self.path)
        else:
            self.path.unlink(missing_ok=True)
        return rows

    def add(self, key: str) -> None:
        """Append the rows of the finished run ``key`` (read from its record); a run whose columns are not the
        table's rebuilds the table instead."""
        rows = load_rows(self.out, [key])
        if not rows:
            return
        columns = _columns(rows)
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open(newline="") as file:
                header = next(csv.reader(file), [])
            if header != columns:
                self.rebuild()
                return
            mode, write_header = "a", False
        else:
            mode, write_header = "w", True
        with self.path.open(mode, newline="") as file:
            writer = csv.DictWriter(file, columns)
            if write_header:
                writer.writeheader()
            writer.writerows(rows)
            file.flush()
            os.fsync(file.fileno())


def load_rows(out_dir: Path, keys: Iterable[str]) -> list[dict[str, Any]]:
    rows = []
    for key in keys:
        rows.extend(json.loads((out_dir / "runs" / f"{key}.json").read_text())["rows"])
    return rows


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for row in rows for k in row))


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """The table, written whole: to a temporary file renamed over ``path`` (a reader never sees half a table)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", newline="") as file:
        writer = csv.DictWriter(file, _columns(rows))
        writer.writeheader()
        writer.writerows(rows)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    def parse(value: str) -> Any:
        if value == "":
            return None
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and "." not in value else number

    with Path(path).open() as file:
        return [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(file)]
