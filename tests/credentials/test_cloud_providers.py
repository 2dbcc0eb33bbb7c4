"""The real-cloud request shapes: STS AssumeRole and IAM Credentials generateAccessToken.

The cloud is the only thing faked: botocore's Stubber checks the exact AssumeRole
parameters at the boto3 boundary, and a real HTTP server on 127.0.0.1 stands in for
the IAM Credentials API.
"""

import datetime
import json

import pytest
from botocore.stub import Stubber
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from labdeck.credentials import policy
from labdeck.credentials.grants import resolve_grants
from labdeck.credentials.providers.aws import AWSProvider
from labdeck.credentials.providers.base import Identity, UpstreamError
from labdeck.credentials.providers.gcp import GCPProvider

GRANTS = {
    "everyone": {"s3": [{"prefix": "shared/", "access": "ro"}]},
    "groups": {
        "analysts": {
            "s3": [{"prefix": "shared/analysts/", "access": "ro"}],
            "bigquery": [{"dataset": "corp.sales", "access": "ro", "service_account": "sales-ro@corp.iam.gserviceaccount.com"}],
        }
    },
}


@pytest.fixture
def aws(monkeypatch):
    """An AWSProvider whose STS client is stubbed (one seam, like MockAsyncHTTPClient)."""
    import boto3

    provider = AWSProvider(region="eu-west-1", bucket="corp-data", role_arn="arn:aws:iam::111122223333:role/labdeck-users", ttl_seconds=3600)
    client = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y").client("sts", region_name="eu-west-1")
    stubber = Stubber(client)
    monkeypatch.setattr(provider, "_client", lambda service: client)
    with stubber:
        yield provider, stubber


async def test_aws_assume_role_request_carries_the_session_policy(aws):
    provider, stubber = aws
    ident = Identity("carol", ("analysts",))
    grants = resolve_grants(GRANTS, "carol", ["analysts"])
    exp = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)
    stubber.add_response(
        "assume_role",
        {
            "Credentials": {"AccessKeyId": "ASIAEXAMPLE00000", "SecretAccessKey": "s" * 40, "SessionToken": "t" * 64, "Expiration": exp},
            "AssumedRoleUser": {"AssumedRoleId": "AROA:carol", "Arn": "arn:aws:sts::111122223333:assumed-role/labdeck-users/carol"},
        },
        {
            "RoleArn": "arn:aws:iam::111122223333:role/labdeck-users",
            "RoleSessionName": "carol",
            "DurationSeconds": 3600,
            "Tags": [{"Key": "labdeck-user", "Value": "carol"}],
            "Policy": policy.policy_json(policy.s3_policy("corp-data", "carol", grants)),
        },
    )
    cred = await provider.issue(ident, grants)
    assert cred.payload == {
        "Version": 1,
        "AccessKeyId": "ASIAEXAMPLE00000",
        "SecretAccessKey": "s" * 40,
        "SessionToken": "t" * 64,
        "Expiration": "2026-11-23T12:00:00Z",
    }
    assert cred.expires_at == exp.timestamp()
    assert "s" * 40 not in repr(cred)
    session_policy = json.loads(policy.policy_json(policy.s3_policy("corp-data", "carol", grants)))
    ro = next(s for s in session_policy["Statement"] if s["Sid"] == "ReadOnlyGrants")
    assert "arn:aws:s3:::corp-data/shared/analysts/*" in ro["Resource"]
    stubber.assert_no_pending_responses()


async def test_aws_refusal_is_readable_and_secret_free(aws):
    provider, stubber = aws
    stubber.add_client_error("assume_role", service_error_code="AccessDenied", service_message="not authorized to perform sts:AssumeRole")
    with pytest.raises(UpstreamError) as e:
        await provider.issue(Identity("bob"), resolve_grants(GRANTS, "bob", []))
    assert str(e.value) == "AWS refused the request (AccessDenied): not authorized to perform sts:AssumeRole"


async def test_aws_without_role_is_a_config_error():
    with pytest.raises(UpstreamError, match="role_arn is empty"):
        await AWSProvider(bucket="b").issue(Identity("a"), resolve_grants({}, "a", []))


class FakeIAMCredentials(web.RequestHandler):
    calls: list = []

    def post(self, target):
        FakeIAMCredentials.calls.append(
            {"path": self.request.path, "auth": self.request.headers.get("Authorization"), "body": json.loads(self.request.body)}
        )
        if "denied" in target:
            self.set_status(403)
            self.finish({"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.getAccessToken' denied"}})
            return
        self.finish({"accessToken": "ya29.minted-for-" + target.split("@")[0], "expireTime": "2026-11-23T12:00:00Z"})


@pytest.fixture
async def iam_server():
    FakeIAMCredentials.calls = []
    app = web.Application([(r"/v1/projects/-/serviceAccounts/([^/:]+):generateAccessToken", FakeIAMCredentials)])
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    yield f"http://127.0.0.1:{port}"
    server.stop()


def gcp(url, **kw):
    provider = GCPProvider(project="corp", iam_credentials_url=url, **kw)

    async def broker_token():
        return "broker-workload-identity-token"

    provider._broker_token = broker_token
    return provider


async def test_gcp_impersonates_the_group_service_account(iam_server):
    provider = gcp(iam_server, service_account="default-ro@corp.iam.gserviceaccount.com")
    cred = await provider.issue(Identity("carol", ("analysts",)), resolve_grants(GRANTS, "carol", ["analysts"]))
    assert FakeIAMCredentials.calls == [
        {
            "path": "/v1/projects/-/serviceAccounts/sales-ro@corp.iam.gserviceaccount.com:generateAccessToken",
            "auth": "Bearer broker-workload-identity-token",
            "body": {
                "scope": ["https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/cloud-platform"],
                "lifetime": "3600s",
            },
        }
    ]
    assert cred.payload == {"access_token": "ya29.minted-for-sales-ro"}
    assert cred.reference == "sales-ro@corp.iam.gserviceaccount.com"
    body = provider.render(cred)
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["token_type"] == "Bearer"


async def test_gcp_per_user_service_account_template_wins(iam_server):
    provider = gcp(iam_server, service_account="default@corp.iam.gserviceaccount.com", service_account_template="lab-{username}@{project}.iam.gserviceaccount.com")
    await provider.issue(Identity("carol", ("analysts",)), resolve_grants(GRANTS, "carol", ["analysts"]))
    assert FakeIAMCredentials.calls[0]["path"].endswith("/lab-carol@corp.iam.gserviceaccount.com:generateAccessToken")


async def test_gcp_refusal_is_readable(iam_server):
    provider = gcp(iam_server, service_account="denied@corp.iam.gserviceaccount.com")
    with pytest.raises(UpstreamError) as e:
        await provider.issue(Identity("bob"), resolve_grants({}, "bob", []))
    assert "denied@corp.iam.gserviceaccount.com" in str(e.value) and "HTTP 403" in str(e.value)
    assert "broker-workload-identity-token" not in str(e.value)


async def test_gcp_without_service_account_is_a_config_error(iam_server):
    with pytest.raises(UpstreamError, match="no service account"):
        await gcp(iam_server).issue(Identity("bob"), resolve_grants({}, "bob", []))
