"""Merging labdeck's own progress steps with the backend spawner's events.

JupyterHub streams ``Spawner.progress()`` to the person's browser. labdeck's
steps ("Issuing S3 credentials") and the backend's (KubeSpawner's pod events)
both matter, so neither is swallowed: :func:`merge` yields each list's events
in order, interleaved as they arrive, until both are finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

#: how often labdeck's own list is checked while the backend is quiet
POLL_S = 0.25


async def merge(own: list[dict], own_done: Callable[[], bool], backend: AsyncIterator[dict]) -> AsyncIterator[dict]:
    """Yield ``own`` (a list that grows while the spawn runs) and ``backend``'s events.

    Ends once ``own_done()`` is true, every event of ``own`` was yielded and
    ``backend`` is exhausted.
    """
    queue: asyncio.Queue = asyncio.Queue()
    finished = object()

    async def pump():
        try:
            async for event in backend:
                await queue.put(event)
        finally:
            await queue.put(finished)

    pump_task = asyncio.ensure_future(pump())
    getter: asyncio.Future | None = None
    sent = 0
    backend_done = False
    try:
        while True:
            while sent < len(own):
                yield own[sent]
                sent += 1
            if own_done() and backend_done:
                return
            # not asyncio.wait_for: on Python 3.11 it swallows a cancellation that
            # arrives in the loop turn its inner get completes, and JupyterHub
            # cancels this read when the spawn ends (iterate_until), expecting
            # CancelledError; asyncio.wait never swallows it
            if getter is None:
                getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter}, timeout=POLL_S)
            if not done:
                continue
            event, getter = getter.result(), None
            if event is finished:
                backend_done = True
            else:
                yield event
    finally:
        if getter is not None:
            getter.cancel()
        pump_task.cancel()
