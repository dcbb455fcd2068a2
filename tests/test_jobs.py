"""The app's job manager with real (tiny) training runs: FIFO hand-off, owners, limits, grace period, cleanup."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.jobs import ClassLimits, JobManager
from minsnr_core.training import TrainConfig, continued_config

OWNERS = [f"owner-token-{i:016d}" for i in range(6)]


def toy(steps=20, **extra):
    settings = {"toy_size": 256, "batch_size": 32, "preview_every": 0, "log_every": 5, "checkpoint_every": 0,
                "device": "cpu", **extra}
    return TrainConfig(dataset="moons", steps=steps, **settings)


def wait(condition, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_queue_is_first_come_first_served(tmp_path):
    manager = JobManager(1, tmp_path)
    started = []
    jobs = []
    for owner in OWNERS[:5]:
        jobs.append(manager.submit(owner, [toy(steps=30)]))
        time.sleep(0.05)
    while not all(j.finished for j in jobs):
        for job in jobs:
            if job.started is not None and job not in started:
                started.append(job)
        time.sleep(0.005)
    assert [j.id for j in sorted(jobs, key=lambda j: j.started)] == [j.id for j in jobs]
    assert all(j.status == "done" for j in jobs)
    manager.close()


def test_expected_wait_counts_the_running_job_and_time_budgets(tmp_path):
    manager = JobManager(1, tmp_path)
    first = manager.submit(OWNERS[0], [toy(steps=None, minutes=0.05)])
    second = manager.submit(OWNERS[1], [toy(steps=None, minutes=0.05)])
    third = manager.submit(OWNERS[2], [toy(steps=None, minutes=0.05)])
    wait(lambda: first.status == "running" and first.histories[0].eta_s is not None)
    wait_second, wait_third = manager.expected_wait_s(second), manager.expected_wait_s(third)
    assert 0 < wait_second <= 3.5 and wait_third == pytest.approx(wait_second + 3.0, abs=0.5)
    for owner in OWNERS[:3]:
        manager.stop(owner)
    manager.close()


def test_a_new_start_deletes_the_replaced_runs_folders(tmp_path):
    manager = JobManager(1, tmp_path)
    jobs = [manager.submit(OWNERS[0], [toy(steps=2000)]) for _ in range(3)]
    wait(lambda: jobs[-1].finished, timeout=120)
    wait(lambda: sorted(p.name for p in tmp_path.glob("job*")) == [f"job-{jobs[-1].id}-run0"])
    assert all(j.status == "stopped" for j in jobs[:2]) and jobs[-1].status == "done"
    manager.close()
    assert list(tmp_path.iterdir()) == []


def test_limits_refuse_before_anything_is_touched(tmp_path):
    manager = JobManager(1, tmp_path, ClassLimits(max_steps=100, max_minutes=1))
    job = manager.submit(OWNERS[0], [toy(steps=20)])
    wait(lambda: job.finished)
    for config, message in ((toy(steps=101), "steps must be at most 100"),
                            (toy(steps=None, minutes=2), "minutes must be at most 1"),
                            (toy(batch_size=5000), "batch size must be at most 1024")):
        with pytest.raises(ValueError, match=message):
            manager.submit(OWNERS[0], [config])
    assert manager.job(OWNERS[0]) is job and (job.run_dirs[0] / "checkpoint.pt").exists()
    with pytest.raises(ValueError, match="owner"):
        manager.submit("short", [toy()])
    manager.close()


def test_a_closed_page_keeps_its_run_for_the_grace_period_and_a_reload_gets_it_back(tmp_path):
    manager = JobManager(1, tmp_path, grace_s=1.0)
    manager.attach(OWNERS[0], "session-a")
    job = manager.submit(OWNERS[0], [toy(steps=20)])
    wait(lambda: job.finished)
    manager.detach("session-a")  # a Wi-Fi blip: the page goes away …
    time.sleep(0.5)
    manager.attach(OWNERS[0], "session-b")  # … and comes back as a new session with the same token
    time.sleep(1.5)
    assert manager.job(OWNERS[0]) is job and (job.run_dirs[0]).exists()
    manager.detach("session-b")  # the tab is closed for good
    wait(lambda: manager.job(OWNERS[0]) is None, timeout=5)
    wait(lambda: not (job.run_dirs[0]).exists(), timeout=5)
    manager.close()


def test_keep_training_continues_the_same_budget_kind_and_the_curves(tmp_path):
    manager = JobManager(1, tmp_path)
    first = manager.submit(OWNERS[0], [toy(steps=20)])
    wait(lambda: first.finished)
    again = manager.submit(OWNERS[0], [continued_config(first.configs[0], first.histories[0].step)], resume_from=first)
    wait(lambda: again.finished)
    history = again.histories[0]
    assert again.status == "done" and history.step == 40
    assert history.steps == [5, 10, 15, 20, 25, 30, 35, 40], "the loss curve continues, it does not restart"
    records = (first.run_dirs[0] / "metrics.jsonl").read_text().splitlines()
    assert sum('"kind": "log"' in line for line in records) == 8
    timed = continued_config(toy(steps=None, minutes=0.5), 123)
    assert (timed.steps, timed.minutes) == (None, 0.5)
    manager.close()


def test_release_memory_gives_freed_heap_back_to_the_system(tmp_path):
    # In a fresh process, so the numbers are its own: 400 MB of small tensors (heap, not mmap) freed, then released.
    script = """
import sys, torch
from app.memory import release_memory
def rss():
    return next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmRSS')) / 1024
blocks = [torch.ones(1000) for _ in range(100_000)]
pinned = torch.ones(10)  # allocated last, so the top of the heap stays in use and only malloc_trim can free below it
del blocks
before = rss()
release_memory()
print(before - rss())
"""
    if not sys.platform.startswith("linux"):
        pytest.skip("resident memory is read from /proc")
    freed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[1]).stdout
    assert float(freed) > 300, f"release_memory freed only {freed.strip()} MB of 400 MB"


def test_a_page_following_a_job_gets_its_final_state_even_when_it_ends_during_a_render(tmp_path):
    """The Compare test once waited four minutes on a page stuck at "measuring sample quality…": the job had ended while
    its last running state was rendered, and the follower stopped without showing the end."""
    from app.training_ui import follow

    manager = JobManager(1, tmp_path)
    job = manager.submit(OWNERS[0], [toy(steps=200)])
    wait(lambda: job.status == "running")
    slowed = []

    def render(followed):
        status = followed.status
        if status == "running" and not slowed:  # the job ends while this render is being drawn
            slowed.append(True)
            wait(lambda: followed.finished)
        return status

    shown = list(follow(manager, job, render))
    assert slowed and shown[-1] == "done", shown
    manager.close()


def test_a_failed_run_names_the_servers_folders_without_their_paths(tmp_path):
    """A class server's student reads the run's error, never the server's paths: a missing dataset's message names
    the data folder as the page does (its own name) and says how to fix it."""
    empty = tmp_path / "course-data"
    empty.mkdir()
    manager = JobManager(1, tmp_path / "runs")
    job = manager.submit(OWNERS[0], [TrainConfig(dataset="mnist", data_root=str(empty), download=False, steps=2,
                                                 device="cpu", preview_every=0)])
    wait(lambda: job.finished)
    assert job.status == "error" and "'course-data'" in job.message, job.message
    assert str(tmp_path) not in job.message and "--data-root" in job.message
    manager.close()
