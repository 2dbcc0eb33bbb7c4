"""The spawner's one call to the credential broker: issue a user's credentials at spawn time.

Kept out of the mixin so that the wait for a (re)starting broker and the error
texts a person sees are in one small place. The server's own API token goes
only into the ``Authorization`` header; no error text carries it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from labdeck.hub import contract

_CLIENT: AsyncHTTPClient | None = None

#: what a person sees, per provider
LABELS = {"aws": "S3", "gcp": "BigQuery"}


def broker_client() -> AsyncHTTPClient:
    """One HTTP client for broker calls, separate from the hub's own (proxy, servers)."""
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = AsyncHTTPClient(force_instance=True, max_clients=64)
    return _CLIENT


def may_come_back(error: BaseException) -> bool:
    """A refused or reset connection, or a name not resolvable yet: a broker (re)starting.

    A timeout is not retried: the request already waited the whole timeout.
    """
    if isinstance(error, HTTPClientError):  # 599: tornado's own timeout
        return False
    return isinstance(error, (ConnectionRefusedError, ConnectionResetError, socket.gaierror, BrokenPipeError))


async def issue(url: str, token: str, timeout: float, provider: str, log, log_name: str) -> None:
    """POST ``url`` with ``token``; wait up to ``timeout`` for a broker that is not up yet.

    Raises ``RuntimeError`` with a message for a person when the broker stays
    unreachable or refuses (its JSON ``error`` is passed on).
    """
    req = HTTPRequest(
        url,
        method="POST",
        body=b"",
        headers={"Authorization": f"token {token}"},
        # tornado's default connect timeout (20 s) also bounds the time a request
        # waits for a free connection: under a spawn storm that is not enough
        connect_timeout=timeout,
        request_timeout=timeout,
    )
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        try:
            resp = await broker_client().fetch(req, raise_error=False)
            break
        except Exception as e:  # connection refused, DNS, timeout
            left = deadline - time.monotonic()
            if left <= 0 or not may_come_back(e):
                log.warning("Credential request for %s failed: %s", log_name, e)
                if isinstance(e, HTTPClientError) and e.code == 599 and left <= 0:
                    raise RuntimeError(f"The credential broker did not answer within {timeout:g} s; contact your admin") from None
                raise RuntimeError(f"The credential broker is unreachable ({type(e).__name__}); contact your admin") from None
            # a broker that is (re)starting refuses connections for a moment:
            # wait for it, within the timeout, instead of failing the spawn
            if delay == 0.1:
                log.info("Credential broker not reachable yet for %s (%s); waiting", log_name, type(e).__name__)
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)
    if resp.code != 200:
        try:
            reason = json.loads(resp.body).get("error", "")
        except Exception:
            reason = ""
        raise RuntimeError(f"Could not issue {LABELS.get(provider, provider)} credentials: {reason or f'HTTP {resp.code}'}")


async def issue_all(base_url: str, token: str, timeout: float, providers: list[str], log, log_name: str) -> None:
    """Issue every provider's credentials at once (``<base_url><provider>/credentials``); raise the first failure."""
    base = base_url.rstrip("/") + "/"
    calls = (issue(base + contract.BROKER_CREDENTIALS_ROUTE.format(provider=p), token, timeout, p, log, log_name) for p in providers)
    results = await asyncio.gather(*calls, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
