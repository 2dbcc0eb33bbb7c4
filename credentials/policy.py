"""Pure builders for what the AWS providers send: names, IAM policies, AssumeRole parameters.

No SDK calls and no state: every function takes plain values and returns plain
values, so tests compare whole dicts. One policy builder serves both AWS
paths: the local provider puts it on a per-user IAM role (moto evaluates a
role's own policies but ignores session policies), the real-AWS provider sends
it as the AssumeRole session policy of one shared role.
"""

from __future__ import annotations

import json

from jupyterhub.slugs import safe_slug

from .grants import Grants

#: IAM role names are at most 64 characters; leave room for the prefix.
ROLE_PREFIX = "labdeck-user-"
#: STS RoleSessionName: 2-64 characters of [\w+=,.@-].
SESSION_NAME_MAX = 64

_READ_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging"]
_WRITE_ACTIONS = [
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:PutObjectTagging",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]


def home_prefix(username: str) -> str:
    """The S3 key prefix of a user's home: ``home/<username>/``."""
    return f"home/{username}/"


def s3_home_url(bucket: str, username: str) -> str:
    """``s3://<bucket>/home/<username>/``, what ``LABDECK_S3_HOME`` holds."""
    return f"s3://{bucket}/{home_prefix(username)}"


def role_name(username: str) -> str:
    """The per-user IAM role name used by the local provider (valid, collision-free)."""
    return ROLE_PREFIX + safe_slug(username, max_length=64 - len(ROLE_PREFIX))


def role_session_name(username: str) -> str:
    """An STS ``RoleSessionName`` for ``username`` (valid for any username)."""
    return safe_slug(username, max_length=SESSION_NAME_MAX)


def _object_arn(bucket: str, prefix: str) -> str:
    return f"arn:aws:s3:::{bucket}/{prefix}*"


def s3_policy(bucket: str, username: str, grants: Grants) -> dict:
    """The IAM policy document for ``username`` on ``bucket``.

    Parameters
    ----------
    bucket : str
        The data bucket.
    username : str
        A validated JupyterHub username.
    grants : Grants
        From :func:`labdeck.credentials.grants.resolve_grants`.

    Returns
    -------
    dict
        Read-write on ``home/<user>/*``, read-only or read-write on each granted
        prefix, ``ListBucket`` limited by ``s3:prefix`` to those prefixes, and an
        explicit deny on restricted prefixes of groups the user is not in.
    """
    home = home_prefix(username)
    rw = [home] + [g.prefix for g in grants.s3 if g.access == "rw" and g.prefix != home]
    ro = [g.prefix for g in grants.s3 if g.access == "ro" and g.prefix not in rw]
    listable = rw + ro
    statements = [
        {
            "Sid": "ListOwnAndGrantedPrefixes",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
            "Condition": {"StringLike": {"s3:prefix": [p + "*" for p in listable] + [p.rstrip("/") for p in listable]}},
        },
        {
            "Sid": "BucketLocation",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
        },
        {
            "Sid": "ReadWriteHomeAndGrants",
            "Effect": "Allow",
            "Action": _READ_ACTIONS + _WRITE_ACTIONS,
            "Resource": [_object_arn(bucket, p) for p in rw],
        },
    ]
    if ro:
        statements.append(
            {
                "Sid": "ReadOnlyGrants",
                "Effect": "Allow",
                "Action": list(_READ_ACTIONS),
                "Resource": [_object_arn(bucket, p) for p in ro],
            }
        )
    if grants.s3_denied:
        statements.append(
            {
                "Sid": "DenyRestrictedPrefixes",
                "Effect": "Deny",
                "Action": ["s3:*"],
                "Resource": [_object_arn(bucket, p) for p in grants.s3_denied],
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def policy_json(policy: dict) -> str:
    """Compact JSON, as IAM and STS want it (session policies are size-limited)."""
    return json.dumps(policy, separators=(",", ":"), sort_keys=True)


def assume_role_params(role_arn: str, username: str, ttl_seconds: int, session_policy: dict | None) -> dict:
    """Keyword arguments for ``sts.assume_role``.

    ``session_policy`` is ``None`` when the role itself carries the user's
    policy (the local provider), and the per-user policy when one shared role
    is scoped down per session (real AWS).
    """
    params = {
        "RoleArn": role_arn,
        "RoleSessionName": role_session_name(username),
        "DurationSeconds": int(ttl_seconds),
        "Tags": [{"Key": "labdeck-user", "Value": role_session_name(username)}],
    }
    if session_policy is not None:
        params["Policy"] = policy_json(session_policy)
    return params


def trust_policy(principal_arn: str) -> dict:
    """Trust policy letting the broker's identity assume a per-user role."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal_arn}, "Action": ["sts:AssumeRole", "sts:TagSession"]}],
    }
