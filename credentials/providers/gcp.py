"""A credential provider for BigQuery: short-lived access tokens by service-account impersonation.

The broker's own Google identity comes from ``google.auth.default()`` — GKE
Workload Identity in a cluster (its Kubernetes ServiceAccount annotated with
``iam.gke.io/gcp-service-account``). It calls the IAM Credentials API
``generateAccessToken`` for the service account chosen for the user
(:func:`labdeck.credentials.gcp_requests.impersonation_target`), so the broker
account needs ``roles/iam.serviceAccountTokenCreator`` on those accounts only.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import List, Unicode, default

from labdeck.hub import contract

from .. import gcp_requests
from ..grants import Grants
from .base import CredentialProvider, Identity, IssuedCredential, UpstreamError


def _parse_expire_time(value: str) -> float:
    # "2026-11-23T11:00:00Z" or with fractional seconds
    value = value.rstrip("Z")
    if "." in value:
        value = value.split(".", 1)[0]
    return datetime.datetime.fromisoformat(value).replace(tzinfo=datetime.timezone.utc).timestamp()


class GCPProvider(CredentialProvider):
    """BigQuery access tokens minted by impersonating a service account."""

    name = "gcp"

    project = Unicode(
        config=True,
        help="""Default Google Cloud project: ``GOOGLE_CLOUD_PROJECT`` of user servers and the project of user datasets.

        .. versionadded:: 0.1
        """,
    )

    dataset_template = Unicode(
        contract.DEFAULT_DATASET_TEMPLATE,
        config=True,
        help="""Name of each user's own BigQuery dataset (``{username}`` is an escaped, collision-free slug).

        .. versionadded:: 0.1
        """,
    )

    service_account = Unicode(
        config=True,
        help="""Service account impersonated for users with no more specific one.

        .. versionadded:: 0.1
        """,
    )

    service_account_template = Unicode(
        config=True,
        help="""Per-user service account, e.g. ``lab-{username}@{project}.iam.gserviceaccount.com``.

        When set it wins over ``service_account`` and over service accounts named
        in grants: per-user accounts are how a user's own dataset is kept private
        on real GCP (grant each account access to its user's dataset).

        .. versionadded:: 0.1
        """,
    )

    scopes = List(
        Unicode(),
        list(gcp_requests.BIGQUERY_SCOPES),
        config=True,
        help="""OAuth scopes of minted tokens.\n\n.. versionadded:: 0.1""",
    )

    iam_credentials_url = Unicode(
        gcp_requests.IAM_CREDENTIALS_URL,
        config=True,
        help="""Base URL of the IAM Credentials API.\n\n.. versionadded:: 0.1""",
    )

    @default("project")
    def _project_default(self):
        return os.environ.get("GOOGLE_CLOUD_PROJECT", "")

    def own_dataset(self, identity: Identity) -> str:
        return gcp_requests.user_dataset(identity.name, self.dataset_template)

    async def _broker_token(self) -> str:
        """The broker's own access token (workload identity), refreshed by google-auth."""
        import google.auth
        import google.auth.transport.requests

        def fetch():
            creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
            creds.refresh(google.auth.transport.requests.Request())
            return creds.token

        try:
            return await asyncio.get_running_loop().run_in_executor(None, fetch)
        except Exception as e:
            raise UpstreamError(f"The credential broker has no Google identity of its own ({type(e).__name__})", kind="misconfigured") from None

    async def issue(self, identity: Identity, grants: Grants) -> IssuedCredential:
        target = gcp_requests.impersonation_target(
            identity.name, grants, self.service_account, self.service_account_template, self.project
        )
        if not target:
            raise UpstreamError("BigQuery is not configured: no service account to impersonate (GCPProvider.service_account)", kind="misconfigured")
        url, body = gcp_requests.generate_access_token_request(target, self.scopes, self.ttl_seconds, self.iam_credentials_url)
        token = await self._broker_token()
        req = HTTPRequest(
            url,
            method="POST",
            body=json.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            request_timeout=20,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req)
        except HTTPClientError as e:
            detail = ""
            try:
                detail = json.loads(e.response.body)["error"]["message"] if e.response else ""
            except Exception:
                pass
            raise UpstreamError(f"Google IAM refused to mint a token for {target} (HTTP {e.code}) {detail}".strip()) from None
        except OSError:
            raise UpstreamError("The Google IAM Credentials API is unreachable; try again shortly", kind="unreachable") from None
        reply = json.loads(resp.body)
        return IssuedCredential(
            payload={"access_token": reply["accessToken"]},
            expires_at=_parse_expire_time(reply["expireTime"]),
            reference=target,
        )

    def render(self, credential: IssuedCredential) -> dict:
        return gcp_requests.token_exchange_reply(credential.payload["access_token"], max(0, int(credential.remaining())))

    def describe(self, identity: Identity) -> dict:
        return {"project": self.project, "dataset": self.own_dataset(identity)}
