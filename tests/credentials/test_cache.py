import asyncio

import pytest

from labdeck.credentials.cache import CredentialCache
from labdeck.credentials.providers.base import IssuedCredential


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class CountingIssuer:
    """Issues credentials valid for ``ttl`` seconds; can be told to fail or to be slow."""

    def __init__(self, clock, ttl=3600, delay=0.0):
        self.clock, self.ttl, self.delay = clock, ttl, delay
        self.calls = 0
        self.fail = False

    async def __call__(self):
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("STS unreachable")
        return IssuedCredential({"n": self.calls}, self.clock() + self.ttl)


async def test_fifty_concurrent_first_requests_make_one_upstream_call():
    clock = Clock()
    issuer = CountingIssuer(clock, delay=0.05)
    cache = CredentialCache(margin=1200, clock=clock)
    results = await asyncio.gather(*[cache.get("alice", "g1", issuer) for _ in range(50)])
    assert issuer.calls == 1
    assert {r.payload["n"] for r in results} == {1}


async def test_cached_until_margin_then_fresh():
    clock = Clock()
    issuer = CountingIssuer(clock)
    cache = CredentialCache(margin=1200, clock=clock)
    await cache.get("alice", "g", issuer)
    clock.t += 3600 - 1201
    assert (await cache.get("alice", "g", issuer)).payload["n"] == 1
    clock.t += 2
    assert (await cache.get("alice", "g", issuer)).payload["n"] == 2


async def test_grant_change_issues_fresh_credentials():
    clock = Clock()
    issuer = CountingIssuer(clock)
    cache = CredentialCache(margin=1200, clock=clock)
    await cache.get("alice", "grants-v1", issuer)
    assert (await cache.get("alice", "grants-v2", issuer)).payload["n"] == 2


async def test_outage_serves_still_valid_credentials_then_fails():
    clock = Clock()
    issuer = CountingIssuer(clock)
    cache = CredentialCache(margin=1200, clock=clock)
    await cache.get("alice", "g", issuer)
    issuer.fail = True
    clock.t += 3000  # inside the margin: a refresh is attempted and fails
    assert (await cache.get("alice", "g", issuer)).payload["n"] == 1
    assert cache.stale_served == 1
    clock.t += 600  # expired now
    with pytest.raises(RuntimeError):
        await cache.get("alice", "g", issuer)


async def test_outage_never_extends_credentials_across_a_grant_change():
    clock = Clock()
    issuer = CountingIssuer(clock)
    cache = CredentialCache(margin=1200, clock=clock)
    await cache.get("alice", "g1", issuer)
    issuer.fail = True
    with pytest.raises(RuntimeError):
        await cache.get("alice", "g2", issuer)


async def test_users_are_separate():
    clock = Clock()
    issuer = CountingIssuer(clock)
    cache = CredentialCache(margin=1200, clock=clock)
    a = await cache.get("alice", "g", issuer)
    b = await cache.get("bob", "g", issuer)
    assert a.payload != b.payload


async def test_due_names_credentials_in_use_that_are_about_to_stop_being_served():
    clock = Clock()
    cache = CredentialCache(margin=1200, clock=clock)
    soon, idle, later = CountingIssuer(clock, ttl=1500), CountingIssuer(clock, ttl=1500), CountingIssuer(clock, ttl=3600)
    await cache.get("soon", "g", soon)
    await cache.get("idle", "g", idle)
    await cache.get("later", "g", later)
    clock.t += 100  # soon/idle: 1400 s left, 200 s above the margin
    await cache.get("soon", "g", soon)  # served again: in use
    assert cache.due(ahead=300, idle=50) == ["soon"]
    assert sorted(cache.due(ahead=300, idle=3600)) == ["idle", "soon"]
    assert cache.due(ahead=100, idle=3600) == []  # none within 100 s of the margin


async def test_refresh_issues_even_when_cached_and_is_not_a_use():
    clock = Clock()
    issuer = CountingIssuer(clock, ttl=1500)
    cache = CredentialCache(margin=1200, clock=clock)
    await cache.get("alice", "g", issuer)
    clock.t += 250
    fresh = await cache.refresh("alice", "g", issuer)
    assert issuer.calls == 2 and fresh.payload == {"n": 2}
    assert (await cache.get("alice", "g", issuer)).payload == {"n": 2} and issuer.calls == 2
    # refreshed but then unused: once idle, it is no longer due however close to the margin
    clock.t += 1000
    await cache.refresh("alice", "g", issuer)
    clock.t += 400
    assert cache.due(ahead=300, idle=1000) == []
