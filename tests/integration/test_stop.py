"""Ctrl-C or SIGTERM at any moment of `labdeck up` leaves nothing behind: no process, no port, no pid file.

Each test runs `labdeck up` under ``tests/helpers/reaper.py``, a child
subreaper: whatever the platform started and did not stop (a user server in
its own session, a kernel, a zygote, a double-forked helper) is re-parented
to the reaper once `labdeck up` exits, so the reaper's report lists every
leftover. The signal goes where a terminal's Ctrl-C goes (the process group
of `labdeck up`), or, for SIGTERM under systemd's ``KillMode=mixed``, to the
main process only. Every port the platform's processes listened on just
before the stop must be closed afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import requests

from tests.helpers.hubclient import HubClient
from tests.helpers.platform import Platform, start_platform

pytestmark = pytest.mark.integration

#: what issue 24 promises: after a stop, nothing is left after this many seconds
STOP_DEADLINE_S = 10


class Run:
    def __init__(self, tmp_path, wait=True, **extra_env):
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.report = tmp_path / "reaper.json"
        wrap = [sys.executable, "-m", "tests.helpers.reaper", str(self.report), "--"]
        self.plat: Platform = start_platform(tmp_path / "state", extra_env={k: str(v) for k, v in extra_env.items()}, wrap=wrap, wait=wait)
        self.seen: dict[int, psutil.Process] = {}

    @property
    def up_pid(self) -> int:
        """The `labdeck up` process (the reaper's only child)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = psutil.Process(self.plat.proc.pid).children()
            if children:
                return children[0].pid
            time.sleep(0.01)
        raise AssertionError("labdeck up did not start")

    def processes(self) -> list[psutil.Process]:
        try:
            procs = psutil.Process(self.plat.proc.pid).children(recursive=True)
        except psutil.Error:
            return []
        for p in procs:
            self.seen.setdefault(p.pid, p)
        return procs

    def ports(self) -> set[int]:
        ports = set()
        for p in self.processes():
            try:
                conns = p.net_connections(kind="inet") if hasattr(p, "net_connections") else p.connections(kind="inet")
            except psutil.Error:
                continue
            ports |= {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}
        return ports

    def ctrl_c(self) -> None:
        os.killpg(self.up_pid, signal.SIGINT)

    def stop_and_check(self, send=None) -> dict:
        """Stop (``send``, default Ctrl-C), then: `labdeck up` exited in time, nothing left, ports closed, no pid file."""
        ports = self.ports()
        procs = self.processes()
        (send or self.ctrl_c)()
        try:
            self.plat.proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.processes()
            left = [f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in self.seen.values() if _alive(p)]
            self.plat.proc.send_signal(signal.SIGKILL)
            raise AssertionError(f"labdeck up still running {STOP_DEADLINE_S}s after the stop; alive: {left}\n{self.plat.logs()[-3000:]}")
        report = json.loads(self.report.read_text())
        assert report["leftovers"] == [], report
        assert not [p for p in procs if _alive(p)]
        assert not [port for port in ports if _listening(port)], ports
        assert not list((self.plat.state_dir / "run").glob("*.pid"))
        return report

    def cleanup(self) -> None:
        if self.plat.proc.poll() is None:
            self.plat.stop(timeout=30)
        for p in self.seen.values():
            if _alive(p):
                p.kill()


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(predicate, timeout=120, what="condition", interval=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s")


@pytest.fixture
def run(tmp_path):
    runs = []

    def make(**kw) -> Run:
        r = Run(tmp_path / f"p{len(runs)}", **kw)
        runs.append(r)
        return r

    yield make
    for r in runs:
        r.cleanup()


def started(r: Run) -> bool:
    return b"labdeck is running" in r.plat.log_path.read_bytes()


def pid_file(r: Run, name: str) -> bool:
    return (r.plat.state_dir / "run" / f"{name}.pid").exists()


@pytest.mark.parametrize("moment", ["components-starting", "hub-starting"])
def test_ctrl_c_during_start_up(run, moment):
    r = run(wait=False)
    if moment == "components-starting":
        wait_until(lambda: pid_file(r, "aws") and r.processes(), what="the first component")
    else:
        wait_until(lambda: pid_file(r, "hub"), what="the hub's start")
    assert not started(r)
    r.stop_and_check()
    assert not started(r)
    assert "start-up interrupted" in r.plat.log_path.read_text()


def test_ctrl_c_during_a_spawn(run):
    r = run()
    alice = HubClient(r.plat.url).login("alice", r.plat.password)
    resp = alice.api("POST", alice.server_path())
    assert resp.status_code in (201, 202)
    r.stop_and_check()


def test_ctrl_c_with_several_servers_and_kernels(run):
    r = run()
    for name, server in (("alice", ""), ("alice", "second"), ("bob", "")):
        client = HubClient(r.plat.url).login(name, r.plat.password)
        client.start_server(server)
        client.start_kernel(server)
    servers = [p for p in r.processes() if "JUPYTERHUB_USER" in _environ(p)]
    assert len(servers) >= 3
    r.stop_and_check()


def _environ(p: psutil.Process) -> dict:
    try:
        return p.environ()
    except psutil.Error:
        return {}


SLOW_NOTEBOOK = {
    "cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": "import time\ntime.sleep(600)"}],
    "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def test_ctrl_c_while_a_run_executes(run):
    r = run()
    alice = HubClient(r.plat.url).login("alice", r.plat.password)
    home = r.plat.state_dir / "homes" / "alice"
    home.mkdir(parents=True, exist_ok=True)
    (home / "slow.ipynb").write_text(json.dumps(SLOW_NOTEBOOK))
    created = requests.post(f"{r.plat.url}/services/runs/api/runs", headers=alice.headers(), json={"notebook": "slow.ipynb", "timeout": 900}, timeout=30)
    assert created.status_code == 201, created.text
    url = f"{r.plat.url}/services/runs/api/runs/{created.json()['id']}"
    wait_until(lambda: requests.get(url, headers=alice.headers(), timeout=30).json()["status"] == "running", what="the run executing", interval=0.25)
    # its kernel is running the cell
    wait_until(lambda: any("ipykernel" in " ".join(p.cmdline()) for p in r.processes() if _alive(p)), what="the run's kernel")
    r.stop_and_check()


def test_ctrl_c_during_a_warm_pool_refill(run):
    r = run()
    hub_log = r.plat.state_dir / "logs" / "hub.log"
    # the first spawn starts the pool's zygote
    HubClient(r.plat.url).login("alice", r.plat.password).start_server()
    wait_until(lambda: "warm pool: zygote" in hub_log.read_text(), what="the warm pool", interval=0.1)
    bob = HubClient(r.plat.url).login("bob", r.plat.password)
    bob.start_server()
    assert "Claimed warm server" in hub_log.read_text()
    # the claim started a refill: the zygote is forking new members now
    r.stop_and_check()


def test_a_second_ctrl_c_stops_harder_and_still_leaves_nothing(run):
    r = run()
    for name in ("alice", "bob"):
        client = HubClient(r.plat.url).login(name, r.plat.password)
        client.start_server()
        client.start_kernel()

    def twice():
        r.ctrl_c()
        wait_until(lambda: b"labdeck: stopping" in r.plat.log_path.read_bytes(), timeout=5, what="the first stop")
        r.ctrl_c()

    r.stop_and_check(send=twice)
    assert "stopping now" in r.plat.log_path.read_text()


def test_sigterm_to_the_main_process_only_as_systemd_killmode_mixed_sends_it(run):
    from labdeck.hub.local.systemd import render_unit

    assert "KillMode=mixed" in render_unit("/var/lib/labdeck", "/usr/bin/labdeck", checkout=None)
    r = run()
    client = HubClient(r.plat.url).login("alice", r.plat.password)
    client.start_server()
    client.start_kernel()
    r.stop_and_check(send=lambda: os.kill(r.up_pid, signal.SIGTERM))
