"""`labdeck up` refuses to run twice, explains a busy port, and recovers from its own crash."""

import os
import signal
import socket
import subprocess
import time

import pytest

from tests.helpers.platform import LABDECK, ROOT, free_port, pid_alive_or_zombie, start_platform

pytestmark = pytest.mark.integration


def run_up(state_dir, port, timeout=60):
    env = {**os.environ, "LABDECK_STATE_DIR": str(state_dir), "LABDECK_PORT": str(port), "LABDECK_DEV_PASSWORD": "pw-123456"}
    return subprocess.run([LABDECK, "up"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_busy_port_gets_a_clear_message_and_starts_nothing(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_up(tmp_path / "state", port)
    assert r.returncode == 1
    assert f"Port {port} on 127.0.0.1 is in use" in r.stderr and "LABDECK_PORT" in r.stderr
    assert not list((tmp_path / "state" / "run").glob("*.pid"))


def test_second_up_on_the_same_state_is_refused(tmp_path):
    plat = start_platform(tmp_path / "state")
    try:
        r = run_up(tmp_path / "state", free_port())
        assert r.returncode == 1
        assert "already running" in r.stderr
    finally:
        plat.stop()


def test_restart_after_a_supervisor_crash_cleans_up_orphans(tmp_path):
    state = tmp_path / "state"
    plat = start_platform(state)
    run = state / "run"
    old = {p.stem: int(p.read_text()) for p in run.glob("*.pid") if p.stem != "supervisor"}
    assert {"hub", "proxy", "broker", "aws", "bigquery"} <= set(old)
    os.kill(plat.proc.pid, signal.SIGKILL)  # the supervisor only: its children are orphaned
    plat.proc.wait(timeout=10)
    assert all(pid_alive_or_zombie(pid) for pid in old.values())

    port = int(plat.url.rsplit(":", 1)[1])
    again = start_platform(state, extra_env={"LABDECK_PORT": str(port)})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(pid_alive_or_zombie(p) for p in old.values()):
            time.sleep(0.2)
        assert not any(pid_alive_or_zombie(p) for p in old.values()), "orphans of the crashed run survived"
        assert "left over from a previous run" in again.logs()
        from tests.helpers.hubclient import HubClient

        HubClient(again.url).login("alice", again.password)
    finally:
        again.stop()
