"""Credentials at login (labdeck.hub.login): scheduled after the login, token made for one call and deleted.

A real JupyterHub ORM (in-memory sqlite) holds the user and the token; the
spawner is a stand-in that records the broker call (the broker call itself is
tested in tests/spawner/test_mixin_start.py and, end to end, in
tests/integration/test_warm_start.py).
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from jupyterhub import orm, roles

from labdeck.hub import login


class Spawner:
    issue_credentials_at_login = True
    broker_url = "http://127.0.0.1:9/services/broker/"

    def __init__(self, fail: Exception | None = None):
        self.fail = fail
        self.tokens: list[str] = []

    async def labdeck_issue_credentials(self, token):
        self.tokens.append(token)
        if self.fail:
            raise self.fail


class User:
    def __init__(self, db, name, spawner):
        self.orm_user = orm.User(name=name)
        db.add(self.orm_user)
        db.commit()
        roles.assign_default_roles(db, self.orm_user)  # what a login does
        self.spawner = spawner

    def new_api_token(self, **kw):
        return self.orm_user.new_api_token(**kw)


class Handler:
    def __init__(self, db, users):
        self.db = db
        self.users = users
        self.finished = 0

    def find_user(self, name):
        return self.users.get(name)

    def on_finish(self):
        self.finished += 1


@pytest.fixture
def db():
    db = orm.new_session_factory("sqlite://")()
    db.add(orm.OAuthClient(identifier="jupyterhub"))  # the hub's own client, which user tokens belong to
    for role in roles.get_default_roles():
        roles.create_role(db, role)
    db.commit()
    return db


def tokens_of(db, name):
    return db.query(orm.APIToken).join(orm.User).filter(orm.User.name == name).all()


async def test_the_hook_changes_nothing_and_issues_only_after_the_login_finished(db):
    spawner = Spawner()
    handler = Handler(db, {"ana": User(db, "ana", spawner)})
    model = {"name": "ana", "groups": ["data"]}
    assert login.issue_credentials_at_login(logging.getLogger("t"), handler, model) is model
    await asyncio.sleep(0.01)
    assert spawner.tokens == []  # the login has not finished: its user may not exist yet
    handler.on_finish()
    assert handler.finished == 1  # JupyterHub's own on_finish still runs
    for _ in range(100):
        if login._TASKS or not spawner.tokens:
            await asyncio.sleep(0.01)
    assert len(spawner.tokens) == 1
    token = spawner.tokens[0]
    assert orm.APIToken.find(db, token) is None  # deleted after the call
    assert tokens_of(db, "ana") == []


async def test_the_token_is_the_users_own_short_lived_and_narrow(db):
    seen = {}

    class Peek(Spawner):
        async def labdeck_issue_credentials(self, token):
            row = orm.APIToken.find(db, token)
            seen.update(user=row.user.name, note=row.note, scopes=set(row.scopes), expires=row.expires_at is not None)

    handler = Handler(db, {"bo": User(db, "bo", Peek())})
    assert await login.issue_for(handler, "bo", logging.getLogger("t")) is True
    assert seen == {"user": "bo", "note": login.NOTE, "scopes": set(login.SCOPES), "expires": True}


async def test_a_broker_failure_is_logged_without_the_token_and_the_token_is_still_deleted(db, caplog):
    spawner = Spawner(fail=RuntimeError("Could not issue S3 credentials: no grant"))
    handler = Handler(db, {"cy": User(db, "cy", spawner)})
    with caplog.at_level(logging.WARNING):
        assert await login.issue_for(handler, "cy", logging.getLogger("t")) is False
    assert "not issued at login (Could not issue S3 credentials: no grant)" in caplog.text
    assert spawner.tokens[0] not in caplog.text
    assert tokens_of(db, "cy") == []


@pytest.mark.parametrize("change", ["off", "no broker", "no user"])
async def test_nothing_is_asked_when_it_is_off_or_there_is_no_broker_or_no_user(db, change):
    spawner = Spawner()
    if change == "off":
        spawner.issue_credentials_at_login = False
    if change == "no broker":
        spawner.broker_url = ""
    users = {} if change == "no user" else {"di": User(db, "di", spawner)}
    assert await login.issue_for(Handler(db, users), "di", logging.getLogger("t")) is False
    assert spawner.tokens == [] and db.query(orm.APIToken).count() == 0
