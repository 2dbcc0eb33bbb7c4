"""The broker re-issues credentials in use before they stop being served (BrokerApp.refresh_due).

A real BrokerApp with a stub provider and an injected clock: what is refreshed,
with which groups, and what is left to expire.
"""

from __future__ import annotations

import pytest
from traitlets.config import Config

from labdeck.credentials.app import BrokerApp
from labdeck.credentials.cache import CredentialCache
from labdeck.credentials.providers.base import CredentialProvider, Identity, IssuedCredential


class Clock:
    t = 10_000.0

    def __call__(self):
        return self.t


class Stub(CredentialProvider):
    name = "stub"

    def __init__(self, clock, **kw):
        super().__init__(**kw)
        self.clock = clock
        self.issued: list[Identity] = []

    async def issue(self, identity, grants):
        self.issued.append(identity)
        return IssuedCredential({"n": len(self.issued), "groups": list(identity.groups)}, self.clock() + 1600)  # 400 s above the margin

    def render(self, credential):
        return dict(credential.payload)

    def describe(self, identity):
        return {}


@pytest.fixture
def broker():
    c = Config()
    c.BrokerApp.providers = []
    app = BrokerApp(config=c)
    app.initialize([])
    clock = Clock()
    app.cache = CredentialCache(margin=app.cache_margin_seconds, clock=clock)  # 1200
    app.stub = app.providers_by_name["stub"] = Stub(clock, parent=app)
    app.clock = clock
    app.groups = {"ana": ("analysts",), "bo": ()}

    async def groups_of(name):
        return app.groups[name]

    app.groups_of = groups_of
    return app


async def test_a_credential_in_use_is_reissued_before_it_stops_being_served_with_current_groups(broker):
    assert (await broker.credentials(broker.stub, Identity("ana", ("analysts",))))["n"] == 1
    broker.clock.t += 50  # 350 s above the margin: not yet within refresh_ahead_seconds (300)
    assert await broker.refresh_due() == 0
    broker.clock.t += 100
    broker.groups["ana"] = ()  # left the group since
    assert await broker.refresh_due() == 1
    assert broker.stub.issued[-1] == Identity("ana", ())
    served = await broker.credentials(broker.stub, Identity("ana", ()))
    assert served == {"n": 2, "groups": []} and len(broker.stub.issued) == 2  # from the cache
    assert broker.requests_served == 2  # refreshes are not requests


async def test_nothing_is_refreshed_for_people_who_stopped_asking_or_when_it_is_off(broker):
    await broker.credentials(broker.stub, Identity("bo"))
    broker.clock.t += broker.refresh_idle_seconds + 1
    assert await broker.refresh_due() == 0
    broker.refresh_idle_seconds, broker.refresh_ahead_seconds = 10**9, 0
    assert await broker.refresh_due() == 0
