"""The warm pod agent as a real process under a warm pod's security context (``setpriv``: uid 0 with
only SETUID/SETGID, no_new_privs), claimed over real HTTP: one claim, one person, nothing else.

What a container runtime does with :func:`labdeck.spawner.kube.warmpods.security_context` is what
``setpriv`` does here (the bounding set, no inheritable or ambient capabilities, no_new_privs),
so these run as root on Linux and skip elsewhere. The claimed command is a probe program (an
exec'd ``cmd``) that reports its own credentials, capabilities, home and environment and tries
to reach another person's home; the in-process server path is proven in the kube harness
(``tests/kube/test_warm_pods.py``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from labdeck.spawner.kube import warmpods

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
    reason="needs root, setpriv (a container's capabilities) and a system python3 for the probe",
)

SETPRIV = ["setpriv", "--reuid=0", "--regid=0", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all,+setuid,+setgid", "--no-new-privs", "--"]
KEY = secrets.token_urlsafe(32)
HOMES_KEY = b"test-homes-key"
ALICE_UID, BOB_UID = 201001, 201002

PROBE = r"""
import json, os, sys
def status():
    out = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("Uid", "Gid", "Groups", "CapEff", "CapPrm", "CapInh", "CapAmb", "NoNewPrivs"):
            out[k] = v.split()
    return out
reach = {}
for what, fn in (("list_homes", lambda: os.listdir(os.path.dirname(os.environ["HOME"]))),
                 ("read_other", lambda: open(sys.argv[1]).read()),
                 ("list_other", lambda: os.listdir(os.path.dirname(sys.argv[1]))),
                 ("write_files", lambda: open(sys.argv[3] + "/aws_config", "a").write("x")),
                 ("add_file", lambda: open(sys.argv[3] + "/new", "w").write("x")),
                 ("read_key", lambda: open(sys.argv[2]).read())):
    try:
        fn(); reach[what] = "allowed"
    except OSError as e:
        reach[what] = type(e).__name__
