"""The start queue: at most N at once, first come first served, places reported, cancellation frees the line."""

import asyncio

from labdeck.spawner.local.startqueue import StartQueue
from tests.helpers.cancel import cancel_after_turns


async def until(condition, turns: int = 1000):
    """Let the event loop run until ``condition()`` holds (bounded: fails after ``turns`` turns)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_bounded_fifo_with_places_reported():
    q = StartQueue(2)
    order, running, peak, places = [], [0], [0], {}

    done = {i: asyncio.Event() for i in range(6)}

    async def person(i):
        seen = places.setdefault(i, [])
        async with q.slot(on_wait=seen.append, report_every=0.01):
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            order.append(i)
            await done[i].wait()
            running[0] -= 1

    tasks = []
    for i in range(6):
        tasks.append(asyncio.ensure_future(person(i)))
        await until(lambda: i in places)  # arrive in order
    for i in range(6):  # each finishes once it holds a slot; the next in line moves up
        await until(lambda: i in order)
        done[i].set()
    await asyncio.gather(*tasks)
    assert order == list(range(6))
    assert peak[0] == 2
    assert places[0] == places[1] == []  # free slots: no waiting
    assert places[2][0] == 0 and places[5][0] == 3  # "3 ahead"
    assert places[5] == sorted(places[5], reverse=True)  # the place only improves
    assert q.active == 0 and q.waiting == 0


async def test_cancelled_waiter_leaves_the_line_and_holder_frees_its_slot():
    q = StartQueue(1)
    gate = asyncio.Event()

    async def hold():
        async with q.slot():
            await gate.wait()

    holder = asyncio.ensure_future(hold())
    await until(lambda: q.active == 1)
    waiter = asyncio.ensure_future(hold())
    await until(lambda: q.waiting == 1)
    waiter.cancel()
    await until(waiter.done)
    assert q.waiting == 0 and q.active == 1
    holder.cancel()
    await until(holder.done)
    assert q.active == 0
    async with q.slot():  # the slot is really free again
        assert q.active == 1


async def test_zero_slots_means_no_limit():
    q = StartQueue(0)
    async with q.slot():
        async with q.slot():
            assert q.waiting == 0


async def test_a_stop_arriving_as_the_slot_is_handed_over_still_stops_the_start():
    """A waiter cancelled in the loop turn its slot is handed over is cancelled, and the slot goes on.

    (``asyncio.wait_for`` on Python 3.11 returned the slot instead and the
    start went on as if no stop had been asked for.)
    """
    swallowed = 0
    for turns in range(6):
        q = StartQueue(1)
        holder_done = asyncio.Event()
        entered = []

        async def holder():
            async with q.slot():
                await holder_done.wait()

        async def waiter():
            async with q.slot(report_every=0.5):
                entered.append(True)

        h = asyncio.ensure_future(holder())
        await asyncio.sleep(0)
        w = asyncio.ensure_future(waiter())
        await asyncio.sleep(0.01)  # the waiter is in line
        holder_done.set()
        if await cancel_after_turns(w, turns) and entered:
            swallowed += 1
        await h
        await asyncio.sleep(0)
        assert q.active == 0 and q.waiting == 0  # nothing held, nobody left in line
    assert swallowed == 0
