"""A class server: no client reaches another's files, a crash hands no one an earlier student's run, the server leaves
nothing behind when it stops, and every refused value names its control without a traceback."""

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from gradio_client import Client

from .conftest import ROOT, free_port, wait_for_port
from .test_app_training import statuses, train_args

ALICE = "security-owner-token-00000001"
BOB = "security-owner-token-00000002"


def start_server(tmp_path: Path, runs: Path | None, log_name: str, *flags: str):
    """The real app in its own process, with the system's temporary folder moved to ``tmp_path/tmp`` (where the
    server keeps its private folder) so the test can see every file it writes there."""
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(temp)}
    env.pop("GRADIO_TEMP_DIR", None)
    log = open(tmp_path / log_name, "w")
    command = [sys.executable, "-m", "app.main", "--port", str(port), *flags]
    if runs is not None:
        command += ["--runs-dir", str(runs)]
    server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_for_port(server, port)
    return server, f"http://127.0.0.1:{port}/", log


def train(url: str, data_root: Path, owner: str, seed: int):
    client = Client(url, verbose=False)
    job = client.submit(*train_args(data_root, owner=owner, steps=20, seed=seed), api_name="/train")
    statuses(job, lambda s: "done" in s, timeout=120)
    return job.outputs()[-1]


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_run_files_reach_their_owner_only_and_are_deleted_at_shutdown(tmp_path, data_root):
    runs = tmp_path / "runs"  # does not exist yet: the server makes it, and removes it at a clean stop
    server, url, log = start_server(tmp_path, runs, "server.log", "--data-root", str(data_root))
    try:
        outputs = train(url, data_root, ALICE, seed=0)
        downloaded = outputs[6]
        names = sorted(os.path.basename(str(f)) for f in downloaded)
        assert names == ["checkpoint.pt", "metrics.jsonl", "minsnr-train-metrics-min-snr-gamma5-eps-moons.csv",
                         "samples.png"], "the owner gets the run's files, its metrics also as a table named after it"
        checkpoint = next(runs.glob("job*-run0/checkpoint.pt"))
        # The run folder itself is not served: the direct path that used to answer 200 is refused.
        for path in (checkpoint, checkpoint.parent / "metrics.jsonl"):
            try:
                urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=10)
                raise AssertionError(f"{path.name} was served to a client that only guessed its path")
            except urllib.error.HTTPError as error:
                assert error.code in (403, 404)
        (private,) = (tmp_path / "tmp").glob("minsnr-app-*")
        cached = list((private / "gradio-cache").rglob("checkpoint.pt"))
        assert cached, "Gradio served the owner a copy from its cache, inside the server's private folder"
        for written in [checkpoint, checkpoint.parent / "metrics.jsonl", *cached]:
            assert stat.S_IMODE(written.stat().st_mode) == 0o600, f"{written} is readable by other users"
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        assert str(runs) not in outputs[0] and str(tmp_path) not in outputs[0]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    assert not runs.exists(), "the runs folder the server made is gone, with every run in it"
    assert list((tmp_path / "tmp").iterdir()) == [], "nothing of the server is left in the temporary folder"


def test_a_restart_after_kill_9_never_hands_out_an_earlier_students_files(tmp_path, data_root):
    runs = tmp_path / "runs"
    server, url, log = start_server(tmp_path, runs, "first.log", "--data-root", str(data_root))
    try:
        alice = {os.path.basename(str(f)): digest(f) for f in train(url, data_root, ALICE, seed=0)[6]}
        alice_folders = sorted(p.name for p in runs.glob("job*"))
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        log.close()
    assert alice_folders and all((runs / name).exists() for name in alice_folders), "kill -9 left the runs behind"
    (killed,) = (tmp_path / "tmp").glob("minsnr-app-*")

    server, url, log = start_server(tmp_path, runs, "second.log", "--data-root", str(data_root))
    try:
        assert not killed.exists(), "the new server deleted the killed one's private folder (cache, downloads)"
        assert list(runs.glob("job*")) == [], "and its runs, before any job started"
        bob_outputs = train(url, data_root, BOB, seed=1)
        bob = {os.path.basename(str(f)): digest(f) for f in bob_outputs[6]}
        assert sorted(bob) == sorted(alice)
        assert all(bob[name] != alice[name] for name in bob), "the new student got files of their own"
        assert not set(p.name for p in runs.glob("job*")) & set(alice_folders), "job folders never repeat"
        # Alice's old token finds nothing on the new server.
        client = Client(url, verbose=False)
        resumed = client.predict(ALICE, api_name="/resume")
        assert "Nothing to continue" in resumed[0]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    assert not runs.exists(), "the runs folder a server made is removed by the server that stops cleanly"
    assert list((tmp_path / "tmp").iterdir()) == []


def named_endpoints(url: str) -> dict[str, list[str]]:
    """Every named endpoint of the page's config, with the labels of its input components."""
    config = json.loads(urllib.request.urlopen(url + "config", timeout=10).read())
    components = {c["id"]: c.get("props", {}).get("label") or c["type"] for c in config["components"]}
    return {d["api_name"]: [components.get(i, "?") for i in d["inputs"]]
            for d in config["dependencies"] if d.get("api_name") and d.get("backend_fn")}


