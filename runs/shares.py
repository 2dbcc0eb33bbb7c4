"""Read-only shares of a notebook or run output, as pure functions.

A share names one object in its owner's S3 home (a path relative to
``home/<owner>/``) and one grantee: a user, a group, or everyone signed in to
this hub (``kind="everyone"``, grantee ``"*"``). It may expire (``expires``,
epoch seconds). Its id is 32 bytes of ``secrets.token_urlsafe``
(unguessable); who may open it is decided on every view by :func:`can_view`
from the viewer's current identity and groups and the current time.
"""

from __future__ import annotations

import datetime
import re
import secrets
from dataclasses import asdict, dataclass

from labdeck.hub import contract

from .paths import iso, validate_home_key

KINDS = ("user", "group", "everyone")
EVERYONE = "*"
MAX_EXPIRY_S = 366 * 24 * 3600
_NAME = re.compile(r"^[^\s/\x00-\x1f\x7f]{1,255}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


class InvalidShare(ValueError):
    """A share request that is malformed."""


def new_share_id() -> str:
    return secrets.token_urlsafe(32)


def looks_like_share_id(value: str) -> bool:
    return bool(_ID.match(value or ""))


@dataclass(frozen=True)
class Share:
    id: str
    owner: str
    path: str
    kind: str
    grantee: str
    created: float
    revoked: float | None = None
    expires: float | None = None

    def to_api(self, base_url: str = "", now: float | None = None) -> dict:
        data = asdict(self)
        data["url"] = f"{base_url}{contract.VIEWER_SHARE_ROUTE}/{self.id}"
        data["expires_at"] = iso(self.expires)
        if now is not None:
            data["state"] = state(self, now)
        return data


def state(share: Share, now: float) -> str:
    """``active``, ``revoked`` or ``expired``."""
    if share.revoked is not None:
        return "revoked"
    if share.expires is not None and now >= share.expires:
        return "expired"
    return "active"


def parse_expiry(value, now: float) -> float | None:
    """``expires``: null, epoch seconds, or an ISO 8601 time with a zone; in the future, at most a year ahead."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidShare("expires must be a time (ISO 8601 or epoch seconds), not true/false")
    if isinstance(value, (int, float)):
        when = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidShare("expires must be an ISO 8601 time such as 2026-12-31T18:00:00Z") from None
        if parsed.tzinfo is None:
            raise InvalidShare("expires needs a time zone (e.g. a trailing Z for UTC)")
        when = parsed.timestamp()
    else:
        raise InvalidShare("expires must be an ISO 8601 time or epoch seconds")
    if when != when or when <= now:
        raise InvalidShare("expires must be in the future")
    if when - now > MAX_EXPIRY_S:
        raise InvalidShare("a share expires at most one year from now")
    return when


def validate_share_request(body, now: float = 0.0) -> tuple[str, str, str, float | None]:
    """``{"path", "user"|"group"|"everyone": true, "expires"?}`` → (path, kind, grantee, expires)."""
    if not isinstance(body, dict):
        raise InvalidShare("body must be a JSON object")
    unknown = set(body) - {"path", "user", "group", "everyone", "expires"}
    if unknown:
        raise InvalidShare(f"unknown field(s): {', '.join(sorted(unknown))}")
    try:
        path = validate_home_key(body.get("path"))
    except ValueError as e:
        raise InvalidShare(str(e)) from None
    everyone = body.get("everyone")
    if everyone not in (None, False, True):
        raise InvalidShare("everyone must be true or false")
    kinds = [k for k in ("user", "group") if body.get(k) is not None] + (["everyone"] if everyone else [])
    if len(kinds) != 1:
        raise InvalidShare("give exactly one of 'user', 'group' or 'everyone': true")
    kind = kinds[0]
    if kind == "everyone":
        grantee = EVERYONE
    else:
        grantee = body[kind]
        if not isinstance(grantee, str) or not _NAME.match(grantee):
            raise InvalidShare(f"invalid {kind} name")
    return path, kind, grantee, parse_expiry(body.get("expires"), now)


def can_view(share: Share, user: str, groups, now: float | None = None) -> bool:
    """May ``user`` (member of ``groups``) open ``share`` now?

    ``user`` is a person signed in to this hub (the viewer only calls this for
    authenticated users), which is all ``everyone`` asks for.
    """
    if share.revoked is not None:
        return False
    if now is not None and share.expires is not None and now >= share.expires:
        return False
    if user == share.owner:
        return True
    if share.kind == "user":
        return user == share.grantee
    if share.kind == "group":
        return share.grantee in set(groups or ())
    if share.kind == "everyone":
        return True
    return False


def is_for(share: Share, user: str, groups) -> bool:
    """Is ``share`` addressed to ``user`` (the "Shared with me" list; the owner's own shares are not)?"""
    if share.owner == user:
        return False
    return can_view(share, user, groups)
