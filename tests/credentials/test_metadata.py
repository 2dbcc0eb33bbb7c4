"""The GCE-metadata-compatible endpoint for R: real gargle against it, and every other uid refused."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from labdeck.credentials import metadata, peeruid
from tests.helpers.platform import free_port
from tests.helpers.required import missing

TOKEN = "hub-token-of-alice"
ACCESS = "ya29.local-access-token"


class Broker(BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):
        Broker.seen.append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != f"token {TOKEN}":
            code, body = 401, {"error": "Invalid or expired JupyterHub API token"}
        else:
            code, body = 200, {"access_token": ACCESS, "issued_token_type": "x", "token_type": "Bearer", "expires_in": 3599}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def endpoint():
    broker = HTTPServer(("127.0.0.1", 0), Broker)
    threading.Thread(target=broker.serve_forever, daemon=True).start()
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "JUPYTERHUB_API_TOKEN": TOKEN,
        "LABDECK_BROKER_URL": f"http://127.0.0.1:{broker.server_port}/services/broker/",
        "JUPYTERHUB_USER": "alice",
        "GOOGLE_CLOUD_PROJECT": "labdeck-local",
    }
    proc = subprocess.Popen([sys.executable, "-m", "labdeck.credentials.metadata", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "metadata endpoint on" in proc.stdout.readline()
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        broker.shutdown()


def get(endpoint, path, headers={"Metadata-Flavor": "Google"}):
    return requests.get(f"http://{endpoint}{path}", headers=headers, timeout=10)


def test_token_paths_gargle_and_google_auth_call(endpoint):
    Broker.seen.clear()
    root = get(endpoint, "/")
    assert (root.status_code, root.headers["Metadata-Flavor"]) == (200, "Google")
    r = get(endpoint, "/computeMetadata/v1/instance/service-accounts/default/token?scopes=https://www.googleapis.com/auth/bigquery")
    assert r.status_code == 200 and r.headers["Metadata-Flavor"] == "Google"
    assert r.json() == {"access_token": ACCESS, "expires_in": 3599, "token_type": "Bearer"}
    # the server's token went to the broker in a header, never in a URL
    assert Broker.seen == [("/services/broker/gcp/credentials", f"token {TOKEN}")]
    listing = get(endpoint, "/computeMetadata/v1/instance/service-accounts?recursive=true").json()
    acct = {"aliases": ["default"], "email": "alice@labdeck-local.labdeck", "scopes": ["https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/cloud-platform"]}
    assert listing == {"default": acct, "alice@labdeck-local.labdeck": acct}
    assert get(endpoint, "/computeMetadata/v1/instance/service-accounts/default/?recursive=true").json() == acct
    assert get(endpoint, "/computeMetadata/v1/project/project-id").text == "labdeck-local"
    assert get(endpoint, "/computeMetadata/v1/instance/attributes/kube-env").status_code == 404


def test_requests_without_the_flavor_header_or_through_a_proxy_are_refused(endpoint):
    path = "/computeMetadata/v1/instance/service-accounts/default/token"
    assert get(endpoint, path, headers={}).status_code == 403
    r = get(endpoint, path, headers={"Metadata-Flavor": "Google", "X-Forwarded-For": "10.0.0.1"})
    assert r.status_code == 403 and ACCESS not in r.text


NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to act as another uid")
def test_another_uid_on_the_same_loopback_is_refused(endpoint):
    code = (
        "import urllib.request, urllib.error, sys\n"
        f"req = urllib.request.Request('http://{endpoint}/computeMetadata/v1/instance/service-accounts/default/token', headers={{'Metadata-Flavor': 'Google'}})\n"
        "try:\n"
        "    print(urllib.request.urlopen(req, timeout=10).read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code, e.read().decode().strip())\n"
    )
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "/usr/bin/python3", "-c", code]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "403 Only the server's own user may use this metadata endpoint"
    # and the endpoint's own uid still is
    assert get(endpoint, "/computeMetadata/v1/instance/service-accounts/default/token").status_code == 200


def _gargle():
    if not shutil.which("Rscript"):
        return False
    return subprocess.run(["Rscript", "-e", "library(gargle)"], capture_output=True, timeout=60).returncode == 0


def test_real_gargle_token_fetch_finds_the_token(endpoint, tmp_path):
    if not _gargle():
        missing("R", "R's gargle is not installed (make r-deps)")
    code = (
        "tok <- gargle::token_fetch(scopes = 'https://www.googleapis.com/auth/bigquery')\n"
        "cat(class(tok)[1], tok$credentials$access_token, '\\n')\n"
    )
    # HOME without any Google files: only the metadata endpoint can answer
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GCE_METADATA_URL": endpoint}
    t0 = time.monotonic()
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["GceToken", ACCESS]
    print(f"gargle token_fetch via the metadata endpoint (Rscript incl. start): {time.monotonic() - t0:.2f}s")


def test_parse_proc_net_tcp():
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1001        0 1 1 0 20 4 30 10 -1\n"
        "   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1002        0 2 1 0 20 4 30 10 -1\n"
    )
    assert peeruid.parse_table(text) == [(("127.0.0.1", 8080), ("127.0.0.1", 50000), 1001), (("127.0.0.1", 50000), ("127.0.0.1", 8080), 1002)]
    v6 = (
        "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
        "   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:C350 01 00000000:00000000 00:00000000 00000000  7 0 3\n"
        "   1: 00000000000000000000000001000000:1F91 00000000000000000000000001000000:C351 01 00000000:00000000 00:00000000 00000000  8 0 4\n"
    )
    assert peeruid.parse_table(v6) == [(("127.0.0.1", 8080), ("127.0.0.1", 50000), 7), (("::1", 8081), ("::1", 50001), 8)]


def test_peer_uid_of_a_real_connection_is_this_process():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname()) as c:
            conn, _ = server.accept()
            with conn:
                assert peeruid.peer_uid(conn) == os.getuid()


def test_token_reply_shape():
    assert metadata.token_reply({"access_token": "a", "expires_in": 12.7, "issued_token_type": "x"}) == {"access_token": "a", "expires_in": 12, "token_type": "Bearer"}
