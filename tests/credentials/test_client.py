"""The in-server credential client: retries, errors, and the google subject token."""

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from labdeck.credentials import client


class Broker(BaseHTTPRequestHandler):
    replies: list = []
    seen: list = []

    def do_GET(self):
        Broker.seen.append((self.path, self.headers.get("Authorization")))
        code, body = Broker.replies.pop(0) if Broker.replies else (200, {"Version": 1})
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def serve(port=0):
    httpd = HTTPServer(("127.0.0.1", port), Broker)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(client, "RETRY_DELAY_S", 0.05)
    monkeypatch.setattr(client, "RETRY_MAX_DELAY_S", 0.2)
    Broker.replies, Broker.seen = [], []


def test_token_goes_in_the_header_never_the_url():
    httpd = serve()
    try:
        url = f"http://127.0.0.1:{httpd.server_port}/services/broker/"
        assert client.fetch("aws", broker_url=url, token="tok-123") == {"Version": 1}
        assert Broker.seen == [("/services/broker/aws/credentials", "token tok-123")]
    finally:
        httpd.shutdown()


def test_refusal_is_not_retried_and_is_readable():
    httpd = serve()
    Broker.replies = [(401, {"error": "Invalid or expired JupyterHub API token"})]
    try:
        with pytest.raises(client.ClientError) as e:
            client.fetch("aws", broker_url=f"http://127.0.0.1:{httpd.server_port}/", token="secret-tok")
        assert str(e.value) == "credential broker refused (401): Invalid or expired JupyterHub API token"
        assert len(Broker.seen) == 1
    finally:
        httpd.shutdown()


def test_server_errors_are_retried_three_times():
    httpd = serve()
    Broker.replies = [(503, {"error": "STS unreachable"})] * 3
    try:
        with pytest.raises(client.ClientError, match=r"refused \(503\): STS unreachable"):
            client.fetch("aws", broker_url=f"http://127.0.0.1:{httpd.server_port}/", token="t")
        assert len(Broker.seen) == 3
    finally:
        httpd.shutdown()


def test_a_restarting_broker_is_waited_for(monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    later = threading.Timer(0.6, lambda: holder.append(serve(port)))
    holder = []
    later.start()
    try:
        t0 = time.monotonic()
        assert client.fetch("aws", broker_url=f"http://127.0.0.1:{port}/", token="t") == {"Version": 1}
        assert time.monotonic() - t0 >= 0.5
    finally:
        later.join()
        for h in holder:
            h.shutdown()


def test_an_absent_broker_fails_after_the_deadline(monkeypatch):
    monkeypatch.setattr(client, "UNREACHABLE_DEADLINE_S", 0.5)
    with pytest.raises(client.ClientError, match="credential broker unreachable"):
        client.fetch("aws", broker_url="http://127.0.0.1:9/", token="t")


def test_missing_configuration_is_explained(monkeypatch):
    monkeypatch.delenv("LABDECK_BROKER_URL", raising=False)
    with pytest.raises(client.ClientError, match="LABDECK_BROKER_URL is not set"):
        client.fetch("aws", token="t")


def test_gcp_subject_token_passes_the_hub_token_through_a_pipe():
    body = client.gcp_subject_token("hub-tok", now=1000)
    assert body == {"version": 1, "success": True, "token_type": "urn:ietf:params:oauth:token-type:jwt", "id_token": "hub-tok", "expiration_time": 1300}
    assert client.gcp_subject_token("", now=1000)["success"] is False


def _labdeck_dir(tmp_path, broker_url, token):
    d = tmp_path / ".labdeck"
    d.mkdir(mode=0o700)
    (d / "broker-url").write_text(broker_url + "\n")
    (d / "jupyterhub-api-token").write_text(token)
    os.chmod(d / "jupyterhub-api-token", 0o600)
    return d


def test_a_clean_environment_finds_broker_and_token_in_the_servers_files(tmp_path):
    """RStudio's rsession and `env -i` children have no LABDECK_BROKER_URL / JUPYTERHUB_API_TOKEN."""
    httpd = serve()
    try:
        d = _labdeck_dir(tmp_path, f"http://127.0.0.1:{httpd.server_port}/services/broker/", "file-token")
        argv = [sys.executable, "-m", "labdeck.credentials.client", "--files-dir", str(d), "aws"]
        out = subprocess.run(argv, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"Version": 1}
        assert Broker.seen == [("/services/broker/aws/credentials", "token file-token")]
        # the environment wins where it is set (a kernel of the server)
        env = {"PATH": "/usr/bin:/bin", "JUPYTERHUB_API_TOKEN": "env-token", "LABDECK_FILES_DIR": str(d)}
        out = subprocess.run([sys.executable, "-m", "labdeck.credentials.client", "aws"], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert Broker.seen[-1] == ("/services/broker/aws/credentials", "token env-token")
        # google-auth's executable source too
        subject = subprocess.run(
            [sys.executable, "-m", "labdeck.credentials.client", "--files-dir", str(d), "gcp-subject"],
            env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert json.loads(subject.stdout)["id_token"] == "file-token"
    finally:
        httpd.shutdown()


def test_no_files_and_no_environment_is_explained_without_secrets(tmp_path):
    argv = [sys.executable, "-m", "labdeck.credentials.client", "--files-dir", str(tmp_path / "missing"), "aws"]
    out = subprocess.run(argv, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == "labdeck: LABDECK_BROKER_URL is not set and no labdeck files were found: this server was not started by labdeck"
    bad = subprocess.run([sys.executable, "-m", "labdeck.credentials.client", "--files-dir"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage" in bad.stderr
