"""Training jobs of the app: one shared first-come-first-served queue with a concurrency limit, one job slot per owner.

A job is a list of training configs: one for the Train tab; two to four for Compare, trained side by side (one step
of each in turn, or one batched step, :func:`minsnr_core.side_by_side.train_side_by_side`), so every run's curves grow
at once.
A job belongs to an *owner*: a random token the server gives each browser (kept in its localStorage) or that an
API client picks. Only the owner sees, stops, continues or samples its job; Gradio's session hash, which a client
chooses freely, decides nothing. Submitting a new job replaces the owner's previous one (and deletes its files).
When the owner's last page closes, the job is kept for a grace period (a Wi-Fi blip reloads the page, which gets
the same token back and finds its run); only then is it stopped and deleted.
"""

from __future__ import annotations

import copy
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from minsnr_core.checkpoint import CHECKPOINT_NAME, CheckpointSaveError
from minsnr_core.data import DataUnavailableError
from minsnr_core.recorder import METRICS_NAME, SAMPLES_NAME, RunHistory, RunRecorder, read_metrics, write_metrics_csv
from minsnr_core.side_by_side import train_side_by_side
from minsnr_core.training import TrainConfig, train

from .job import Job
from .job_text import metrics_csv_name, without_paths
from .memory import release_memory
from .server_files import ServerFiles

GRACE_S = 90.0  # how long a job outlives its owner's last page
RELEASE_EVERY_S = 10.0  # how often an idle server returns freed memory to the system
OWNER_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def check_owner(owner: object) -> str:
    if not isinstance(owner, str) or not OWNER_PATTERN.fullmatch(owner):
        raise ValueError("owner must be the page's token: 16 to 64 letters, digits, '-' or '_'")
    return owner


@dataclass(frozen=True)
class ClassLimits:
    """Per-run limits a teacher sets for a class server (``minsnr-app --max-steps/--max-minutes``)."""

    max_steps: int = 20_000
    max_minutes: float = 30.0
    max_batch: int = 1024
    max_timesteps: int = 2000
    # Queued or running jobs one network address may hold: an owner token is the client's own choice, so fresh
    # tokens alone must not fill the queue (a class behind one NAT address raises it with --max-runs-per-address).
    max_runs_per_address: int = 4

    def check(self, config: TrainConfig) -> None:
        """Refuse a run that would hold the shared queue too long or outgrow the server, naming the setting (for a
        resolved config, which always has a budget)."""
        if config.steps is not None and config.steps > self.max_steps:
            raise ValueError(f"steps must be at most {self.max_steps} on this server (got {config.steps})")
        if config.minutes is not None and config.minutes > self.max_minutes:
            raise ValueError(f"minutes must be at most {self.max_minutes:g} on this server (got {config.minutes:g})")
        if config.batch_size is not None and config.batch_size > self.max_batch:
            raise ValueError(f"batch size must be at most {self.max_batch} on this server (got {config.batch_size})")
        if config.timesteps > self.max_timesteps:
            raise ValueError(f"timesteps T must be at most {self.max_timesteps} on this server (got {config.timesteps})")


