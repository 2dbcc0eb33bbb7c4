"""Fixtures for reliability tests: one real platform per test, and process bookkeeping.

Each test gets its own ``labdeck up`` in a temporary state directory (so a
test that kills components cannot disturb another), torn down by the helper
in ``tests/helpers/platform.py``; on top of that, every process the platform
ever ran (recorded with psutil while the test runs) is killed by PID at the
end if it is still alive, so a failing test leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from tests.helpers.hubclient import HubClient
from tests.helpers.procs import descendants
from tests.helpers.platform import Platform, pid_of, server_pid, start_platform  # noqa: F401 - the tests import them from here

#: every wait in these tests is bounded by this many seconds (or less)
WAIT_S = 90


class Tracker:
    """Remembers every process of a platform (user servers run in their own sessions)."""

    def __init__(self, plat: Platform):
        self.plat = plat
        self.known: dict[int, psutil.Process] = {}

    def snapshot(self) -> list[psutil.Process]:
        procs = descendants(self.plat.proc.pid)
        for p in procs:
            self.known.setdefault(p.pid, p)
        return procs

    def kill_leftovers(self) -> list[str]:
        left = []
        for p in self.known.values():
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    left.append(f"{p.pid} {' '.join(p.cmdline()[:3])}")
                    p.kill()
            except psutil.Error:
                pass
        return left


def wait_for(predicate, timeout: float = WAIT_S, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the component may be restarting
            last = e
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s (last error: {last!r})")


def restarted(plat: Platform, component: str, old_pid: int) -> int:
    """Wait until the supervisor has a new, live ``component`` process; return its pid."""

    def new_pid():
        pid = pid_of(plat, component)
        return pid if pid != old_pid and psutil.pid_exists(pid) else None

    return wait_for(new_pid, what=f"{component} restarted by the supervisor")


S3_CALL = (
    "import boto3, os\n"
    "b, p = os.environ['LABDECK_S3_HOME'][5:].split('/', 1)\n"
    "s3 = boto3.client('s3')\n"
    "s3.put_object(Bucket=b, Key=p + 'probe.txt', Body=b'ok')\n"
    "print(s3.get_object(Bucket=b, Key=p + 'probe.txt')['Body'].read().decode())"
)


@pytest.fixture
def make_platform(tmp_path):
    """``make_platform(**extra_env)`` → a running platform, stopped (and swept) at the end."""
    started: list[tuple[Platform, Tracker]] = []

    def make(**extra_env) -> tuple[Platform, Tracker]:
        plat = start_platform(tmp_path / f"state{len(started)}", extra_env={k: str(v) for k, v in extra_env.items()})
        tracker = Tracker(plat)
        tracker.snapshot()
        started.append((plat, tracker))
        return plat, tracker

    yield make
    for plat, tracker in started:
        try:
            tracker.snapshot()
        except psutil.Error:
            pass
        # a SIGSTOPped component must not block teardown
        for p in tracker.known.values():
            try:
                p.send_signal(signal.SIGCONT)
            except psutil.Error:
                pass
        plat.stop()
        tracker.kill_leftovers()


def login(plat: Platform, name: str) -> HubClient:
    return HubClient(plat.url).login(name, plat.password)


def running_user(plat: Platform, tracker: Tracker, name: str) -> tuple[HubClient, str]:
    """A logged-in user with a running server and a kernel whose S3 call works."""
    client = login(plat, name)
    client.start_server(timeout=WAIT_S)
    kernel = client.start_kernel()
    assert client.execute(S3_CALL, kernel).check().stdout.strip() == "ok"
    tracker.snapshot()
    return client, kernel


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))
