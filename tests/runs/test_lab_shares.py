"""The share dialog's server API (labdeck.runs.lab_shares) in real user servers: snapshots into the
S3 home, the viewer's share API called with the server's own token, hostile input refused."""

import os

import pytest
import requests

from .conftest import write_notebook
from .test_sharing import viewer

pytestmark = pytest.mark.integration


def lab(client, method, path="", **kw):
    kw.setdefault("timeout", 60)
    return requests.request(method, f"{client.server_url()}labdeck/shares{path}", headers=client.headers(), **kw)


@pytest.fixture(scope="module")
def servers(platform, alice, bob):
    write_notebook(platform, "alice", "lab_share/figure.ipynb", ["print('snapshot text', 1 + 1)"])
    started = [c for c in (alice, bob) if "" not in (c.api("GET", f"/users/{c.name}").json().get("servers") or {})]
    for c in started:
        c.start_server()
    yield alice, bob
    for c in started:  # leave the session's platform as this module found it
        if "" in (c.api("GET", f"/users/{c.name}").json().get("servers") or {}):
            c.stop_server()


def test_share_is_a_snapshot_bob_can_open_and_alice_can_revoke(platform, servers):
    alice, bob = servers
    r = lab(alice, "POST", json={"path": "lab_share/figure.ipynb", "user": "bob"})
    assert r.status_code == 201, r.text
    share = r.json()
    assert share["source"] == "lab_share/figure.ipynb" and share["path"].startswith("shares/") and share["kind"] == "user"
    # the live file changes; the share does not
    write_notebook(platform, "alice", "lab_share/figure.ipynb", ["print('edited after sharing')"])
    page = viewer(bob, "GET", f"s/{share['id']}")
    assert page.status_code == 200 and "snapshot text" in page.text
    assert "edited after sharing" not in page.text
    incoming = lab(bob, "GET", params={"to": "me"}).json()["shares"]
    assert share["id"] in [s["id"] for s in incoming]
    assert share["id"] in [s["id"] for s in lab(alice, "GET").json()["shares"]]
    # bob cannot revoke alice's share through his server
    assert lab(bob, "DELETE", f"/{share['id']}").status_code == 404
    assert lab(alice, "DELETE", f"/{share['id']}").status_code == 204
    assert viewer(bob, "GET", f"s/{share['id']}").status_code == 410


@pytest.mark.parametrize(
    "body, status",
    [
        ({"path": "../bob/x.ipynb", "user": "bob"}, 400),
        ({"path": "/etc/passwd.ipynb", "user": "bob"}, 400),
        ({"path": "lab_share/missing.ipynb", "user": "bob"}, 404),
        ({"path": "lab_share/figure.ipynb", "user": "bob", "owner": "carol"}, 400),
        ({"path": "lab_share/figure.ipynb", "user": "bob", "group": "team"}, 400),
        ({"path": "lab_share/figure.ipynb", "user": "bob", "expires": "yesterday"}, 400),
        ({"path": "lab_share/escape.ipynb", "user": "bob"}, 400),
    ],
    ids=lambda v: str(v)[:40],
)
def test_bad_share_requests_change_nothing(platform, servers, body, status):
    alice, _ = servers
    link = platform.state_dir / "homes" / "alice" / "lab_share" / "escape.ipynb"
    if not link.is_symlink():
        os.symlink("/etc/hostname", link)
    before = lab(alice, "GET").json()["shares"]
    r = lab(alice, "POST", json=body)
    assert r.status_code == status, r.text
    assert r.json()["message"]
    assert lab(alice, "GET").json()["shares"] == before


def test_malformed_bodies(servers):
    alice, _ = servers
    assert lab(alice, "POST", data="[1]").status_code == 400
    assert lab(alice, "POST", data="{nope").status_code == 400
    # without a token nothing answers
    assert requests.post(f"{alice.server_url()}labdeck/shares", json={"path": "lab_share/figure.ipynb", "user": "bob"},
                         timeout=30, allow_redirects=False).status_code in (302, 403)
