"""Read-only shares of a notebook or run output, as pure functions.

A share names one object in its owner's S3 home (a path relative to
``home/<owner>/``) and one grantee: a user or a group. Its id is 32 bytes of
``secrets.token_urlsafe`` (unguessable); who may open it is decided on every
view by :func:`can_view` from the viewer's current identity and groups.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass

from .paths import validate_home_key

KINDS = ("user", "group")
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

    def to_api(self, base_url: str = "") -> dict:
        data = asdict(self)
        data["url"] = f"{base_url}s/{self.id}"
        return data


def validate_share_request(body) -> tuple[str, str, str]:
    """``{"path": ..., "user": ...}`` or ``{"path": ..., "group": ...}`` → (path, kind, grantee)."""
    if not isinstance(body, dict):
        raise InvalidShare("body must be a JSON object")
    unknown = set(body) - {"path", "user", "group"}
    if unknown:
        raise InvalidShare(f"unknown field(s): {', '.join(sorted(unknown))}")
    try:
        path = validate_home_key(body.get("path"))
    except ValueError as e:
        raise InvalidShare(str(e)) from None
    kinds = [k for k in KINDS if body.get(k) is not None]
    if len(kinds) != 1:
        raise InvalidShare("give exactly one of 'user' or 'group'")
    kind = kinds[0]
    grantee = body[kind]
    if not isinstance(grantee, str) or not _NAME.match(grantee):
        raise InvalidShare(f"invalid {kind} name")
    return path, kind, grantee


def can_view(share: Share, user: str, groups) -> bool:
    """May ``user`` (member of ``groups``) open ``share`` now?"""
    if share.revoked is not None:
        return False
    if user == share.owner:
        return True
    if share.kind == "user":
        return user == share.grantee
    if share.kind == "group":
        return share.grantee in set(groups or ())
    return False
