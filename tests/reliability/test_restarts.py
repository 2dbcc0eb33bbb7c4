"""Components restart under running users: nothing a person has is lost.

(a) hub (SIGTERM and SIGKILL) and proxy restarts while servers run;
(b) broker restart while kernels use short-lived credentials.
"""

from __future__ import annotations

import os
import signal
import threading

import psutil
import pytest
import requests

from .conftest import S3_CALL, pid_of, restarted, running_user, server_pid, wait_for

pytestmark = pytest.mark.integration


def logged_in_by_cookie(client) -> bool:
    """The browser session (cookie only, no token) still reaches the hub as this user."""
    r = client.http.get(f"{client.base}/hub/home", allow_redirects=False, timeout=10)
    return r.status_code == 200


def server_reachable(client) -> bool:
    r = requests.get(client.server_url() + "api/status", headers=client.headers(), timeout=10, allow_redirects=False)
    return r.status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_hub_restart_keeps_servers_sessions_and_credentials(make_platform, sig):
    plat, tracker = make_platform()
    alice, kernel = running_user(plat, tracker, "alice")
    pid = server_pid(plat, "alice")
    assert pid

    hub = pid_of(plat, "hub")
    os.kill(hub, sig)
    restarted(plat, "hub", hub)
    wait_for(lambda: requests.get(plat.url + "/hub/health", timeout=5).status_code == 200, what="hub healthy again")

    # the same server process (no longer the new hub's child: it outlived the old
    # hub), still known to the hub as ready
    proc = psutil.Process(pid)
    assert proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    assert server_pid(plat, "alice") == pid  # still the one the hub has on record for alice
    srv = alice.api("GET", "/users/alice").json()["servers"][""]
    assert srv["ready"], srv
    # the same browser cookie still works, and so does the route through the proxy
    assert logged_in_by_cookie(alice)
    wait_for(lambda: server_reachable(alice), timeout=30, what="alice's server reachable after hub restart")
    # the running kernel keeps its credentials
    assert alice.execute(S3_CALL, kernel).check().stdout.strip() == "ok"


def test_proxy_restart_restores_routes(make_platform):
    plat, tracker = make_platform()
    alice, kernel = running_user(plat, tracker, "alice")

    proxy = pid_of(plat, "proxy")
    os.kill(proxy, signal.SIGKILL)
    restarted(plat, "proxy", proxy)
    wait_for(lambda: requests.get(plat.url + "/hub/health", timeout=5).status_code == 200, what="proxy serving again")

    assert logged_in_by_cookie(alice)
    # a restarted configurable-http-proxy starts with an empty routing table; the
    # platform has to put alice's route back without anyone restarting anything
    wait_for(lambda: server_reachable(alice), timeout=30, what="alice's route restored after proxy restart")
    assert alice.execute(S3_CALL, kernel).check().stdout.strip() == "ok"


#: short credentials: the SDK refreshes (runs credential_process → broker) on every call
TTL = 20


def test_broker_restart_while_kernels_run(make_platform):
    plat, tracker = make_platform(LABDECK_CREDENTIAL_TTL=TTL)
    alice, kernel = running_user(plat, tracker, "alice")

    # One S3 call every 0.5 s for TTL + 15 s in the running kernel; the broker is
    # restarted in the middle. Each call re-runs credential_process (the
    # credentials are always inside botocore's refresh window at this TTL).
    loop = (
        "import boto3, os, time\n"
        "from botocore.exceptions import BotoCoreError, ClientError\n"
        "b, p = os.environ['LABDECK_S3_HOME'][5:].split('/', 1)\n"
        "s = boto3.Session(); s3 = s.client('s3')\n"
        "ok = bad = 0; keys = set(); errs = []\n"
        f"end = time.monotonic() + {TTL + 15}\n"
        "while time.monotonic() < end:\n"
        "    try:\n"
        "        s3.list_objects_v2(Bucket=b, Prefix=p); ok += 1\n"
        "        keys.add(s.get_credentials().get_frozen_credentials().access_key)\n"
        "    except (BotoCoreError, ClientError) as e:\n"
        "        bad += 1; errs.append(str(e)[:200])\n"
        "    time.sleep(0.5)\n"
        "print(ok, bad, len(keys)); print(errs[:3])"
    )
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", alice.execute(loop, kernel, timeout=TTL + 60)), daemon=True)
    t.start()
    threading.Event().wait(5)
    broker = pid_of(plat, "broker")
    os.kill(broker, signal.SIGTERM)
    restarted(plat, "broker", broker)
    t.join(timeout=TTL + 70)
    assert "r" in out, "the cell did not finish"
    r = out["r"].check()
    ok, bad, keys = (int(x) for x in r.stdout.splitlines()[0].split())
    assert bad == 0, r.stdout
    assert ok > 10
    # fresh credentials were issued after the restart (the old broker's cache is gone)
    assert keys >= 2, r.stdout
    # and the next refresh after the loop still succeeds
    assert alice.execute(S3_CALL, kernel).check().stdout.strip() == "ok"
