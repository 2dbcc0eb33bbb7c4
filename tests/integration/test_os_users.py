"""One OS user per person when ``labdeck up`` runs as root (a team VM), tried from the other person's kernel.

Runs only as root (this machine and CI). The hub users get a random suffix so
that accounts from an interrupted earlier run never collide; the accounts this
test created are removed at the end (labdeck itself never removes one).
"""

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.helpers.hubclient import HubClient
from tests.helpers.platform import start_platform


def _packages_reachable() -> bool:
    import sysconfig

    from labdeck.hub.local.serverenv import reachable_by_others

    return reachable_by_others(sysconfig.get_paths()["purelib"])


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"), reason="needs root and useradd"),
    # labdeck up refuses OS users then (clearly); the checkout must be readable by other users
    pytest.mark.skipif(not _packages_reachable(), reason="this checkout's packages are not readable by other users"),
]

SUFFIX = secrets.token_hex(3)
ALICE, BOB = f"alice-{SUFFIX}", f"bob-{SUFFIX}"


def sysname(hub_name):
    from labdeck.spawner.local.accounts import system_username

    return system_username(hub_name)


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    # a state directory other users can reach (pytest's own tmp is 0700)
    root = Path(tempfile.mkdtemp(prefix="labdeck-team-", dir="/tmp"))
    os.chmod(root, 0o755)
    plat = start_platform(root / "state", extra_env={"LABDECK_OS_USERS": "1"})
    try:
        yield plat
    finally:
        plat.stop()
        for name in (ALICE, BOB):
            subprocess.run(["userdel", sysname(name)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def alice(team):
    client = HubClient(team.url).login(ALICE, team.password)
    client.start_server()
    client.kernel = client.start_kernel()
    return client


@pytest.fixture(scope="module")
def bob(team):
    client = HubClient(team.url).login(BOB, team.password)
    client.start_server()
    client.kernel = client.start_kernel()
    return client


def run(client, code):
    return client.execute(code, client.kernel).check().stdout.strip()


def test_banner_says_servers_are_isolated(team):
    log = team.log_path.read_text()
    assert "one OS user per person" in log
    assert "not isolated" not in log
    home = requests.get(f"{team.url}/hub/login", timeout=10).text
    assert "not isolated" not in home


def test_servers_run_as_their_own_account_with_own_group_only(team, alice, bob):
    for client, hub_name in ((alice, ALICE), (bob, BOB)):
        pw = pwd.getpwnam(sysname(hub_name))
        out = run(client, "import os; print(os.getuid(), os.getgid(), sorted(os.getgroups()), os.environ['HOME'], os.environ['USER'], oct(os.umask(0o077)))")
        uid, gid, groups, home, user, umask = out.split(" ", 5)
        assert (int(uid), int(gid)) == (pw.pw_uid, pw.pw_gid)
        assert groups in ("[]", f"[{pw.pw_gid}]")
        assert home == str(team.state_dir / "homes" / hub_name) == pw.pw_dir
        assert user == pw.pw_name
        assert umask == "0o77"
        st = os.stat(home)
        assert (st.st_uid, st.st_mode & 0o777) == (pw.pw_uid, 0o700)
        files = Path(home) / ".labdeck"
        assert os.stat(files).st_uid == pw.pw_uid and os.stat(files).st_mode & 0o777 == 0o700
        for f in files.iterdir():
            assert (f.stat().st_uid, f.stat().st_mode & 0o777) == (pw.pw_uid, 0o600), f
        welcome = Path(home) / "Welcome.ipynb"
        assert welcome.stat().st_uid == pw.pw_uid  # onboarding files are the person's to edit
        # the server and kernel processes: the person's uid
        server_pid = int(run(client, "import os; print(os.getppid())"))
        assert os.stat(f"/proc/{server_pid}").st_uid == pw.pw_uid


def test_bob_cannot_read_alices_processes_home_credentials_or_platform_secrets(team, alice, bob):
    alice_home = team.state_dir / "homes" / ALICE
    run(alice, "open(os.path.expanduser('~/private.txt'), 'w').write('alice only')")
    kernel_pid = int(run(alice, "import os; print(os.getpid())"))
    server_pid = int(run(alice, "import os; print(os.getppid())"))
    targets = [
        f"/proc/{server_pid}/environ",
        f"/proc/{kernel_pid}/environ",
        str(alice_home / "private.txt"),
        str(alice_home / ".labdeck" / "aws_config"),
        str(team.state_dir / "secrets" / "cookie_secret"),
        str(team.state_dir / "secrets" / "proxy_token"),
        str(team.state_dir / "secrets" / "broker_aws_credentials"),
        str(team.state_dir / "jupyterhub.sqlite"),
        str(team.state_dir / "settings.json"),
        str(team.state_dir / "grants.json"),
        str(team.state_dir / "logs" / "hub.log"),
    ]
    listings = [str(alice_home), str(team.state_dir / "secrets"), str(team.state_dir / "homes"), str(team.state_dir / "logs")]
    assert (alice_home / ".labdeck" / "aws_config").exists()
    code = (
        "import os\n"
        f"targets, listings = {targets!r}, {listings!r}\n"
        "for t in targets:\n"
        "    try:\n"
        "        open(t, 'rb').read(1); print('READ', t)\n"
        "    except PermissionError:\n"
        "        print('DENIED', t)\n"
        "for d in listings:\n"
        "    try:\n"
        "        os.listdir(d); print('LISTED', d)\n"
        "    except PermissionError:\n"
        "        print('DENIED', d)\n"
    )
    out = run(bob, code).splitlines()
    assert out == [f"DENIED {t}" for t in targets + listings]
    # alice herself reads her own environment (her token is hers). The kernel's: a warm server's
    # /proc/<pid>/environ is the zygote's initial, non-personal one (README, "Warm pool")
    assert run(alice, f"print('JUPYTERHUB_API_TOKEN=' in open('/proc/{kernel_pid}/environ').read())") == "True"


def test_a_token_bob_cannot_read_cannot_be_used(team, alice, bob):
    # bob's own token does not open alice's server, and no token at all does not either
    url = f"{team.url}/user/{ALICE}/api/contents/private.txt"
    assert requests.get(url, headers=bob.headers(), timeout=10, allow_redirects=False).status_code == 403
    assert requests.get(url, timeout=10, allow_redirects=False).status_code in (302, 401, 403)
    # from bob's kernel, straight to alice's server port (skipping the proxy): refused without her token
    service_url = run(alice, "import os; print(os.environ['JUPYTERHUB_SERVICE_URL'])")
    code = (
        "import urllib.request, urllib.error\n"
        f"req = urllib.request.Request({service_url.rstrip('/') + '/api/contents/private.txt'!r})\n"
        "try:\n"
        "    urllib.request.urlopen(req, timeout=10); print('OPEN')\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
    )
    assert run(bob, code) in ("302", "401", "403")


def test_alices_run_executes_as_alice(team, alice):
    import json

    nb = {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "x = 1", "outputs": [], "execution_count": None},
            {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
             "source": "import os\nopen(os.path.expanduser('~/run-proof.txt'), 'w').write(f'{os.getuid()} {x}')"},
        ],
        "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }  # fmt: skip
    run(alice, f"import json, os; open(os.path.expanduser('~/proof.ipynb'), 'w').write({json.dumps(nb)!r})")
    r = requests.post(f"{team.url}/services/runs/api/runs", headers=alice.headers(), json={"notebook": "proof.ipynb", "parameters": {"x": 7}, "timeout": 120}, timeout=30)
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = requests.get(f"{team.url}/services/runs/api/runs/{r.json()['id']}", headers=alice.headers(), timeout=30).json()
        if status["status"] in ("succeeded", "failed", "timed_out"):
            break
        time.sleep(1)
    assert status["status"] == "succeeded", status
    proof = team.state_dir / "homes" / ALICE / "run-proof.txt"
    uid = pwd.getpwnam(sysname(ALICE)).pw_uid
    assert proof.read_text() == f"{uid} 7"
    assert proof.stat().st_uid == uid


def test_removing_a_user_from_the_hub_keeps_their_account_and_files(team, bob):
    bob.stop_server()
    token = (team.state_dir / "secrets" / "supervisor_token").read_text().strip()
    r = requests.delete(f"{team.url}/hub/api/users/{BOB}", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 204
    home = team.state_dir / "homes" / BOB
    assert (home / "Welcome.ipynb").exists()
    assert pwd.getpwnam(sysname(BOB)).pw_dir == str(home)