def raw_call(url: str, name: str, values: list) -> str:
    """Call an endpoint over Gradio's REST route with JSON a script can write (NaN and Infinity included, which
    gradio_client refuses to send); the streamed answer's text: the error's message, or the last data."""
    body = json.dumps({"data": values}).encode()  # json.dumps writes NaN and Infinity
    request = urllib.request.Request(f"{url}gradio_api/call/{name}", body, {"Content-Type": "application/json"})
    try:
        event_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}: {error.read().decode()[:500]}"
    stream = urllib.request.urlopen(f"{url}gradio_api/call/{name}/{event_id}", timeout=120).read().decode()
    events = [block for block in stream.split("\n\n") if block.strip()]
    kind = events[-1].splitlines()[0].removeprefix("event: ").strip()
    data = events[-1].splitlines()[1].removeprefix("data: ")
    try:
        data = json.loads(data)
    except ValueError:
        pass
    return f"{kind}: {data['error'] if isinstance(data, dict) and 'error' in data else data}"


BAD_VALUES = ["five", None, {"a": 1}, float("nan"), float("inf"), -float("inf"), 1e12, "x" * 1_000_000, True, [1, 2]]


def test_every_refusal_names_its_control_and_logs_no_traceback(tmp_path, data_root):
    server, url, log = start_server(tmp_path, None, "server.log", "--data-root", str(data_root))
    try:
        endpoints = named_endpoints(url)
        assert {"train", "compare", "resume", "stop", "explorer"} <= set(endpoints)
        good = {"train": train_args(data_root, owner=ALICE, steps=5)}
        good["compare"] = [ALICE, ["snr", "min_snr"], *good["train"][2:]]
        tries = refused = 0
        for name in ("train", "compare"):
            labels = endpoints[name]
            for index in range(1, len(good[name])):  # the owner token is checked by the handler itself
                for bad in BAD_VALUES:
                    values = list(good[name])
                    values[index] = bad
                    text = raw_call(url, name, values)
                    if not text.startswith("error") and "⚠️" not in text:
                        continue  # a value this control allows (True for a checkbox, 1e12 for no type)
                    tries += 1
                    assert text not in ("error: null", "error: None") and "HTTP 500" not in text, (name, index, bad)
                    label = labels[index]
                    if label and label != "?" and "⚠️" not in text:
                        assert label.split(" (")[0] in text, f"{name}[{index}] = {str(bad)[:20]}: {text[:200]}"
                    refused += 1
        for bad in BAD_VALUES:
            for argument in ("schedule", "num_timesteps", "strategies", "target", "x_axis", "gamma", "sampler",
                             "zero_terminal_snr", "params", "schedule_shift"):
                if argument in ("params", "strategies") and bad is None or argument == "zero_terminal_snr" and bad is True:
                    continue  # allowed: no extra parameters, the default strategies, a switch on
                defaults = {"schedule": "cosine", "num_timesteps": 1000, "strategies": None, "target": "eps",
                            "x_axis": "t", "gamma": 5.0, "zero_terminal_snr": False, "sampler": "uniform", "params": None,
                            "schedule_shift": 1.0}
                text = raw_call(url, "explorer", list({**defaults, argument: bad}.values()))
                assert text.startswith("error") and argument in text, f"explorer {argument}={str(bad)[:20]}: {text[:200]}"
                tries += 1
        assert tries > 150 and refused > 100
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert "Traceback" not in text, text[text.find("Traceback"):][:2000]


def test_the_weight_check_takes_only_bounded_text_and_the_table_refuses_bad_settings_by_name(tmp_path):
    """The weight check receives the text of a file the page read, never a path: a path is just text that is no
    table, and too much text, or no text at all, is refused by name; the weight table's settings are refused by
    their control's name."""
    server, url, log = start_server(tmp_path, None, "server.log")
    try:
        endpoints = named_endpoints(url)
        check = next(name for name, labels in endpoints.items() if labels and labels[0] == "html")
        table = next(name for name in endpoints if name.startswith("weight_table"))
        explorer_inputs = ["cosine", 1000, False, 1.0, ["min_snr"], "v", "t", "weight", True, "uniform"]
        defaults = [1.0] * (len(endpoints[table]) - len(explorer_inputs))  # every sampler and strategy parameter takes 1
        text = raw_call(url, check, ["/etc/hostname", *explorer_inputs, *defaults])
        assert "line 1 must be a header naming the columns t and weight" in text, text[:300]
        for bad in ("x" * 1_000_000, {"path": "/etc/hostname"}, 5):
            text = raw_call(url, check, [bad, *explorer_inputs, *defaults])
            assert text.startswith("error") and "weights-upload: expects the text of a file the page read" in text, text[:300]
        good = raw_call(url, table, [*explorer_inputs, *defaults])
        assert "alpha_bar" in good and "minsnr-weight-table-cosine-T1000-v-min_snr-gamma1.csv" in good, good[:300]
        for index, bad in ((1, 1e12), (1, "five"), (0, "nope"), (5, "w"), (4, ["not_a_strategy"])):
            values = [*explorer_inputs, *defaults]
            values[index] = bad
            text = raw_call(url, table, values)
            label = endpoints[table][index]
            assert text.startswith("error") and label in text and "alpha_bar" not in text, (index, bad, text[:300])
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert "Traceback" not in text, text[text.find("Traceback"):][:2000]
