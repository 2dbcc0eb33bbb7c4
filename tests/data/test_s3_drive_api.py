"""The S3 drive's contents API in real user servers (labdeck.data): grants-shaped listings without
directory markers, IAM refusals that read well and change nothing, streamed chunks and downloads."""

import base64
import json

import nbformat
import pytest

from tests.helpers.platform import person

from .conftest import call, drive, kernel_ls

pytestmark = pytest.mark.integration

HOME = "s3://labdeck-data/home/alice/"


def names(listing):
    return [e["name"] for e in listing.json()["content"]]


def test_config_says_both_features_are_on(alice):
    cfg = call(alice, "GET", "data/config").json()
    assert cfg["s3"] == {"enabled": True, "drive": "S3", "bucket": "labdeck-data"}
    assert cfg["bigquery"]["enabled"] is True


def test_root_lists_only_the_way_to_the_grants(alice, bob):
    # bob has a file in his home; alice's drive never shows his folder
    r = drive(bob, "PUT", "home/bob/secret.txt", json={"type": "file", "format": "text", "content": "bob's"})
    assert r.status_code == 201, r.text
    root = drive(alice, "GET")
    assert root.status_code == 200 and names(root) == ["home", "shared"]
    assert [e["writable"] for e in root.json()["content"]] == [False, False]
    home = drive(alice, "GET", "home")
    assert names(home) == ["alice"] and home.json()["content"][0]["writable"] is True
    # shared/ and shared/demo/ are prefixes with no marker object: they list all the same
    demo = drive(alice, "GET", "shared/demo")
    assert demo.status_code == 200 and "trips.csv" in names(demo)
    trips = next(e for e in demo.json()["content"] if e["name"] == "trips.csv")
    assert trips["type"] == "file" and trips["writable"] is False and trips["size"] > 1000


@pytest.mark.parametrize("path", ["home/bob", "home/bob/", "home/bob/secret.txt", "other/place", "secret.txt"])
def test_bobs_home_and_ungranted_paths_are_refused(alice, path):
    r = drive(alice, "GET", path)
    assert r.status_code == 403, r.text
    assert "not shared with you" in r.json()["message"]
    assert "bob's" not in r.text


@pytest.mark.parametrize("path, status", [
    ("home/alice/%2E%2E/bob/secret.txt", 403),  # outside the grants
    ("home/alice/%2E/x", 404),  # a dot part is hidden: Jupyter's contents handler answers 404 first
    ("home/alice%2F..%2Fbob", 404),
])
def test_dot_paths_are_refused(alice, path, status):
    r = drive(alice, "GET", path)
    assert r.status_code == status, r.text
    assert "bob's" not in r.text


def test_open_csv_and_save_notebook_that_aws_cli_then_lists(alice, alice_kernel):
    csv = drive(alice, "GET", "shared/demo/trips.csv").json()
    assert csv["format"] == "text" and csv["content"].splitlines()[0].startswith("trip_id")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('from the drive')")])
    r = drive(alice, "PUT", "home/alice/drive-api/analysis.ipynb", json={"type": "notebook", "content": nb})
    assert r.status_code == 201, r.text
    assert r.json()["writable"] is True and r.json()["path"] == "home/alice/drive-api/analysis.ipynb"
    back = drive(alice, "GET", "home/alice/drive-api/analysis.ipynb").json()
    assert back["type"] == "notebook" and back["content"]["cells"][0]["source"] == "print('from the drive')"
    assert "drive-api/analysis.ipynb" in kernel_ls(alice, alice_kernel, HOME)


def test_save_into_the_demo_prefix_is_refused_by_iam_and_writes_nothing(alice, alice_kernel):
    nb = nbformat.v4.new_notebook()
    r = drive(alice, "PUT", "shared/demo/evil.ipynb", json={"type": "notebook", "content": nb})
    assert r.status_code == 403
    assert r.json()["message"].startswith("S3 refused to write s3://labdeck-data/shared/demo/evil.ipynb: Access Denied")
    r = drive(alice, "PUT", "shared/demo/trips.csv", json={"type": "file", "format": "text", "content": "x"})
    assert r.status_code == 403
    listing = kernel_ls(alice, alice_kernel, "s3://labdeck-data/shared/demo/")
    assert "evil.ipynb" not in listing
    assert len(drive(alice, "GET", "shared/demo/trips.csv").json()["content"]) > 1000