class JobManager:
    def __init__(self, max_concurrent: int = 1, runs_root: str | Path | None = None,
                 limits: ClassLimits | None = None, grace_s: float = GRACE_S, files: ServerFiles | None = None,
                 batched_compare: bool = False) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be ≥ 1, got {max_concurrent}")
        self.max_concurrent = max_concurrent
        self.limits = limits or ClassLimits()
        self.grace_s = grace_s
        self.batched_compare = batched_compare  # comparisons train their runs that share a model in one batched step
        self.files = files or ServerFiles(runs_root)
        self.runs_root = self.files.runs
        self._downloads_root = self.files.downloads
        self._cond = threading.Condition()
        self._running = 0
        self._waiting: list[Job] = []
        self._jobs: dict[str, Job] = {}
        self._pages: dict[str, set[str]] = {}  # owner → session hashes of its open pages
        self._expiry: dict[str, float] = {}  # owner → when its job is forgotten, if no page returns
        self._live: list[Job] = []  # jobs whose thread has not ended: close() waits for them
        self._closed = False
        threading.Thread(target=self._reaper, daemon=True, name="minsnr-reaper").start()

    # --- submitting and controlling jobs -------------------------------------------------------------------------
    def submit(self, owner: str, configs: list[TrainConfig], labels: list[str] | None = None,
               resume_from: Job | None = None, kind: str = "train", address: str = "") -> Job:
        """Queue a job for ``owner``; configs are validated (and checked against the class limits) before anything
        else happens, so a refused submission leaves the owner's current job untouched. ``resume_from``: continue
        that finished job's first run in its own folder. ``address``: the client's network address."""
        check_owner(owner)
        configs = [c.resolved() for c in configs]
        for config in configs:
            self.limits.check(config)
        job_id = secrets.token_hex(8)
        if resume_from is not None:
            run_dirs = resume_from.run_dirs[:1]
            resume = run_dirs[0] / CHECKPOINT_NAME
        else:
            run_dirs = [self.runs_root / f"job-{job_id}-run{i}" for i in range(len(configs))]
            resume = None
        for config, run_dir in zip(configs, run_dirs, strict=True):
            config.out_dir = str(run_dir)
        # A continued run extends the curves it had (its metrics.jsonl is appended to as well).
        histories = [copy.deepcopy(resume_from.histories[0])] if resume_from else [RunHistory() for _ in configs]
        job = Job(job_id, owner, kind, configs, labels or [c.weighting for c in configs], run_dirs, resume, histories,
                  address=address, start_step=resume_from.histories[0].step if resume_from else 0,
                  batched=self.batched_compare and kind == "compare" and resume_from is None)
        with self._cond:
            previous = self._jobs.get(owner)
            cap = self.limits.max_runs_per_address
            held = [j for o, j in self._jobs.items() if o != owner and j.address == address and not j.finished]
            if address and cap and len(held) >= cap:
                raise ValueError(f"this network address already has {len(held)} runs queued or running, the most this "
                                 f"server allows (--max-runs-per-address {cap}); wait for one to finish")
            self._jobs[owner] = job
            self._waiting.append(job)
            self._live.append(job)
            self._expiry.pop(owner, None)
        if previous is not None:
            self._retire(previous, keep=set(run_dirs))
        threading.Thread(target=self._work, args=(job,), daemon=True, name=f"minsnr-job-{job_id}").start()
        return job

    def job(self, owner: str) -> Job | None:
        return self._jobs.get(owner)

    def queue_position(self, job: Job) -> int:
        """1 for the next job to start, 2 for the one after…; 0 once it runs or ended."""
        with self._cond:
            return self._waiting.index(job) + 1 if job in self._waiting else 0

    def expected_wait_s(self, job: Job) -> float | None:
        """Seconds until ``job`` can start: the slots free up as the running jobs and the queued jobs ahead of it
        finish (their ETAs or time budgets); None when one of them has only a step budget and has not started."""
        with self._cond:
            if job not in self._waiting:
                return 0.0
            ahead = self._waiting[: self._waiting.index(job)]
            running = [j for j in self._jobs.values() if j.status == "running"]
        finishing = sorted(r for r in (j.remaining_s() for j in running) if r is not None)
        if len(finishing) < len(running):
            return None
        slots = sorted(finishing + [0.0] * (self.max_concurrent - len(running)))
        for queued in ahead:
            duration = queued.remaining_s()
            if duration is None:
                return None
            slots[0] += duration
            slots.sort()
        return slots[0]

    def stop(self, owner: str) -> bool:
        """Ask the owner's job to stop (it ends between two steps); True if there was one to stop."""
        job = self._jobs.get(owner)
        if job is None or job.finished:
            return False
        job.stop.set()
        with self._cond:
            self._cond.notify_all()  # a queued job leaves the queue at once
        return True

    def downloads(self, job: Job) -> list[str]:
        """Copies of a finished job's files (metrics, samples, checkpoint, and the metrics as a CSV table) in a folder
        of its own, outside every folder the web server serves; Gradio hands them to the owner's page under
        unguessable cache names."""
        if not job.finished:
            return []
        if job.downloads is None:
            folder = self._downloads_root / f"job-{job.id}"
            folder.mkdir(parents=True, exist_ok=True)
            copies = []
            for index, (run_dir, config) in enumerate(zip(job.run_dirs, job.configs, strict=True)):
                for name in (METRICS_NAME, SAMPLES_NAME, CHECKPOINT_NAME):
                    if (run_dir / name).exists():
                        copy = folder / (f"run{index + 1}-{name}" if len(job.run_dirs) > 1 else name)
                        shutil.copyfile(run_dir / name, copy)
                        copies.append(str(copy))
                if (run_dir / METRICS_NAME).exists():  # the same records as a table, named after the run
                    copies.append(str(write_metrics_csv(read_metrics(run_dir), folder / metrics_csv_name(job, index),
                                                        config.timesteps)))
            job.downloads = copies
        return job.downloads

    # --- pages coming and going ----------------------------------------------------------------------------------
    def attach(self, owner: str, session: str) -> None:
        """A page of ``owner`` is open (loaded, or active): its job is kept."""
        with self._cond:
            self._pages.setdefault(owner, set()).add(session)
            self._expiry.pop(owner, None)

    def open_sessions(self) -> set[str]:
        """The session hashes of every open page."""
        with self._cond:
            return set().union(*self._pages.values())

    def touch(self, owner: str) -> None:
        """The owner is watching its job (a page streams it): keep it."""
        with self._cond:
            self._expiry.pop(owner, None)

    def detach(self, session: str) -> None:
        """A page has closed. When an owner has no page left, its job is forgotten after the grace period."""
        now = time.monotonic()
        with self._cond:
            for owner, sessions in list(self._pages.items()):
                sessions.discard(session)
                if not sessions:
                    del self._pages[owner]
                    if owner in self._jobs:
                        self._expiry[owner] = now + self.grace_s

    def forget(self, owner: str) -> None:
        """Stop the owner's job and delete its files now."""
        with self._cond:
            job = self._jobs.pop(owner, None)
            self._expiry.pop(owner, None)
        if job is not None:
            self._retire(job)

    def close(self) -> None:
        """Server shutdown: stop every job and delete every file the app wrote."""
        self._closed = True
        for owner in list(self._jobs):
            self.forget(owner)
        deadline = time.monotonic() + 10  # a stopped job ends within a training step; then its folders can go
        while self._jobs_running() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.files.close()

    def _jobs_running(self) -> list[Job]:
        with self._cond:
            return list(self._live)

    def _reaper(self) -> None:
        next_release = time.monotonic() + RELEASE_EVERY_S
        while not self._closed:
            time.sleep(min(1.0, self.grace_s / 4))
            now = time.monotonic()
            with self._cond:
                # A finished job whose owner has no page open (an API client, or a page that never loaded) is
                # kept for the grace period after it ended, so memory and disk do not grow with every client.
                for owner, job in self._jobs.items():
                    if job.ended is not None and owner not in self._pages and owner not in self._expiry:
                        self._expiry[owner] = job.ended + self.grace_s
                due = [owner for owner, at in self._expiry.items() if at <= now]
            for owner in due:
                self.forget(owner)
            if now >= next_release and not self._running:
                # Ended sessions (explorer pages included) leave freed memory behind; return it while idle.
                release_memory()
                next_release = now + RELEASE_EVERY_S

    def _retire(self, job: Job, keep: set[Path] = frozenset()) -> None:
        """Stop ``job`` and delete its folders (except ``keep``) once it has ended."""
        job.stop.set()
        with self._cond:
            self._cond.notify_all()

        def cleanup() -> None:
            while not job.finished:
                time.sleep(0.2)  # job.stop is already set: waiting on it would not wait
            for run_dir in job.run_dirs:
                if run_dir not in keep:
                    shutil.rmtree(run_dir, ignore_errors=True)
            shutil.rmtree(self._downloads_root / f"job-{job.id}", ignore_errors=True)
            release_memory()

        threading.Thread(target=cleanup, daemon=True).start()

    # --- the queue -----------------------------------------------------------------------------------------------
    def _work(self, job: Job) -> None:
        with self._cond:  # strict first-come-first-served: only the head of the queue may take a free slot
            while not job.stop.is_set() and (self._waiting[0] is not job or self._running >= self.max_concurrent):
                self._cond.wait()
            self._waiting.remove(job)
            if job.stop.is_set():
                job.status, job.message = "stopped", "stopped while waiting in the queue"
                job.ended = time.monotonic()
                self._live.remove(job)
                self._cond.notify_all()
                return
            self._running += 1
            job.status, job.started = "running", time.monotonic()
            self._cond.notify_all()
        try:
            if job.side_by_side:
                self._train_side_by_side(job)
                return
            for index, (config, history, run_dir) in enumerate(zip(job.configs, job.histories, job.run_dirs, strict=True)):
                job.current = index
                resume = job.resume if index == 0 else None
                recorder = RunRecorder(run_dir, append=resume is not None)
                for event in train(config, stop=job.stop, resume=resume):
                    history.add(event)
                    recorder(event)
                if history.status != "done":
                    job.status, job.message = history.status, history.message
                    return
            job.status, job.message = "done", "finished"
        except DataUnavailableError as error:  # the fix is the server's flag, not a library argument
            job.status = "error"
            job.message = (str(error).replace("pass a data_root", "start the app with --data-root DIR")
                           .replace("pass that folder as data_root", "start the app with --data-root set to that folder"))
        except CheckpointSaveError as error:  # a full disk: one line, the last checkpoint kept
            job.status, job.message = "error", str(error)
        except Exception as error:  # noqa: BLE001 - a failed job must report, never kill the server
            job.status, job.message = "error", f"{type(error).__name__}: {error}"
        finally:
            job.message = without_paths(job.message, job)
            job.ended = time.monotonic()
            with self._cond:
                self._running -= 1
                self._live.remove(job)
                self._cond.notify_all()

    @staticmethod
    def _train_side_by_side(job: Job) -> None:
        """A comparison's runs, trained together. A run that fails (its loss diverged) ends alone; the others go on,
        and the job then reports each run that did not finish, by its label."""
        recorders = [RunRecorder(run_dir) for run_dir in job.run_dirs]
        for index, event in train_side_by_side(job.configs, stop=job.stop, group=job.batched):
            job.histories[index].add(event)
            recorders[index](event)
        unfinished = [(label, history) for label, history in zip(job.labels, job.histories, strict=True)
                      if history.status != "done"]
        if not unfinished:
            job.status, job.message = "done", "finished"
            return
        statuses = [history.status for _, history in unfinished]
        job.status = "error" if "error" in statuses else statuses[0]
        if len(unfinished) == len(job.histories) and len({history.message for _, history in unfinished}) == 1:
            job.message = unfinished[0][1].message  # all stopped alike (Stop)
        else:
            job.message = "; ".join(f"{label}: {history.message}" for label, history in unfinished)
