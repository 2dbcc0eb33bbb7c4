"""A credential provider for Amazon S3: STS AssumeRole with a per-user session policy.

One shared role (``role_arn``) is assumed for every user; each session is
scoped down by the session policy built in :mod:`labdeck.credentials.policy`.
The broker's own AWS identity comes from boto3's default chain, so IRSA (web
identity: ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE`` injected by EKS
into the broker pod) works without configuration here.

The embedded default runs this same provider against its local endpoint
(:mod:`labdeck.emulators.aws`), which evaluates session policies and
conditions as AWS does: one STS call per person, no per-person IAM role.
"""

from __future__ import annotations

import asyncio
import datetime

from traitlets import Unicode, default

from labdeck.hub import contract

from .. import policy
from ..grants import Grants
from .base import CredentialProvider, Identity, IssuedCredential, UpstreamError


def _expiration_iso(expiration) -> str:
    if isinstance(expiration, datetime.datetime):
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=datetime.timezone.utc)
        return expiration.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(expiration)


def credential_process_payload(sts_credentials: dict) -> dict:
    """Translate STS ``Credentials`` into the ``credential_process`` JSON format."""
    exp = sts_credentials["Expiration"]
    return {
        "Version": 1,
        "AccessKeyId": sts_credentials["AccessKeyId"],
        "SecretAccessKey": sts_credentials["SecretAccessKey"],
        "SessionToken": sts_credentials["SessionToken"],
        "Expiration": _expiration_iso(exp),
    }


def _readable_client_error(exc) -> str:
    """A message for a person, from a botocore error (no request ids, no secrets)."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"AWS refused the request ({err.get('Code', 'error')}): {err.get('Message', '')}".strip()
    if isinstance(exc, EndpointConnectionError):
        return "The AWS STS/IAM endpoint is unreachable; try again shortly"
    if isinstance(exc, NoCredentialsError):
        return "The credential broker has no AWS identity of its own (check its IRSA/role setup)"
    return f"AWS call failed: {type(exc).__name__}"


class AWSProvider(CredentialProvider):
    """Scoped S3 credentials from STS AssumeRole of one shared role."""

    name = "aws"

    region = Unicode(
        "us-east-1",
        config=True,
        help="""AWS region for STS calls and the ``AWS_DEFAULT_REGION`` of user servers.

        .. versionadded:: 0.1
        """,
    )

    bucket = Unicode(
        config=True,
        help="""The data bucket. Every user gets ``s3://<bucket>/home/<user>/`` read-write.

        .. versionadded:: 0.1
        """,
    )

    role_arn = Unicode(
        config=True,
        help="""ARN of the role the broker assumes on behalf of users.

        Its own policy must allow at least everything any grant gives; each
        session is scoped down by a per-user session policy. Its trust policy
        must allow the broker's identity (e.g. its IRSA role) to call
        ``sts:AssumeRole`` and ``sts:TagSession``.

        .. versionadded:: 0.1
        """,
    )

    endpoint_url = Unicode(
        config=True,
        help="""Endpoint for STS/IAM calls; empty for AWS itself.

        Defaults to the ``AWS_ENDPOINT_URL`` environment variable, which boto3
        honours as well. The embedded default points it at the local moto server.

        .. versionadded:: 0.1
        """,
    )

    @default("endpoint_url")
    def _endpoint_url_default(self):
        import os

        return os.environ.get("AWS_ENDPOINT_URL", "")

    def _client_config(self):
        """botocore ``Config`` for STS clients: short timeouts, so a hung endpoint fails readably.

        botocore refuses ``DurationSeconds`` below STS's 900 s before sending; the
        local emulator honours shorter sessions, which the tests use to see
        credentials really expire, so for those the check is left to the endpoint
        (AWS itself answers such a request with a readable ``ValidationError``).
        """
        from botocore.config import Config

        return Config(
            connect_timeout=3, read_timeout=10, retries={"max_attempts": 2}, parameter_validation=self.ttl_seconds >= 900
        )

    #: error codes after which cached clients are rebuilt (the broker's own keys changed)
    _STALE_IDENTITY = {"InvalidClientTokenId", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}

    def _client(self, service: str):
        """A cached boto3 client (building one costs ~100 ms; clients are thread-safe)."""
        import boto3

        clients = self.__dict__.setdefault("_clients", {})
        if service not in clients:
            kwargs = {"region_name": self.region, "config": self._client_config()}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            clients[service] = boto3.session.Session().client(service, **kwargs)
        return clients[service]

    async def _call(self, fn, /, **kwargs):
        """Run a blocking boto3 call off the event loop, mapping errors to UpstreamError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(**kwargs))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in self._STALE_IDENTITY:
                # e.g. the local emulator restarted and re-seeded the broker's keys:
                # rebuild clients (re-reading credentials) for the next call
                self.__dict__.pop("_clients", None)
            raise UpstreamError(_readable_client_error(e)) from None
        except BotoCoreError as e:
            raise UpstreamError(_readable_client_error(e), kind="unreachable") from None

    def session_policy(self, identity: Identity, grants: Grants) -> dict:
        return policy.s3_policy(self.bucket, identity.name, grants)

    async def issue(self, identity: Identity, grants: Grants) -> IssuedCredential:
        if not self.role_arn:
            raise UpstreamError("AWS is not configured: AWSProvider.role_arn is empty", kind="misconfigured")
        sts = self._client("sts")
        params = policy.assume_role_params(
            self.role_arn, identity.name, self.ttl_seconds, self.session_policy(identity, grants)
        )
        reply = await self._call(sts.assume_role, **params)
        creds = reply["Credentials"]
        return IssuedCredential(
            payload=credential_process_payload(creds),
            expires_at=creds["Expiration"].timestamp(),
            reference=reply.get("AssumedRoleUser", {}).get("Arn", self.role_arn),
        )

    def describe(self, identity: Identity) -> dict:
        return {"bucket": self.bucket, "home": contract.s3_home(self.bucket, identity.name), "region": self.region}
