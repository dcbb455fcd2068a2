"""A class server keeps to its class and to its machine: Gradio's telemetry is off unless the teacher turns it on,
the server tries no connection off the machine while a class uses it, and a class password keeps out whoever
lacks it."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest
from gradio_client import Client

from .conftest import ROOT, free_port, wait_for_port
from .test_app_training import statuses, train_args

# Loaded by every Python the test starts (sitecustomize): the host of each name resolved and of each address
# connected to, one a line (a Unix socket: its path).
CONNECT_LOG = '''
import os, socket

def _log(host):
    with open(os.environ["MINSNR_CONNECT_LOG"], "a") as log:
        log.write(f"{host}\\n")

def _wrap(name):
    original = getattr(socket.socket, name)
    def wrapped(self, address):
        _log(address[0] if isinstance(address, tuple) else address)
        return original(self, address)
    setattr(socket.socket, name, wrapped)

_wrap("connect")
_wrap("connect_ex")
_getaddrinfo = socket.getaddrinfo
def getaddrinfo(host, *args, **kwargs):
    _log(host)
    return _getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
'''
LOOPBACK = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "None", ""}  # None, "": getaddrinfo of this host's own


def start(tmp_path, *flags, env_extra=None):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("GRADIO_ANALYTICS_ENABLED", "MINSNR_PASSWORD")}
    env.update(env_extra or {})
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "app.serve", "--port", str(port), *flags], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(server, port)
    return server, f"http://127.0.0.1:{port}/"


def stop(server):
    server.terminate()
    server.wait(timeout=30)


def test_nothing_leaves_the_machine_and_telemetry_is_off_by_default(tmp_path, data_root):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(CONNECT_LOG)
    log = tmp_path / "connections.log"
    server, url = start(tmp_path, "--data-root", str(data_root), env_extra={
        "PYTHONPATH": os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]), "MINSNR_CONNECT_LOG": str(log)})
    try:
        config = json.loads(urllib.request.urlopen(url + "config", timeout=30).read())
        assert config["analytics_enabled"] is False
        client = Client(url, verbose=False)
        client.predict(api_name="/explorer")
        job = client.submit(*train_args(data_root, steps=20), api_name="/train")
        statuses(job, lambda s: "done" in s, timeout=180)
    finally:
        stop(server)
    hosts = set(log.read_text().splitlines())
    assert "127.0.0.1" in hosts, "the hook saw the server's own calls to itself"
    outside = sorted(host for host in hosts if host not in LOOPBACK and not host.startswith("/"))
    assert not outside, f"the server tried to reach {outside}"


def login(url: str, password: str) -> urllib.request.OpenerDirector | None:
    """An opener holding the login's cookie, or None when the login is refused."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    body = urllib.parse.urlencode({"username": "any student", "password": password}).encode()
    try:
        opener.open(url + "login", body, timeout=30)
    except urllib.error.HTTPError as error:
        text = error.read()
        assert error.code == 400 and b"Incorrect credentials" in text or error.code == 422 and b"password" in text
        return None
    return opener


def test_a_class_password_keeps_out_whoever_lacks_it(tmp_path):
    server, url = start(tmp_path, env_extra={"MINSNR_PASSWORD": "red-kite-42"})
    try:
        for path in ("config", "gradio_api/info"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url + path, timeout=30)
            assert refused.value.code == 401, path
        assert login(url, "") is None and login(url, "red-kite-41") is None
        opener = login(url, "red-kite-42")
        assert opener is not None
        assert json.loads(opener.open(url + "config", timeout=30).read())["components"], "the login opens the page"
        with pytest.raises(ValueError, match="Could not login"):
            Client(url, verbose=False, auth=("any student", "wrong"))
        result = Client(url, verbose=False, auth=("any student", "red-kite-42")).predict(api_name="/explorer")
        assert result["traces"]
    finally:
        stop(server)
    refused = subprocess.run([sys.executable, "-m", "app.main", "--password", " "], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "--password must not be empty" in refused.stderr
