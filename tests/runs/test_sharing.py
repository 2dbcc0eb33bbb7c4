"""Read-only sharing through the viewer service (hub OAuth in a browser-like session; no server
is started for the viewer; S3 is read with the viewer's own read-only identity)."""

import time

import pytest
import requests

from .conftest import write_notebook
from .test_runs import runs_api, wait_run

pytestmark = pytest.mark.integration


def viewer(client, method, path, **kw):
    """As a browser: the hub login cookie, OAuth redirects followed."""
    kw.setdefault("timeout", 60)
    return client.http.request(method, f"{client.base}/services/viewer/{path}", **kw)


def shares_api(client, method, path="", **kw):
    kw.setdefault("timeout", 30)
    return requests.request(method, f"{client.base}/services/viewer/api/shares{path}", headers=client.headers(), **kw)


@pytest.fixture(scope="module")
def team(admin, carol):
    r = admin.api("POST", "/groups/team", json={})
    assert r.status_code in (201, 409), r.text
    r = admin.api("POST", "/groups/team/users", json={"users": ["carol"]})
    assert r.status_code == 200, r.text
    return "team"


@pytest.fixture(scope="module")
def shared_run(platform, alice):
    write_notebook(platform, "alice", "share_me.ipynb", ["print('secret-ish output', n)"], parameters="n = 7")
    r = runs_api(alice, "POST", "/runs", json={"notebook": "share_me.ipynb", "parameters": {"n": 99}})
    run = wait_run(alice, r.json()["id"])
    assert run["status"] == "succeeded"
    return run


def rel(run):
    return run["output"].split("/home/alice/", 1)[1]


def test_owner_views_own_output_without_a_server(alice, dave, shared_run):
    before = alice.api("GET", "/users/alice").json().get("servers") or {}
    r = viewer(alice, "GET", "view/" + rel(shared_run))
    assert r.status_code == 200, r.text[:300]
    assert "secret-ish output 99" in r.text
    assert "sandbox" in r.headers["Content-Security-Policy"] and "script-src" not in r.headers["Content-Security-Policy"]
    assert (alice.api("GET", "/users/alice").json().get("servers") or {}) == before
    # dave's own view path is dave's home: alice's output is simply not there
    assert viewer(dave, "GET", "view/" + rel(shared_run)).status_code == 404
    assert viewer(dave, "GET", "view/../alice/" + rel(shared_run)).status_code in (400, 404)


def test_user_and_group_shares(alice, bob, carol, dave, team, shared_run):
    r = shares_api(alice, "POST", json={"path": rel(shared_run), "user": "bob"})
    assert r.status_code == 201, r.text
    to_bob = r.json()
    r = shares_api(alice, "POST", json={"path": rel(shared_run), "group": "team"})
    to_team = r.json()
    assert len(to_bob["id"]) >= 40 and to_bob["id"] != to_team["id"]

    assert "secret-ish output 99" in viewer(bob, "GET", f"s/{to_bob['id']}").text
    assert "secret-ish output 99" in viewer(carol, "GET", f"s/{to_team['id']}").text
    assert viewer(alice, "GET", f"s/{to_bob['id']}").status_code == 200
    assert viewer(dave, "GET", f"s/{to_bob['id']}").status_code == 403
    assert viewer(dave, "GET", f"s/{to_team['id']}").status_code == 403
    assert viewer(carol, "GET", f"s/{to_bob['id']}").status_code == 403
    assert viewer(bob, "GET", f"s/{to_team['id']}").status_code == 403

    # forged ids
    forged = to_bob["id"][:-4] + ("AAAA" if not to_bob["id"].endswith("AAAA") else "BBBB")
    assert viewer(bob, "GET", f"s/{forged}").status_code == 404
    assert viewer(bob, "GET", "s/..%2F..%2Fhub").status_code in (400, 404)

    # others cannot list or revoke alice's shares
    assert shares_api(bob, "GET").json()["shares"] == []
    assert shares_api(bob, "DELETE", f"/{to_bob['id']}").status_code == 404

    # revoking works at once
    assert shares_api(alice, "DELETE", f"/{to_bob['id']}").status_code == 204
    r = viewer(bob, "GET", f"s/{to_bob['id']}")
    assert r.status_code == 410 and "revoked by its owner" in r.text and r.headers["Content-Type"].startswith("text/html")
    assert "secret-ish" not in r.text

    # leaving the group takes effect at the next view
    assert viewer(carol, "GET", f"s/{to_team['id']}").status_code == 200
    # (admin removes carol from team)


