"""Writes a run's events to its folder: metrics.jsonl (one JSON object per logged step) and samples.png; and the
same records as a table (:func:`write_metrics_csv`), for a spreadsheet."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from .images import samples_picture, save_png
from .training import FINAL_KINDS, TrainEvent, bucket_steps

METRICS_NAME = "metrics.jsonl"
SAMPLES_NAME = "samples.png"


def event_record(event: TrainEvent) -> dict[str, Any]:
    """The JSON-ready fields of a log or metric event."""
    record: dict[str, Any] = {"kind": event.kind, "step": event.step, "elapsed_s": round(event.elapsed_s, 3)}
    for name in ("loss", "unweighted_loss", "bucket_losses", "images_per_sec", "metric", "message"):
        value = getattr(event, name)
        if value not in (None, ""):
            record[name] = value
    return record


def _finite(value: Any) -> Any:
    """NaN and ±inf become None (JSON null): metrics.jsonl stays valid JSON when a loss diverges."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class RunRecorder:
    """Writes a run's metrics.jsonl and samples.png. ``append``: continue a resumed run's file; records past
    ``resume_step`` (logged after the checkpoint by a process that was then killed) are dropped, so the file holds
    each step once."""

    def __init__(self, out_dir: str | Path, append: bool = False, resume_step: int | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.out_dir / METRICS_NAME
        self.samples_path = self.out_dir / SAMPLES_NAME
        self.notice = ""  # a resumed file's torn last line, dropped: said once by the CLI or the app
        if not append:
            self.metrics_path.write_text("")
        elif resume_step is not None and self.metrics_path.exists():
            records, self.notice = _parse_metrics(self.metrics_path)
            kept = [json.dumps(record, allow_nan=False) for record in records if record.get("step", 0) <= resume_step]
            temporary = self.metrics_path.with_suffix(".jsonl.tmp")
            temporary.write_text("".join(line + "\n" for line in kept))
            temporary.replace(self.metrics_path)

    def __call__(self, event: TrainEvent) -> None:
        if event.kind in ("log", "metric", "done", "stopped", "error"):
            with self.metrics_path.open("a") as file:
                file.write(json.dumps(_finite(event_record(event)), allow_nan=False) + "\n")
        if event.kind == "preview" and event.samples is not None:
            save_png(samples_picture(event.samples), self.samples_path)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file (a folder holding one is accepted)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_NAME
    return _parse_metrics(path)[0]


def _parse_metrics(path: Path) -> tuple[list[dict[str, Any]], str]:
    """The file's records and a notice. A last line cut off mid-write (a killed process, a full disk) is dropped with
    a notice naming the file and the line; any other unreadable line is an error naming them."""
    lines = path.read_text().splitlines()
    records, notice = [], ""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            if number == len(lines):
                notice = f"{path}: line {number} was cut off mid-write (an interrupted run) and is dropped"
                break
            raise ValueError(f"{path}: line {number} is not a metrics record ({error})") from None
        records.append(record)
    return records, notice


# The CSV's columns for a log record's fields (the rest: one column per loss bucket, then per quality metric).
CSV_COLUMNS = {"step": "step", "elapsed_s": "elapsed_s", "loss": "weighted_loss", "unweighted_loss": "unweighted_loss",
               "images_per_sec": "images_per_sec"}


def metrics_table(records: list[dict[str, Any]], num_timesteps: int | None = None) -> tuple[list[str], list[list[Any]]]:
    """The log and metric records of a metrics.jsonl as a table: one row per step with a record, in step order;
    columns step, elapsed_s, weighted_loss (what the run minimised), unweighted_loss (the plain MSE in the target's
    space), images_per_sec, then the unweighted loss per timestep bucket (``unweighted_loss_t<first>_<last>`` with
    the run's T, else ``unweighted_loss_bucket<i>``) and each quality metric (``quality_<name>``). A field a step did
    not record is left empty."""
    by_step: dict[int, dict[str, Any]] = {}
    buckets = max((len(r.get("bucket_losses") or []) for r in records), default=0)
    metric_names: list[str] = []
    for record in records:
        if record.get("kind") not in ("log", "metric"):
            continue
        row = by_step.setdefault(int(record["step"]), {"step": int(record["step"])})
        for field, column in CSV_COLUMNS.items():
            if field in record and field != "step" and (field != "elapsed_s" or column not in row):
                row[column] = record[field]
        for index, value in enumerate(record.get("bucket_losses") or []):
            row[f"bucket{index}"] = value
        for name, value in (record.get("metric") or {}).items():
            if name not in metric_names:
                metric_names.append(name)
            row[f"quality_{name}"] = value

    def bucket_column(index: int) -> str:
        if num_timesteps is None:
            return f"unweighted_loss_bucket{index}"
        low, high = bucket_steps(index, buckets, num_timesteps)
        return f"unweighted_loss_t{low}_{high}"

    keys = list(CSV_COLUMNS.values()) + [f"bucket{i}" for i in range(buckets)] + [f"quality_{n}" for n in metric_names]
    columns = list(CSV_COLUMNS.values()) + [bucket_column(i) for i in range(buckets)] + keys[len(CSV_COLUMNS) + buckets:]
    rows = [[by_step[step].get(key) for key in keys] for step in sorted(by_step)]
    return columns, rows


def write_metrics_csv(records: list[dict[str, Any]], path: str | Path, num_timesteps: int | None = None) -> Path:
    """:func:`metrics_table` as a CSV file (empty cells for missing values); returns its path."""
    columns, rows = metrics_table(records, num_timesteps)
    path = Path(path)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    return path


class RunHistory:
    """Collects a run's events in memory: the curves the app, the notebooks and the experiment runner plot."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.unweighted_losses: list[float | None] = []
        self.bucket_losses: list[list[float | None]] = []
        self.images_per_sec: list[float] = []
        self.metric_steps: list[int] = []
        self.metrics: list[dict[str, float]] = []
        self.samples = None
        self.samples_step = 0
        self.status = "created"
        self.message = ""
        self.device = ""
        self.parameters = 0
        self.eta_s: float | None = None
        self.elapsed_s = 0.0
        self.step = 0
        self.total_steps: int | None = None
        self.checkpoint: str | None = None
        self.activity = ""  # what the run is doing besides training steps ("measuring sample quality…")
        self.weight_curves: dict[str, list[float]] | None = None  # the latest preview's, when the weighting adapts

    @property
    def ended(self) -> bool:
        """Whether the run has had its last event (done, stopped or error)."""
        return self.status in FINAL_KINDS

    def add(self, event: TrainEvent) -> None:
        self.step, self.elapsed_s = event.step, event.elapsed_s
        self.total_steps = event.total_steps
        self.device, self.parameters = event.device or self.device, event.parameters or self.parameters
        if event.kind == "start":
            self.status, self.message = "running", event.message
        elif event.kind == "measuring":
            self.activity = event.message
        elif event.kind == "log":
            self.steps.append(event.step)
            self.losses.append(event.loss)
            self.unweighted_losses.append(event.unweighted_loss)
            self.bucket_losses.append(event.bucket_losses)
            self.images_per_sec.append(event.images_per_sec)
            self.eta_s = event.eta_s
        elif event.kind == "preview":
            self.samples, self.samples_step = event.samples, event.step
            self.weight_curves = event.weight_curves or self.weight_curves
        elif event.kind == "metric":
            self.activity = ""
            self.metric_steps.append(event.step)
            self.metrics.append(event.metric)
        elif event.kind in FINAL_KINDS:
            self.status, self.message, self.activity = event.kind, event.message, ""
            self.eta_s = 0.0 if event.kind == "done" else None
        if event.checkpoint:
            self.checkpoint = event.checkpoint
