"""Pure builders for what the AWS providers send: names, IAM policies, AssumeRole parameters.

No SDK calls and no state: every function takes plain values and returns plain
values, so tests compare whole dicts. The policy is sent as the AssumeRole
session policy of one shared role, on AWS and against the embedded default's
local endpoint alike (it evaluates session policies and ``s3:prefix``
conditions as AWS does, :mod:`labdeck.emulators.aws_iam`).
"""

from __future__ import annotations

import json

from jupyterhub.slugs import safe_slug

from labdeck.hub.contract import home_prefix

from .grants import Grants

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


def role_session_name(username: str) -> str:
    """An STS ``RoleSessionName`` for ``username`` (valid for any username)."""
    return safe_slug(username, max_length=SESSION_NAME_MAX)


def _prefix_patterns(prefixes) -> list[str]:
    """``s3:prefix`` patterns matching listings inside ``prefixes`` (``p/*``) and of the folder itself (``p``)."""
    return [p + "*" for p in prefixes] + [p.rstrip("/") for p in prefixes]


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
        prefix, ``ListBucket`` limited by ``s3:prefix`` to those prefixes (so not
        the bucket root, nor another person's home), and an explicit deny, of
        objects and of listing, on restricted prefixes of groups the user is not in.
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
            "Condition": {"StringLike": {"s3:prefix": _prefix_patterns(listable)}},
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
        # a restricted prefix under a listable one (shared/analysts/ under shared/) is not listable either
        statements.append(
            {
                "Sid": "DenyListingRestrictedPrefixes",
                "Effect": "Deny",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
                "Condition": {"StringLike": {"s3:prefix": _prefix_patterns(grants.s3_denied)}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def policy_json(policy: dict) -> str:
    """Compact JSON, as IAM and STS want it (session policies are size-limited)."""
    return json.dumps(policy, separators=(",", ":"), sort_keys=True)


def assume_role_params(role_arn: str, username: str, ttl_seconds: int, session_policy: dict) -> dict:
    """Keyword arguments for ``sts.assume_role``: the shared role, scoped down to one person by ``session_policy``."""
    return {
        "RoleArn": role_arn,
        "RoleSessionName": role_session_name(username),
        "DurationSeconds": int(ttl_seconds),
        "Tags": [{"Key": "labdeck-user", "Value": role_session_name(username)}],
        "Policy": policy_json(session_policy),
    }