def test_group_removal_takes_effect(admin, alice, carol, team, shared_run):
    sid = shares_api(alice, "POST", json={"path": rel(shared_run), "group": "team"}).json()["id"]
    assert viewer(carol, "GET", f"s/{sid}").status_code == 200
    assert admin.api("DELETE", "/groups/team/users", json={"users": ["carol"]}).status_code == 200
    assert viewer(carol, "GET", f"s/{sid}").status_code == 403
    admin.api("POST", "/groups/team/users", json={"users": ["carol"]})


def test_everyone_share_expiry_and_shared_with_me(alice, bob, dave, shared_run):
    r = shares_api(alice, "POST", json={"path": rel(shared_run), "everyone": True})
    assert r.status_code == 201, r.text
    everyone = r.json()
    assert everyone["kind"] == "everyone" and everyone["state"] == "active"
    assert "secret-ish output 99" in viewer(dave, "GET", f"s/{everyone['id']}").text
    incoming = shares_api(dave, "GET", params={"to": "me"}).json()["shares"]
    assert everyone["id"] in [s["id"] for s in incoming]
    assert everyone["id"] not in [s["id"] for s in shares_api(alice, "GET", params={"to": "me"}).json()["shares"]]
    assert shares_api(dave, "GET", params={"to": "bob"}).status_code == 400

    soon = time.time() + 3
    r = shares_api(alice, "POST", json={"path": rel(shared_run), "user": "bob", "expires": soon})
    assert r.status_code == 201, r.text
    expiring = r.json()
    assert expiring["expires_at"].endswith("Z")
    assert viewer(bob, "GET", f"s/{expiring['id']}").status_code == 200
    deadline = time.monotonic() + 30
    while time.time() < soon + 0.5 and time.monotonic() < deadline:
        time.sleep(0.5)
    r = viewer(bob, "GET", f"s/{expiring['id']}")
    assert r.status_code == 410 and "expired" in r.text
    assert expiring["id"] not in [s["id"] for s in shares_api(bob, "GET", params={"to": "me"}).json()["shares"]]
    mine = {s["id"]: s for s in shares_api(alice, "GET").json()["shares"]}
    assert mine[expiring["id"]]["state"] == "expired"
    for body in ({"path": rel(shared_run), "user": "bob", "expires": time.time() - 10},
                 {"path": rel(shared_run), "everyone": "yes"}, {"path": rel(shared_run), "everyone": True, "user": "bob"}):
        assert shares_api(alice, "POST", json=body).status_code == 400
    assert shares_api(alice, "DELETE", f"/{everyone['id']}").status_code == 204
    assert viewer(dave, "GET", f"s/{everyone['id']}").status_code == 410


@pytest.mark.parametrize(
    "body, status",
    [
        ({"path": "../bob/x.ipynb", "user": "bob"}, 400),
        ({"path": "nope.ipynb", "user": "bob"}, 404),
        ({"path": "x.ipynb", "user": "bob", "group": "team"}, 400),
        ({"path": "x.ipynb"}, 400),
    ],
)
def test_bad_share_requests(alice, body, status):
    assert shares_api(alice, "POST", json=body).status_code == status


def test_viewer_cannot_write(platform, reader):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        reader.put_object(Bucket="labdeck-data", Key="home/alice/evil.ipynb", Body=b"{}")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError):
        reader.get_object(Bucket="labdeck-data", Key="shared/demo/trips.csv")