token_file = open(sys.argv[3] + "/jupyterhub-api-token").read()
print(json.dumps({"status": status(), "cwd": os.getcwd(), "umask": os.umask(0o077), "env": dict(os.environ), "reach": reach,
                  "token_file": token_file}), flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: the probe runs as the person: an interpreter every uid may execute (the venv's may live under /root)
PROBE_PYTHON = "/usr/bin/python3"


@pytest.fixture
def pod():
    """A warm pod's filesystem and its agent, started as the pod would start it."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="labdeck-warm-pod-", dir="/tmp"))  # pytest's tmp is private to root
    homes, files, keydir = root / "homes", root / "files", root / "key"
    for d in (homes, files, keydir):
        d.mkdir(parents=True)
    os.chmod(root, 0o755)
    os.chmod(homes, 0o777)  # as a fresh volume may come: the agent fixes what it owns
    os.chmod(files, 0o777)  # an emptyDir
    keyfile = keydir / "claim-key"
    keyfile.write_text(KEY)
    os.chmod(keyfile, 0o400)
    # bob's home from an earlier server: his uid, 0700, a private file
    bob = homes / warmpods.home_name("bob", HOMES_KEY)
    bob.mkdir(mode=0o700)
    (bob / "notes.txt").write_text("bob's secret notes")
    os.chown(bob, BOB_UID, BOB_UID)
    os.chown(bob / "notes.txt", BOB_UID, BOB_UID)
    port = free_port()
    log = open(root / "agent.log", "wb")
    env = {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "LANG": "C.UTF-8", "HOSTNAME": "warm-test"}
    proc = subprocess.Popen(
        [*SETPRIV, sys.executable, "-m", "labdeck.spawner.kube.podagent", "--bind=127.0.0.1", f"--claim-port={port}",
         f"--homes={homes}", f"--files-dir={files}", f"--key-file={keyfile}", "--min-uid=1000"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd="/",
    )  # fmt: skip
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, (root / "agent.log").read_text()
        try:
            if requests.get(url + "/ready", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.1)
    else:
        raise AssertionError("agent not ready: " + (root / "agent.log").read_text())
    p = type("Pod", (), {})()
    p.url, p.proc, p.homes, p.files, p.keyfile, p.bob, p.log = url, proc, homes, files, keyfile, bob, root / "agent.log"
    yield p
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    shutil.rmtree(root, ignore_errors=True)


def claim_for(p, name="alice", uid=ALICE_UID, **over):
    msg = {
        "argv": [PROBE_PYTHON, "-c", PROBE, str(p.bob / "notes.txt"), str(p.keyfile), str(p.files)],
        "env": {"JUPYTERHUB_API_TOKEN": "token-of-" + name, "JUPYTERHUB_USER": name, "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/" + name + "/"},
        "home": f"{p.homes}/{warmpods.home_name(name, HOMES_KEY)}",
        "uid": uid, "gid": uid,
        "files": {"aws_config": "[default]\ncredential_process = labdeck-credentials aws\n", "jupyterhub-api-token": "token-of-" + name},
        "umask": 0o077,
    }  # fmt: skip
    msg.update(over)
    return msg


def post(p, msg, key=KEY, timeout=30):
    return requests.post(p.url + "/claim", data=json.dumps(msg), headers={"Authorization": f"Bearer {key}"}, timeout=timeout)


def report(p) -> dict:
    p.proc.wait(30)
    lines = [ln for ln in p.log.read_text().splitlines() if ln.startswith("{")]
    assert lines, p.log.read_text()
    return json.loads(lines[-1])


def test_claimed_process_is_the_person_with_no_capability_left(pod):
    r = post(pod, claim_for(pod))
    assert (r.status_code, r.text) == (200, "OK")
    out = report(pod)
    st = out["status"]
    assert st["Uid"] == [str(ALICE_UID)] * 4 and st["Gid"] == [str(ALICE_UID)] * 4, st
    assert st.get("Groups", []) == []  # no supplementary group (no fsGroup to share files through)
    assert int(st["CapEff"][0], 16) == int(st["CapPrm"][0], 16) == int(st["CapAmb"][0], 16) == 0, st
    assert st["NoNewPrivs"] == ["1"]
    home = pod.homes / warmpods.home_name("alice", HOMES_KEY)
    assert out["cwd"] == str(home) and out["env"]["HOME"] == str(home)
    hs = home.lstat()
    assert (hs.st_uid, stat.S_IMODE(hs.st_mode)) == (ALICE_UID, 0o700)
    assert out["umask"] == 0o077
    # the person's environment on top of the pod's (HOSTNAME, PATH from the pod; token from the claim)
    assert out["env"]["JUPYTERHUB_API_TOKEN"] == "token-of-alice" and out["env"]["HOSTNAME"] == "warm-test"
    assert out["env"]["JUPYTERHUB_SERVICE_URL"] == "http://127.0.0.1:8888/user/alice/"  # the pod's own address
    # nothing else reachable: not the list of homes, not bob's home, not the key, not labdeck's files for writing
    assert out["reach"] == {"list_homes": "PermissionError", "read_other": "PermissionError", "list_other": "PermissionError",
                            "write_files": "PermissionError", "add_file": "PermissionError", "read_key": "PermissionError"}, out["reach"]  # fmt: skip
    for name in ("aws_config", "jupyterhub-api-token"):  # as a cold pod's Secret mount: root, the person's group, 0440
        fs = (pod.files / name).stat()
        assert (fs.st_uid, fs.st_gid, stat.S_IMODE(fs.st_mode)) == (0, ALICE_UID, 0o440), name
    assert stat.S_IMODE(pod.files.stat().st_mode) == 0o755
    assert out["token_file"] == "token-of-alice"  # the person reads it (the in-server client does)
    assert stat.S_IMODE(pod.homes.stat().st_mode) == warmpods.HOMES_MODE and pod.homes.stat().st_uid == 0
    assert "token-of-alice" not in pod.log.read_text().replace(json.dumps(out), "")  # the agent logs no claim


def test_before_the_claim_the_agent_cannot_read_a_home(pod):
    """uid 0 with only SETUID/SETGID has no DAC_OVERRIDE: the pre-claim process sees no home's content."""
    r = subprocess.run([*SETPRIV, sys.executable, "-c", f"open({str(pod.bob / 'notes.txt')!r}).read()"], capture_output=True, text=True)
    assert r.returncode != 0 and "PermissionError" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "change, status",
    [
        ({"key": "wrong-" + KEY}, 403),
        ({"key": ""}, 403),
        ({"uid": 0, "gid": 0}, 400),  # never root
        ({"uid": 999, "gid": 999}, 400),  # never a system account
        ({"home": "/etc"}, 400),
        ({"home": "HOMES/../etc-0123456789abcdef0123"}, 400),
        ({"home": "HOMES/alice"}, 400),  # not a home name: a guessable one could be squatted
        ({"files": {"../x": "y"}}, 400),
        ({"umask": 0}, 400),
        ({"extra": 1}, 400),
    ],
    ids=["wrong-key", "no-key", "root", "system-uid", "etc", "traversal", "guessable-home", "file-path", "umask", "unknown-key"],
)
def test_refused_claims_change_nothing_and_the_pod_stays_free(pod, change, status):
    msg = claim_for(pod)
    key = change.pop("key", KEY)
    if "home" in change:
        change["home"] = change["home"].replace("HOMES", str(pod.homes))
    msg.update(change)
    r = post(pod, msg, key=key)
    assert r.status_code == status, r.text
    assert "token-of" not in r.text
    assert sorted(os.listdir(pod.homes)) == [pod.bob.name] and os.listdir(pod.files) == []
    assert pod.proc.poll() is None
    # still free: the right claim goes through
    assert post(pod, claim_for(pod)).text == "OK"
    assert report(pod)["status"]["Uid"][0] == str(ALICE_UID)


def test_concurrent_claims_one_person_only(pod):
    """Eight claims at once, for eight people, with the right key: exactly one wins; the others find no listener."""
    results: dict[int, object] = {}

    def go(i):
        try:
            results[i] = post(pod, claim_for(pod, name=f"p{i}", uid=ALICE_UID + 10 + i), timeout=30).status_code
        except requests.RequestException as e:
            results[i] = type(e).__name__

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [i for i, r in results.items() if r == 200]
    assert len(winners) == 1, results
    out = report(pod)
    assert out["env"]["JUPYTERHUB_USER"] == f"p{winners[0]}" and out["status"]["Uid"][0] == str(ALICE_UID + 10 + winners[0])
    homes = sorted(os.listdir(pod.homes))
    assert homes == sorted([pod.bob.name, warmpods.home_name(f"p{winners[0]}", HOMES_KEY)])
    with pytest.raises(requests.ConnectionError):
        post(pod, claim_for(pod), timeout=5)


def test_a_squatted_home_refuses_the_claim(pod):
    """A directory at alice's home name that is not hers alone (another uid created it) is never entered."""
    squat = pod.homes / warmpods.home_name("alice", HOMES_KEY)
    squat.mkdir(mode=0o777)
    os.chown(squat, BOB_UID, BOB_UID)
    r = post(pod, claim_for(pod))
    assert r.status_code == 500 and r.text == "ER PermissionError"
    assert pod.proc.wait(30) == 1  # the pod dropped to alice's uid: it is nobody's now and ends
    assert not [ln for ln in pod.log.read_text().splitlines() if ln.startswith("{")]  # the probe never ran


def test_a_home_that_is_a_link_is_never_followed(pod):
    link = pod.homes / warmpods.home_name("alice", HOMES_KEY)
    link.symlink_to(pod.bob)
    r = post(pod, claim_for(pod))
    assert r.status_code == 500
    assert pod.proc.wait(30) == 1


def test_an_agent_never_serves_in_a_pod_that_was_claimed(pod):
    """An agent started again in a claimed pod (its files are there) refuses to serve at all."""
    assert post(pod, claim_for(pod)).text == "OK"
    report(pod)
    r = subprocess.run(
        [*SETPRIV, sys.executable, "-m", "labdeck.spawner.kube.podagent", "--bind=127.0.0.1", f"--claim-port={free_port()}",
         f"--homes={pod.homes}", f"--files-dir={pod.files}", f"--key-file={pod.keyfile}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and "was claimed before" in r.stderr, r.stderr
