"""Process trees of what a test started (psutil)."""

from __future__ import annotations

import psutil


def descendants(pid: int) -> list[psutil.Process]:
    """``pid`` and every process below it now, also those in sessions of their own; [] once it is gone."""
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []
