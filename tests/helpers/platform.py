"""Start the real embedded default (``labdeck up``) for a test, and tear it down.

Everything on free 127.0.0.1 ports in a temporary state directory. Teardown
sends SIGTERM to the supervisor (which stops user servers and every
component) and kills its process group if it does not exit in time, also
when the test failed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from labdeck.hub.local.waits import free_port  # noqa: F401 - outside the ephemeral range; tests import it from here

ROOT = Path(__file__).resolve().parents[2]
LABDECK = str(Path(sys.executable).with_name("labdeck"))


def pid_alive_or_zombie(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False




@dataclass
class Platform:
    url: str
    state_dir: Path
    password: str
    proc: subprocess.Popen
    log_path: Path

    def settings(self) -> dict:
        import json

        return json.loads((self.state_dir / "settings.json").read_text())

    def logs(self) -> str:
        parts = [self.log_path.read_text(errors="replace")]
        for f in sorted((self.state_dir / "logs").glob("*.log")):
            parts.append(f"===== {f.name}\n" + f.read_text(errors="replace")[-20000:])
        return "\n".join(parts)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode


def start_platform(
    state_dir: Path,
    password: str = "test-password-1",
    extra_env: dict | None = None,
    timeout: float = 120,
    first_login: bool = False,
    wrap: list[str] | None = None,
    wait: bool = True,
) -> Platform:
    """Run ``labdeck up``; return once it printed its banner and the hub is healthy.

    ``first_login=True`` returns instead the moment the login page answers 200,
    as a person with the page open would use it (the rest may still be starting);
    ``wait=False`` returns at once. ``wrap`` goes before the command
    (``tests/helpers/reaper.py``).
    """
    port = int((extra_env or {}).get("LABDECK_PORT") or free_port())
    env = {
        **os.environ,
        "LABDECK_STATE_DIR": str(state_dir),
        "LABDECK_PORT": str(port),
        "LABDECK_DEV_PASSWORD": password,
        "LABDECK_ADMIN_USERS": "admin",
        # tests run as root: servers stay the hub's user unless a test asks for OS users
        # (tests/integration/test_os_users.py; their state directory must be reachable by other users)
        "LABDECK_OS_USERS": "0",
        **(extra_env or {}),
    }
    log_path = state_dir.parent / f"{state_dir.name}-supervisor.log"
    log = open(log_path, "ab")
    offset = log.tell()  # a restart appends: only this run's output counts
    proc = subprocess.Popen([*(wrap or []), LABDECK, "up"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    # LABDECK_TLS_CERT: the proxy serves https; the test trusts that certificate (REQUESTS_CA_BUNDLE)
    scheme = "https" if env.get("LABDECK_TLS_CERT") else "http"
    plat = Platform(f"{scheme}://127.0.0.1:{port}", state_dir, password, proc, log_path)
    if not wait:
        return plat
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"labdeck up exited with {proc.returncode}:\n{plat.logs()}")
        if first_login:
            try:
                if requests.get(plat.url + "/hub/login", timeout=2).status_code == 200:
                    return plat
            except requests.RequestException:
                pass
            time.sleep(0.02)
            continue
        with open(log_path, "rb") as f:
            f.seek(offset)
            started = b"labdeck is running" in f.read()
        if started:
            try:
                if requests.get(plat.url + "/hub/health", timeout=2).status_code == 200:
                    return plat
            except requests.RequestException:
                pass
        time.sleep(0.25)
    plat.stop()
    raise RuntimeError(f"labdeck up not ready after {timeout}s:\n{plat.logs()}")


def session_platform(prefix: str, extra_env: dict | None = None, scope: str = "session"):
    """A pytest fixture (session-scoped unless ``scope``): one ``labdeck up`` in ``<tmp>/<prefix>N/state``, stopped at the end.

    Each test folder that needs a running platform names its own (``platform = session_platform(...)``
    in its conftest), so folders with different settings never share one by accident.
    """
    import pytest

    @pytest.fixture(scope=scope)
    def platform(tmp_path_factory):
        plat = start_platform(tmp_path_factory.mktemp(prefix) / "state", extra_env=extra_env)
        try:
            yield plat
        finally:
            plat.stop()

    return platform


def person(platform: Platform, name: str, *, started: bool = False):
    """A logged-in ``HubClient`` for ``name``; ``started``: with their default server running (started once)."""
    from tests.helpers.hubclient import HubClient

    client = HubClient(platform.url).login(name, platform.password)
    if started and "" not in (client.api("GET", f"/users/{name}").json().get("servers") or {}):
        client.start_server()
    return client


def pid_of(plat: Platform, component: str) -> int:
    """The pid of a component (``hub``, ``proxy``, ``broker``...) as the supervisor recorded it."""
    return int((plat.state_dir / "run" / f"{component}.pid").read_text().strip())


def server_pid(plat: Platform, username: str) -> int | None:
    """The pid of the user's running default server, as the hub recorded it (its database).

    A warm server is a child of the warm pool's zygote, not of the hub, and
    its ``/proc/<pid>/environ`` is the zygote's: the hub's record is what
    names it.
    """
    with sqlite3.connect(plat.state_dir / "jupyterhub.sqlite", timeout=10) as db:
        row = db.execute(
            "select s.state from spawners s join users u on s.user_id = u.id where u.name = ? and s.name = ''", (username,)
        ).fetchone()
    pid = json.loads(row[0] or "{}").get("pid") if row else None
    if not pid:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid
