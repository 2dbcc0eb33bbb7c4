"""Bad input gets a clear error and changes nothing: broker tokens, hostile usernames."""

import pytest
import requests

pytestmark = pytest.mark.integration


def broker(platform) -> str:
    return f"http://127.0.0.1:{platform.settings()['broker_port']}/services/broker/"


def test_broker_without_token_is_401(platform):
    r = requests.get(broker(platform) + "aws/credentials", timeout=10)
    assert r.status_code == 401
    assert "Authorization" in r.json()["error"]


@pytest.mark.parametrize("header", ["token not-a-real-token", "Bearer 0000", "Basic YWxpY2U6eA==", "token"])
def test_broker_with_bad_token_is_401(platform, header):
    r = requests.get(broker(platform) + "aws/credentials", headers={"Authorization": header}, timeout=10)
    assert r.status_code == 401
    body = r.text
    assert "not-a-real-token" not in body and "0000" not in body


def test_token_in_url_is_refused_and_not_echoed(platform, alice):
    r = requests.get(broker(platform) + "aws/credentials", params={"token": alice.token}, timeout=10)
    assert r.status_code == 400
    assert alice.token not in r.text
    assert alice.token not in platform.logs()


def test_token_of_alice_never_yields_bobs_credentials(platform, alice, bob):
    h = {"Authorization": f"token {alice.token}"}
    r = requests.get(broker(platform) + "aws/credentials", params={"user": "bob"}, headers=h, timeout=10)
    assert r.status_code == 403
    who = requests.get(broker(platform) + "whoami", headers=h, timeout=10).json()
    assert who["name"] == "alice"
    assert who["aws"]["home"] == "s3://labdeck-data/home/alice/"
    # the credentials alice gets are alice's: bob's prefix is denied with them
    creds = requests.get(broker(platform) + "aws/credentials", headers=h, timeout=10).json()
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client(
        "s3",
        endpoint_url=platform.settings()["aws_endpoint"],
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="labdeck-data", Key="home/bob/from-alice.txt", Body=b"x")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    s3.put_object(Bucket="labdeck-data", Key="home/alice/from-test.txt", Body=b"x")


def test_revoked_token_stops_working(platform, alice):
    from tests.helpers.hubclient import HubClient

    c = HubClient(platform.url).login("carol", platform.password)
    h = {"Authorization": f"token {c.token}"}
    assert requests.get(broker(platform) + "whoami", headers=h, timeout=10).status_code == 200
    tokens = c.api("GET", "/users/carol/tokens").json()["api_tokens"]
    for t in tokens:
        c.api("DELETE", f"/users/carol/tokens/{t['id']}")
    # the broker trusts the hub's answer for hub_cache_seconds (10 s) at most
    import time

    deadline = time.monotonic() + 20
    code = 200
    while time.monotonic() < deadline and code == 200:
        code = requests.get(broker(platform) + "aws/credentials", headers=h, timeout=10).status_code
        time.sleep(1)
    assert code == 401


def test_secrets_never_reach_logs(platform, alice, alice_kernel):
    alice.execute("import boto3; boto3.client('s3').list_objects_v2(Bucket='labdeck-data', Prefix='home/alice/')", alice_kernel).check()
    creds = requests.get(
        broker(platform) + "aws/credentials", headers={"Authorization": f"token {alice.token}"}, timeout=10
    ).json()
    logs = platform.logs()
    secret_files = (platform.state_dir / "secrets").iterdir()
    for value in [creds["SecretAccessKey"], creds["SessionToken"], alice.token, platform.password]:
        assert value not in logs
    for f in secret_files:
        assert f.stat().st_mode & 0o077 == 0, f"{f.name} is readable by others"
        secret = f.read_text().strip()
        if len(secret) >= 8:
            assert secret not in logs, f"{f.name} leaked into a log"


@pytest.mark.parametrize(
    "username",
    ["../bob", "a/b", "al ice", "alice\x00", "bob\n", " ", "x" * 65, "..", "-rf", "ålice\u200b"],
)
def test_hostile_usernames_are_rejected_at_login(platform, username):
    from tests.helpers.hubclient import HubClient

    def users():
        r = requests.get(
            platform.url + "/hub/api/users",
            headers={"Authorization": f"token {(platform.state_dir / 'secrets' / 'supervisor_token').read_text().strip()}"},
            timeout=10,
        )
        return {u["name"] for u in r.json()}

    before = users()
    c = HubClient(platform.url)
    r = c.login_form(username, platform.password)
    assert r.status_code == 400, r.status_code
    assert "Invalid username" in r.text
    assert "jupyterhub-session-id" not in c.http.cookies or c.http.get(platform.url + "/hub/api/user", timeout=10).status_code == 403
    assert users() == before
    homes = {p.name for p in (platform.state_dir / "homes").iterdir()}
    assert all(h.isascii() and "/" not in h and not h.startswith(".") for h in homes)


def test_wrong_or_empty_password_is_refused(platform):
    from tests.helpers.hubclient import HubClient

    assert HubClient(platform.url).login_form("dave", "wrong").status_code == 403
    assert HubClient(platform.url).login_form("dave", "").status_code == 403


def test_usernames_are_normalized_to_lowercase(platform):
    from tests.helpers.hubclient import HubClient

    c = HubClient(platform.url)
    r = c.login_form("Erin", platform.password)
    assert r.status_code == 302
    # the session is erin's: her home page names her, in lower case
    home = c.http.get(platform.url + "/hub/home", timeout=10)
    assert home.status_code == 200 and home.url.endswith("/hub/home"), home.url
    assert ">erin<" in home.text.replace(" ", "").replace("\n", "") and "Erin" not in home.text
    users = requests.get(
        platform.url + "/hub/api/users",
        headers={"Authorization": f"token {(platform.state_dir / 'secrets' / 'supervisor_token').read_text().strip()}"},
        timeout=10,
    ).json()
    assert "erin" in {u["name"] for u in users}
