"""Nothing fails because of start-up order (issue: a login in the first seconds of `make up`).

A person whose login page is open when the platform (re)starts logs in the
moment the page answers and spawns at once: the server must become ready and
its kernel's S3 call succeed. The same for a spawn in flight while the
broker restarts: the spawner waits for it (within ``credential_timeout``).
"""

from __future__ import annotations

import os
import signal
import threading

import psutil
import pytest

from tests.helpers.hubclient import HubClient
from tests.helpers.platform import start_platform

from .conftest import S3_CALL, Tracker, pid_of, restarted, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def early_platform(tmp_path):
    plat = start_platform(tmp_path / "state", first_login=True)
    tracker = Tracker(plat)
    try:
        yield plat, tracker
    finally:
        tracker.snapshot()
        plat.stop()
        tracker.kill_leftovers()


def spawn_and_use_s3(plat, name: str) -> str:
    client = HubClient(plat.url).login(name, plat.password)
    client.start_server()
    client.wait_ready(timeout=120)
    kernel = client.start_kernel()
    return client.execute(S3_CALL, kernel).check().stdout.strip()


def test_login_and_spawn_the_moment_the_login_page_answers(early_platform):
    plat, tracker = early_platform
    # the runner has not printed its banner yet: the runs/viewer services may still be starting
    assert b"labdeck is running" not in plat.log_path.read_bytes()
    assert spawn_and_use_s3(plat, "early") == "ok"


def test_spawn_in_flight_while_the_broker_restarts_waits_for_it(early_platform):
    plat, tracker = early_platform
    wait_for(lambda: b"labdeck is running" in plat.log_path.read_bytes(), what="banner")
    broker = pid_of(plat, "broker")
    hub_log = plat.state_dir / "logs" / "hub.log"
    # hold the runner still so the broker stays down until the spawn is waiting for it
    os.kill(plat.proc.pid, signal.SIGSTOP)
    try:
        os.kill(broker, signal.SIGKILL)
        wait_for(lambda: not psutil.pid_exists(broker) or psutil.Process(broker).status() == psutil.STATUS_ZOMBIE, what="broker gone")
        out: dict = {}
        t = threading.Thread(target=lambda: out.setdefault("r", spawn_and_use_s3(plat, "inflight")), daemon=True)
        t.start()
        wait_for(lambda: "Credential broker not reachable yet for inflight" in hub_log.read_text(), timeout=60, what="spawn waiting for the broker")
    finally:
        os.kill(plat.proc.pid, signal.SIGCONT)
    restarted(plat, "broker", broker)
    t.join(timeout=180)
    assert out.get("r") == "ok", plat.logs()[-3000:]
    text = hub_log.read_text()
    assert "The credential broker is unreachable" not in text
