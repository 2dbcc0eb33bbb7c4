"""labdeck's progress steps and the backend's events are merged, none lost; the broker call's retry rule."""

import asyncio
import socket

from tornado.httpclient import HTTPClientError

from labdeck.spawner import brokercall, progress
from tests.helpers.cancel import cancel_after_turns


async def test_merge_yields_both_streams_in_order_and_waits_for_both():
    own: list[dict] = [{"progress": 5, "message": "own-1"}]
    state = {"done": False}

    async def backend():
        yield {"progress": 40, "message": "pod-1"}
        await asyncio.sleep(0.05)
        own.append({"progress": 20, "message": "own-2"})  # labdeck's step arrives while the backend runs
        yield {"progress": 50, "message": "pod-2"}

    async def finish_later():
        await asyncio.sleep(0.4)
        own.append({"progress": 80, "message": "own-3"})
        state["done"] = True

    task = asyncio.ensure_future(finish_later())
    seen = [e["message"] async for e in progress.merge(own, lambda: state["done"], backend())]
    await task
    assert sorted(seen) == sorted(["own-1", "own-2", "own-3", "pod-1", "pod-2"])
    assert [m for m in seen if m.startswith("own")] == ["own-1", "own-2", "own-3"]
    assert [m for m in seen if m.startswith("pod")] == ["pod-1", "pod-2"]
    assert seen[-1] == "own-3"  # not finished before labdeck's own last step


def test_only_a_broker_that_is_not_up_yet_is_waited_for():
    assert brokercall.may_come_back(ConnectionRefusedError())
    assert brokercall.may_come_back(ConnectionResetError())
    assert brokercall.may_come_back(socket.gaierror())
    assert not brokercall.may_come_back(HTTPClientError(599, "Timeout"))
    assert not brokercall.may_come_back(ValueError("bad url"))


async def test_issue_gives_up_readably_after_the_timeout_on_a_closed_port():
    import logging

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: connections are refused
    import pytest

    with pytest.raises(RuntimeError, match=r"unreachable \(ConnectionRefusedError\)") as e:
        await brokercall.issue(f"http://127.0.0.1:{port}/services/broker/aws/credentials", "secret-token-x", 0.5, "aws", logging.getLogger("t"), "alice")
    assert "secret-token-x" not in str(e.value)


async def test_a_cancelled_read_is_cancelled_even_when_an_event_arrived_at_that_moment():
    """JupyterHub's progress stream cancels the pending read when the spawn ends (``iterate_until``).

    A read that swallowed that cancellation (``asyncio.wait_for`` on Python
    3.11 does, when its inner future completed in the same loop turn) ended the
    generator with ``StopAsyncIteration`` where the hub awaits a cancellation,
    and the person's stream broke off with "async generator raised
    StopAsyncIteration" instead of the spawn's outcome.
    """
    swallowed = 0
    for turns in range(8):
        arrive = asyncio.Event()

        async def backend():
            await arrive.wait()
            yield {"progress": 50, "message": "from the backend"}

        gen = progress.merge([], lambda: True, backend())
        read = asyncio.ensure_future(gen.__anext__())
        await asyncio.sleep(0.01)  # the read waits on the (empty) queue
        arrive.set()
        swallowed += await cancel_after_turns(read, turns)
        await gen.aclose()
    assert swallowed == 0
