"""Cron validation and fire times (labdeck.runs.cron)."""

import datetime

import pytest

from labdeck.runs import cron


def ts(s):
    return datetime.datetime.fromisoformat(s).replace(tzinfo=datetime.timezone.utc).timestamp()


@pytest.mark.parametrize("expr", ["* * * * *", "0 6 * * *", "*/15 9-17 * * mon-fri", "  0   6 * * * "])
def test_valid(expr):
    assert cron.validate_cron(expr) == " ".join(expr.split())


@pytest.mark.parametrize("expr", ["", None, "* * * *", "* * * * * *", "61 * * * *", "a b c d e", "* * * * *\n", "0 0 31 2 *"])
def test_invalid(expr):
    with pytest.raises(cron.InvalidCron):
        cron.validate_cron(expr)


def test_next_fire():
    assert cron.next_fire("0 6 * * *", ts("2026-11-23T05:59:59")) == ts("2026-11-23T06:00:00")
    assert cron.next_fire("0 6 * * *", ts("2026-11-23T06:00:00")) == ts("2026-11-24T06:00:00")


@pytest.mark.parametrize(
    "since, now, expect",
    [
        ("2026-11-23T10:00:00", "2026-11-23T10:00:59", None),  # not yet
        ("2026-11-23T10:00:00", "2026-11-23T10:01:00", "2026-11-23T10:01:00"),  # exactly on time
        ("2026-11-23T10:00:30", "2026-11-23T10:01:00.5", "2026-11-23T10:01:00"),
        ("2026-11-23T10:01:00", "2026-11-23T10:01:30", None),  # already fired
        ("2026-11-23T10:00:00", "2026-11-23T12:34:56", "2026-11-23T12:34:00"),  # missed many: latest only
    ],
)
def test_due_fire_every_minute(since, now, expect):
    got = cron.due_fire("* * * * *", ts(since), ts(now))
    assert got == (ts(expect) if expect else None)


def test_due_fire_after_long_downtime_is_one_time():
    since = ts("2026-01-01T00:00:00")
    now = ts("2026-11-23T06:30:00")
    assert cron.due_fire("0 6 * * *", since, now) == ts("2026-11-23T06:00:00")
