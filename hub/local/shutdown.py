"""How ``labdeck up`` stops: user servers through the hub, then every process below it.

Both steps are bounded by a deadline; ``hard()`` (a second Ctrl-C) turns SIGTERM into
SIGKILL at once. The runner is the subreaper of everything the platform started
(:mod:`labdeck.hub.local.proctree`), so "every process below it" includes servers,
kernels, zygotes and anything that double-forked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence

from . import proctree


def stop_user_servers(api: str, token: str, deadline: float, hard: Callable[[], bool]) -> None:
    """Ask the hub (``api``: its ``/hub/api`` URL) to stop every running user server, named ones too,
    until ``deadline`` at most. The DELETEs go out at once; whatever has not stopped by the deadline
    is stopped by :func:`stop_processes`."""
    headers = {"Authorization": f"token {token}"}

    def remaining() -> float:
        return max(0.1, deadline - time.monotonic())

    def active() -> list | None:
        try:
            req = urllib.request.Request(f"{api}/users?state=active", headers=headers)
            with urllib.request.urlopen(req, timeout=min(2, remaining())) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError):
            return None

    users = active()
    if not users:
        return
    paths = [
        f"{api}/users/{user['name']}/servers/{server_name}" if server_name else f"{api}/users/{user['name']}/server"
        for user in users
        for server_name in user.get("servers") or {}
    ]

    def delete(path: str) -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(path, method="DELETE", headers=headers), timeout=remaining()).close()
        except OSError:
            pass

    for path in paths:
        threading.Thread(target=delete, args=(path,), daemon=True).start()
    while paths and time.monotonic() < deadline and not hard():
        if not active():
            return
        time.sleep(0.1)


def stop_processes(procs: Sequence[subprocess.Popen], hard: Callable[[], bool], deadline: float) -> None:
    """SIGTERM every component's process group and every other descendant; SIGKILL what is
    left at ``deadline`` (at once once ``hard()``); reap everything."""
    sig = signal.SIGKILL if hard() else signal.SIGTERM
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
    keep = [p.pid for p in procs]
    term_sent: set[int] = set()
    while time.monotonic() < deadline:
        for proc in procs:
            proc.poll()
        proctree.reap(keep=keep)
        left = proctree.living_descendants()
        if not left:
            break
        sig = signal.SIGKILL if hard() else signal.SIGTERM
        fresh = [p for p in left if p not in term_sent or sig == signal.SIGKILL]
        proctree.signal_all(fresh, sig)
        term_sent.update(fresh)
        time.sleep(0.05)
    # whatever outlived the budget: SIGKILL, until nothing is left
    for _ in range(100):
        left = proctree.living_descendants()
        if not left:
            break
        proctree.signal_all(left, signal.SIGKILL)
        time.sleep(0.02)
        for proc in procs:
            proc.poll()
        proctree.reap(keep=keep)
    for proc in procs:
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    proctree.reap()


def remove_cgroups(settings: dict) -> None:
    """Remove the user servers' cgroups (v1/v2; systemd removes a scope once it is empty)."""
    limits = settings.get("limits") or {}
    if limits.get("backend") not in ("v1", "v2"):
        return
    from labdeck.spawner.local import cgroups

    try:
        cgroups.Cgroups(cgroups.detect(), limits["group"]).remove_all()
    except (cgroups.CgroupError, OSError) as e:
        print(f"labdeck: could not remove the servers' cgroups: {e}", file=sys.stderr, flush=True)
