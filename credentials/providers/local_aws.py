"""A credential provider for the local AWS emulator (moto): one IAM role per user.

moto evaluates a role's own policies but ignores AssumeRole session policies,
so instead of scoping one shared role per session, each user gets a role of
their own whose inline policy is the same document the real-AWS provider sends
as a session policy. The policy is re-put on every fresh issuance, so a change
of grants takes effect at the next credential refresh.
"""

from __future__ import annotations

import json

from .. import policy
from ..grants import Grants
from .aws import AWSProvider, credential_process_payload
from .base import Identity, IssuedCredential, UpstreamError


class LocalAWSProvider(AWSProvider):
    """Per-user IAM roles in the local moto server, assumed through its STS."""

    name = "aws"

    _account_id = None
    _caller_arn = None

    def _client_config(self):
        # STS refuses DurationSeconds < 900; the emulator honours shorter
        # sessions, which the tests use to see credentials really expire.
        from botocore.config import Config

        return super()._client_config().merge(Config(parameter_validation=self.ttl_seconds >= 900))

    async def _whoami(self):
        if self._caller_arn is None:
            ident = await self._call(self._client("sts").get_caller_identity)
            self._account_id = ident["Account"]
            self._caller_arn = ident["Arn"]
        return self._account_id, self._caller_arn

    async def ensure_role(self, identity: Identity, grants: Grants) -> str:
        """Create the user's role if needed and put their current policy on it; return its ARN."""
        account, caller = await self._whoami()
        iam = self._client("iam")
        name = policy.role_name(identity.name)
        try:
            await self._call(
                iam.create_role,
                RoleName=name,
                AssumeRolePolicyDocument=policy.policy_json(policy.trust_policy(caller)),
                MaxSessionDuration=max(3600, self.ttl_seconds),
                Tags=[{"Key": "labdeck-user", "Value": policy.role_session_name(identity.name)}],
            )
        except UpstreamError as e:
            if "EntityAlreadyExists" not in str(e):
                raise
        await self._call(
            iam.put_role_policy,
            RoleName=name,
            PolicyName="labdeck-s3",
            PolicyDocument=json.dumps(policy.s3_policy(self.bucket, identity.name, grants)),
        )
        return f"arn:aws:iam::{account}:role/{name}"

    async def issue(self, identity: Identity, grants: Grants) -> IssuedCredential:
        role_arn = await self.ensure_role(identity, grants)
        params = policy.assume_role_params(role_arn, identity.name, self.ttl_seconds, None)
        reply = await self._call(self._client("sts").assume_role, **params)
        creds = reply["Credentials"]
        return IssuedCredential(
            payload=credential_process_payload(creds),
            expires_at=creds["Expiration"].timestamp(),
            reference=role_arn,
        )
