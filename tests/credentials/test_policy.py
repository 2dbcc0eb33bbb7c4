import json

import pytest

from labdeck.credentials import policy
from labdeck.credentials.grants import GrantConfigError, Grants, S3Grant, resolve_grants, validate_grant_config

GRANTS = {
    "everyone": {"s3": [{"prefix": "shared/", "access": "ro"}]},
    "groups": {
        "analysts": {"s3": [{"prefix": "shared/analysts/", "access": "ro"}], "bigquery": [{"dataset": "p.sales", "access": "ro"}]},
        "eng": {"s3": [{"prefix": "projects/eng", "access": "rw"}]},
    },
    "users": {"alice": {"s3": [{"prefix": "projects/eng/", "access": "ro"}], "bigquery": [{"dataset": "p.sales", "access": "rw"}]}},
}


def test_policy_for_plain_user_is_home_rw_shared_ro_and_restricted_denied():
    g = resolve_grants(GRANTS, "bob", [])
    assert policy.s3_policy("data", "bob", g) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListOwnAndGrantedPrefixes",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": ["arn:aws:s3:::data"],
                "Condition": {"StringLike": {"s3:prefix": ["home/bob/*", "shared/*", "home/bob", "shared"]}},
            },
            {"Sid": "BucketLocation", "Effect": "Allow", "Action": ["s3:GetBucketLocation"], "Resource": ["arn:aws:s3:::data"]},
            {
                "Sid": "ReadWriteHomeAndGrants",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:GetObjectVersion",
                    "s3:GetObjectTagging",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:PutObjectTagging",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                "Resource": ["arn:aws:s3:::data/home/bob/*"],
            },
            {
                "Sid": "ReadOnlyGrants",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging"],
                "Resource": ["arn:aws:s3:::data/shared/*"],
            },
            {"Sid": "DenyRestrictedPrefixes", "Effect": "Deny", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::data/shared/analysts/*"]},
            {
                "Sid": "DenyListingRestrictedPrefixes",
                "Effect": "Deny",
                "Action": ["s3:ListBucket"],
                "Resource": ["arn:aws:s3:::data"],
                "Condition": {"StringLike": {"s3:prefix": ["shared/analysts/*", "shared/analysts"]}},
            },
        ],
    }


def test_group_member_gets_group_prefix_and_no_deny():
    g = resolve_grants(GRANTS, "carol", ["analysts"])
    assert g.s3 == (S3Grant("shared/", "ro"), S3Grant("shared/analysts/", "ro"))
    assert g.s3_denied == ()
    assert [b.dataset for b in g.bigquery] == ["p.sales"]


def test_rw_wins_over_ro_and_prefixes_are_normalized():
    g = resolve_grants(GRANTS, "alice", ["eng"])
    assert S3Grant("projects/eng/", "rw") in g.s3
    assert S3Grant("projects/eng/", "ro") not in g.s3
    assert {(b.dataset, b.access) for b in g.bigquery} == {("p.sales", "rw")}
    doc = policy.s3_policy("data", "alice", g)
    rw = next(s for s in doc["Statement"] if s["Sid"] == "ReadWriteHomeAndGrants")
    assert rw["Resource"] == ["arn:aws:s3:::data/home/alice/*", "arn:aws:s3:::data/projects/eng/*"]


@pytest.mark.parametrize(
    "config, message",
    [
        ({"everyone": {"s3": [{"prefix": "../x", "access": "ro"}]}}, "plain key prefix"),
        ({"everyone": {"s3": [{"prefix": "shared/*", "access": "ro"}]}}, "plain key prefix"),
        ({"everyone": {"s3": [{"prefix": "x/", "access": "write"}]}}, "'access' must be one of"),
        ({"groups": {"a": {"bigquery": [{"dataset": "nodot"}]}}}, "project.dataset"),
        ({"groups": {"a": {"gcs": []}}}, "unknown key"),
        ({"team": {}}, "unknown key"),
        ({"groups": []}, "expected a mapping"),
    ],
)
def test_bad_grant_config_is_rejected_with_a_message_naming_the_entry(config, message):
    with pytest.raises(GrantConfigError) as e:
        validate_grant_config(config)
    assert message in str(e.value)


def test_session_names_are_valid_for_sts_and_distinct():
    names = ["alice", "a.b", "a_b", "alice@example.com", "x" * 64]
    sessions = [policy.role_session_name(n) for n in names]
    assert len(set(sessions)) == len(names)
    import re

    for s in sessions:
        assert 2 <= len(s) <= 64 and re.fullmatch(r"[\w+=,.@-]+", s)


def test_assume_role_params_carry_the_session_policy():
    g = Grants()
    shared = policy.assume_role_params("arn:aws:iam::1:role/r", "alice", 3600, policy.s3_policy("b", "alice", g))
    assert {k: v for k, v in shared.items() if k != "Policy"} == {
        "RoleArn": "arn:aws:iam::1:role/r",
        "RoleSessionName": "alice",
        "DurationSeconds": 3600,
        "Tags": [{"Key": "labdeck-user", "Value": "alice"}],
    }
    assert json.loads(shared["Policy"]) == policy.s3_policy("b", "alice", g)
    assert len(shared["Policy"]) < 2048  # STS packed session policy limit
