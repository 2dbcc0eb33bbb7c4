"""Group grants: membership in the hub decides what the cloud allows, and changes apply at the next refresh."""

import json
import time

import pytest
import requests

pytestmark = pytest.mark.integration

READ_TARGETS = (
    "import boto3\n"
    "from botocore.exceptions import ClientError\n"
    "try:\n"
    "    boto3.client('s3').get_object(Bucket='labdeck-data', Key='shared/analysts/targets.csv')['Body'].read()\n"
    "    print('ALLOWED')\n"
    "except ClientError as e:\n"
    "    print(e.response['Error']['Code'])"
)


LIST_ANALYSTS = (
    "import boto3\n"
    "from botocore.exceptions import ClientError\n"
    "try:\n"
    "    r = boto3.client('s3').list_objects_v2(Bucket='labdeck-data', Prefix='shared/analysts/')\n"
    "    print([o['Key'] for o in r['Contents']])\n"
    "except ClientError as e:\n"
    "    print(e.response['Error']['Code'])"
)


def admin(platform, method, path, **kw):
    token = (platform.state_dir / "secrets" / "supervisor_token").read_text().strip()
    r = requests.request(method, f"{platform.url}/hub/api{path}", headers={"Authorization": f"token {token}"}, timeout=10, **kw)
    assert r.status_code < 300, (r.status_code, r.text)
    return r


def eventually(fn, expect, timeout=45):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last == expect:
            return last
        time.sleep(2)
    return last


def test_analysts_group_grant_follows_membership(platform, alice, alice_kernel):
    from tests.helpers.hubclient import HubClient

    carol = HubClient(platform.url).login("carol", platform.password)
    admin(platform, "POST", "/groups/analysts", json={})
    admin(platform, "POST", "/groups/analysts/users", json={"users": ["carol"]})
    carol.start_server()
    ck = carol.start_kernel()

    assert carol.execute(READ_TARGETS, ck).check().stdout.strip() == "ALLOWED"
    assert carol.execute(LIST_ANALYSTS, ck).check().stdout.strip() == "['shared/analysts/targets.csv']"
    # everyone else: shared/ is readable, but shared/analysts/ is explicitly denied, listing included
    assert alice.execute(READ_TARGETS, alice_kernel).check().stdout.strip() == "AccessDenied"
    assert alice.execute(LIST_ANALYSTS, alice_kernel).check().stdout.strip() == "AccessDenied"
    assert alice.execute(READ_TARGETS.replace("analysts/targets.csv", "README.txt"), alice_kernel).check().stdout.strip() == "ALLOWED"

    # removing carol from the group takes effect at her next credential refresh, no restart
    admin(platform, "DELETE", "/groups/analysts/users", json={"users": ["carol"]})
    got = eventually(lambda: carol.execute(READ_TARGETS, ck).check().stdout.strip(), "AccessDenied")
    assert got == "AccessDenied"
    carol.stop_server()


def test_editing_the_grants_file_applies_without_restart(platform, alice, alice_kernel):
    path = platform.state_dir / "grants.json"
    grants = json.loads(path.read_text())
    grants["users"]["alice"] = {"s3": [{"prefix": "shared/analysts/", "access": "ro"}]}
    path.write_text(json.dumps(grants))
    try:
        got = eventually(lambda: alice.execute(READ_TARGETS, alice_kernel).check().stdout.strip(), "ALLOWED")
        assert got == "ALLOWED"
    finally:
        grants["users"].pop("alice")
        path.write_text(json.dumps(grants))
    assert eventually(lambda: alice.execute(READ_TARGETS, alice_kernel).check().stdout.strip(), "AccessDenied") == "AccessDenied"
