"""The start queue: at most N at once, first come first served, places reported, cancellation frees the line."""

import asyncio

from labdeck.spawner.local.startqueue import StartQueue


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