def test_rename_copy_delete_within_writable_prefixes_and_refusals_change_nothing(alice, alice_kernel):
    put = {"type": "file", "format": "text", "content": "a,b\n1,2\n"}
    assert drive(alice, "PUT", "home/alice/ops/a.csv", json=put).status_code == 201
    r = drive(alice, "PATCH", "home/alice/ops/a.csv", json={"path": "home/alice/ops/b.csv"})
    assert r.status_code == 200, r.text
    assert names(drive(alice, "GET", "home/alice/ops")) == ["b.csv"]
    # copy from the read-only demo data into the home
    r = drive(alice, "POST", "home/alice/ops", json={"copy_from": "shared/demo/trips.csv"})
    assert r.status_code == 201, r.text
    assert r.json()["path"] == "home/alice/ops/trips.csv"
    # moving out of a read-only prefix: S3 refuses the delete, the copy is undone
    r = drive(alice, "PATCH", "shared/demo/trips.csv", json={"path": "home/alice/ops/moved.csv"})
    assert r.status_code == 403 and "S3 refused to delete" in r.json()["message"]
    assert "moved.csv" not in names(drive(alice, "GET", "home/alice/ops"))
    assert drive(alice, "GET", "shared/demo/trips.csv", params={"content": 0}).status_code == 200
    # deleting in the read-only prefix is refused; a grant's root is never deleted
    r = drive(alice, "DELETE", "shared/demo/trips.csv")
    assert r.status_code == 403 and "Access Denied" in r.json()["message"]
    assert drive(alice, "DELETE", "home/alice").status_code == 403
    assert drive(alice, "DELETE", "home").status_code == 403
    # a whole folder (no marker object) goes at once
    assert drive(alice, "DELETE", "home/alice/ops").status_code == 204
    assert "ops/" not in kernel_ls(alice, alice_kernel, HOME)


def test_new_folder_is_a_marker_and_lists_empty(alice):
    r = drive(alice, "POST", "home/alice", json={"type": "directory"})
    assert r.status_code == 201, r.text
    folder = r.json()["path"]
    assert folder.startswith("home/alice/Untitled Folder")
    assert drive(alice, "GET", folder).json()["content"] == []
    assert drive(alice, "DELETE", folder).status_code == 204
    assert drive(alice, "GET", folder).status_code == 404


def test_chunked_upload_streams_to_s3_and_download_streams_back(alice):
    blob = bytes(range(256)) * (12 * 1024)  # 3 MiB, three 1 MiB chunks like JupyterLab's uploader
    pieces = [blob[i:i + 1024 * 1024] for i in range(0, len(blob), 1024 * 1024)]
    for n, piece in enumerate(pieces, start=1):
        chunk = -1 if n == len(pieces) else n
        body = {"type": "file", "format": "base64", "chunk": chunk, "content": base64.b64encode(piece).decode()}
        r = drive(alice, "PUT", "home/alice/big/blob.bin", json=body)
        assert r.status_code == 201, r.text
    assert r.json()["size"] == len(blob)
    r = call(alice, "GET", "s3/files/home/alice/big/blob.bin", params={"download": 1}, stream=True)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(blob)
    assert "attachment" in r.headers["Content-Disposition"]
    assert b"".join(r.iter_content(256 * 1024)) == blob
    assert call(alice, "GET", "s3/files/home/bob/secret.txt").status_code == 403


def test_transfer_between_home_and_s3(platform, alice):
    (platform.state_dir / "homes" / "alice" / "local.txt").write_text("made at home\n")
    r = call(alice, "POST", "s3/transfer", json={"from": "local.txt", "to": "S3:home/alice/moved-in"})
    assert r.status_code == 201, r.text
    assert r.json()["path"] == "S3:home/alice/moved-in/local.txt"
    assert drive(alice, "GET", "home/alice/moved-in/local.txt").json()["content"] == "made at home\n"
    r = call(alice, "POST", "s3/transfer", json={"from": "S3:shared/demo/trips.csv", "to": ""})
    assert r.status_code == 201, r.text
    assert (platform.state_dir / "homes" / "alice" / r.json()["path"]).read_text().startswith("trip_id")
    r = call(alice, "POST", "s3/transfer", json={"from": "local.txt", "to": "S3:shared/demo"})
    assert r.status_code == 403 and "Access Denied" in r.json()["message"]


@pytest.mark.parametrize("body, status", [
    ({"from": "../../etc/passwd", "to": "S3:home/alice"}, 404),
    ({"from": "S3:home/bob/secret.txt", "to": ""}, 403),
    ({"from": "local.txt", "to": "S3:home/bob"}, 403),
    ({"from": "local.txt", "to": "elsewhere"}, 400),
    ({"from": "local.txt", "to": "S3:home/alice", "as": "root"}, 400),
    ({"from": 7, "to": ""}, 400),
])
def test_hostile_transfers_are_refused(alice, body, status):
    r = call(alice, "POST", "s3/transfer", data=json.dumps(body))
    assert r.status_code == status, r.text


def test_no_token_no_drive(alice):
    import requests

    r = requests.get(f"{alice.server_url()}labdeck/s3/api/contents/home/alice", timeout=30, allow_redirects=False)
    assert r.status_code in (302, 403)



def test_a_new_persons_empty_home_lists_as_an_empty_folder(platform, bob):
    carol = person(platform, "carol", started=True)  # never wrote anything: her home prefix has no object
    r = drive(carol, "GET", "home/carol")
    assert r.status_code == 200 and r.json()["content"] == [] and r.json()["writable"] is True
    assert drive(bob, "GET", "home/bob/never-written").status_code == 404
