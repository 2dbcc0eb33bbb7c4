"""The local AWS endpoint (labdeck.emulators.aws) refuses what AWS refuses, with the broker's real provider.

A real moto server (``python -m labdeck.emulators.aws``, seeded, IAM enforced) on a
free 127.0.0.1 port; credentials come from the production ``AWSProvider`` (one role,
AssumeRole with the person's session policy) and are used with the real boto3.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from labdeck.credentials.grants import resolve_grants
from labdeck.credentials.providers.aws import AWSProvider
from labdeck.credentials.providers.base import Identity
from labdeck.emulators import aws
from tests.helpers.platform import free_port

BUCKET = "labdeck-data"
REGION = "us-east-1"
GRANTS = {
    "everyone": {"s3": [{"prefix": "shared/", "access": "ro"}]},
    "groups": {"analysts": {"s3": [{"prefix": "shared/analysts/", "access": "ro"}]}},
}


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """A seeded, enforcing local AWS endpoint; yields (endpoint, broker credentials file)."""
    work = tmp_path_factory.mktemp("aws")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "inf", "AWS_ACCESS_KEY_ID": "seed", "AWS_SECRET_ACCESS_KEY": "seed"}
    with open(work / "moto.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "labdeck.emulators.aws", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (work / "moto.log").read_text()[-2000:]
            try:
                if requests.get(f"{endpoint}/moto-api/", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "moto did not answer within 60 s"
            time.sleep(0.1)
        broker_file = work / "broker-aws"
        aws.seed(endpoint, BUCKET, REGION, str(broker_file))
        yield endpoint, broker_file
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def provider(moto):
    endpoint, broker_file = moto
    saved = {k: os.environ.pop(k, None) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")}
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(broker_file)
    try:
        yield AWSProvider(region=REGION, bucket=BUCKET, endpoint_url=endpoint, role_arn=aws.users_role_arn(), ttl_seconds=900)
    finally:
        os.environ.pop("AWS_SHARED_CREDENTIALS_FILE", None)
        os.environ.update({k: v for k, v in saved.items() if v is not None})


def s3_as(provider, moto, user, groups=()):
    """A boto3 S3 client with the credentials the broker issues ``user``."""
    issued = asyncio.run(provider.issue(Identity(user, tuple(groups)), resolve_grants(GRANTS, user, list(groups))))
    p = issued.payload
    session = boto3.session.Session(
        aws_access_key_id=p["AccessKeyId"], aws_secret_access_key=p["SecretAccessKey"], aws_session_token=p["SessionToken"], region_name=REGION
    )
    return session.client("s3", endpoint_url=moto[0], config=Config(retries={"max_attempts": 1}))


def outcome(call):
    try:
        call()
        return "ok"
    except ClientError as e:
        return e.response["Error"]["Code"]


@pytest.fixture(scope="module")
def clients(provider, moto):
    made = {"alice": s3_as(provider, moto, "alice"), "bob": s3_as(provider, moto, "bob"), "carol": s3_as(provider, moto, "carol", ["analysts"])}
    made["bob"].put_object(Bucket=BUCKET, Key="home/bob/secret.txt", Body=b"bob's")
    made["alice"].put_object(Bucket=BUCKET, Key="home/alice/notes.txt", Body=b"alice's")
    return made


def listing(client, **kw):
    return lambda: client.list_objects_v2(Bucket=BUCKET, **kw)


@pytest.mark.parametrize(
    "user, kwargs, expected",
    [
        ("alice", {"Prefix": "home/alice/"}, "ok"),
        ("alice", {"Prefix": "home/alice/", "Delimiter": "/"}, "ok"),
        ("alice", {"Prefix": "home/bob/"}, "AccessDenied"),
        ("alice", {"Prefix": "home/"}, "AccessDenied"),
        ("alice", {}, "AccessDenied"),  # the bucket root
        ("alice", {"Prefix": ""}, "AccessDenied"),
        ("alice", {"Prefix": "shared/"}, "ok"),
        ("alice", {"Prefix": "shared/analysts/"}, "AccessDenied"),  # a group she is not in
        ("carol", {"Prefix": "shared/analysts/"}, "ok"),  # a member of it
        ("bob", {"Prefix": "home/alice/"}, "AccessDenied"),
    ],
)
def test_listing_is_isolated(clients, user, kwargs, expected):
    assert outcome(listing(clients[user], **kwargs)) == expected


def test_own_listing_shows_own_keys_and_v1_listing_is_checked_too(clients):
    keys = [o["Key"] for o in clients["alice"].list_objects_v2(Bucket=BUCKET, Prefix="home/alice/")["Contents"]]
    assert keys == ["home/alice/notes.txt"]
    assert outcome(lambda: clients["alice"].list_objects(Bucket=BUCKET, Prefix="home/bob/")) == "AccessDenied"
    assert outcome(lambda: clients["alice"].list_object_versions(Bucket=BUCKET, Prefix="home/bob/")) == "AccessDenied"
    # a paginator (what s3fs and the aws CLI do) over her own prefix works to the end
    pages = clients["alice"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="home/alice/", PaginationConfig={"PageSize": 1})
    assert [o["Key"] for page in pages for o in page.get("Contents", [])] == ["home/alice/notes.txt"]


def test_objects_follow_the_session_policy_not_the_roles(clients):
    alice = clients["alice"]
    assert outcome(lambda: alice.get_object(Bucket=BUCKET, Key="home/bob/secret.txt")) == "AccessDenied"
    assert outcome(lambda: alice.put_object(Bucket=BUCKET, Key="home/bob/x.txt", Body=b"x")) == "AccessDenied"
    assert outcome(lambda: alice.put_object(Bucket=BUCKET, Key="shared/x.txt", Body=b"x")) == "AccessDenied"  # read-only grant
    assert outcome(lambda: alice.get_object(Bucket=BUCKET, Key="shared/README.txt")) == "ok"
    assert outcome(lambda: alice.get_object(Bucket=BUCKET, Key="shared/analysts/targets.csv")) == "AccessDenied"
    assert outcome(lambda: clients["carol"].get_object(Bucket=BUCKET, Key="shared/analysts/targets.csv")) == "ok"
    # the role may do anything to the bucket; the session may not
    assert outcome(lambda: alice.delete_bucket(Bucket=BUCKET)) == "AccessDenied"
    assert outcome(lambda: alice.put_bucket_policy(Bucket=BUCKET, Policy="{}")) == "AccessDenied"


def test_the_broker_can_only_assume_the_users_role(moto):
    endpoint, broker_file = moto
    import configparser

    cp = configparser.ConfigParser()
    cp.read(broker_file)
    keys = dict(aws_access_key_id=cp["default"]["aws_access_key_id"], aws_secret_access_key=cp["default"]["aws_secret_access_key"])
    broker = boto3.session.Session(region_name=REGION, **keys)
    s3 = broker.client("s3", endpoint_url=endpoint)
    iam = broker.client("iam", endpoint_url=endpoint)
    assert outcome(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="home/bob/")) == "AccessDenied"
    assert outcome(lambda: iam.create_role(RoleName="x", AssumeRolePolicyDocument="{}")) == "AccessDenied"
    sts = broker.client("sts", endpoint_url=endpoint)
    assert outcome(lambda: sts.assume_role(RoleArn=aws.users_role_arn(), RoleSessionName="alice")) == "ok"
