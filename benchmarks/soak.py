"""A class on one server: explorer load, a training queue, and memory before and after (run by hand, loopback only).

    python benchmarks/soak.py [--clients 30] [--seconds 60] [--jobs 5]

Starts the real app (``python -m app.main``) on a free local port, then
1. ``--clients`` explorer clients call ``/explorer`` in a loop for ``--seconds`` (random γ, T and strategies):
   latency p50/p95, requests/s, errors;
2. ``--jobs`` training jobs (2D moons, 300 steps, one owner token each) are submitted 50 ms apart to a server that
   runs one at a time: the order in which they start must be the order they were sent (FIFO);
3. the server's resident memory (RSS, from /proc) at start, after the load, and once every session has ended
   (the grace period is set to 5 s for the benchmark); the training jobs run twice, since the first round also
   loads code and thread pools for good, and only growth from round to round is a leak.
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from gradio_client import Client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the app's settings table, when run as `python benchmarks/soak.py`
DATA_ROOT = str((ROOT / ".." / "shared" / "data").resolve())  # only offered to the toys' runs; never read
STRATEGIES = ["snr", "constant", "min_snr", "soft_min_snr", "p2", "edm", "debiased", "sigmoid"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "app.main", "--port", str(port), "--grace-seconds", "5",
                               "--data-root", DATA_ROOT], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return wait_for_port(server, port)


def wait_for_port(server: subprocess.Popen, port: int, timeout_s: float = 120) -> subprocess.Popen:
    """The started server, once it answers on ``port``."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the app did not start")


def explorer_load(url: str, clients: int, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        client = Client(url, verbose=False)
        while time.time() < stop_at:
            args = ("cosine", rng.choice([100, 500, 1000]), rng.sample(STRATEGIES, 3), "eps", "t",
                    round(rng.uniform(0.5, 20), 2), False)
            started = time.perf_counter()
            try:
                client.predict(*args, api_name="/explorer")
                with lock:
                    latencies.append(time.perf_counter() - started)
            except Exception:  # noqa: BLE001 - counted, the load goes on
                with lock:
                    errors[0] += 1

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0]


def training_queue(url: str, jobs: int) -> tuple[list[int], list[int]]:
    """(submission order, start order) of ``jobs`` toy runs from distinct owners."""
    from app.settings import endpoint_values

    started: dict[int, float] = {}
    submitted = []
    for index in range(jobs):
        owner = f"soak-owner-{index:020d}"
        args = endpoint_values(owner, "min_snr", dataset="moons", data_root=Path(DATA_ROOT).name, steps=300, preview_every=100,
                               quality=False)
        client = Client(url, verbose=False)
        submitted.append((index, client.submit(*args, api_name="/train")))
        time.sleep(0.05)
    deadline = time.time() + 300
    while len(started) < jobs and time.time() < deadline:
        for index, job in submitted:
            outputs = job.outputs()
            if index not in started and outputs and ("running" in outputs[-1][0] or "done" in outputs[-1][0]):
                started[index] = time.perf_counter()
        time.sleep(0.02)
    for _, job in submitted:
        while not job.done() and time.time() < deadline:
            time.sleep(0.1)
        if job.exception() is not None:
            raise SystemExit(f"a training job failed: {job.exception()}")
    return [i for i, _ in submitted], sorted(started, key=started.get)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    server = start_server(port)
    url = f"http://127.0.0.1:{port}/"
    try:
        Client(url, verbose=False).predict(api_name="/explorer")  # warm up
        baseline = rss_mb(server.pid)
        print(f"server RSS at start: {baseline:.0f} MB")
        latencies, errors = explorer_load(url, args.clients, args.seconds)
        q = statistics.quantiles(latencies, n=20)
        print(f"explorer: {args.clients} clients for {args.seconds:g} s: {len(latencies)} requests "
              f"({len(latencies) / args.seconds:.1f}/s), {errors} errors, p50 {statistics.median(latencies) * 1000:.0f} ms, "
              f"p95 {q[18] * 1000:.0f} ms")
        print(f"server RSS after the explorer load: {rss_mb(server.pid):.0f} MB")
        ended = []
        for round_ in (1, 2):  # the first round also loads code and thread pools once; a leak would grow in round 2
            sent, began = training_queue(url, args.jobs)
            print(f"training queue, round {round_}: sent {sent}, started {began}: {'FIFO' if sent == began else 'NOT FIFO'}")
            print(f"server RSS after the training jobs: {rss_mb(server.pid):.0f} MB")
            time.sleep(15)  # the grace period (5 s) and the reaper: every run is forgotten
            ended.append(rss_mb(server.pid))
            print(f"server RSS once the sessions ended: {ended[-1]:.0f} MB ({ended[-1] - baseline:+.0f} MB against the start)")
        print(f"round 2 against round 1, sessions ended: {ended[1] - ended[0]:+.0f} MB")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
