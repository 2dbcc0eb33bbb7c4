"""Cron expressions and fire times, as pure functions over epoch seconds (UTC).

A schedule fires at the *latest* cron time that is due and later than the
time it last fired; missed times in between are not replayed, so a scheduler
that was down for a day fires at most once per schedule when it comes back
(and not at all if that time is older than the misfire grace).
"""

from __future__ import annotations

import datetime

from croniter import croniter

MIN_INTERVAL_S = 60


class InvalidCron(ValueError):
    """A cron expression that is malformed or not allowed."""


def _dt(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)


def validate_cron(expr) -> str:
    """Return ``expr`` if it is a standard 5-field cron expression; raise :class:`InvalidCron`."""
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidCron("cron must be a non-empty string like '0 6 * * *'")
    if len(expr) > 200 or any(ord(ch) < 32 for ch in expr):
        raise InvalidCron("cron expression is too long or has control characters")
    expr = " ".join(expr.split())
    if len(expr.split(" ")) != 5:
        raise InvalidCron("cron must have 5 fields: minute hour day-of-month month day-of-week")
    if not croniter.is_valid(expr):
        raise InvalidCron(f"not a valid cron expression: {expr!r}")
    try:
        next_fire(expr, 0.0)
    except Exception:
        raise InvalidCron(f"cron expression never fires: {expr!r}") from None
    return expr


def next_fire(expr: str, after: float) -> float:
    """The first fire time strictly after ``after``."""
    return croniter(expr, _dt(after)).get_next(float)


def latest_fire(expr: str, now: float) -> float:
    """The last fire time at or before ``now``."""
    prev = croniter(expr, _dt(now)).get_prev(float)
    nxt = croniter(expr, _dt(prev)).get_next(float)
    return nxt if nxt <= now else prev


def due_fire(expr: str, since: float, now: float) -> float | None:
    """The fire time to run now: the latest one in ``(since, now]``, or None."""
    if now <= since:
        return None
    t = latest_fire(expr, now)
    return t if t > since else None
