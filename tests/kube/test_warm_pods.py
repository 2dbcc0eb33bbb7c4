"""Warm pods (``singleuser.warmPool``) through the chart's own hub, in tests/kube - proven as the local pool was.

The chart is installed with ``singleuser.warmPool.enabled`` (``chart_harness.started_release``);
the process kubelet runs warm pods with their security context (``run_as_user=warm_pods``:
``setpriv`` gives the agent uid 0 with only SETUID/SETGID and ``no_new_privs``, as a container
runtime would) and every other pod as before. People log in through the real OIDC provider.

- free warm pods have nothing personal in them (spec, environment, labels), and their agent
  holds SETUID/SETGID only;
- a claim gives the person their own uid, their 0700 home on the shared volume, an API token
  that is theirs, the environment a cold pod has, S3 through the broker scoped to them, and
  no capability left;
- nothing of another person is reachable: not the list of homes, not bob's home, not bob's
  token (in no free pod, in no other server);
- concurrent spawns get distinct pods, and a pod cannot be claimed twice at the API;
- a stopped server's pod (and its key) is gone, the pool refills, and ``helm uninstall``
  leaves no warm pod behind (the homes volume stays).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from labdeck.spawner.kube import warmpods
from tests.helpers import oidc
from tests.helpers.required import missing
from tests.kube import chart_harness as ch

pytestmark = [pytest.mark.k8s, pytest.mark.integration]

PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank"]
IDENTITIES = {p: ["data-team"] for p in PEOPLE}
SIZE = 2
FREE = "labdeck.dev%2Fwarm%3Dready"


@pytest.fixture(scope="module")
def release(kube_cluster, tmp_path_factory):
    from tests.chart.chartlib import _helm_path
    from tests.kube.cluster import ClusterError
    from tests.kube.kubelet import _pick_mount_mode

    if _helm_path()[0] is None:
        missing("helm", _helm_path()[1])
    if _pick_mount_mode("auto") != "unshare":
        pytest.skip("the chart harness needs root with `unshare --mount` (per-pod /etc/hosts and mounts)")
    work = tmp_path_factory.mktemp("warm-release")
    try:
        kube_cluster.start_controller_manager()
    except ClusterError as e:
        missing("kube-controller-manager", e)
    args = ["--set", "singleuser.warmPool.enabled=true", "--set", f"singleuser.warmPool.size={SIZE}"]
    with ch.started_release(kube_cluster, work, IDENTITIES, extra_args=args, run_as_user=ch.warm_pods, preflight_checks=False) as rel:
        yield rel


def free_pods(rel) -> list[dict]:
    return [p for p in rel.pods(FREE) if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def agent_ready(pod: dict) -> bool:
    try:
        return requests.get(f"http://{pod['status']['podIP']}:8889/ready", timeout=2).status_code == 200
    except (requests.RequestException, KeyError):
        return False


def wait_free(rel, n: int, timeout: float = 150) -> list[dict]:
    """``n`` free pods whose agents answer and that the hub's pool has queued (its log says so)."""
    deadline = time.monotonic() + timeout
    pods: list[dict] = []
    while time.monotonic() < deadline:
        queued = set(re.findall(r"warm pool: pod (\S+) ready", rel.log("hub")))
        pods = [p for p in free_pods(rel) if p["metadata"]["name"] in queued and agent_ready(p)]
        if len(pods) >= n:
            return pods
        time.sleep(0.5)
    raise AssertionError(f"{n} free warm pods not ready after {timeout}s: {[p['metadata']['name'] for p in pods]}\n{rel.log('hub')[-4000:]}")


def proc_status(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.split()
    return out


def environ(pid: int) -> dict:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode(errors="replace").split("=", 1) for e in raw if b"=" in e)


def homes_key(rel) -> bytes:
    secret = rel.get(f"/api/v1/namespaces/{ch.NAMESPACE}/secrets/{ch.RELEASE}-hub")
    return base64.b64decode(secret["data"]["singleuser.homes-key"])


def homes_dir(rel) -> Path:
    return rel.kubelet.pvc_root / ch.NAMESPACE / f"{ch.RELEASE}-homes"


def pod_of(rel, user: str) -> dict | None:
    for p in rel.pods("component%3Dsingleuser-server"):
        if p["metadata"].get("annotations", {}).get("hub.jupyter.org/username") == user and not p["metadata"].get("deletionTimestamp"):
            return p
    return None


