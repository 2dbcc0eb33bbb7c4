"""Processes a benchmark started: a process tree, stopping it by PID (bounded)."""

from __future__ import annotations

import psutil




def _tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


def _kill_all(procs: list[psutil.Process], grace: float = 10) -> None:
    """SIGTERM, wait (bounded), then SIGKILL whatever is left: by PID only."""
    alive = []
    for p in procs:
        try:
            p.terminate()
            alive.append(p)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)
