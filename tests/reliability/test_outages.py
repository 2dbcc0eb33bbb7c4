"""Outages: the local STS endpoint hangs and comes back; a user server dies; labdeck stops.

(c) the AWS emulator (moto: S3 + STS + IAM) is frozen with SIGSTOP and thawed
    with SIGCONT. That models "the endpoint goes away and comes back" with its
    state intact, like a network partition. Killing it instead would not: the
    supervisor restarts moto *empty* and re-seeds it, so every credential issued
    before would be unknown to the new instance — a different event (data loss).
    Because moto is also the S3 endpoint, "still-valid credentials keep working"
    is checked where the credentials are served: the SDK's credential_process in
    a running kernel.
(d) a user server killed with SIGKILL;
(e) ``labdeck up`` on SIGTERM leaves no process and no listening port behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from types import SimpleNamespace

import psutil
import pytest
import requests

from .conftest import S3_CALL, WAIT_S, login, pid_of, running_user, server_pid, wait_for

pytestmark = pytest.mark.integration

CREDENTIAL_PROCESS = (
    "import subprocess, json, time\n"
    "t = time.monotonic()\n"
    "out = subprocess.run(['labdeck-credentials', 'aws'], capture_output=True, text=True, timeout=120)\n"
    "print(json.dumps({'rc': out.returncode, 's': round(time.monotonic() - t, 2), 'keys': sorted(json.loads(out.stdout)) if out.returncode == 0 else [], 'err': out.stderr[-300:]}))"
)


#: a person waiting for credentials should get an answer within this many seconds
BOUNDED_S = 60


def broker_credentials(plat, client, timeout: float = 120) -> requests.Response:
    """What the in-server client does, with this user's token (header only)."""
    url = f"http://127.0.0.1:{plat.settings()['broker_port']}/services/broker/aws/credentials"
    return requests.get(url, headers=client.headers(), timeout=timeout)


def test_sts_outage_serves_cached_credentials_and_recovers(make_platform):
    plat, tracker = make_platform()
    alice, kernel = running_user(plat, tracker, "alice")
    # bob: an account and a token made by an admin, never logged in, so never had credentials
    # (a login issues them: hub/login.py)
    admin = login(plat, "admin")
    assert admin.api("POST", "/users/bob").status_code == 201
    made = admin.api("POST", "/users/bob/tokens", json={"expires_in": 3600, "note": "outage test"})
    assert made.status_code == 201, made.text
    bob = SimpleNamespace(headers=lambda: {"Authorization": f"token {made.json()['token']}"})
    # carol logged in before the outage: her credentials were issued then
    carol = login(plat, "carol")
    hub_log = plat.state_dir / "logs" / "hub.log"
    wait_for(lambda: "Credentials for carol issued at login" in hub_log.read_text(), timeout=60, what="carol's credentials at login")
    pids = {c: pid_of(plat, c) for c in ("aws", "proxy", "hub", "broker")}
    aws = psutil.Process(pids["aws"])

    aws.suspend()  # SIGSTOP: connections are accepted by the kernel, never answered
    try:
        # alice's still-valid credentials keep being served, fast, from the broker's cache
        r = json.loads(alice.execute(CREDENTIAL_PROCESS, kernel, timeout=150).check().stdout)
        assert r["rc"] == 0, r
        assert "AccessKeyId" in r["keys"] and "Expiration" in r["keys"]
        assert r["s"] < 5, r

        # so are carol's, issued at her login, though she never asked herself
        t = time.monotonic()
        assert broker_credentials(plat, carol, timeout=BOUNDED_S).status_code == 200
        assert time.monotonic() - t < 5

        # a new request fails with a readable error, in bounded time
        t = time.monotonic()
        resp = broker_credentials(plat, bob, timeout=BOUNDED_S)
        took = time.monotonic() - t
        assert resp.status_code >= 500, resp.text[:300]
        message = resp.json().get("error", "")
        assert message and "Traceback" not in message, resp.text[:300]
        assert took < BOUNDED_S
    finally:
        aws.resume()

    # back: everything recovers without any restart
    wait_for(lambda: broker_credentials(plat, bob, timeout=30).status_code == 200, timeout=60, what="bob gets credentials")
    assert alice.execute(S3_CALL, kernel).check().stdout.strip() == "ok"
    assert {c: pid_of(plat, c) for c in pids} == pids, "a component was restarted"


def test_killed_user_server_is_noticed_and_restartable(make_platform):
    plat, tracker = make_platform()
    alice, _ = running_user(plat, tracker, "alice")
    bob, bob_kernel = running_user(plat, tracker, "bob")

    os.kill(server_pid(plat, "alice"), signal.SIGKILL)

    def hub_noticed():
        return "" not in (alice.api("GET", "/users/alice").json().get("servers") or {})

    wait_for(hub_noticed, timeout=60, what="hub notices alice's dead server")
    alice.start_server(timeout=WAIT_S)
    kernel = alice.start_kernel()
    assert alice.execute(S3_CALL, kernel).check().stdout.strip() == "ok"
    # bob never noticed
    assert bob.execute(S3_CALL, bob_kernel).check().stdout.strip() == "ok"


def listening_ports(procs) -> set[int]:
    ports = set()
    for p in procs:
        try:
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    ports.add(c.laddr.port)
        except psutil.Error:
            pass
    return ports


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_sigterm_leaves_no_orphans_and_no_ports(make_platform):
    plat, tracker = make_platform()
    running_user(plat, tracker, "alice")
    procs = tracker.snapshot()
    # supervisor, aws, proxy, hub, broker, alice's server and her kernel at least
    assert len(procs) >= 7, [p.cmdline()[:2] for p in procs]
    pgids = {os.getpgid(p.pid) for p in procs if p.is_running()}
    ports = listening_ports(procs)
    assert plat.settings()["public_port"] in ports

    plat.proc.send_signal(signal.SIGTERM)
    plat.proc.wait(timeout=WAIT_S)

    def gone():
        alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        return not alive

    wait_for(gone, timeout=15, what="every process of the platform exited")
    left = [p for p in psutil.process_iter() if p.pid != os.getpid() and _pgid(p) in pgids]
    assert not left, [(p.pid, p.cmdline()[:3]) for p in left]
    assert not [port for port in ports if port_open(port)]


def _pgid(p):
    try:
        return os.getpgid(p.pid)
    except (ProcessLookupError, psutil.Error):
        return None
