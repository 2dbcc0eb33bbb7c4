"""The local AWS endpoint: moto in server mode (S3, STS, IAM) with IAM enforcement.

Three things are added to moto, all to behave like AWS where it matters to
labdeck's isolation and tests:

- **IAM evaluation**: :mod:`labdeck.emulators.aws_iam` decides every request as
  AWS does, with ``Condition`` blocks (``s3:prefix`` on listings) and STS session
  policies (a session's permissions are its role's policies intersected with the
  session policy), so the broker's ``aws`` provider runs unchanged against it;
- **expiry**: moto accepts assumed-role credentials forever; this wraps its
  WSGI app and rejects requests signed with an expired STS session
  (``ExpiredToken``), so "credentials refresh before expiry" is really tested;
- **seeding**: :func:`seed` creates the data bucket with a small demo dataset,
  the IAM user the broker acts as (its keys go to a 0600 file), the one role
  (:data:`USERS_ROLE`) the broker assumes for everyone with a per-person session
  policy, as on AWS, and then turns IAM enforcement on (``/moto-api/reset-auth``).

Run: ``python -m labdeck.emulators.aws --port P`` (127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import configparser
import datetime
import io
import json
import os
import re
import sys
import urllib.request

_CRED_RE = re.compile(r"Credential=([A-Z0-9]{16,128})/")

BROKER_USER = "labdeck-broker"
VIEWER_USER = "labdeck-viewer"
#: the role the broker assumes for every person (``AWSProvider.role_arn``), scoped per session
USERS_ROLE = "labdeck-users"
#: moto's account (its default, ``MOTO_ACCOUNT_ID``)
ACCOUNT_ID = "123456789012"


def users_role_arn(account_id: str = ACCOUNT_ID) -> str:
    """The ARN of :data:`USERS_ROLE`, what the embedded default sets as ``AWSProvider.role_arn``."""
    return f"arn:aws:iam::{account_id}:role/{USERS_ROLE}"


def broker_policy(account_id: str = ACCOUNT_ID) -> dict:
    """What the broker's own IAM user may do: assume (and tag sessions of) the users' role, nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": users_role_arn(account_id)},
            {"Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": "*"},
        ],
    }


def users_role_policy(bucket: str) -> dict:
    """The users' role's own policy: everything on the data bucket; each session policy narrows it to one person."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}],
    }


def users_role_trust(principal_arn: str) -> dict:
    """Trust policy of the users' role: the broker's identity may assume it and tag its sessions."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal_arn}, "Action": ["sts:AssumeRole", "sts:TagSession"]}],
    }


def _access_key_of(environ) -> str | None:
    m = _CRED_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if m:
        return m.group(1)
    # presigned URLs carry the key in the query string
    qs = environ.get("QUERY_STRING", "")
    m = re.search(r"X-Amz-Credential=([A-Z0-9]{16,128})%2F", qs)
    return m.group(1) if m else None


def expired_session(access_key: str, now: datetime.datetime | None = None) -> bool:
    """True if ``access_key`` belongs to an STS session whose expiration has passed."""
    from moto.sts.models import sts_backends

    now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    for account_backends in sts_backends.values():
        for backend in account_backends.values():
            for role in backend.assumed_roles:
                if role.access_key_id == access_key:
                    exp = role.expiration
                    if exp.tzinfo is not None:
                        exp = exp.astimezone(datetime.timezone.utc).replace(tzinfo=None)
                    return exp <= now
    return False


