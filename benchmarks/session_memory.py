"""A server's memory through many short sessions and oversized values (run by hand, loopback only).

    python benchmarks/session_memory.py [--sessions 1000] [--big-calls 300] [--idle-seconds 10]

Starts the real app as ``minsnr-app`` does (``python -m app.serve``; ``--pymalloc``: ``python -m app.main`` with
Python's own small-object allocator) with ``--session-idle-seconds`` short enough to wait out, then
1. warms it up (one explorer redraw per schedule, one refused 1-MB value) and waits for those sessions to be
   forgotten: the server's resident memory (RSS, from /proc) then is the start;
2. sends ``--sessions`` one-call sessions: each a fresh session hash calling the explorer's redraw over
   ``gradio_api/run/predict``, as a page does on its first change (a random schedule, T and strategies);
3. sends ``--big-calls`` calls with a 1-MB string in one control (alternately the explorer's schedule, the
   ``/explorer`` API's schedule and the ``/train`` endpoint's dataset), each refused;
4. waits until the idle sessions are forgotten and reads the RSS again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA_ROOT = str((ROOT / ".." / "shared" / "data").resolve())
SCHEDULES = ["linear", "cosine", "scaled_linear", "sigmoid"]
STRATEGIES = ["snr", "constant", "min_snr", "soft_min_snr", "p2", "edm", "debiased", "sigmoid"]
MEGABYTE = "x" * 1_000_000

from soak import free_port, rss_mb, wait_for_port  # noqa: E402 - run as a script, beside soak.py


def start_server(port: int, idle_s: float, log: Path, pymalloc: bool) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONMALLOC"}
    server = subprocess.Popen([sys.executable, "-m", "app.main" if pymalloc else "app.serve", "--port", str(port),
                               "--data-root", DATA_ROOT, "--session-idle-seconds", str(idle_s)], cwd=ROOT, env=env,
                              stdout=log.open("w"), stderr=subprocess.STDOUT)
    return wait_for_port(server, port)


def post(url: str, body: dict) -> tuple[int, str]:
    """The HTTP status and text of a call; a named endpoint's (``gradio_api/call/…``) answer is read from its event
    stream, whose last event says ``error`` for a refusal."""
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    if "/call/" in url and status == 200:
        event_id = json.loads(text)["event_id"]
        with urllib.request.urlopen(f"{url}/{event_id}", timeout=60) as stream:
            text = stream.read().decode()
    return status, text


class Page:
    """The explorer's redraw (the page's own call on each change) and two named endpoints, by raw HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url
        config = json.loads(urllib.request.urlopen(url + "config", timeout=30).read())
        ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
        schedule_id = next(i for i, e in ids.items() if e == "schedule")
        self.redraw = next(d for d in config["dependencies"] if d.get("backend_fn") and d["inputs"]
                           and d["inputs"][0] == schedule_id and len(d["inputs"]) > 9 and d["targets"][0][0] == schedule_id)
        self.defaults = [next(c for c in config["components"] if c["id"] == i).get("props", {}).get("value")
                         for i in self.redraw["inputs"]]

    def redraw_once(self, rng: random.Random, schedule: str | None = None) -> tuple[int, str]:
        values = list(self.defaults)
        values[0] = schedule or rng.choice(SCHEDULES)
        values[1] = rng.choice([100, 500, 1000])
        values[3] = rng.sample(STRATEGIES, 3)
        body = {"data": values, "fn_index": self.redraw["id"], "session_hash": secrets.token_hex(8)}
        return post(self.url + "gradio_api/run/predict", body)

    def oversized(self, index: int) -> tuple[int, str]:
        from app.settings import endpoint_values

        if index % 3 == 0:
            values = list(self.defaults)
            values[0] = MEGABYTE
            body = {"data": values, "fn_index": self.redraw["id"], "session_hash": secrets.token_hex(8)}
            return post(self.url + "gradio_api/run/predict", body)
        if index % 3 == 1:
            values = [MEGABYTE, 1000, None, "eps", "t", 5.0, False, "uniform", None]
            return post(self.url + "gradio_api/call/explorer", {"data": values})
        values = endpoint_values("memory-owner-token-000000001", "min_snr", dataset=MEGABYTE,
                                data_root=Path(DATA_ROOT).name)
        return post(self.url + "gradio_api/call/train", {"data": values})


def settle(pid: int, wait_s: float) -> float:
    time.sleep(wait_s)
    return rss_mb(pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--big-calls", type=int, default=300)
    parser.add_argument("--idle-seconds", type=float, default=10)
    parser.add_argument("--pymalloc", action="store_true", help="Python's own small-object allocator (python -m app.main)")
    args = parser.parse_args()
    port = free_port()
    log = ROOT / "artifacts" / "session_memory_server.log"
    log.parent.mkdir(exist_ok=True)
    server = start_server(port, args.idle_seconds, log, args.pymalloc)
    url = f"http://127.0.0.1:{port}/"
    rng = random.Random(0)
    wait_s = args.idle_seconds * 2 + 5  # idle, then the next sweep (every idle/2), and a margin
    print(f"allocator: {'pymalloc (python -m app.main)' if args.pymalloc else 'malloc (python -m app.serve)'}")
    try:
        print(f"server RSS after start-up: {rss_mb(server.pid):.0f} MB")
        page = Page(url)
        for schedule in SCHEDULES:
            status, text = page.redraw_once(rng, schedule)
            assert status == 200, text[:300]
        page.oversized(0)
        start = settle(server.pid, wait_s)
        print(f"server RSS after the warm-up, its sessions forgotten (the start): {start:.0f} MB")

        began = time.perf_counter()
        failures = 0
        for _ in range(args.sessions):
            status, _text = page.redraw_once(rng)
            failures += status != 200
        print(f"{args.sessions} one-call sessions in {time.perf_counter() - began:.0f} s ({failures} failed): "
              f"RSS {rss_mb(server.pid):.0f} MB ({rss_mb(server.pid) - start:+.0f} MB)")

        refused = 0
        for index in range(args.big_calls):
            status, text = page.oversized(index)
            if status != 200 or "event: error" in text or '"error"' in text:
                refused += 1
        print(f"{args.big_calls} calls with a 1-MB value ({refused} refused at once or with an error event): "
              f"RSS {rss_mb(server.pid):.0f} MB ({rss_mb(server.pid) - start:+.0f} MB)")

        end = settle(server.pid, wait_s)
        print(f"once the sessions were forgotten ({wait_s:g} s later): RSS {end:.0f} MB ({end - start:+.0f} MB against "
              f"the start; goal: within 50 MB)")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
