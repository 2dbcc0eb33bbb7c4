"""The process tree under ``labdeck up``: find, signal and reap everything it ever started.

``labdeck up`` makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``,
Linux ≥ 3.4, the mechanism tini and systemd use): a process whose parent dies
is re-parented to the nearest subreaper above it instead of to PID 1. Every
process the platform starts - components, user servers (their own sessions),
warm-pool zygotes and members, kernels, terminals, runs, anything that
double-forks - therefore stays a descendant of the runner for as long as the
runner lives, so "nothing left behind" is checkable: no descendant left.

:func:`children_map` and :func:`descendants` are pure (a ``/proc`` snapshot
in, pids out); :func:`snapshot`, :func:`signal_all` and :func:`reap` do the I/O.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable, Mapping

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants; False where Linux does not offer it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def parse_stat(text: str) -> tuple[int, str]:
    """``(ppid, state)`` from a ``/proc/<pid>/stat`` line (the command may hold spaces and parentheses)."""
    rest = text.rsplit(")", 1)[1].split()
    return int(rest[1]), rest[0]


def snapshot() -> dict[int, tuple[int, str]]:
    """pid → (ppid, state) for every process visible in ``/proc``."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                out[int(entry)] = parse_stat(f.read())
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
    return out


def children_map(procs: Mapping[int, tuple[int, str]]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    return children


def descendants(procs: Mapping[int, tuple[int, str]], root: int) -> list[int]:
    """Every descendant of ``root`` in the snapshot, parents before children (``root`` excluded)."""
    children = children_map(procs)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def living_descendants(root: int | None = None) -> list[int]:
    """Descendants of ``root`` (default: this process) that are not zombies."""
    root = os.getpid() if root is None else root
    procs = snapshot()
    return [pid for pid in descendants(procs, root) if procs[pid][1] != "Z"]


def signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def reap(keep: Iterable[int] = ()) -> int:
    """Collect exited children of this process (orphans re-parented to it), except ``keep``; how many."""
    keep = set(keep)
    me = os.getpid()
    n = 0
    for pid, (ppid, state) in snapshot().items():
        if ppid == me and state == "Z" and pid not in keep:
            try:
                os.waitpid(pid, os.WNOHANG)
                n += 1
            except ChildProcessError:
                pass
    return n

