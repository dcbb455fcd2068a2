"""The Train tab through the running app's API: streamed updates, stop, queue, ownership and request limits."""

import json
import math
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from gradio_client import Client
from gradio_client.exceptions import AppError

from app.settings import endpoint_values
from minsnr_core.recorder import read_metrics

from .conftest import ARTIFACTS, DATA_ROOT

ALICE, BOB = "alice-owner-token-000000001", "bob-owner-token-00000000002"


def train_args(root, owner=ALICE, dataset="moons", steps=10_000, weighting="min_snr", **settings):
    """The /train endpoint's values, by setting name (app.settings): a long toy run with previews every 50 steps."""
    return endpoint_values(owner, weighting, **{"dataset": dataset, "data_root": Path(root).name, "target": "eps",
                                                "steps": steps, "preview_every": 50, "quality": False, **settings})


def forged_stop(url: str, owner: str, session_hash: str) -> int:
    """Call the Stop endpoint over raw HTTP with a session hash of the caller's choosing; the HTTP status."""
    config = json.loads(urllib.request.urlopen(url + "config", timeout=10).read())
    (stop,) = [d["id"] for d in config["dependencies"] if d.get("api_name") == "stop"]
    body = json.dumps({"data": [owner], "fn_index": stop, "session_hash": session_hash}).encode()
    request = urllib.request.Request(url + "gradio_api/run/predict", body, {"Content-Type": "application/json"})
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as error:
        assert b"owner" in error.read()
        return error.code


def statuses(job, until, timeout=120):
    """Status texts streamed by ``job`` until ``until(text)`` holds."""
    deadline, seen = time.time() + timeout, []
    while time.time() < deadline:
        outputs = job.outputs()
        if outputs:
            seen = [o[0] for o in outputs]
            if until(seen[-1]):
                return seen
        time.sleep(0.3)
    raise AssertionError(f"timed out; last statuses: {seen[-3:]}")


def test_toy_run_streams_updates_and_stops(app_url, data_root):
    client = Client(app_url, verbose=False)
    job = client.submit(*train_args(data_root), api_name="/train")
    statuses(job, lambda s: "running" in s and "images/s" in s)
    started = time.time()
    client.predict(ALICE, api_name="/stop")
    statuses(job, lambda s: "stopped" in s, timeout=10)
    assert time.time() - started < 5
    # The stopped run's files are offered for download; its metrics hold the streamed steps and the stop.
    files = [str(f) for f in job.outputs()[-1][6]]
    records = read_metrics(next(f for f in files if f.endswith("metrics.jsonl")))
    logged = [r["step"] for r in records if r["kind"] == "log"]
    assert logged and logged == list(range(5, logged[-1] + 1, 5)), "a toy run logs every 5 steps (RUN_DEFAULTS)"
    (stop,) = [r for r in records if r["kind"] == "stopped"]
    assert logged[-1] <= stop["step"] < 10_000 and stop["message"] == "stopped on request"
    assert any(f.endswith("checkpoint.pt") for f in files)


def test_two_owners_queue_in_order_and_stay_isolated_even_with_a_forged_session(app_url, data_root):
    alice, bob = Client(app_url, verbose=False), Client(app_url, verbose=False)
    job_a = alice.submit(*train_args(data_root), api_name="/train")
    statuses(job_a, lambda s: "running" in s)
    job_b = bob.submit(*train_args(data_root, owner=BOB, dataset="gaussians"), api_name="/train")
    statuses(job_b, lambda s: "queue: position **1**" in s and "expected wait" in s)
    # A client that forges Alice's session hash: the session decides nothing, so its stop with Bob's token reaches
    # only Bob's queued job, and without a token it reaches nothing.
    assert forged_stop(app_url, BOB, alice.session_hash) == 200
    statuses(job_b, lambda s: "stopped" in s, timeout=10)
    assert forged_stop(app_url, "", alice.session_hash) == 500  # refused with "owner must be the page's token"
    time.sleep(1.5)
    assert "running" in job_a.outputs()[-1][0], "Alice's run must not be stopped by anyone else"
    alice.predict(ALICE, api_name="/stop")
    statuses(job_a, lambda s: "stopped" in s, timeout=10)


