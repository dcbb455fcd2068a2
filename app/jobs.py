"""Training jobs of the app: one shared queue with a concurrency limit, one job slot per browser session.

A job is a list of training configs run one after the other (one for the Train tab, two to four for Compare).
Each session sees and stops only its own job; submitting a new job replaces the session's previous one.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from minsnr_core.recorder import RunHistory, RunRecorder
from minsnr_core.training import TrainConfig, train


@dataclass
class Job:
    id: int
    session: str
    configs: list[TrainConfig]
    labels: list[str]
    run_dirs: list[Path]
    resume: Path | None = None
    histories: list[RunHistory] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    status: str = "queued"  # queued → running → done | stopped | error
    message: str = ""
    current: int = 0

    @property
    def finished(self) -> bool:
        return self.status in ("done", "stopped", "error")


class JobManager:
    def __init__(self, max_concurrent: int = 1, runs_root: str | Path | None = None) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be ≥ 1, got {max_concurrent}")
        self.max_concurrent = max_concurrent
        self.runs_root = Path(runs_root or tempfile.mkdtemp(prefix="minsnr-app-runs-"))
        self._slots = threading.Semaphore(max_concurrent)
        self._lock = threading.Lock()
        self._waiting: list[Job] = []
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)

    def submit(self, session: str, configs: list[TrainConfig], labels: list[str] | None = None,
               resume: Path | None = None) -> Job:
        """Queue a job for ``session`` (stopping the session's previous one); configs are validated first."""
        configs = [c.resolved() for c in configs]
        self.stop(session)
        job_id = next(self._ids)
        run_dirs = [self.runs_root / f"job{job_id}-run{i}" for i in range(len(configs))]
        for config, run_dir in zip(configs, run_dirs, strict=True):
            config.out_dir = str(run_dir)
        job = Job(job_id, session, configs, labels or [c.weighting for c in configs], run_dirs, resume,
                  [RunHistory() for _ in configs])
        with self._lock:
            self._jobs[session] = job
            self._waiting.append(job)
        threading.Thread(target=self._work, args=(job,), daemon=True, name=f"minsnr-job-{job_id}").start()
        return job

    def job(self, session: str) -> Job | None:
        return self._jobs.get(session)

    def queue_position(self, job: Job) -> int:
        """1 for the next job to start, 2 for the one after…; 0 once it runs or ended."""
        with self._lock:
            return self._waiting.index(job) + 1 if job in self._waiting else 0

    def stop(self, session: str) -> bool:
        """Ask the session's job to stop (it ends between two steps); True if there was one to stop."""
        job = self._jobs.get(session)
        if job is None or job.finished:
            return False
        job.stop.set()
        return True

    def forget(self, session: str) -> None:
        """The session has gone (tab closed): stop its job and delete its run folders."""
        self.stop(session)
        with self._lock:
            job = self._jobs.pop(session, None)
        if job is not None:
            threading.Thread(target=self._cleanup, args=(job,), daemon=True).start()

    def _cleanup(self, job: Job) -> None:
        while not job.finished:
            job.stop.wait(0.2)
        for run_dir in job.run_dirs:
            shutil.rmtree(run_dir, ignore_errors=True)

    def _work(self, job: Job) -> None:
        while not self._slots.acquire(timeout=0.2):  # wait for a slot, but leave the queue at once when stopped
            if job.stop.is_set():
                with self._lock:
                    self._waiting.remove(job)
                job.status, job.message = "stopped", "stopped while waiting in the queue"
                return
        try:
            with self._lock:
                self._waiting.remove(job)
            if job.stop.is_set():
                job.status, job.message = "stopped", "stopped before it started"
                return
            job.status = "running"
            try:
                for index, (config, history, run_dir) in enumerate(
                        zip(job.configs, job.histories, job.run_dirs, strict=True)):
                    job.current = index
                    recorder = RunRecorder(run_dir)
                    resume = job.resume if index == 0 else None
                    for event in train(config, stop=job.stop, resume=resume):
                        history.add(event)
                        recorder(event)
                    if history.status != "done":
                        job.status, job.message = history.status, history.message
                        return
                job.status, job.message = "done", "finished"
            except Exception as error:  # noqa: BLE001 - a failed job must report, never kill the server
                job.status, job.message = "error", f"{type(error).__name__}: {error}"
        finally:
            self._slots.release()
