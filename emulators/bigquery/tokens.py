"""Signed bearer tokens for labdeck's local emulators (HMAC-SHA256, shared key).

The local credential broker issues these tokens and the local BigQuery
endpoint checks them on every request. A token is::

    base64url(json(claims)) "." base64url(hmac_sha256(key, base64url(json(claims))))

without padding. Claims used by labdeck:

- ``sub``: the principal (``"alice"``, ``"labdeck-broker"``);
- ``exp``: expiry, epoch seconds (added by :func:`issue`);
- ``projects``: project ids the principal may run jobs in;
- ``datasets``: ``{"project.dataset": "rw" | "ro"}``;
- ``admin``: optional ``True``, may do anything (the broker uses it to create a
  user's dataset).

Design requirements: pure functions, no I/O; verification compares signatures
in constant time; no error message ever contains the token or the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

__all__ = ["TokenError", "issue", "verify"]


class TokenError(ValueError):
    """A token is malformed, wrongly signed or expired.

    The message is safe to show to a client: it never includes the token or key.
    """


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def _sign(key: bytes, payload: str) -> str:
    return _b64encode(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())


def issue(key: bytes, claims: dict[str, Any], ttl: int, now: float | None = None) -> str:
    """Issue a signed token carrying ``claims`` that expires ``ttl`` seconds from now.

    Parameters
    ----------
    key : bytes
        The shared HMAC key (at least 16 bytes).
    claims : dict
        ``sub``, ``projects``, ``datasets`` and optionally ``admin``; any
        ``exp`` given here is replaced.
    ttl : int
        Lifetime in seconds, must be positive.
    now : float, optional
        The current epoch time (for tests); defaults to :func:`time.time`.

    Returns
    -------
    str
        The token, safe to use as an HTTP bearer token.
    """
    if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
        raise ValueError("key must be at least 16 bytes")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise ValueError("claims need a non-empty 'sub'")
    now = time.time() if now is None else now
    body = dict(claims)
    body["exp"] = int(now + ttl)
    payload = _b64encode(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return f"{payload}.{_sign(bytes(key), payload)}"


def verify(key: bytes, token: str, now: float | None = None) -> dict[str, Any]:
    """Check a token's signature and expiry and return its claims.

    Parameters
    ----------
    key : bytes
        The shared HMAC key the token was issued with.
    token : str
        The bearer token.
    now : float, optional
        The current epoch time (for tests); defaults to :func:`time.time`.

    Returns
    -------
    dict
        The claims, including ``exp``.

    Raises
    ------
    TokenError
        ``"malformed token"``, ``"bad token signature"`` or
        ``"token expired"``; never containing the token or the key.
    """
    if not isinstance(token, str) or token.count(".") != 1:
        raise TokenError("malformed token")
    payload, signature = token.split(".")
    if not payload or not signature or not payload.isascii() or not signature.isascii():
        raise TokenError("malformed token")
    expected = _sign(bytes(key), payload)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
        raise TokenError("bad token signature")
    try:
        claims = json.loads(_b64decode(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise TokenError("malformed token") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), (int, float)):
        raise TokenError("malformed token")
    now = time.time() if now is None else now
    if claims["exp"] <= now:
        raise TokenError("token expired")
    return claims
