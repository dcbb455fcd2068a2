"""Where a running app keeps its files and session state, and how none of them outlives it.

Each server owns one private folder (``minsnr-app-*`` in the system's temporary folder, mode 0700) holding a
``server.pid`` file, the download copies, Gradio's file cache and, unless ``--runs-dir`` is given, the runs. A clean
stop deletes it whole; a server killed with ``kill -9`` leaves it behind, and the next server to start deletes every
such folder whose process is gone. A ``--runs-dir`` is claimed the same way (its own ``.minsnr-server.pid``): run
folders found there at start are an earlier server's and are deleted before any job starts, and job folders carry
random ids, so a new student can never be handed an earlier student's files.
"""

from __future__ import annotations

import datetime
import getpass
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

PREFIX = "minsnr-app-"
PID_NAME = "server.pid"
RUNS_DIR_PID_NAME = ".minsnr-server.pid"
RUN_FOLDER_GLOB = "job*-run*"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _holder(pid_file: Path) -> int | None:
    """The live process that holds this pid file, if any (a missing or unreadable file: none)."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


def remove_orphans(temp_root: str | Path | None = None) -> list[Path]:
    """Delete the private folders of servers that were killed (their process is gone); returns what was deleted.
    Only this user's folders with a pid file are considered: nothing else in the temporary folder is touched."""
    removed = []
    for folder in Path(temp_root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid_file = folder / PID_NAME
        try:
            if not folder.is_dir() or folder.is_symlink() or folder.stat().st_uid != os.getuid() or not pid_file.is_file():
                continue
        except OSError:
            continue
        if _holder(pid_file) is None:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class ServerFiles:
    """The folders of one server: ``root`` (private), ``runs``, ``downloads`` and ``cache`` (Gradio's)."""

    def __init__(self, runs_dir: str | Path | None = None, temp_root: str | Path | None = None) -> None:
        remove_orphans(temp_root)
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=temp_root))  # mode 0700
        (self.root / PID_NAME).write_text(str(os.getpid()))
        self.downloads = self.root / "downloads"
        self.cache = self.root / "gradio-cache"
        for folder in (self.downloads, self.cache):
            folder.mkdir(mode=0o700)
        self._made_runs_dir = False
        self._own_runs = runs_dir is None  # inside the private folder: deleted with it
        if self._own_runs:
            self.runs = self.root / "runs"
            self.runs.mkdir(mode=0o700)
        else:
            self.runs = Path(runs_dir).expanduser()
            self._made_runs_dir = not self.runs.exists()
            self.runs.mkdir(mode=0o700, parents=True, exist_ok=True)
            claim = self.runs / RUNS_DIR_PID_NAME
            other = _holder(claim)
            if other is not None and other != os.getpid():  # this process may claim a folder again (tests do)
                shutil.rmtree(self.root, ignore_errors=True)
                raise ValueError(f"--runs-dir {self.runs} is in use by another minsnr-app (process {other})")
            # A folder a killed server made is still the servers' to remove: the claim says so.
            self._made_runs_dir = self._made_runs_dir or claim.is_file() and claim.read_text().endswith(" made")
            claim.write_text(f"{os.getpid()}{' made' if self._made_runs_dir else ''}")
            for leftover in self.runs.glob(RUN_FOLDER_GLOB):  # an earlier server's runs (it crashed or was killed)
                shutil.rmtree(leftover, ignore_errors=True)

    def close(self) -> None:
        """Delete every file of this server, and the runs folder itself when this server made it."""
        if not self._own_runs:
            for child in self.runs.glob(RUN_FOLDER_GLOB):
                shutil.rmtree(child, ignore_errors=True)
            (self.runs / RUNS_DIR_PID_NAME).unlink(missing_ok=True)
            if self._made_runs_dir:
                try:
                    self.runs.rmdir()  # only when empty: never a user's own files
                except OSError:
                    pass
        shutil.rmtree(self.root, ignore_errors=True)
        # Empty folders Gradio and torch make in the temporary folder as they are imported (Gradio's default cache,
        # torch's compile cache): removed only when empty, so no other program's file is touched.
        temp = self.root.parent
        for empty in (temp / "gradio" / "vibe_edit_history", temp / "gradio", temp / f"torchinductor_{getpass.getuser()}"):
            try:
                empty.rmdir()
            except OSError:
                pass


SESSION_IDLE_S = 600.0  # a session with no open page and no call for this long is forgotten


def expire_idle_sessions(state_holder: Any, keep: set[str], idle_s: float = SESSION_IDLE_S) -> int:
    """Forget Gradio's per-session state (a copy of the page's whole config) of sessions unused for
    ``idle_s`` whose page is not open (``keep``): a script's one-call sessions never close, so Gradio would keep
    them up to its capacity. Returns how many were forgotten."""
    now = datetime.datetime.now()
    with state_holder.lock:
        stale = [session for session, used in state_holder.time_last_used.items()
                 if session not in keep and (now - used).total_seconds() > idle_s]
        for session in stale:
            state_holder.session_data.pop(session, None)
            state_holder.time_last_used.pop(session, None)
    return len(stale)

