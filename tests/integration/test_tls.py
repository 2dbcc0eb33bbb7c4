"""HTTPS in ``labdeck up``: LABDECK_TLS_CERT / LABDECK_TLS_KEY give the proxy its own TLS, with HSTS and secure cookies.

The certificate is generated in the test (tests/helpers/tls.py). Readiness
checks, the login, a spawn through the proxy and a run (the runs service reaches
the run's server through the https proxy) all go over TLS.
"""

import json
import socket
import ssl
import time

import pytest
import requests

from tests.helpers.hubclient import HubClient
from tests.helpers.platform import start_platform
from tests.helpers.tls import make_certificate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    cert, key = make_certificate(root / "certs")
    mp = pytest.MonkeyPatch()
    mp.setenv("REQUESTS_CA_BUNDLE", str(cert))  # this test trusts the generated certificate, nothing else changes
    plat = start_platform(root / "state", extra_env={"LABDECK_TLS_CERT": str(cert), "LABDECK_TLS_KEY": str(key)})
    plat.cert, plat.key = cert, key
    try:
        yield plat
    finally:
        plat.stop()
        mp.undo()


def test_public_port_speaks_tls_only_with_the_given_certificate(tls_hub):
    assert tls_hub.url.startswith("https://127.0.0.1:")
    port = int(tls_hub.url.rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=str(tls_hub.cert))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{port}/hub/login", timeout=5)
    key_text = tls_hub.key.read_text()
    assert key_text not in tls_hub.logs()
    assert "--ssl-key" in open(f"/proc/{(tls_hub.state_dir / 'run' / 'proxy.pid').read_text().strip()}/cmdline", "rb").read().decode().replace("\0", " ")


def test_hsts_and_secure_cookies(tls_hub):
    r = requests.get(f"{tls_hub.url}/hub/login", timeout=10)
    assert r.status_code == 200
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    alice = HubClient(tls_hub.url)
    r = alice.login_form("alice", tls_hub.password)
    assert r.status_code == 302
    cookies = {c.name: c for c in alice.http.cookies}
    assert cookies["jupyterhub-session-id"].secure and cookies["jupyterhub-hub-login"].secure
    assert "Strict-Transport-Security" in r.headers


def test_spawn_and_a_run_work_over_https(tls_hub):
    import nbformat

    alice = HubClient(tls_hub.url).login("alice", tls_hub.password)
    alice.start_server()
    contents = requests.get(alice.server_url() + "api/contents", headers=alice.headers(), timeout=30)
    assert contents.status_code == 200
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell("print('tls run', x * 2)")]
    (tls_hub.state_dir / "homes" / "alice" / "tls.ipynb").write_text(nbformat.writes(nb))
    runs = f"{tls_hub.url}/services/runs/api/runs"
    r = requests.post(runs, headers=alice.headers(), json={"notebook": "tls.ipynb", "parameters": {"x": 21}, "timeout": 120}, timeout=30)
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        run = requests.get(f"{runs}/{r.json()['id']}", headers=alice.headers(), timeout=30).json()
        if run["status"] in ("succeeded", "failed", "timed_out"):
            break
        time.sleep(1)
    assert run["status"] == "succeeded", json.dumps(run)[:500]
