"""Shares: ids, requests and who may view (labdeck.runs.shares)."""

import pytest

from labdeck.runs import shares
from labdeck.runs.shares import Share, can_view


def test_ids_are_long_random_and_distinct():
    ids = {shares.new_share_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) >= 40 and shares.looks_like_share_id(i) for i in ids)
    assert not shares.looks_like_share_id("../x")
    assert not shares.looks_like_share_id("short")


S_USER = Share("i" * 43, "alice", "a.ipynb", "user", "bob", 0.0)
S_GROUP = Share("j" * 43, "alice", "a.ipynb", "group", "team", 0.0)
S_REVOKED = Share("k" * 43, "alice", "a.ipynb", "user", "bob", 0.0, revoked=1.0)
S_EVERYONE = Share("l" * 43, "alice", "a.ipynb", "everyone", "*", 0.0)
S_EXPIRING = Share("m" * 43, "alice", "a.ipynb", "user", "bob", 0.0, expires=100.0)


@pytest.mark.parametrize(
    "share, user, groups, expect",
    [
        (S_USER, "alice", [], True),
        (S_USER, "bob", [], True),
        (S_USER, "carol", ["team"], False),
        (S_USER, "bob2", [], False),
        (S_GROUP, "carol", ["team"], True),
        (S_GROUP, "carol", ["other"], False),
        (S_GROUP, "team", [], False),
        (S_GROUP, "alice", [], True),
        (S_REVOKED, "bob", [], False),
        (S_REVOKED, "alice", [], False),
        (S_EVERYONE, "zed", [], True),
        (S_EXPIRING, "bob", [], True),
    ],
    ids=[f"{i:02d}" for i in range(12)],
)
def test_can_view(share, user, groups, expect):
    assert can_view(share, user, groups, now=50.0) is expect


def test_expired_share_is_closed_to_everyone_and_listed_as_expired():
    assert not can_view(S_EXPIRING, "bob", [], now=100.0)
    assert not can_view(S_EXPIRING, "alice", [], now=101.0)
    assert shares.state(S_EXPIRING, 101.0) == "expired" and shares.state(S_REVOKED, 0.0) == "revoked"
    assert S_EXPIRING.to_api("/v/", 50.0)["state"] == "active"


def test_shared_with_me_excludes_the_owner_and_others():
    assert shares.is_for(S_EVERYONE, "bob", []) and not shares.is_for(S_EVERYONE, "alice", [])
    assert shares.is_for(S_GROUP, "carol", ["team"]) and not shares.is_for(S_USER, "carol", ["team"])


def test_share_requests():
    v = shares.validate_share_request
    assert v({"path": "runs/a/x.ipynb", "user": "bob"}) == ("runs/a/x.ipynb", "user", "bob", None)
    assert v({"path": "a.ipynb", "group": "team"}) == ("a.ipynb", "group", "team", None)
    assert v({"path": "a.ipynb", "everyone": True}, now=0) == ("a.ipynb", "everyone", "*", None)
    assert v({"path": "a.ipynb", "user": "bob", "expires": "1970-01-02T00:00:00Z"}, now=0)[3] == 86400.0
    assert v({"path": "a.ipynb", "user": "bob", "expires": 3600}, now=0)[3] == 3600.0


@pytest.mark.parametrize(
    "body",
    [[], {"path": "../bob/a.ipynb", "user": "x"}, {"path": "a.ipynb"}, {"path": "a.ipynb", "user": "b", "group": "g"},
     {"path": "a.ipynb", "user": "a b"}, {"path": "a.ipynb", "user": "x", "owner": "bob"}, {"path": "/a.ipynb", "user": "x"},
     {"path": "a.ipynb", "everyone": "yes"}, {"path": "a.ipynb", "everyone": True, "user": "bob"},
     {"path": "a.ipynb", "user": "bob", "expires": -5}, {"path": "a.ipynb", "user": "bob", "expires": "tomorrow"},
     {"path": "a.ipynb", "user": "bob", "expires": "2999-01-01T00:00:00"}, {"path": "a.ipynb", "user": "bob", "expires": 10**12},
     {"path": "a.ipynb", "user": "bob", "expires": True}],
    ids=lambda b: repr(b)[:30],
)
def test_bad_share_requests(body):
    with pytest.raises(shares.InvalidShare):
        shares.validate_share_request(body, now=1000.0)
