"""A credential provider for labdeck's local BigQuery endpoint.

Tokens are HMAC-signed claims (:mod:`labdeck.emulators.bigquery.tokens`) naming
the datasets the user may read or write; the local endpoint checks them on
every request, so isolation is enforced there, not in the user's server.
The user's own dataset is created on first issuance.
"""

from __future__ import annotations

import json

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets import Unicode

from labdeck.emulators.bigquery import tokens as localtoken

from .. import gcp_requests
from ..grants import Grants
from .base import Identity, IssuedCredential, UpstreamError
from .gcp import GCPProvider


class LocalGCPProvider(GCPProvider):
    """Signed tokens for the local BigQuery endpoint, with user datasets created on demand."""

    name = "gcp"

    emulator_url = Unicode(
        config=True,
        help="""Base URL of the local BigQuery endpoint (``BIGQUERY_EMULATOR_HOST`` of user servers).\n\n.. versionadded:: 0.1""",
    )

    key_file = Unicode(
        config=True,
        help="""File (0600) holding the key shared with the local BigQuery endpoint.\n\n.. versionadded:: 0.1""",
    )

    _created: set

    def _key(self) -> bytes:
        try:
            with open(self.key_file, "rb") as f:
                return f.read().strip()
        except OSError:
            raise UpstreamError("The local BigQuery key is missing; restart labdeck", kind="misconfigured") from None

    async def ensure_dataset(self, dataset: str) -> None:
        created = self.__dict__.setdefault("_created", set())
        if dataset in created:
            return
        admin = localtoken.issue(self._key(), {"sub": "labdeck-broker", "admin": True, "projects": [self.project]}, ttl=60)
        url = f"{self.emulator_url.rstrip('/')}/bigquery/v2/projects/{self.project}/datasets"
        body = {"datasetReference": {"projectId": self.project, "datasetId": dataset}, "description": "Your own dataset (labdeck)"}
        req = HTTPRequest(
            url,
            method="POST",
            body=json.dumps(body),
            headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
            request_timeout=20,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except OSError:
            raise UpstreamError("The local BigQuery endpoint is unreachable; try again shortly", kind="unreachable") from None
        if resp.code not in (200, 409):
            raise UpstreamError(f"Could not create your BigQuery dataset {dataset} (HTTP {resp.code})")
        created.add(dataset)

    async def issue(self, identity: Identity, grants: Grants) -> IssuedCredential:
        own = self.own_dataset(identity)
        await self.ensure_dataset(own)
        claims = gcp_requests.local_token_claims(identity.name, self.project, own, grants)
        token = localtoken.issue(self._key(), claims, ttl=self.ttl_seconds)
        exp = localtoken.verify(self._key(), token)["exp"]
        return IssuedCredential(payload={"access_token": token}, expires_at=float(exp), reference=f"{self.project}.{own}")
