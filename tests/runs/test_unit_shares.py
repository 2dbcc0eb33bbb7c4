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
    ],
    ids=[f"{i:02d}" for i in range(10)],
)
def test_can_view(share, user, groups, expect):
    assert can_view(share, user, groups) is expect


def test_share_requests():
    assert shares.validate_share_request({"path": "runs/a/x.ipynb", "user": "bob"}) == ("runs/a/x.ipynb", "user", "bob")
    assert shares.validate_share_request({"path": "a.ipynb", "group": "team"}) == ("a.ipynb", "group", "team")


@pytest.mark.parametrize(
    "body",
    [[], {"path": "../bob/a.ipynb", "user": "x"}, {"path": "a.ipynb"}, {"path": "a.ipynb", "user": "b", "group": "g"},
     {"path": "a.ipynb", "user": "a b"}, {"path": "a.ipynb", "user": "x", "owner": "bob"}, {"path": "/a.ipynb", "user": "x"}],
    ids=lambda b: repr(b)[:30],
)
def test_bad_share_requests(body):
    with pytest.raises(shares.InvalidShare):
        shares.validate_share_request(body)
