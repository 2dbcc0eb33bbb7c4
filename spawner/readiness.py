"""Seeing a new server answer within milliseconds, instead of JupyterHub's polling back-off.

After ``Spawner.start()`` returns, JupyterHub 6.1.1 waits for the server in
``User._wait_up`` → ``Server.wait_up`` → ``jupyterhub.utils.wait_for_http_server``,
which calls ``exponential_backoff(start_wait=0.2, scale_factor=2, max_wait=5)``
with full jitter: after a first immediate check, it sleeps ``uniform(0, 0.2)``,
``uniform(0, 0.4)``, … up to ``uniform(0, 5)`` between checks. A server that
answers after 2.2 s is therefore noticed 0-4 s later (median ~2 s on the
benchmark machine, more than half of a spawn).

:func:`wait_http` is what the local spawner's ``start()`` awaits instead: a
TCP connect every few milliseconds (a refused connect on loopback costs
microseconds), then one HTTP request on the accepted connection, whose answer
arrives the moment the server's loop runs. ``start()`` returns only then, so
the hub's *first* check - made without any sleep - succeeds.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit


async def _answers(host: str, port: int, path: str, read_timeout: float) -> bool | None:
    """True: answered < 500; False: answered >= 500 or closed; None: not listening yet."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return None
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), read_timeout)
        parts = line.split()
        return len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < 500
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()


async def wait_http(url: str, timeout: float, alive=lambda: True, interval: float = 0.005) -> bool:
    """Wait until ``url`` answers with a status below 500, the way the hub's check accepts it.

    ``alive()`` is asked between attempts: a process that died stops the wait
    (False). Returns False after ``timeout`` seconds too; the caller then
    leaves the decision to the hub's own check.
    """
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok = await _answers(host, port, path, read_timeout=min(5.0, max(0.1, deadline - time.monotonic())))
        if ok:
            return True
        if not alive():
            return False
        # not listening yet: retry at once-ish; listening but not answering well: a little slower
        await asyncio.sleep(interval if ok is None else 0.05)
    return False
