"""The class server's limits on disk and per client, with real components: a full disk while saving a checkpoint,
a metrics file torn mid-write, the per-address run cap, the upload route's size cap, a runs folder in use."""

import errno
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from app.jobs import ClassLimits, JobManager
from app.server_files import ServerFiles, remove_orphans
from minsnr_core.checkpoint import CheckpointSaveError, load_checkpoint, save_checkpoint
from minsnr_core.recorder import RunRecorder, read_metrics
from minsnr_core.training import TrainConfig

from .cli_run import run_cli
from .conftest import ROOT, free_port, wait_for_port


def test_a_full_disk_while_saving_keeps_the_last_checkpoint_and_says_so_in_one_line(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1, "w": torch.ones(3)})
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle, mode):
            self.file = real_fdopen(handle, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", FullDisk)
    with pytest.raises(CheckpointSaveError) as caught:
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    message = str(caught.value)
    assert message == f"no space left on {tmp_path} while saving the checkpoint; the last checkpoint is intact"
    assert "\n" not in message and "Errno" not in message
    assert load_checkpoint(path)["step"] == 1, "the earlier checkpoint is untouched"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"], "no half-written temporary file is left"


def test_a_torn_last_metrics_line_is_dropped_on_resume_with_a_notice(tmp_path):
    lines = [json.dumps({"kind": "log", "step": s, "loss": 0.5}) for s in (10, 20, 30)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n" + '{"kind": "log", "step": 40, "lo')
    recorder = RunRecorder(tmp_path, append=True, resume_step=30)
    assert recorder.notice == f"{tmp_path / 'metrics.jsonl'}: line 4 was cut off mid-write (an interrupted run) and is dropped"
    assert [r["step"] for r in read_metrics(tmp_path)] == [10, 20, 30]
    # A broken line that is not the last is not a torn write: an error naming the file and the line.
    (tmp_path / "metrics.jsonl").write_text(lines[0] + "\n{oops\n" + lines[1] + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not a metrics record"):
        RunRecorder(tmp_path, append=True, resume_step=30)


def test_the_cli_resumes_a_run_whose_metrics_end_in_a_torn_line(tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", "--dataset", "moons", "--steps", "20", "--out", out).returncode == 0
    with (out / "metrics.jsonl").open("a") as file:
        file.write('{"kind": "log", "step": 25, "lo')
    resumed = run_cli("train", "--resume", out, "--out", out, "--steps", "30")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{out / 'metrics.jsonl'}: line" in resumed.stderr and "cut off mid-write" in resumed.stderr
    assert max(r["step"] for r in read_metrics(out)) == 30


def toy(steps=5000):
    return TrainConfig(dataset="moons", steps=steps, toy_size=256, batch_size=32, preview_every=0, log_every=5,
                       checkpoint_every=0, device="cpu")


def test_runs_per_network_address_are_capped_whatever_the_tokens(tmp_path):
    manager = JobManager(1, tmp_path, ClassLimits(max_runs_per_address=2))
    try:
        owners = [f"fresh-token-{i:016d}" for i in range(4)]
        manager.submit(owners[0], [toy()], address="10.0.0.7")
        manager.submit(owners[1], [toy()], address="10.0.0.7")
        with pytest.raises(ValueError, match="--max-runs-per-address 2"):
            manager.submit(owners[2], [toy()], address="10.0.0.7")
        assert manager.job(owners[2]) is None
        manager.submit(owners[3], [toy()], address="10.0.0.8")  # another address: its own cap
        manager.submit(owners[0], [toy()], address="10.0.0.7")  # replacing one's own run is not one more
    finally:
        manager.close()


def test_a_runs_folder_in_use_is_refused_and_a_dead_servers_folder_is_removed(tmp_path):
    first = ServerFiles(tmp_path / "runs", temp_root=tmp_path)
    # The claim is held by a live process other than this one: pretend with the parent process's id.
    (tmp_path / "runs" / ".minsnr-server.pid").write_text(str(os.getppid()))
    with pytest.raises(ValueError, match="in use by another minsnr-app"):
        ServerFiles(tmp_path / "runs", temp_root=tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / "minsnr-app-orphan"
    (orphan / "downloads").mkdir(parents=True)
    (orphan / "server.pid").write_text(dead.stdout.strip())
    (orphan / "downloads" / "checkpoint.pt").write_bytes(b"x")
    assert remove_orphans(tmp_path) == [orphan] and not orphan.exists()
    assert first.root.exists(), "a live server's folder is kept"
    first.close()


def test_the_upload_route_refuses_files_above_the_cap(tmp_path):
    """Started as ``minsnr-app`` starts it (app.serve): in a Python whose freed memory can go back to the system."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONMALLOC"}
    env.update({"GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(tmp_path)})
    server = subprocess.Popen([sys.executable, "-m", "app.serve", "--port", str(port), "--session-idle-seconds", "5"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(server, port)
        environment = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
        assert b"PYTHONMALLOC=malloc" in environment, "the server runs on the C allocator"

        def upload(size: int) -> int:
            boundary = "minsnrboundary"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.bin\"\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n").encode() + b"0" * size + f"\r\n--{boundary}--\r\n".encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/gradio_api/upload", body,
                                             {"Content-Type": f"multipart/form-data; boundary={boundary}"})
            try:
                return urllib.request.urlopen(request, timeout=30).status
            except urllib.error.HTTPError as error:
                return error.code

        assert upload(2_000_000) == 413, "a 2 MB file is refused"
        assert upload(10_000) == 200, "a small file is taken"
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert not list(Path(tmp_path).glob("minsnr-app-*"))


def test_a_session_idle_time_below_one_second_is_refused():
    refused = subprocess.run([sys.executable, "-m", "app.main", "--session-idle-seconds", "0"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--session-idle-seconds must be a number ≥ 1" in refused.stderr


def test_idle_sessions_are_forgotten_unless_their_page_is_open():
    import datetime

    import gradio as gr
    from gradio.state_holder import StateHolder

    from app.server_files import expire_idle_sessions

    with gr.Blocks() as demo:
        gr.Number(1, label="n")
    holder = StateHolder()
    holder.set_blocks(demo)
    for session in ("script-call", "open-page", "recent-call"):
        holder[session]
    long_ago = datetime.datetime.now() - datetime.timedelta(seconds=700)
    holder.time_last_used["script-call"] = holder.time_last_used["open-page"] = long_ago
    assert expire_idle_sessions(holder, keep={"open-page"}, idle_s=600) == 1
    assert set(holder.session_data) == {"open-page", "recent-call"}
