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
    sent = 0
    backend_done = False
    try:
        while True:
            while sent < len(own):
                yield own[sent]
                sent += 1
            if own_done() and backend_done:
                return
            try:
                event = await asyncio.wait_for(queue.get(), timeout=POLL_S)
            except asyncio.TimeoutError:
                continue
            if event is finished:
                backend_done = True
            else:
                yield event
    finally:
        pump_task.cancel()
