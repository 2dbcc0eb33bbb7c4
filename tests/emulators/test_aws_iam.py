"""labdeck.emulators.aws_iam: IAM evaluation as AWS does it (pure; no server).

Each case states the AWS rule it checks (IAM User Guide: policy evaluation logic,
condition operators, "condition key not present", session policies).
"""

import datetime

import pytest

from labdeck.credentials import policy
from labdeck.credentials.grants import resolve_grants
from labdeck.emulators import aws_iam
from labdeck.emulators.aws_iam import UnsupportedCondition, condition_holds, evaluate, request_context

GRANTS = {
    "everyone": {"s3": [{"prefix": "shared/", "access": "ro"}]},
    "groups": {"analysts": {"s3": [{"prefix": "shared/analysts/", "access": "ro"}]}},
}
BUCKET_ARN = "arn:aws:s3:::data"
ROLE = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": [BUCKET_ARN, BUCKET_ARN + "/*"]}]}
NOW = datetime.datetime(2026, 11, 23, 10, 0, tzinfo=datetime.timezone.utc)


def ctx(path="/data", action="s3:ListBucket", **principal):
    return request_context(action, path, "us-east-1", principal, now=NOW)


def session(user, groups=()):
    return policy.s3_policy("data", user, resolve_grants(GRANTS, user, list(groups)))


def may_list(user, path, groups=()):
    return evaluate([ROLE], "s3:ListBucket", BUCKET_ARN, ctx(path), [session(user, groups)])


@pytest.mark.parametrize(
    "user, groups, path, allowed",
    [
        ("alice", (), "/data?list-type=2&prefix=home%2Falice%2F", True),
        ("alice", (), "/data?list-type=2&prefix=home%2Falice%2Fdeep%2Fer%2F&delimiter=%2F", True),
        ("alice", (), "/data?list-type=2&prefix=home%2Falice", True),
        ("alice", (), "/data?list-type=2&prefix=home%2Fbob%2F", False),
        ("alice", (), "/data?list-type=2&prefix=home%2Falicex%2F", False),  # not a sibling with a longer name
        ("alice", (), "/data?list-type=2&prefix=home%2F", False),
        ("alice", (), "/data?list-type=2", False),  # the bucket root: no s3:prefix in the context
        ("alice", (), "/data?list-type=2&prefix=", False),  # the root, asked for explicitly
        ("alice", (), "/data?prefix=home%2Fbob%2F", False),  # ListObjects (v1) is s3:ListBucket too
        ("alice", (), "/data?list-type=2&prefix=shared%2Fdemo%2F", True),
        ("alice", (), "/data?list-type=2&prefix=shared%2Fanalysts%2F", False),  # a group she is not in
        ("alice", (), "/data?list-type=2&prefix=shared%2Fanalysts", False),
        ("carol", ("analysts",), "/data?list-type=2&prefix=shared%2Fanalysts%2F", True),  # a member
    ],
)
def test_listing_follows_s3_prefix(user, groups, path, allowed):
    assert may_list(user, path, groups) is allowed


def test_session_policy_intersects_with_the_role():
    alice = [session("alice")]
    own, bobs = BUCKET_ARN + "/home/alice/x", BUCKET_ARN + "/home/bob/x"
    assert evaluate([ROLE], "s3:PutObject", own, ctx(), alice)
    assert not evaluate([ROLE], "s3:PutObject", bobs, ctx(), alice)  # the role allows it, the session does not
    assert not evaluate([ROLE], "s3:DeleteBucket", BUCKET_ARN, ctx(), alice)
    # the session policy never adds to the role: a role without S3 gets nothing
    assert not evaluate([{"Statement": [{"Effect": "Allow", "Action": "sts:*", "Resource": "*"}]}], "s3:PutObject", own, ctx(), alice)
    # without a session policy the role's own policies decide
    assert evaluate([ROLE], "s3:PutObject", bobs, ctx(), None)


def test_explicit_deny_wins_in_either_policy():
    deny = {"Statement": [{"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}]}
    allow_all = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    key = BUCKET_ARN + "/home/alice/x"
    assert not evaluate([ROLE, deny], "s3:GetObject", key, ctx(), [allow_all])
    assert not evaluate([ROLE], "s3:GetObject", key, ctx(), [allow_all, deny])
    # a group member's session: shared/analysts/ is denied to everyone else only
    assert not evaluate([ROLE], "s3:GetObject", BUCKET_ARN + "/shared/analysts/t.csv", ctx(), [session("alice")])
    assert evaluate([ROLE], "s3:GetObject", BUCKET_ARN + "/shared/analysts/t.csv", ctx(), [session("carol", ["analysts"])])


def test_an_allow_whose_condition_fails_is_not_a_deny():
    """moto turns a failed condition into an explicit Deny; AWS just skips the statement."""
    conditional = {"Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*", "Condition": {"StringEquals": {"s3:prefix": "x/"}}}]}
    plain = {"Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
    assert evaluate([conditional, plain], "s3:ListBucket", BUCKET_ARN, ctx("/data?prefix=y%2F"))


def test_not_action_and_not_resource():
    doc = {"Statement": [{"Effect": "Allow", "NotAction": "s3:Delete*", "NotResource": BUCKET_ARN + "/private/*"}]}
    assert evaluate([doc], "s3:GetObject", BUCKET_ARN + "/a", ctx())
    assert not evaluate([doc], "s3:DeleteObject", BUCKET_ARN + "/a", ctx())
    assert not evaluate([doc], "s3:GetObject", BUCKET_ARN + "/private/a", ctx())
    # actions match case-insensitively, resources case-sensitively
    assert evaluate([{"Statement": [{"Effect": "Allow", "Action": "S3:getobject", "Resource": BUCKET_ARN + "/a"}]}], "s3:GetObject", BUCKET_ARN + "/a", ctx())
    assert not evaluate([{"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": BUCKET_ARN + "/A"}]}], "s3:GetObject", BUCKET_ARN + "/a", ctx())


C = {"s3:prefix": ["home/alice/"], "s3:max-keys": ["100"], "aws:securetransport": ["false"], "aws:principaltag/team": ["ml"]}


@pytest.mark.parametrize(
    "operator, key, expected, holds",
    [
        ("StringEquals", "s3:prefix", "home/alice/", True),
        ("StringEquals", "S3:Prefix", ["x", "home/alice/"], True),  # key names are case-insensitive; values OR
        ("StringEquals", "s3:prefix", "home/*", False),  # no wildcards in StringEquals
        ("StringEqualsIgnoreCase", "s3:prefix", "HOME/ALICE/", True),
        ("StringLike", "s3:prefix", "home/*", True),
        ("StringLike", "s3:prefix", "home/?lice/", True),
        ("StringLike", "s3:prefix", "Home/*", False),  # case-sensitive
        ("StringNotEquals", "s3:prefix", ["a", "b"], True),  # not equal to any (NOR)
        ("StringNotEquals", "s3:prefix", ["a", "home/alice/"], False),
        ("StringNotLike", "s3:prefix", "home/bob/*", True),
        # a key missing from the context: false, except negated operators, IfExists, ForAllValues, Null
        ("StringLike", "s3:delimiter", "*", False),
        ("StringNotLike", "s3:delimiter", "/", True),
        ("StringEqualsIfExists", "s3:delimiter", "/", True),
        ("StringEqualsIfExists", "s3:prefix", "other/", False),  # present: checked
        ("ForAllValues:StringEquals", "aws:tagkeys", "a", True),
        ("ForAnyValue:StringEquals", "aws:tagkeys", "a", False),
        ("Null", "s3:delimiter", "true", True),
        ("Null", "s3:prefix", "true", False),
        ("Null", "s3:prefix", False, True),
        ("NumericLessThanEquals", "s3:max-keys", "100", True),
        ("NumericLessThan", "s3:max-keys", 100, False),
        ("NumericGreaterThan", "s3:max-keys", "not-a-number", False),
        ("NumericNotEquals", "s3:max-keys", "5", True),
        ("Bool", "aws:SecureTransport", "false", True),
        ("Bool", "aws:SecureTransport", True, False),
        ("StringEquals", "aws:PrincipalTag/team", "ml", True),
        # policy variables, replaced from the request context
        ("StringLike", "s3:prefix", "home/${aws:username}/*", True),
        ("StringLike", "s3:prefix", "home/${aws:userid}/*", False),  # not in the context: matches nothing
    ],
)
def test_condition_operators(operator, key, expected, holds):
    context = {**C, "aws:username": ["alice"]}
    assert condition_holds(operator, key, expected, context) is holds


def test_multi_valued_keys_and_set_qualifiers():
    context = {"aws:tagkeys": ["env", "team"]}
    assert condition_holds("ForAllValues:StringEquals", "aws:TagKeys", ["env", "team", "owner"], context)
    assert not condition_holds("ForAllValues:StringEquals", "aws:TagKeys", ["env"], context)
    assert condition_holds("ForAnyValue:StringEquals", "aws:TagKeys", ["env"], context)
    assert not condition_holds("ForAnyValue:StringLike", "aws:TagKeys", ["own*"], context)


def test_dates_and_addresses():
    context = {"aws:currenttime": ["2026-11-23T10:00:00Z"], "aws:sourceip": ["127.0.0.1"]}
    assert condition_holds("DateLessThan", "aws:CurrentTime", "2027-01-01T00:00:00Z", context)
    assert condition_holds("DateGreaterThan", "aws:CurrentTime", "1700000000", context)  # epoch seconds too
    assert condition_holds("IpAddress", "aws:SourceIp", "127.0.0.0/8", context)
    assert condition_holds("NotIpAddress", "aws:SourceIp", ["10.0.0.0/8", "192.168.0.0/16"], context)


def test_every_key_and_operator_of_a_block_must_hold():
    block = {"StringLike": {"s3:prefix": "home/*"}, "StringEquals": {"s3:delimiter": "/"}}
    assert aws_iam.conditions_hold(block, {"s3:prefix": ["home/a/"], "s3:delimiter": ["/"]})
    assert not aws_iam.conditions_hold(block, {"s3:prefix": ["home/a/"]})


@pytest.mark.parametrize("operator", ["StringSortOf", "Sometimes:StringEquals", "IpAddressIfMaybe"])
def test_an_unknown_operator_is_refused_not_ignored(operator):
    with pytest.raises(UnsupportedCondition):
        condition_holds(operator, "s3:prefix", "x", {"s3:prefix": ["x"]})
    doc = {"Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*", "Condition": {operator: {"s3:prefix": "x"}}}]}
    with pytest.raises(UnsupportedCondition):
        evaluate([doc], "s3:ListBucket", BUCKET_ARN, {"s3:prefix": ["x"]})


def test_request_context_of_a_listing_and_of_other_actions():
    listing = request_context(
        "s3:ListBucket", "/data?list-type=2&prefix=home%2Falice%2F&delimiter=%2F&max-keys=10", "eu-west-1", {"aws:username": "alice", "aws:userid": ""}, now=NOW
    )
    assert listing == {
        "aws:currenttime": ["2026-11-23T10:00:00Z"],
        "aws:epochtime": [str(int(NOW.timestamp()))],
        "aws:securetransport": ["false"],
        "aws:requestedregion": ["eu-west-1"],
        "aws:username": ["alice"],
        "s3:prefix": ["home/alice/"],
        "s3:delimiter": ["/"],
        "s3:max-keys": ["10"],
    }
    assert "s3:prefix" not in request_context("s3:ListBucket", "/data?list-type=2", "us-east-1", {}, now=NOW)
    assert request_context("s3:ListBucket", "/data?prefix=", "us-east-1", {}, now=NOW)["s3:prefix"] == [""]
    # only listing actions carry the listing keys
    assert "s3:prefix" not in request_context("s3:GetObject", "/data/k?prefix=x", "us-east-1", {}, now=NOW)
