"""wait_http sees a server the moment it answers; a dead process or a 5xx is not "ready"."""

import asyncio
import socket
import time

from labdeck.spawner import readiness


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _serve(port, status, delay):
    await asyncio.sleep(delay)

    async def handle(reader, writer):
        await reader.readline()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def test_ready_within_milliseconds_of_the_server_answering():
    port = _port()
    t0 = time.monotonic()
    server_task = asyncio.ensure_future(_serve(port, 200, 0.3))
    assert await readiness.wait_http(f"http://127.0.0.1:{port}/user/a/api", 10)
    elapsed = time.monotonic() - t0
    (await server_task).close()
    assert elapsed >= 0.3  # not before it listened


async def test_5xx_is_not_ready_and_a_dead_process_stops_the_wait():
    port = _port()
    srv = await _serve(port, 503, 0)
    try:
        assert not await readiness.wait_http(f"http://127.0.0.1:{port}/api", 0.5)
    finally:
        srv.close()
    t = time.monotonic()
    assert not await readiness.wait_http(f"http://127.0.0.1:{_port()}/api", 30, alive=lambda: False)
    assert time.monotonic() - t < 5
