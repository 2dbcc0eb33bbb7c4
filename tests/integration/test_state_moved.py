"""A team VM's state directory moved or recreated: returning people get their server back, or a clear page.

As root with OS users, labdeck's accounts (``labdeck-<name>``, made by
labdeck's own code on the first spawn) record their home in the state
directory. After the directory is moved, labdeck re-homes its own accounts;
after it is recreated while the old homes still hold files, or when the
account is not labdeck's, the spawn fails with a page that says to ask the
admin and a hub log line that says what to run - never an "Unhandled error",
never a spawn that silently does not become ready. The accounts are removed
at the end.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from tests.helpers.hubclient import HubClient
from tests.helpers.platform import start_platform

from .test_os_users import _packages_reachable, sysname

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"), reason="needs root and useradd"),
    pytest.mark.skipif(not _packages_reachable(), reason="this checkout's packages are not readable by other users"),
]

SUFFIX = secrets.token_hex(3)
ALICE, CAROL = f"alice-{SUFFIX}", f"carol-{SUFFIX}"


@pytest.fixture(scope="module")
def root():
    root = Path(tempfile.mkdtemp(prefix="labdeck-moved-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        for name in (ALICE, CAROL):
            subprocess.run(["userdel", sysname(name)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def team(state: Path):
    return start_platform(state, extra_env={"LABDECK_OS_USERS": "1"})


def spawn_outcome(client: HubClient) -> tuple[bool, str]:
    """(ready, what the person is told): the spawn page's progress stream, as its JavaScript reads it.

    The page's ``EventSource`` reconnects when a stream closes before its last
    event (a spawn that ends between two reads), so this does too, a bounded
    number of times: the reconnect gets the outcome from the hub's record.
    """
    r = client.api("POST", client.server_path(), json={})
    if r.status_code >= 400:
        return False, r.json().get("message", r.text)
    last = {}
    for _ in range(5):
        with requests.get(f"{client.base}/hub/api{client.server_path()}/progress", headers=client.headers(), stream=True, timeout=120) as events:
            if events.status_code != 200:
                break
            for line in events.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    last = json.loads(line[5:])
                    if last.get("ready") or last.get("failed"):
                        return bool(last.get("ready")), last.get("message", "")
    return bool(last.get("ready")), last.get("message", "")


def test_moved_state_directory_rehomes_and_a_recreated_one_with_old_files_gets_a_clear_page(root):
    first = root / "first"
    plat = team(first)
    try:
        alice = HubClient(plat.url).login(ALICE, plat.password)
        alice.start_server()
        alice.execute("open('notes.txt', 'w').write('kept')", alice.start_kernel()).check()
    finally:
        plat.stop()
    assert pwd.getpwnam(sysname(ALICE)).pw_dir == str(first / "homes" / ALICE)

    # moved: the old home went with it -> the account is re-homed and alice's files are there
    moved = root / "moved"
    first.rename(moved)
    plat = team(moved)
    try:
        alice = HubClient(plat.url).login(ALICE, plat.password)
        ready, message = spawn_outcome(alice)
        assert ready, message
        out = alice.execute("print(open('notes.txt').read())", alice.start_kernel()).check().stdout.strip()
        assert out == "kept"
        assert pwd.getpwnam(sysname(ALICE)).pw_dir == str(moved / "homes" / ALICE)
        assert "re-homed" in (moved / "logs" / "hub.log").read_text()
    finally:
        plat.stop()

    # recreated elsewhere while the old homes still hold files -> a clear page, the admin's line says what to run;
    # an account labdeck did not make -> the same
    subprocess.run(["useradd", "--no-create-home", "--comment", "made by hand", sysname(CAROL)], check=True)
    fresh = root / "fresh"
    plat = team(fresh)
    try:
        for name in (ALICE, CAROL):
            client = HubClient(plat.url).login(name, plat.password)
            ready, message = spawn_outcome(client)
            assert not ready
            assert "Spawn failed" in message or "admin" in message
            assert "ask them" in message, message
            # the page the person's browser lands on says the same, and nothing of the admin's details
            page = client.http.get(f"{plat.url}/hub/spawn-pending/{name}", timeout=30).text
            assert "ask them" in page and "usermod" not in page and "/tmp/" not in page
            servers = client.api("GET", f"/users/{name}").json()["servers"]
            assert "" not in servers or not servers[""]["pending"], servers
        log = (fresh / "logs" / "hub.log").read_text()
        assert f"mv {moved / 'homes' / ALICE} {fresh / 'homes' / ALICE} && usermod --home {fresh / 'homes' / ALICE} {sysname(ALICE)}" in log
        assert f"userdel {sysname(CAROL)}" in log
        assert "Unhandled error" not in log
        # a stream that closed early was not the hub failing
        assert "Uncaught exception" not in log, log[log.find("Uncaught exception") - 300 :][:3000]
        # nothing changed: alice's files and account stay where they were
        assert pwd.getpwnam(sysname(ALICE)).pw_dir == str(moved / "homes" / ALICE)
        assert (moved / "homes" / ALICE / "notes.txt").read_text() == "kept"
    finally:
        plat.stop()

