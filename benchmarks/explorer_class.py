"""A class of students using the weight explorer at once, against the real app (run by hand, loopback only).

    python benchmarks/explorer_class.py [--users 30] [--seconds 60]

Each simulated student sends what a page sends to the server, with a pause of 0.2–1.0 s between changes:
- a strategy parameter (γ, k, …) moved, 80 % of changes: the page redraws the chart (app/explorer_js.py) and writes
  the link box's address itself (app.urlstate.link_writer_js): nothing is sent, so these are counted, not timed;
- any other control (schedule, T, target, axis, view, strategies), 20 %: the server draws the figure (one request;
  the page writes the link); a change of the ticked strategies also asks which parameters to show (a second
  request, sent with the first).
Prints how many changes of each kind were made, the latency p50/p95 of the figure changes until the server's
answer arrived, the same over all changes with a parameter change's wait for the server as 0 (it sends nothing),
and the server's CPU seconds per change and per figure change.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the app's own link fields, when run as `python benchmarks/explorer_class.py`

from app.jobs import ClassLimits  # noqa: E402
from app.main import explorer_fields, link_fields  # noqa: E402
from benchmarks.soak import free_port, start_server  # noqa: E402
from minsnr_core.schedules import SCHEDULES  # noqa: E402
from minsnr_core.weighting import STRATEGIES, TARGETS  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


def function_ids(url: str) -> dict[str, int]:
    config = httpx.get(url + "config", timeout=30).json()
    ids: dict[str, int] = {}
    for dependency in config["dependencies"]:
        ids.setdefault(dependency.get("api_name"), dependency["id"])
    return ids


def random_change(rng: random.Random, values: dict) -> str:
    """One control other than a strategy parameter set to a random allowed value; returns its name."""
    name = rng.choice(["schedule", "T", "strategies", "target", "x", "view"])
    if name == "schedule":
        values[name] = rng.choice(SCHEDULES.names())
    elif name == "T":
        values[name] = rng.choice([100, 250, 500, 1000, 2000])
    elif name == "strategies":
        values[name] = rng.sample(STRATEGIES.names(), rng.randint(1, 4))
    elif name == "target":
        values[name] = rng.choice(list(TARGETS))
    elif name == "x":
        values[name] = rng.choice(["t", "log_snr"])
    else:
        values[name] = rng.choice(["weight", "effective"])
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    port = free_port()
    server = start_server(port)
    url = f"http://127.0.0.1:{port}/"
    predict = url + "gradio_api/run/predict"
    limits = ClassLimits()
    explorer_keys = [f.key for f in explorer_fields()]
    defaults = {f.key: f.default for f in link_fields(limits)}
    try:
        ids = function_ids(url)
        latencies: dict[str, list[float]] = {"figure": []}
        parameter_changes, retried = [0], [0]
        errors = [0]
        lock = threading.Lock()
        stop_at = time.time() + args.seconds + 5

        def user(seed: int) -> None:
            rng = random.Random(seed)
            session = uuid.uuid4().hex[:11]
            values = dict(defaults)
            with httpx.Client(timeout=60) as client, ThreadPoolExecutor(2) as pool:
                def call(name: str, keys: list[str]) -> None:
                    body = {"data": [values[k] for k in keys], "fn_index": ids[name], "session_hash": session,
                            "event_data": None}
                    try:
                        response = client.post(predict, json=body)
                    except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):  # a kept-alive
                        with lock:  # connection the server had just closed: a browser sends the request again on a
                            retried[0] += 1  # new one, and so does this client
                        response = client.post(predict, json=body)
                    if response.status_code != 200:
                        raise RuntimeError(f"{name}: HTTP {response.status_code} {response.text[:200]}")

                time.sleep(rng.uniform(0, 1))  # the class does not start on the same millisecond
                while time.time() < stop_at - 5:
                    kind = "parameter" if rng.random() < 0.8 else "figure"
                    if kind == "parameter":  # drawn and linked in the page: no request
                        values["gamma"] = round(10 ** rng.uniform(-1, 2), 2)
                        with lock:
                            parameter_changes[0] += 1
                        time.sleep(rng.uniform(0.2, 1.0))
                        continue
                    changed = random_change(rng, values)
                    started = time.perf_counter()
                    try:
                        jobs = [pool.submit(call, "update_explorer", explorer_keys)]
                        if changed == "strategies":
                            jobs.append(pool.submit(call, "show_parameters", ["strategies"]))
                        for job in jobs:
                            job.result()
                        with lock:
                            latencies[kind].append(time.perf_counter() - started)
                    except Exception as error:  # noqa: BLE001 - counted, the class goes on
                        with lock:
                            errors[0] += 1
                        print(f"error: {error}", file=sys.stderr)
                    time.sleep(rng.uniform(0.2, 1.0))

        httpx.post(predict, json={"data": [defaults[k] for k in explorer_keys], "fn_index": ids["update_explorer"],
                                  "session_hash": "warmup00000", "event_data": None}, timeout=60)
        cpu_before = cpu_seconds(server.pid)
        threads = [threading.Thread(target=user, args=(i,)) for i in range(args.users)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cpu = cpu_seconds(server.pid) - cpu_before
        figures = len(latencies["figure"])
        changes = figures + parameter_changes[0]
        print(f"{args.users} users for {args.seconds:g} s: {changes} changes ({changes / args.seconds:.1f}/s), "
              f"{errors[0]} errors, server CPU {cpu:.1f} s ({cpu / max(changes, 1) * 1000:.0f} ms per change, "
              f"{cpu / max(figures, 1) * 1000:.0f} ms per figure change); {retried[0]} requests sent again on a new "
              "connection")
        print(f"  parameter : {parameter_changes[0]:5d} changes, no request (drawn and linked in the page)")
        # What each change waited for the server, a parameter change none: the class's p95 over all its changes.
        waits = {**latencies, "all (wait)": latencies["figure"] + [0.0] * parameter_changes[0]}
        for kind, values in waits.items():
            if len(values) >= 2:
                q = statistics.quantiles(values, n=20)
                print(f"  {kind:10s}: {len(values):5d} changes, p50 {statistics.median(values) * 1000:.0f} ms, "
                      f"p95 {q[18] * 1000:.0f} ms, max {max(values) * 1000:.0f} ms")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