@pytest.mark.parametrize(("override", "message"), [
    ({"lr": 5.0}, "Learning rate (0: automatic): Value 5.0 is greater than maximum value 1"),
    ({"lr": 1.0}, "lr must be a number in (0, 1)"),
    ({"steps": 10**12}, "Steps (at most 20,000): Value 1000000000000 is greater than maximum value 20000"),
    ({"minutes": 10**6, "steps": 100}, "minutes (0: none; at most 30): Value 1000000"),
    ({"batch_size": 10**9}, "Batch size (0: automatic): Value 1000000000 is greater than maximum value 1024"),
    ({"timesteps": 10**7}, "Timesteps T: Value 10000000 is greater than maximum value 2000"),
    ({"data_root": "/etc"}, "Data folder (the server's, by name): Value: /etc is not in the list of choices"),
    # The server's own data folder too: a page offers and sends its name only, never a path.
    ({"data_root": str(DATA_ROOT)}, f"Data folder (the server's, by name): Value: {DATA_ROOT} is not in the list"),
    ({"owner": "x"}, "owner must be the page's token"),
])
def test_bad_training_input_is_refused_with_a_message(app_url, data_root, override, message):
    """Each value is checked against what its control allows (by Gradio for ranges, by the app for the rest), and
    the client is told which setting was refused; nothing trains, and the server logs no traceback."""
    log = ARTIFACTS / "app-server.log"
    logged_before = log.stat().st_size
    client = Client(app_url, verbose=False)
    job = client.submit(*train_args(data_root, **{"owner": "validation-owner-0000000001", **override}), api_name="/train")
    deadline = time.time() + 30
    while not job.done() and time.time() < deadline:
        time.sleep(0.1)
    try:
        job.result()
        told = job.outputs()[-1][0]
        assert told.startswith("⚠️")
    except AppError as error:
        told = str(error)
    assert message in told
    assert "Traceback" not in told
    time.sleep(0.5)
    assert "Traceback" not in log.read_text()[logged_before:]


def test_a_run_with_a_timestep_sampler_trains_through_the_endpoint(app_url, data_root):
    client = Client(app_url, verbose=False)
    owner = "sampler-owner-token-0000001"
    job = client.submit(*train_args(data_root, owner=owner, steps=40, timestep_sampling="importance", history=2),
                        api_name="/train")
    assert "**done**" in statuses(job, lambda s: "**done**" in s or "**error**" in s)[-1]
    files = [str(f) for f in job.outputs()[-1][6]]
    state = torch.load(next(f for f in files if f.endswith("checkpoint.pt")), weights_only=True)
    assert state["config"]["timestep_sampling"] == "importance" and state["config"]["timestep_params"] == {"history": 2}
    assert int(state["timestep_sampler"]["counts"].min()) >= 2, "the sampler learned from the losses"


def test_an_adaptive_weighting_run_shows_its_learned_curve_beside_the_fixed_one(app_url, data_root):
    client = Client(app_url, verbose=False)
    owner = "adaptive-owner-token-000001"
    job = client.submit(*train_args(data_root, owner=owner, steps=100, adaptive_weighting="edm2"), api_name="/train")
    assert "**done**" in statuses(job, lambda s: "**done**" in s or "**error**" in s)[-1]
    plot = job.outputs()[-1][7]
    assert plot["visible"] is True
    traces = json.loads(plot["value"]["plot"])["data"]
    assert [t["name"] for t in traces] == ["Min-SNR-γ (fixed)", "× EDM2 learned (uncertainty), at step 100"]
    assert traces[0]["y"] != traces[1]["y"], "the learned weighting moved away from the fixed one"
    files = [str(f) for f in job.outputs()[-1][6]]
    state = torch.load(next(f for f in files if f.endswith("checkpoint.pt")), weights_only=True)
    assert state["config"]["adaptive_weighting"] == "edm2"


def test_compare_trains_rectified_flow_arms_with_a_timestep_sampler_and_an_adaptive_weighting(app_url, data_root):
    client = Client(app_url, verbose=False)
    owner = "compare-arms-owner-token-01"
    values = endpoint_values(owner, ["flow_velocity", "min_snr"], dataset="moons", data_root=data_root.name,
                             schedule="rectified_flow", target="auto", steps=40, preview_every=20, quality=False,
                             timestep_sampling="logit_normal", adaptive_weighting="loss_ema")
    job = client.submit(*values, api_name="/compare")
    final = statuses(job, lambda s: "**done**" in s or "**error**" in s or "⚠️" in s)[-1]
    assert "**done**" in final and "2 runs side by side" in final and final.count("step **40** / 40") == 2, final
    loss_plot = json.loads(job.outputs()[-1][1]["plot"])
    assert [t["name"] for t in loss_plot["data"]] == ["(1 + √SNR)² (= plain flow-matching MSE)", "Min-SNR-γ"]
    assert all(len(t["y"]) >= 2 and all(math.isfinite(y) for y in t["y"]) for t in loss_plot["data"])
    # "automatic" chose rectified flow's velocity target: the shared unweighted axis is the v MSE.
    assert loss_plot["layout"]["yaxis"]["title"]["text"].startswith("v ")