@pytest.fixture(scope="module")
def people(release):
    """Everyone logged in; the hub's first spawner object (at the first login) starts the pool."""
    login = oidc.journey_login(release.url)
    out = {p: login(p) for p in PEOPLE}
    try:
        wait_free(release, SIZE)
    except BaseException:
        print(release.diagnose()[-20000:])
        raise
    return out


KERNEL = r"""
import json, os, requests, boto3
from botocore.exceptions import ClientError
st = {}
for line in open("/proc/self/status"):
    k, _, v = line.partition(":")
    if k in ("Uid", "Gid", "Groups", "CapEff", "CapPrm", "CapAmb", "NoNewPrivs"):
        st[k] = v.split()
who = requests.get(os.environ["JUPYTERHUB_API_URL"] + "/user", headers={"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}, timeout=10).json()["name"]
home = os.environ["HOME"]
s3 = boto3.client("s3")
b, p = os.environ["LABDECK_S3_HOME"][5:].split("/", 1)
s3.put_object(Bucket=b, Key=p + "warm.txt", Body=b"mine")
reach = {}
for what, fn in (("list_homes", lambda: os.listdir(os.path.dirname(home))),
                 ("other_home", lambda: os.listdir(OTHER_HOME)),
                 ("other_file", lambda: open(OTHER_HOME + "/private.txt").read()),
                 ("key", lambda: open("/var/run/labdeck-warm/claim-key").read()),
                 ("files", lambda: open("/etc/labdeck/aws_config", "a").write("x"))):
    try:
        fn(); reach[what] = "allowed"
    except OSError as e:
        reach[what] = type(e).__name__
try:
    s3.get_object(Bucket=b, Key="home/OTHERNAME/private.txt"); reach["other_s3"] = "allowed"
except ClientError as e:
    reach["other_s3"] = e.response["Error"]["Code"]
hs = os.stat(home)
print(json.dumps({"status": st, "who": who, "home": home, "cwd": os.getcwd(), "home_mode": oct(hs.st_mode & 0o777), "home_uid": hs.st_uid,
                  "s3": s3.get_object(Bucket=b, Key=p + "warm.txt")["Body"].read().decode(), "reach": reach,
                  "welcome": os.path.exists(os.path.join(home, "Welcome.ipynb")), "env": dict(os.environ)}))
"""


def run_kernel(client, other: str, other_name: str) -> dict:
    kid = client.start_kernel()
    out = client.execute(KERNEL.replace("OTHERNAME", other_name).replace("OTHER_HOME", repr(other)), kid).check()
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_free_warm_pods_hold_nothing_personal_and_only_setuid_setgid(release, people):
    for pod in wait_free(release, SIZE):
        text = json.dumps(pod)
        assert "hub.jupyter.org/username" not in text and "JUPYTERHUB_API_TOKEN" not in text
        for p in PEOPLE:
            assert f'"{p}"' not in text and f"/{p}/" not in text
        assert pod["metadata"]["ownerReferences"][0]["name"] == f"{ch.RELEASE}-hub"  # goes with the release
        pid = release.kubelet.pid(pod["metadata"]["name"])
        st = proc_status(pid)
        assert st["Uid"] == ["0"] * 4 and st["NoNewPrivs"] == ["1"], st
        caps = int(st["CapEff"][0], 16)
        assert caps == (1 << 6) | (1 << 7), hex(caps)  # CAP_SETGID | CAP_SETUID, nothing else
        env = environ(pid)
        assert not [k for k in env if k.startswith("JUPYTERHUB_")] and "LABDECK_S3_HOME" not in env
        for c in people.values():
            assert c.token not in json.dumps(env)


@pytest.fixture(scope="module")
def alice_and_bob(release, people):
    """bob starts and leaves a private file in his home; alice starts; both from the pool."""
    free_before = {p["metadata"]["name"] for p in wait_free(release, SIZE)}
    out = {}
    for name in ("bob", "alice"):
        t0 = time.monotonic()
        people[name].start_server(timeout=180)
        out[name + "_s"] = time.monotonic() - t0
        out[name] = pod_of(release, name)
        wait_free(release, SIZE)
    key = homes_key(release)
    bob_home = f"/home/{warmpods.home_name('bob', key)}"
    kid = people["bob"].start_kernel()
    res = people["bob"].execute(f"open({bob_home + '/private.txt'!r}, 'w').write('bob only'); import os; print(os.environ['JUPYTERHUB_API_TOKEN'])", kid)
    out["bob_token"] = res.check().stdout.strip().splitlines()[-1]
    out["bob_home"] = bob_home
    out["free_before"] = free_before
    out["alice_report"] = run_kernel(people["alice"], bob_home, "bob")
    print(f"\nwarm spawns through the chart: bob {out['bob_s']:.2f}s, alice {out['alice_s']:.2f}s")
    return out


