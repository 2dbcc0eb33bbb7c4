"""The base class of labdeck's credential providers.

A provider turns *who the caller is* (an :class:`Identity` the broker got from
the hub) and *what they may touch* (:class:`~labdeck.credentials.grants.Grants`)
into short-lived credentials. The broker does everything else: authenticating
the caller, resolving grants, caching per user, collapsing concurrent
requests into one upstream call, and turning errors into readable replies.

Subclasses override, from least to most invasive:

- class constants ``name`` (the URL segment, ``/aws/...``) and traits' defaults;
- :meth:`issue` — the one upstream call (required);
- :meth:`render` — the JSON body the SDK-side client expects (optional);
- :meth:`env` is *not* here: what the user's server needs is built by the
  spawner's pure builders from configuration, never from a credential.

Providers must never log a secret; :class:`IssuedCredential` keeps the secret
payload out of its ``repr``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from traitlets import Integer
from traitlets.config import LoggingConfigurable

from ..grants import Grants


@dataclass(frozen=True)
class Identity:
    """The caller, as the hub reports it."""

    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class IssuedCredential:
    """A short-lived credential. ``payload`` is secret and never part of repr/logs."""

    payload: dict = field(repr=False)
    expires_at: float
    #: a non-secret reference for logs and state (e.g. the role ARN)
    reference: str = ""

    def remaining(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)


#: ``kind`` of an :class:`UpstreamError` (a label value of the broker's metrics)
UPSTREAM_ERROR_KINDS = ("refused", "unreachable", "timeout", "misconfigured")


class UpstreamError(Exception):
    """The cloud (or its emulator) refused or could not be reached.

    ``str(exc)`` is shown to the person whose SDK call failed: keep it
    readable and free of secrets. ``kind`` (one of
    :data:`UPSTREAM_ERROR_KINDS`) says which: the cloud said no (``refused``,
    the default), it could not be reached, it did not answer in time, or the
    broker is not configured for it.
    """

    def __init__(self, message: str = "", kind: str = "refused"):
        super().__init__(message)
        self.kind = kind if kind in UPSTREAM_ERROR_KINDS else "refused"


class CredentialProvider(LoggingConfigurable):
    """Issue short-lived credentials for one cloud service."""

    #: URL segment under the broker prefix, e.g. "aws" → /aws/credentials
    name = "base"

    ttl_seconds = Integer(
        3600,
        config=True,
        help="""Lifetime of issued credentials, in seconds.

        Keep this at one hour or more: botocore refreshes credentials 15 minutes
        before they expire and google-auth about 4 minutes before, so shorter
        lifetimes make the SDKs call the broker on every request. The broker's
        cache margin (``BrokerApp.cache_margin_seconds``) must be smaller.

        .. versionadded:: 0.1
        """,
    )

    async def issue(self, identity: Identity, grants: Grants) -> IssuedCredential:
        """Make one upstream call and return a fresh credential. Must be a coroutine."""
        raise NotImplementedError("Override in subclass. Must be a coroutine.")

    def render(self, credential: IssuedCredential) -> dict:
        """The JSON body returned to the in-server client (default: the payload)."""
        return dict(credential.payload)

    def describe(self, identity: Identity) -> dict:
        """Non-secret facts about what ``identity`` gets (shown by /whoami)."""
        return {}
