"""A server claimed from the warm pool is indistinguishable from a cold one, seen from inside its own kernel.

Two real platforms side by side, both as on a root team VM (one OS user per
person): ``warm`` (the default: warm pool on) and ``cold``
(``warm_pool_size: 0``, through an admin's values file). The same person logs in
on each; their kernels report who the server is (uid, groups, umask, home,
working directory, environment, signal masks, open descriptors of the server
process) and the two reports must agree on everything but what is
per-platform (ports, tokens, paths of the state directory). On the warm
platform the hub's log must say the server was claimed, other people's tokens
must be nowhere, S3 must work with the person's own credentials and refuse
another person's prefix, profile choices must arrive, and several people
claiming at the same moment must get one server each.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.helpers.hubclient import HubClient
from tests.helpers.platform import start_platform

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"), reason="needs root and useradd (OS users)"),
]

SUFFIX = secrets.token_hex(3)
# one OS account per hub name, with one home: the two platforms need different people
ALICE, BOB, CAROL = f"walice-{SUFFIX}", f"wbob-{SUFFIX}", f"calice-{SUFFIX}"
CROWD = [f"wc{i}-{SUFFIX}" for i in range(4)]
PROFILES = [
    {"slug": "jupyterlab", "display_name": "JupyterLab", "default": True, "default_url": "/lab"},
    {"slug": "tree", "display_name": "Files first", "default_url": "/lab/tree"},
]

PROBE = r"""
import json, os
server = os.getppid()
def status(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("Uid", "Gid", "Groups", "SigIgn", "SigBlk", "NoNewPrivs"):
            out[k] = v.split()
    return out
def kind(link):
    for p in ("socket:", "pipe:", "anon_inode:"):
        if link.startswith(p):
            return link.split("[")[0] if p != "anon_inode:" else link
    return "file:" + ("/dev/null" if link == "/dev/null" else os.path.splitext(link)[1])
fds = sorted(kind(os.readlink(f"/proc/{server}/fd/{fd}")) for fd in os.listdir(f"/proc/{server}/fd"))
old = os.umask(0); os.umask(old)
print(json.dumps({
    "server_pid": server, "server_status": status(server), "server_cwd": os.readlink(f"/proc/{server}/cwd"),
    "server_sid_is_pid": os.getsid(server) == server, "server_fds": fds,
    "server_initial_env": open(f"/proc/{server}/environ", "rb").read().decode(errors="replace"),
    "env": dict(os.environ), "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
    "umask": old, "cwd": os.getcwd(),
}))
"""


def sysname(hub_name):
    from labdeck.spawner.local.accounts import system_username

    return system_username(hub_name)


@pytest.fixture(scope="module")
def platforms():
    root = Path(tempfile.mkdtemp(prefix="labdeck-warm-", dir="/tmp"))
    os.chmod(root, 0o755)
    (root / "profiles.json").write_text(json.dumps(PROFILES))
    (root / "cold.json").write_text(json.dumps({"hub": {"config": {"LabdeckLocalProcessSpawner": {"warm_pool_size": 0}}}}))
    common = {"LABDECK_OS_USERS": "1", "LABDECK_PROFILES_FILE": str(root / "profiles.json")}
    started = []
    try:
        started.append(start_platform(root / "warm", extra_env=common))
        started.append(start_platform(root / "cold", extra_env={**common, "LABDECK_VALUES_FILE": str(root / "cold.json")}))
        yield {"warm": started[0], "cold": started[1]}
    finally:
        for p in started:
            p.stop()
        for name in (ALICE, BOB, CAROL, *CROWD):
            subprocess.run(["userdel", sysname(name)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _hub_log(plat) -> str:
    return (plat.state_dir / "logs" / "hub.log").read_text(errors="replace")


def _wait_for_pool(plat, timeout=120):
    """The pool starts when the hub first makes a spawner (a login); wait until its zygote says ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(r"warm pool: zygote \d+ ready", _hub_log(plat)):
            return
        time.sleep(0.2)
    raise AssertionError("the warm pool never got ready:\n" + _hub_log(plat)[-3000:])


def _person(plat, name, options=None, warm=False):
    client = HubClient(plat.url).login(name, plat.password)
    if warm:
        _wait_for_pool(plat)
    client.start_server(options=options)
    client.kernel = client.start_kernel()
    return client


def _probe(client) -> dict:
    return json.loads(client.execute(PROBE, client.kernel).check().stdout)


@pytest.fixture(scope="module")
def reports(platforms):
    out = {}
    # bob first on the warm platform: his claim comes from the same zygote alice's does
    out["bob"] = _probe(_person(platforms["warm"], BOB, warm=True))
    for kind, name in (("warm", ALICE), ("cold", CAROL)):
        client = _person(platforms[kind], name, warm=kind == "warm")
        out[kind] = _probe(client)
        out[kind + "_client"] = client
    return out


def test_warm_platform_claimed_from_the_pool_and_cold_one_did_not(platforms, reports):
    assert re.search(rf"Claimed warm server {reports['warm']['server_pid']} for {re.escape(ALICE)}\b", _hub_log(platforms["warm"]))
    assert "Claimed warm server" not in _hub_log(platforms["cold"])


def test_runs_as_the_person_exactly_like_a_cold_start(platforms, reports):
    warm, cold = reports["warm"], reports["cold"]
    for r, plat, name in ((warm, platforms["warm"], ALICE), (cold, platforms["cold"], CAROL)):
        pw = pwd.getpwnam(sysname(name))
        home = str(plat.state_dir / "homes" / name)
        assert (r["uid"], r["gid"]) == (pw.pw_uid, pw.pw_gid)
        assert r["env"]["HOME"] == home and r["cwd"] == home and r["server_cwd"] == home
        assert r["env"]["JUPYTERHUB_USER"] == name
        assert r["server_sid_is_pid"]
    for key in ("groups", "umask"):
        assert warm[key] == cold[key], key
    def masks(r):  # the person's ids differ by construction; the rest must not
        return {k: v for k, v in r["server_status"].items() if k not in ("Uid", "Gid", "Groups")}

    assert masks(warm) == masks(cold)  # ignored and blocked signals, no_new_privs
    for r in (warm, cold):
        uid, gid = str(r["uid"]), str(r["gid"])
        assert r["server_status"]["Uid"] == [uid] * 4 and r["server_status"]["Gid"] == [gid] * 4
        assert r["server_status"].get("Groups", []) == []
    # nothing left open from the pool's preparation: the same files and pipes (sockets and
    # eventfds come and go with connections - kernel channels, the hub - so only files/pipes compare)
    def still(fds):
        return [f for f in fds if f.startswith(("file:", "pipe:"))]

    assert still(warm["server_fds"]) == still(cold["server_fds"]), (warm["server_fds"], cold["server_fds"])
    # the same variables; values differ only where the platforms do (ports, tokens, state paths)
    assert sorted(warm["env"]) == sorted(cold["env"])
    def norm(r, plat, name, k):
        v = r["env"][k].replace(str(plat.state_dir), "S").replace(sysname(name), "U").replace(name, "N")
        from labdeck.spawner import builders

        return v.replace(builders.bigquery_dataset(name, "user_{username}"), "D")  # the person's dataset name

    differ = {k for k in warm["env"] if norm(warm, platforms["warm"], ALICE, k) != norm(cold, platforms["cold"], CAROL, k)}
    allowed = re.compile(r"(TOKEN|_URL|_PORT|ENDPOINT|EMULATOR|_HOST|JPY_|KERNEL|PATH$)")
    assert not {k for k in differ if not allowed.search(k)}, differ


def test_token_is_the_persons_and_nobody_elses_is_anywhere(platforms, reports):
    warm, bob = reports["warm"], reports["bob"]
    token = warm["env"]["JUPYTERHUB_API_TOKEN"]
    who = requests.get(f"{platforms['warm'].url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=10).json()
    assert who["name"] == ALICE
    bob_token = bob["env"]["JUPYTERHUB_API_TOKEN"]
    assert bob_token != token
    everything = json.dumps(warm)
    assert bob_token not in everything and BOB not in everything
    # the zygote's own environment (what /proc shows as the initial one) holds nothing personal
    for r in (warm, bob):
        initial = r["server_initial_env"]
        assert "TOKEN" not in initial and ALICE not in initial and BOB not in initial


def test_credentials_work_in_the_kernel_and_stay_the_persons(reports):
    client = reports["warm_client"]
    code = (
        "import boto3, os\n"
        "b, p = os.environ['LABDECK_S3_HOME'][5:].split('/', 1)\n"
        "s3 = boto3.client('s3')\n"
        "s3.put_object(Bucket=b, Key=p + 'warm.txt', Body=b'mine')\n"
        "print(s3.get_object(Bucket=b, Key=p + 'warm.txt')['Body'].read().decode())\n"
        f"other = p.replace({ALICE!r}, {BOB!r})\n"
        "try:\n"
        "    s3.put_object(Bucket=b, Key=other + 'x.txt', Body=b'not yours'); print('WROTE')\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, getattr(e, 'response', {}).get('Error', {}).get('Code'))\n"
    )
    out = client.execute(code, client.kernel).check().stdout.split("\n")
    assert out[0] == "mine"
    assert out[1].split()[-1] == "AccessDenied", out


def test_profile_choice_arrives_in_a_claimed_server(platforms, reports):
    client = reports["warm_client"]
    client.stop_server()
    client.start_server(options={"profile": "tree"})
    client.kernel = client.start_kernel()
    r = _probe(client)
    assert r["env"]["LABDECK_PROFILE"] == "tree"
    assert r["env"]["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree"
    assert re.search(rf"Claimed warm server {r['server_pid']} for {re.escape(ALICE)}\b", _hub_log(platforms["warm"]))


def test_people_claiming_at_the_same_moment_get_one_server_each(platforms):
    plat = platforms["warm"]
    clients = [HubClient(plat.url).login(n, plat.password) for n in CROWD]
    errors = []

    def go(c):
        try:
            c.start_server()
            c.kernel = c.start_kernel()
        except Exception as e:  # reported below
            errors.append(f"{c.name}: {e}")

    threads = [threading.Thread(target=go, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, "\n".join(errors) + "\n" + _hub_log(plat)[-6000:]
    seen = {}
    for c in clients:
        try:
            r = _probe(c)
        except Exception as e:  # say why the server went away, not only that the socket did
            raise AssertionError(f"{c.name}: {e!r}\n{_hub_log(plat)[-8000:]}") from e
        assert r["env"]["JUPYTERHUB_USER"] == c.name and r["uid"] == pwd.getpwnam(sysname(c.name)).pw_uid
        seen[r["server_pid"]] = c.name
    assert len(seen) == len(CROWD)
    claimed = re.findall(r"Claimed warm server (\d+) for (\S+)", _hub_log(plat))
    mine = [(int(pid), who) for pid, who in claimed if who in CROWD]
    assert len({pid for pid, _ in mine}) == len(mine)  # no member went to two people
