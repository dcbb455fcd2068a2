"""What a job shows its student in words: its status, its files' names and its messages, without the server's paths."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .charts import run_slug
from .figures import METRIC_NAMES

if TYPE_CHECKING:
    from minsnr_core.recorder import RunHistory

    from .job import Job
    from .jobs import JobManager


def metrics_csv_name(job: Job, index: int) -> str:
    """The file name of run ``index``'s metrics table: the tab, and the run's weighting, parameters, target and
    dataset ("minsnr-train-metrics-min-snr-gamma5-eps-moons.csv"; a comparison's runs numbered)."""
    config = job.configs[index]
    number = f"run{index + 1}-" if len(job.configs) > 1 else ""
    return (f"minsnr-{job.kind}-metrics-{number}"
            f"{run_slug(config.weighting, config.weighting_params, config.target, config.dataset)}.csv")


def without_paths(message: str, job: Job) -> str:
    """A job's message as a student may read it: the server's folders named as the page names them (a data folder by
    its own name, the run's folder as "the run's folder"), never by their paths."""
    folders = {str(run_dir): "the run's folder" for run_dir in job.run_dirs}
    for config in job.configs:  # an image folder is a dataset's data_root too
        if config.data_root:
            name = f"'{Path(config.data_root).expanduser().name}'"
            folders[str(Path(config.data_root).expanduser())] = folders[str(config.data_root)] = name
    for path in sorted(folders, key=len, reverse=True):  # the longest first: a run folder inside a data folder
        message = message.replace(path, folders[path])
    return message


def latest_quality(history: RunHistory) -> str:
    """A run's latest quality measurement in words ("Fréchet distance 12.3, confident 0.61")."""
    return ", ".join(f"{METRIC_NAMES.get(k, k)} {v:.3g}" for k, v in history.metrics[-1].items())


def status_text(manager: JobManager, job: Job | None) -> str:
    if job is None:
        return "No run yet. Press **Start**."
    if job.status == "queued":
        wait = manager.expected_wait_s(job)
        expected = f", expected wait about {wait:,.0f} s" if wait is not None else ", expected wait unknown (step budgets)"
        return f"Waiting in the queue: position **{manager.queue_position(job)}**{expected}."
    if job.side_by_side:
        return _side_by_side_status(job)
    history = job.histories[job.current]
    label = f"run {job.current + 1} of {len(job.configs)} ({job.labels[job.current]}) · " if len(job.configs) > 1 else ""
    parts = [f"**{job.status}** · {label}step **{history.step}**" + (f" / {history.total_steps}" if history.total_steps else "")]
    if history.images_per_sec:
        parts.append(f"{history.images_per_sec[-1]:,.0f} images/s")
    if history.device:
        parts.append(f"device **{history.device}**")
    if history.parameters:
        parts.append(f"{history.parameters:,} parameters")
    if history.eta_s is not None and job.status == "running":
        parts.append(f"ETA {history.eta_s:,.0f} s")
    if history.activity and job.status == "running":
        parts.append(f"**{history.activity}…**")
    if history.metrics:
        config = job.configs[job.current]
        parts.append(latest_quality(history)
                     + f" (quality on {config.metric_samples} samples)")
    text = " · ".join(parts)
    if job.message and job.finished:
        text += f"\n\n{'⚠️ ' if job.status == 'error' else ''}{job.message}"
    return text


def _side_by_side_status(job: Job) -> str:
    """A comparison's status: the job, then each run's step, latest quality and what it is doing."""
    first = job.histories[0]
    reasons = job.alone_reasons()
    how = "runs that share a model in one batched step" if job.stepping_together() else "one step of each in turn"
    parts = [f"**{job.status}** · {len(job.configs)} runs side by side, {how}"]
    if first.device:
        parts.append(f"device **{first.device}**")
    if first.parameters:
        parts.append(f"{first.parameters:,} parameters each")
    remaining = job.remaining_s()
    if remaining is not None and job.status == "running":
        parts.append(f"ETA {remaining:,.0f} s")
    lines = []
    for label, history, config, reason in zip(job.labels, job.histories, job.configs, reasons, strict=True):
        line = f"{label}: step **{history.step}**" + (f" / {history.total_steps}" if history.total_steps else "")
        if reason and job.batched:
            line += f" (its own steps: {reason})"
        if history.metrics:
            line += ", " + latest_quality(history)
            line += f" (on {config.metric_samples} samples)"
        if history.activity and job.status == "running":
            line += f" · *{history.activity}…*"
        elif history.ended and job.status == "running":
            line += f" · {history.status}"
        lines.append(f"- {line}")
    text = " · ".join(parts) + "\n\n" + "\n".join(lines)
    if job.message and job.finished:
        text += f"\n\n{'⚠️ ' if job.status == 'error' else ''}{job.message}"
    return text
