"""A jupyter-server extension that says why a kernel died: the server went past its memory limit.

When a server's size is a limit (a cgroup per server locally, a pod's
``resources.limits`` on Kubernetes), a kernel that allocates past it is
stopped by the Linux OOM killer inside that cgroup and restarted empty by
jupyter-server; the person sees only "the kernel appears to have died".
This extension reads the cgroup's ``oom_kill`` counter (v1
``memory.oom_control``, v2 ``memory.events``) every few seconds and, when it
grows, writes a warning into the server's log naming the limit and the size,
and what to do about it.

Loaded in every user server (``jupyter_server_config.d/labdeck.json``); it
does nothing where the server's memory is not limited.
"""

from __future__ import annotations

import os

from labdeck.hub import contract
from labdeck.spawner.local.cgroups import CGROUP_ROOT, own_cgroups, parse_oom_kills

CHECK_EVERY_MS = 2000
#: a v1 "no limit" is a page-rounded 2**63-1; anything above this is unlimited
UNLIMITED = 1 << 60


def counter_and_limit(proc_cgroup: str = "/proc/self/cgroup", root: str = CGROUP_ROOT) -> tuple[str, int] | None:
    """``(oom counter file, memory limit in bytes)`` of this process's memory cgroup, or None if unlimited."""
    try:
        mine = own_cgroups(open(proc_cgroup).read())
    except (OSError, ValueError):
        return None
    if "memory" in mine:
        d = os.path.join(root, "memory", mine["memory"].lstrip("/"))
        counter, limit_file = os.path.join(d, "memory.oom_control"), os.path.join(d, "memory.limit_in_bytes")
    else:
        d = os.path.join(root, mine.get("", "/").lstrip("/"))
        counter, limit_file = os.path.join(d, "memory.events"), os.path.join(d, "memory.max")
    try:
        raw = open(limit_file).read().strip()
        open(counter).close()
    except OSError:
        return None
    if raw == "max" or int(raw) >= UNLIMITED:
        return None
    return counter, int(raw)


def message(limit: int, size: str, kills: int) -> str:
    """Pure: what the server's log says after ``kills`` more processes were stopped."""
    gb = limit / (1 << 30)
    amount = f"{gb:.1f} GB" if gb >= 1 else f"{limit / (1 << 20):.0f} MB"
    which = f" (size {size!r})" if size else ""
    return (
        f"labdeck: {kills} process(es) of this server were stopped - most likely a kernel - because the server went past "
        f"its memory limit of {amount}{which}. The kernel restarts empty. Load less data at once, or stop the server "
        "and start it again with a larger size."
    )


class OOMWatch:
    def __init__(self, counter: str, limit: int, size: str, log):
        self.counter, self.limit, self.size, self.log = counter, limit, size, log
        self.seen = self.read()

    def read(self) -> int:
        try:
            return parse_oom_kills(open(self.counter).read())
        except (OSError, ValueError):
            return 0

    def check(self) -> None:
        now = self.read()
        if now > self.seen:
            self.log.warning(message(self.limit, self.size, now - self.seen))
        self.seen = max(self.seen, now)


def _jupyter_server_extension_points():
    return [{"module": "labdeck.spawner.userserver.oomwatch"}]


def _load_jupyter_server_extension(serverapp):
    found = counter_and_limit()
    if found is None:
        return
    from tornado.ioloop import PeriodicCallback

    watch = OOMWatch(found[0], found[1], os.environ.get(contract.ENV_SIZE, ""), serverapp.log)
    serverapp.labdeck_oomwatch = PeriodicCallback(watch.check, CHECK_EVERY_MS)
    serverapp.labdeck_oomwatch.start()
