"""What a job shows its student in words: its files' names and its messages, without the server's paths."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .charts import run_slug

if TYPE_CHECKING:
    from .jobs import Job


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
