"""A bounded, first-come-first-served queue in front of the CPU-heavy part of a server start.

When 40 people start at once on 2 cores, starting all 40 together shares the
CPU 40 ways and nobody is served before everybody (a storm of 40 on the
benchmark machine: all ready between 55 and 56 s). With at most ``slots``
starts running and the rest waiting in order, the first people are served in
seconds, the median halves and the total work is the same. A waiting start
reports its place (``on_wait(ahead)``), which the spawner turns into progress
events: "Waiting for a free slot: 3 ahead".

Pure asyncio, no threads; a cancelled waiter leaves the line, a cancelled
holder frees its slot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import asynccontextmanager


class StartQueue:
    def __init__(self, slots: int):
        self.slots = slots
        self.active = 0
        self._waiting: deque[asyncio.Future] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _release(self) -> None:
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_result(True)  # hand the slot over: active stays the same
                return
        self.active -= 1

    @asynccontextmanager
    async def slot(self, on_wait=None, report_every: float = 1.0):
        """Hold one slot for the body; ``on_wait(ahead)`` is called when the place in line changes."""
        if self.slots <= 0:  # unbounded
            yield 0
            return
        if self.active < self.slots and not self._waiting:
            self.active += 1
        else:
            fut = asyncio.get_running_loop().create_future()
            self._waiting.append(fut)
            last = None
            try:
                while not fut.done():
                    ahead = self._waiting.index(fut) if fut in self._waiting else 0
                    if on_wait is not None and ahead != last:
                        on_wait(ahead)
                        last = ahead
                    # not asyncio.wait_for: on Python 3.11 it swallows a cancellation (a stop
                    # during start) that arrives in the turn the slot is handed over
                    await asyncio.wait({fut}, timeout=report_every)
            except BaseException:
                if fut in self._waiting:
                    self._waiting.remove(fut)
                elif fut.done() and not fut.cancelled():
                    self._release()  # we were handed a slot while being cancelled
                raise
        try:
            yield self.active
        finally:
            self._release()
