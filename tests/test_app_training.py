"""The Train tab through the running app's API: streamed updates, stop, queue and session isolation."""

import time

from gradio_client import Client

from minsnr_core.weighting import strategy_parameters

PARAMS = [p.default for p in strategy_parameters().values()]


def train_args(data_root, dataset="moons", steps=100_000, weighting="min_snr"):
    # weighting, dataset, data root, schedule, T, target, strategy params…, model, batch, lr, steps, minutes, seed,
    # preview every, measure quality, class labels, guidance, DDIM η
    return [weighting, dataset, str(data_root), "cosine", 1000, "eps", *PARAMS, "auto", 0, 0.002, steps, 0, 0, 50, False,
            True, 2.0, 1.0]


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
    seen = statuses(job, lambda s: "step" in s and "running" in s and " 0 /" not in s)
    steps_before = int(seen[-1].split("step **")[1].split("**")[0])
    started = time.time()
    client.predict(api_name="/stop")
    final = statuses(job, lambda s: "stopped" in s, timeout=10)
    assert time.time() - started < 5
    assert int(final[-1].split("step **")[1].split("**")[0]) >= steps_before
    result = job.outputs()[-1]
    assert result[6], "the stopped run's files are offered for download"


def test_two_sessions_queue_and_stay_isolated(app_url, data_root):
    alice, bob = Client(app_url, verbose=False), Client(app_url, verbose=False)
    job_a = alice.submit(*train_args(data_root), api_name="/train")
    statuses(job_a, lambda s: "running" in s)
    job_b = bob.submit(*train_args(data_root, dataset="gaussians"), api_name="/train")
    statuses(job_b, lambda s: "queue: position **1**" in s)
    bob.predict(api_name="/stop")  # Bob's stop cancels only Bob's queued job
    statuses(job_b, lambda s: "stopped" in s, timeout=10)
    time.sleep(1.5)
    assert "running" in job_a.outputs()[-1][0], "Alice's run must not be stopped by Bob"
    alice.predict(api_name="/stop")
    statuses(job_a, lambda s: "stopped" in s, timeout=10)


def test_bad_training_input_is_reported_not_crashing(app_url, data_root):
    client = Client(app_url, verbose=False)
    args = train_args(data_root)
    args[6 + len(PARAMS) + 2] = 5.0  # the learning rate: allowed (0, 1)
    job = client.submit(*args, api_name="/train")
    texts = statuses(job, lambda s: "⚠️" in s, timeout=30)
    assert "lr" in texts[-1]
