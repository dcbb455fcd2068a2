"""How much the app's live updates slow training, and how soon the first update arrives (run by hand).

    python benchmarks/app_overhead.py --data-root ../shared/data

For MNIST and a 2D toy: images/s of a plain ``train()`` loop, then of the same config run as an app job while a
Gradio client streams the Train tab's updates (the real app server, started here on a free port).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

from gradio_client import Client

from app.settings import endpoint_values
from minsnr_core.recorder import read_metrics
from minsnr_core.training import TrainConfig, train


def plain_rate(config: TrainConfig) -> float:
    rates = [e.images_per_sec for e in train(config) if e.kind == "log"]
    return sum(rates[2:]) / max(1, len(rates[2:]))


def app_rate(url: str, dataset: str, data_root: str, steps: int) -> tuple[float, float, float]:
    """(seconds to the first streamed status, seconds to the first status with a step, mean images/s)."""
    args = endpoint_values("benchmark-owner-token-0001", "min_snr", dataset=dataset, data_root=Path(data_root).name, steps=steps,
                           preview_every=100, quality=False)
    client = Client(url, verbose=False)
    started = time.perf_counter()
    job = client.submit(*args, api_name="/train")
    first = first_step = None
    while not job.done():
        outputs = job.outputs()
        if outputs and first is None:
            first = time.perf_counter() - started
        if outputs and first_step is None and "images/s" in outputs[-1][0]:
            first_step = time.perf_counter() - started
        time.sleep(0.05)
    files = job.outputs()[-1][6]
    metrics = next(f for f in files if str(f).endswith("metrics.jsonl"))
    rates = [r["images_per_sec"] for r in read_metrics(metrics) if r["kind"] == "log"]
    return first, first_step, sum(rates[2:]) / max(1, len(rates[2:]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    root = str(Path(args.data_root).resolve())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "app.main", "--port", str(port), "--data-root", root],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(12)
        for dataset in ("moons", "mnist"):
            config = TrainConfig(dataset=dataset, data_root=root, steps=args.steps, preview_every=100, device="cpu")
            plain = plain_rate(config)
            first, first_step, with_app = app_rate(f"http://127.0.0.1:{port}/", dataset, root, args.steps)
            print(f"{dataset:6s} plain loop {plain:9.0f} img/s | app job, streamed: {with_app:9.0f} img/s "
                  "(mean over logged intervals; previews every 100 steps in both) | "
                  f"first update {first:.2f} s, first step shown {first_step:.2f} s")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