def _expired_reply(environ, start_response):
    body = (
        b"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>ExpiredToken</Code>"
        b"<Message>The provided token has expired.</Message></Error>"
    )
    start_response("400 Bad Request", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


class ExpiryMiddleware:
    """Reject requests signed with expired STS session credentials, like AWS does."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        key = _access_key_of(environ)
        if key and key.startswith("ASIA") and expired_session(key):
            return _expired_reply(environ, start_response)
        return self.app(environ, start_response)


def make_app():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from . import aws_iam_moto

    aws_iam_moto.install()
    return ExpiryMiddleware(DomainDispatcherApplication(create_backend_app))


def serve(port: int, host: str = "127.0.0.1") -> None:
    from werkzeug.serving import run_simple

    os.environ.setdefault("MOTO_PORT", str(port))
    run_simple(host, port, make_app(), threaded=True)


# --------------------------------------------------------------------- seeding


def demo_csv(rows: int = 2000) -> bytes:
    """A deterministic demo dataset: bike-share trips (generated, not real rides)."""
    import random

    rnd = random.Random(20261123)
    stations = ["Harbor", "Old Town", "University", "Central", "Riverside", "Market", "Museum", "Park"]
    start = datetime.datetime(2026, 6, 1, 6, 0)
    out = io.StringIO()
    out.write("trip_id,started_at,start_station,end_station,duration_min,member,distance_km\n")
    for i in range(1, rows + 1):
        t = start + datetime.timedelta(minutes=rnd.randint(0, 60 * 24 * 30))
        a, b = rnd.sample(stations, 2)
        dist = round(rnd.uniform(0.4, 9.0), 2)
        dur = max(2, int(dist * rnd.uniform(3.0, 6.0)))
        out.write(f"{i},{t.isoformat()},{a},{b},{dur},{str(rnd.random() < 0.62).lower()},{dist}\n")
    return out.getvalue().encode()


def viewer_policy(bucket: str) -> dict:
    """The read-only viewer service: get objects under ``home/``, nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{bucket}/home/*"]}],
    }


def seed(endpoint: str, bucket: str, region: str, credentials_file: str, viewer_credentials_file: str | None = None) -> str:
    """Seed a fresh moto server and turn IAM enforcement on.

    Creates ``bucket`` with ``shared/demo/trips.csv``, the broker's IAM user
    with :func:`broker_policy`, the role :data:`USERS_ROLE` it assumes for
    people (:func:`users_role_policy`, trusting the broker), writes the
    broker's keys to ``credentials_file`` (an AWS shared-credentials file, mode
    0600), then enables enforcement.

    Returns
    -------
    str
        The broker user's ARN.
    """
    import boto3

    session = boto3.session.Session(aws_access_key_id="seed", aws_secret_access_key="seed", region_name=region)
    s3 = session.client("s3", endpoint_url=endpoint)
    iam = session.client("iam", endpoint_url=endpoint)
    existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    if bucket not in existing:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_object(Bucket=bucket, Key="shared/demo/trips.csv", Body=demo_csv())
    s3.put_object(Bucket=bucket, Key="shared/README.txt", Body=b"Read-only data shared with every labdeck user.\n")
    s3.put_object(
        Bucket=bucket,
        Key="shared/analysts/targets.csv",
        Body=b"station,monthly_target\nHarbor,300\nCentral,420\nMarket,250\n",
    )
    try:
        user = iam.create_user(UserName=BROKER_USER)["User"]
    except iam.exceptions.EntityAlreadyExistsException:
        user = iam.get_user(UserName=BROKER_USER)["User"]
    account = user["Arn"].split(":")[4]
    iam.put_user_policy(UserName=BROKER_USER, PolicyName="labdeck-broker", PolicyDocument=json.dumps(broker_policy(account)))
    trust = json.dumps(users_role_trust(user["Arn"]))
    try:
        iam.create_role(RoleName=USERS_ROLE, AssumeRolePolicyDocument=trust, MaxSessionDuration=43200)
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=USERS_ROLE, PolicyDocument=trust)
    iam.put_role_policy(RoleName=USERS_ROLE, PolicyName="labdeck-users-s3", PolicyDocument=json.dumps(users_role_policy(bucket)))
    key = iam.create_access_key(UserName=BROKER_USER)["AccessKey"]
    write_credentials_file(credentials_file, key["AccessKeyId"], key["SecretAccessKey"])
    if viewer_credentials_file:
        try:
            iam.create_user(UserName=VIEWER_USER)
        except iam.exceptions.EntityAlreadyExistsException:
            pass
        iam.put_user_policy(UserName=VIEWER_USER, PolicyName=VIEWER_USER, PolicyDocument=json.dumps(viewer_policy(bucket)))
        vkey = iam.create_access_key(UserName=VIEWER_USER)["AccessKey"]
        write_credentials_file(viewer_credentials_file, vkey["AccessKeyId"], vkey["SecretAccessKey"])
    enable_enforcement(endpoint)
    return user["Arn"]


def write_credentials_file(path: str, key_id: str, secret: str) -> None:
    """Write an AWS shared-credentials file readable by its owner only."""
    cp = configparser.ConfigParser()
    cp["default"] = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        cp.write(f)
    os.replace(tmp, path)


def enable_enforcement(endpoint: str) -> None:
    """From now on every request is authorized by IAM policy."""
    req = urllib.request.Request(
        endpoint.rstrip("/") + "/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def main(argv=None):
    parser = argparse.ArgumentParser(description="labdeck's local AWS endpoint (moto with IAM enforcement and STS expiry)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    serve(args.port, args.host)


if __name__ == "__main__":
    sys.exit(main())