def test_a_claim_is_the_person_own_uid_token_home_and_environment(release, people, alice_and_bob):
    r = alice_and_bob["alice_report"]
    hub_log = release.log("hub")
    for name in ("bob", "alice"):
        pod = alice_and_bob[name]
        assert re.search(rf"Claimed (warm|new) pod {re.escape(pod['metadata']['name'])} for {name}\b", hub_log), hub_log[-3000:]
    # bob's came from the pool that was waiting before anyone logged in
    assert alice_and_bob["bob"]["metadata"]["name"] in alice_and_bob["free_before"], "\n".join(
        ln for ln in hub_log.splitlines() if "warm" in ln.lower())[-4000:]
    assert r["who"] == "alice"  # the token in her server is hers
    uid = int(r["status"]["Uid"][0])
    assert uid >= 100000 and r["status"]["Uid"] == [str(uid)] * 4 and r["status"]["Gid"] == [str(uid)] * 4
    assert r["status"].get("Groups", []) == [] and r["status"]["NoNewPrivs"] == ["1"]
    assert int(r["status"]["CapEff"][0], 16) == int(r["status"]["CapPrm"][0], 16) == 0
    assert r["home"] == f"/home/{warmpods.home_name('alice', homes_key(release))}" == r["cwd"]
    assert (r["home_mode"], r["home_uid"]) == ("0o700", uid)
    assert r["s3"] == "mine" and r["welcome"] is True
    env = r["env"]
    assert env["JUPYTERHUB_USER"] == "alice" and env["LABDECK_S3_HOME"].endswith("/home/alice/")
    assert env["HOSTNAME"] == alice_and_bob["alice"]["metadata"]["name"]
    assert env["AWS_CONFIG_FILE"].startswith("/etc/labdeck/")
    # the pod's own Kubernetes view: the person's labels, no owner (a person's server outlives the release's pods)
    pod = release.get(f"/api/v1/namespaces/{ch.NAMESPACE}/pods/{alice_and_bob['alice']['metadata']['name']}")
    assert pod["metadata"]["labels"]["labdeck.dev/warm"] == "claimed" and not pod["metadata"].get("ownerReferences")
    assert pod["metadata"]["labels"]["hub.jupyter.org/username"] == "alice"


def test_no_other_person_data_is_reachable(release, people, alice_and_bob):
    r = alice_and_bob["alice_report"]
    assert r["reach"] == {
        "list_homes": "PermissionError", "other_home": "PermissionError", "other_file": "PermissionError",
        "key": "PermissionError", "files": "PermissionError", "other_s3": "AccessDenied",
    }, r["reach"]  # fmt: skip
    bob_home = homes_dir(release) / Path(alice_and_bob["bob_home"]).name
    st = bob_home.stat()
    assert st.st_mode & 0o777 == 0o700 and (bob_home / "private.txt").read_text() == "bob only"
    assert (homes_dir(release).stat().st_mode & 0o7777) == warmpods.HOMES_MODE
    # bob's token is in no other server's environment, in no free pod, in no pod spec
    bob_token = alice_and_bob["bob_token"]
    assert len(bob_token) >= 32 and bob_token not in json.dumps(r["env"])
    for pod in release.pods():
        assert bob_token not in json.dumps(pod)
    for pod in free_pods(release):
        env = json.dumps(environ(release.kubelet.pid(pod["metadata"]["name"])))
        assert bob_token not in env and "bob" not in env


def test_concurrent_spawns_get_one_pod_each(release, people, alice_and_bob):
    crowd = ["carol", "dave", "erin", "frank"]  # more than the pool holds: two come from new pods
    with ThreadPoolExecutor(len(crowd)) as ex:
        list(ex.map(lambda n: people[n].start_server(timeout=240), crowd))
    pods = {n: pod_of(release, n) for n in crowd}
    names = [p["metadata"]["name"] for p in pods.values()]
    assert len(set(names)) == len(crowd), names
    log = release.log("hub")
    claimed = re.findall(r"Claimed (?:warm|new) pod (\S+) for (\S+)", log)
    by_pod: dict[str, set] = {}
    for pod, who in claimed:
        by_pod.setdefault(pod, set()).add(who)
    assert all(len(w) == 1 for w in by_pod.values()), by_pod  # never two people on one pod
    uids = set()
    for n, p in pods.items():
        env = environ(release.kubelet.pid(p["metadata"]["name"]))
        st = proc_status(release.kubelet.pid(p["metadata"]["name"]))
        uids.add(st["Uid"][0])
        assert p["metadata"]["annotations"]["hub.jupyter.org/username"] == n
        assert "JUPYTERHUB_API_TOKEN" not in env  # /proc environ is the agent's initial one; the server's is in memory
    assert len(uids) == len(crowd)
    with ThreadPoolExecutor(len(crowd)) as ex:
        list(ex.map(lambda n: people[n].stop_server(timeout=120), crowd))


