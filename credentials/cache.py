"""Per-user credential cache with single-flight issuance and stale-on-error serving.

- A cached credential is served while it has more than ``margin`` seconds left
  *and* was issued for the same grants; otherwise a fresh one is issued.
- Concurrent requests for the same key share one upstream call.
- If the upstream call fails and the cached credential has not expired yet,
  it is served anyway (the SDKs keep working through an STS/IAM outage);
  otherwise the error propagates.
- :meth:`CredentialCache.due` names the credentials in use that are about to
  stop being served, and :meth:`CredentialCache.refresh` re-issues one: the
  broker does that in the background (``BrokerApp.refresh_ahead_seconds``), so
  a person's SDK or spawn finds a fresh credential instead of waiting on the cloud.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from .providers.base import IssuedCredential

#: never serve a credential with less than this many seconds left, even stale
MIN_SERVABLE_SECONDS = 30


@dataclass
class _Entry:
    credential: IssuedCredential
    fingerprint: Hashable
    #: when it was last served (or issued): credentials nobody asks for are not refreshed
    served_at: float = 0.0


class CredentialCache:
    """See the module docstring. ``clock`` is injectable for tests."""

    def __init__(self, margin: float, clock: Callable[[], float] = time.time):
        self.margin = margin
        self.clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        self._inflight: dict[Hashable, asyncio.Future] = {}
        self.upstream_calls = 0
        self.stale_served = 0

    def fresh(self, key: Hashable, fingerprint: Hashable) -> IssuedCredential | None:
        entry = self._entries.get(key)
        if entry and entry.fingerprint == fingerprint and entry.credential.remaining(self.clock()) > self.margin:
            return entry.credential
        return None

    async def get(
        self, key: Hashable, fingerprint: Hashable, issue: Callable[[], Awaitable[IssuedCredential]]
    ) -> IssuedCredential:
        cred = self.fresh(key, fingerprint) or await self.refresh(key, fingerprint, issue)
        entry = self._entries.get(key)
        if entry is not None:
            entry.served_at = self.clock()
        return cred

    async def refresh(
        self, key: Hashable, fingerprint: Hashable, issue: Callable[[], Awaitable[IssuedCredential]]
    ) -> IssuedCredential:
        """Issue anew (sharing a call already in flight for the same key and grants), even if one is cached."""
        flight_key = (key, fingerprint)
        fut = self._inflight.get(flight_key)
        if fut is None:
            fut = asyncio.ensure_future(self._issue(key, fingerprint, issue))
            self._inflight[flight_key] = fut
            fut.add_done_callback(lambda _f: self._inflight.pop(flight_key, None))
        return await asyncio.shield(fut)

    async def _issue(self, key, fingerprint, issue) -> IssuedCredential:
        self.upstream_calls += 1
        try:
            cred = await issue()
        except Exception:
            entry = self._entries.get(key)
            # Serve what we have while it is still valid: only for the same
            # grants, so a revoked grant is never extended by an outage.
            if entry and entry.fingerprint == fingerprint and entry.credential.remaining(self.clock()) > MIN_SERVABLE_SECONDS:
                self.stale_served += 1
                return entry.credential
            raise
        old = self._entries.get(key)  # a refresh is not a use: it keeps when the credential was last served
        self._entries[key] = _Entry(cred, fingerprint, served_at=old.served_at if old else self.clock())
        return cred

    def due(self, ahead: float, idle: float) -> list[Hashable]:
        """Keys whose credential stops being served within ``ahead`` s and that were served within ``idle`` s."""
        now = self.clock()
        flying = {k for k, _ in self._inflight}
        return [
            key
            for key, e in self._entries.items()
            if e.credential.remaining(now) - self.margin < ahead and now - e.served_at < idle and key not in flying
        ]

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)
