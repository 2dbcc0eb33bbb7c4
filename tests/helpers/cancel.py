"""Cancel a task at a chosen loop turn, and tell whether it swallowed the cancellation."""

from __future__ import annotations

import asyncio


async def cancel_after_turns(task: asyncio.Future, turns: int) -> bool:
    """Let the event loop run ``turns`` times, cancel ``task`` and wait for it.

    True when the task finished anyway: it swallowed the cancellation (as
    ``asyncio.wait_for`` on Python 3.11 can, when its inner future completes in
    the same turn). False when it was cancelled, or had finished before.
    """
    for _ in range(turns):
        await asyncio.sleep(0)
    if not task.cancel():
        await task
        return False
    try:
        await task
    except asyncio.CancelledError:
        return False
    return True