def test_a_free_pod_cannot_be_claimed_twice_at_the_api(release):
    """Two claims of one pod race at the API server: the JSON patch's test lets exactly one through."""
    pod = wait_free(release, 1)[0]
    name = pod["metadata"]["name"]
    import urllib.error
    import urllib.request

    def claim(who):
        body = json.dumps(warmpods.claim_patch({"hub.jupyter.org/username": who}, {}, "x")).encode()
        req = urllib.request.Request(
            f"{release.cluster.url}/api/v1/namespaces/{ch.NAMESPACE}/pods/{name}", data=body, method="PATCH",
            headers={"Authorization": f"Bearer {release.cluster.admin_token_file.read_text().strip()}", "Content-Type": "application/json-patch+json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=10, context=release.cluster._ssl_context()) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    with ThreadPoolExecutor(6) as ex:
        codes = list(ex.map(claim, [f"p{i}" for i in range(6)]))
    assert sorted(codes) == [200] + [422] * 5, codes
    release.delete_pod(name)  # claimed by nobody real: the pool replaces it
    wait_free(release, SIZE)


def test_a_stopped_server_pod_and_key_are_gone_and_the_pool_refills(release, people, alice_and_bob):
    name = alice_and_bob["alice"]["metadata"]["name"]
    people["alice"].stop_server(timeout=120)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if release.get(f"/api/v1/namespaces/{ch.NAMESPACE}/pods/{name}") is None and \
                release.get(f"/api/v1/namespaces/{ch.NAMESPACE}/secrets/{name}-key") is None:  # fmt: skip
            break
        time.sleep(0.25)
    assert release.get(f"/api/v1/namespaces/{ch.NAMESPACE}/pods/{name}") is None
    assert release.get(f"/api/v1/namespaces/{ch.NAMESPACE}/secrets/{name}-key") is None
    # her home stays, hers alone; the next server of hers sees the same file
    home = homes_dir(release) / warmpods.home_name("alice", homes_key(release))
    assert home.is_dir() and (home / "Welcome.ipynb").exists()
    wait_free(release, SIZE)
    try:
        people["alice"].start_server(timeout=180)
    except Exception:
        print("\n".join(ln for ln in release.log("hub").splitlines() if "alice" in ln or "warm" in ln.lower())[-6000:])
        raise
    again = run_kernel(people["alice"], alice_and_bob["bob_home"], "bob")
    assert again["home"] == alice_and_bob["alice_report"]["home"] and again["status"]["Uid"] == alice_and_bob["alice_report"]["status"]["Uid"]
    people["alice"].stop_server(timeout=120)
    people["bob"].stop_server(timeout=120)


def test_uninstall_leaves_no_warm_pod(release):
    release.helm("uninstall", ch.RELEASE, "-n", ch.NAMESPACE, "--timeout", "120s")
    deadline = time.monotonic() + 120
    left = []
    while time.monotonic() < deadline:
        left = [p["metadata"]["name"] for p in release.pods("labdeck.dev%2Fwarm-pool")]
        if not left:
            break
        time.sleep(0.5)
    assert not left, left
    secrets = release.get(f"/api/v1/namespaces/{ch.NAMESPACE}/secrets")["items"]
    assert not [s["metadata"]["name"] for s in secrets if s["metadata"]["name"].endswith("-key")]
    assert release.get(f"/api/v1/namespaces/{ch.NAMESPACE}/persistentvolumeclaims/{ch.RELEASE}-homes") is not None  # kept
    # this module's kept volumes go now: the next release in this namespace (the journey's) starts clean
    import urllib.request

    for pvc in release.get(f"/api/v1/namespaces/{ch.NAMESPACE}/persistentvolumeclaims")["items"]:
        req = urllib.request.Request(
            f"{release.cluster.url}/api/v1/namespaces/{ch.NAMESPACE}/persistentvolumeclaims/{pvc['metadata']['name']}", method="DELETE",
            headers={"Authorization": f"Bearer {release.cluster.admin_token_file.read_text().strip()}"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10, context=release.cluster._ssl_context()) as r:
            assert r.status in (200, 202)
