"""What ``labdeck up`` waits on and signals: free ports, live pids, an HTTP endpoint that answers, a process group.

Small blocking primitives of :mod:`labdeck.hub.local.runner`; every wait is bounded
and ends at once when a stop is asked for (``abort``), raising :class:`Stopping`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

from ..ports import _ephemeral_range, free_port, port_free  # noqa: F401 - re-exported (bench, tests)
from .settings import SettingsError as SupervisorError

STOP_GRACE_S = 10


class Stopping(Exception):
    """A stop was asked for while starting: stop what runs, start nothing more."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def loopback_tls_context(url: str):
    """For https to this machine's own proxy: its certificate names the public host, not 127.0.0.1.

    The connection never leaves loopback and carries no secret, so the name is not checked.
    """
    import ssl
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "https" or parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        return None
    return ssl._create_unverified_context()


def wait_http(url: str, timeout: float, ok=(200,), proc: subprocess.Popen | None = None, abort: threading.Event | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    context = loopback_tls_context(url)
    while time.monotonic() < deadline:
        if abort is not None and abort.is_set():
            raise Stopping()
        if proc is not None and proc.poll() is not None:
            raise SupervisorError(f"process exited with {proc.returncode} while waiting for {url}")
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                if resp.status in ok:
                    return
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return
            last = e
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise SupervisorError(f"{url} did not become ready within {timeout:.0f}s ({last})")


def stop_group(pid: int, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group led by ``pid``, SIGKILL it if it outlives ``grace``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_routes(api: str, token: str, routes, timeout: float, proc=None, abort: threading.Event | None = None) -> None:
    """Wait until the proxy's routing table (``api``: its ``/api/routes``) has every path in ``routes``."""
    headers = {"Authorization": f"token {token}"}
    want = {r.rstrip("/") for r in routes}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if abort is not None and abort.is_set():
            raise Stopping()
        if proc is not None and proc.poll() is not None:
            raise SupervisorError(f"process exited with {proc.returncode} while waiting for its routes")
        try:
            with urllib.request.urlopen(urllib.request.Request(api, headers=headers), timeout=2) as resp:
                have = {k.rstrip("/") for k in json.loads(resp.read())}
            if want <= have:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise SupervisorError(f"the proxy has no route for {', '.join(sorted(want))} after {timeout:.0f}s")


def plan_ports(env: dict, previous: dict) -> dict:
    """The public port (``LABDECK_PORT``, 8000) and a free loopback port per component, the previous run's where still free."""
    public = int(env.get("LABDECK_PORT") or 8000)
    if not port_free(public):
        raise SupervisorError(f"Port {public} on 127.0.0.1 is in use. Stop what uses it, or choose another port with LABDECK_PORT=<port>.")
    ports = {"public_port": public}
    taken = {public}
    for key in ("hub_port", "proxy_api_port", "broker_port", "aws_port", "bq_port", "runs_port", "viewer_port"):
        want = previous.get(key)
        if want and want not in taken and port_free(want):
            ports[key] = want
        else:
            p = free_port()
            while p in taken:
                p = free_port()
            ports[key] = p
        taken.add(ports[key])
    return ports
