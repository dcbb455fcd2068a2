"""A class server: no client reaches another's files, and the server leaves none behind when it stops."""

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

from gradio_client import Client

from .conftest import ROOT, free_port, wait_for_port
from .test_app_training import statuses, train_args

OWNER = "security-owner-token-00000001"


def test_run_files_reach_their_owner_only_and_are_deleted_at_shutdown(tmp_path, data_root):
    runs = tmp_path / "runs"
    port = free_port()
    cache = tmp_path / "gradio-cache"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(cache)}
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "app.main", "--port", str(port), "--data-root", str(data_root),
                               "--runs-dir", str(runs)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_port(server, port)
        client = Client(url, verbose=False)
        job = client.submit(*train_args(data_root, owner=OWNER, steps=20), api_name="/train")
        statuses(job, lambda s: "done" in s, timeout=120)
        downloaded = job.outputs()[-1][6]
        names = sorted(os.path.basename(str(f)) for f in downloaded)
        assert names == ["checkpoint.pt", "metrics.jsonl", "samples.png"], "the owner gets the run's files"
        checkpoint = next(runs.glob("job*-run0/checkpoint.pt"))
        # The run folder itself is not served: the direct path that used to answer 200 is refused.
        for path in (checkpoint, checkpoint.parent / "metrics.jsonl"):
            try:
                urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=10)
                raise AssertionError(f"{path.name} was served to a client that only guessed its path")
            except urllib.error.HTTPError as error:
                assert error.code in (403, 404)
        assert list(cache.rglob("checkpoint.pt")), "Gradio served the owner a copy from its cache"
        status = job.outputs()[-1][0]
        assert str(runs) not in status and str(tmp_path) not in status
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    assert list(runs.glob("job*")) == [], "the server deletes the runs it wrote when it stops"
    assert list(cache.rglob("checkpoint.pt")) == [], "and Gradio's copies of them"
