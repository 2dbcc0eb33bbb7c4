"""End to end through a real Kubernetes API server: the embedded hub in kube mode.

The hub runs outside the cluster (``labdeck up`` with ``LABDECK_SPAWNER=kube``); its
``LabdeckKubeSpawner`` creates each user's pod, Secret and PVC through the real
kube-apiserver of ``tests/kube``; the process kubelet runs the pod as a local process on
its own 127.0.1.N address; the hub sees it ready; code runs in a real kernel with S3
credentials from the broker, scoped by IAM in moto.

Spawn times (kube vs the local spawner, same machine, same run) are printed and written to
``test-artifacts/kube/spawn_times.json`` — reported, never asserted.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.helpers.hubclient import HubClient
from tests.helpers.platform import start_platform

pytestmark = [pytest.mark.k8s, pytest.mark.integration]

IMAGE = "labdeck/singleuser:local"
#: RFC 1123 label (pod names are subdomains; KubeSpawner keeps them labels)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
PROFILES = [
    {"slug": "jupyterlab", "display_name": "JupyterLab (Python)", "default": True},
    {"slug": "gpu", "display_name": "GPU (ml only)", "groups": ["ml"]},
]


def get_json(cluster, path: str) -> dict | None:
    status, body = cluster.request(path)
    if status == 404:
        return None
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


def eventually(check, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def user_pods(cluster, ns: str) -> list[dict]:
    return get_json(cluster, f"/api/v1/namespaces/{ns}/pods?labelSelector=component%3Dsingleuser-server")["items"]


def pod_of(cluster, ns: str, username: str) -> dict | None:
    for pod in user_pods(cluster, ns):
        if pod["metadata"].get("annotations", {}).get("hub.jupyter.org/username") == username:
            return pod
    return None


def admin(platform, method: str, path: str, **kw) -> requests.Response:
    token = (platform.state_dir / "secrets" / "supervisor_token").read_text().strip()
    r = requests.request(method, f"{platform.url}/hub/api{path}", headers={"Authorization": f"token {token}"}, timeout=30, **kw)
    assert r.status_code < 400, (r.status_code, r.text[:300])
    return r


@pytest.fixture(scope="module")
def kube_platform(kube_cluster, kube_namespace, kubelet, tmp_path_factory):
    # The image's entrypoint. labdeck's image has ENTRYPOINT ["tini", "-g", "--"], which
    # execs its args; KubeSpawner puts the server command in `args` (no `command`), here
    # ["labdeck-singleuser", ...], found on the pod's PATH (the image's PATH: this venv's bin).
    kubelet.default_commands[IMAGE] = []
    state = tmp_path_factory.mktemp("labdeck-kube") / "state"
    profiles = state.parent / "profiles.json"
    profiles.write_text(json.dumps(PROFILES))
    plat = start_platform(
        state,
        extra_env={
            "LABDECK_SPAWNER": "kube",
            "LABDECK_KUBECONFIG": str(kube_cluster.kubeconfig),
            "LABDECK_KUBE_NAMESPACE": kube_namespace,
            "LABDECK_PROFILES_FILE": str(profiles),
        },
    )
    try:
        assert plat.settings()["kube"]["namespace"] == kube_namespace
        # KUBECONFIG (cluster-admin here) reaches the hub process only
        for pidfile in (state / "run").glob("*.pid"):
            if pidfile.stem == "supervisor":
                continue
            environ = Path(f"/proc/{int(pidfile.read_text())}/environ").read_bytes().split(b"\0")
            has = any(e.startswith(b"KUBECONFIG=") for e in environ)
            assert has == (pidfile.stem == "hub"), pidfile.stem
        yield plat
    finally:
        plat.stop()
        # the supervisor stopped every server through the hub: no user pod is left
        left = [p["metadata"]["name"] for p in user_pods(kube_cluster, kube_namespace)]
        assert not left, f"user pods left after the platform stopped: {left}"


@pytest.fixture(scope="module")
def alice(kube_platform):
    return HubClient(kube_platform.url).login("alice", kube_platform.password)


def read_progress(client: HubClient, timeout: float = 150) -> list[dict]:
    """The spawn's progress as the browser reads it: an event stream, token in the header."""
    events = []
    url = f"{client.base}/hub/api/users/{client.name}/server/progress"
    with requests.get(url, headers={**client.headers(), "Accept": "text/event-stream"}, stream=True, timeout=timeout) as r:
        assert r.status_code == 200, r.text[:300]
        deadline = time.monotonic() + timeout
        for line in r.iter_lines(decode_unicode=True):
            if time.monotonic() > deadline:
                break
            if not line or not line.startswith("data:"):
                continue
            event = json.loads(line[len("data:"):])
            events.append(event)
            if event.get("ready") or event.get("failed"):
                break
    return events


def spawn_with_progress(client: HubClient, options: dict | None = None) -> tuple[float, list[dict]]:
    t0 = time.monotonic()
    r = client.api("POST", client.server_path(), json=options or {})
    assert r.status_code in (201, 202), (r.status_code, r.text[:300])
    events = read_progress(client)
    client.wait_ready(timeout=150)
    return time.monotonic() - t0, events


KERNEL_CODE = r"""
import errno, hashlib, json, os, stat, boto3
from botocore.exceptions import ClientError
s3 = boto3.client("s3")
bucket = os.environ["LABDECK_S3_HOME"].split("/")[2]
out = {"home": os.environ["HOME"], "cwd": os.getcwd(), "s3_home": os.environ["LABDECK_S3_HOME"],
       "hostname": os.environ.get("HOSTNAME"),
       "token_sha": hashlib.sha256(os.environ["JUPYTERHUB_API_TOKEN"].encode()).hexdigest(),
       "token_file_sha": hashlib.sha256(open("/etc/labdeck/jupyterhub-api-token").read().strip().encode()).hexdigest(),
       "files": sorted(os.listdir("/etc/labdeck")), "welcome": os.path.exists(os.path.expanduser("~/Welcome.ipynb"))}
s3.put_object(Bucket=bucket, Key="home/alice/kube-e2e.txt", Body=b"written from a pod")
out["own"] = s3.get_object(Bucket=bucket, Key="home/alice/kube-e2e.txt")["Body"].read().decode()
for op, call in (("put_bob", lambda: s3.put_object(Bucket=bucket, Key="home/bob/from-alice.txt", Body=b"x")),
                 ("get_bob", lambda: s3.get_object(Bucket=bucket, Key="home/bob/notes.txt"))):
    try:
        call(); out[op] = "allowed"
    except ClientError as e:
        out[op] = e.response["Error"]["Code"]
try:
    with open("/etc/labdeck/aws_config", "a") as f:
        f.write("# tampered\n")
    out["ro"] = "writable"
except OSError as e:
    out["ro"] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
"""


def test_alice_spawns_through_the_api_server_and_uses_scoped_s3(kube_platform, alice, kube_cluster, kube_namespace, kubelet):
    ns = kube_namespace
    elapsed, events = spawn_with_progress(alice)
    print(f"\nkube spawn (POST -> ready, through kube-apiserver + process kubelet): {elapsed:.2f} s")

    # progress: labdeck's own steps and KubeSpawner's pod events, merged
    messages = [e.get("message", "") for e in events]
    assert any("Issuing S3 credentials" in m for m in messages), messages
    assert any("Successfully assigned" in m for m in messages), messages  # Scheduled
    assert any("Started container" in m or "Pulling image" in m for m in messages), messages
    assert events[-1].get("ready") is True, events[-1]

    # the objects, as the API server has them
    pod = eventually(lambda: pod_of(kube_cluster, ns, "alice"), what="alice's pod")
    name = pod["metadata"]["name"]
    assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"].startswith("127.0.1.")
    assert DNS_LABEL.match(name), name
    secret_name = f"{name}-labdeck"
    secret = get_json(kube_cluster, f"/api/v1/namespaces/{ns}/secrets/{secret_name}")
    assert secret is not None and secret["type"] == "Opaque"
    import base64

    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    token = data["jupyterhub-api-token"]
    assert len(token) >= 32
    assert {"aws_config", "jupyterhub-api-token"} <= set(data)
    # the token is in the Secret, never in the pod spec
    assert token not in json.dumps(pod)
    container = pod["spec"]["containers"][0]
    refs = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in container["env"]}
    assert refs["JUPYTERHUB_API_TOKEN"] == {"name": secret_name, "key": "jupyterhub-api-token"}
    assert not container.get("command") and container["args"][0] == "labdeck-singleuser"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/labdeck"]["readOnly"] is True
    claim = next(v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if v["name"] == "home")
    assert "/home/jovyan" in mounts
    pvc = get_json(kube_cluster, f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}")
    assert pvc["status"]["phase"] == "Bound"

    # a real kernel in the pod: S3 through the broker, scoped by IAM
    kernel = alice.start_kernel()
    res = alice.execute(KERNEL_CODE, kernel).check()
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["hostname"] == name  # the kernel runs in alice's pod
    assert out["home"] == "/home/jovyan" and out["cwd"] == "/home/jovyan"
    assert out["s3_home"] == "s3://labdeck-data/home/alice/"
    assert out["own"] == "written from a pod"
    assert out["put_bob"] == "AccessDenied" and out["get_bob"] == "AccessDenied", out
    assert out["token_sha"] == hashlib.sha256(token.encode()).hexdigest()  # from the Secret
    # the token file the in-server client reads without the environment (RStudio sessions): the Secret's key, read-only
    assert set(out["files"]) >= {"aws_config", "jupyterhub-api-token"}
    assert out["token_file_sha"] == out["token_sha"]
    assert out["ro"] in ("EROFS", "EACCES"), out  # mounted read-only
    assert out["welcome"] is True

    # onboarding wrote into her PVC (the directory the process kubelet keeps for the claim)
    home = kubelet.pvc_root / ns / claim
    assert (home / "Welcome.ipynb").is_file()

    # no token in process arguments, logs or URLs
    pid = kubelet.pid(name)
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    assert token not in cmdline and alice.token not in cmdline
    log = kubelet.log_path(name)
    container_log = log.read_text(errors="replace") if log else ""
    platform_logs = kube_platform.logs()
    for text in (container_log, platform_logs):
        assert token not in text and alice.token not in text
    # ... nor in the hub's model of her server (its URLs) or the namespace's events
    routes = json.dumps(alice.api("GET", "/users/alice").json())
    assert token not in routes
    assert token not in json.dumps(get_json(kube_cluster, f"/api/v1/namespaces/{ns}/events"))

    # stop deletes the pod and its Secret (the PVC, her home, stays)
    alice.stop_server()
    eventually(lambda: get_json(kube_cluster, f"/api/v1/namespaces/{ns}/pods/{name}") is None, what="pod deleted")
    eventually(lambda: get_json(kube_cluster, f"/api/v1/namespaces/{ns}/secrets/{secret_name}") is None, what="secret deleted")
    assert get_json(kube_cluster, f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}") is not None
    assert (home / "Welcome.ipynb").is_file()


def test_forged_group_profile_is_403_and_creates_no_pod(kube_platform, kube_cluster, kube_namespace):
    carol = HubClient(kube_platform.url).login("carol", kube_platform.password)
    before = {p["metadata"]["name"] for p in user_pods(kube_cluster, kube_namespace)}
    r = carol.api("POST", carol.server_path(), json={"profile": "gpu"})
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert r.json()["message"] == "The profile 'GPU (ml only)' is restricted to the group(s) ml"
    # the hub has no pending or running server for her: nothing can create a pod later
    carol_model = carol.api("GET", "/users/carol").json()
    assert carol_model["servers"] == {} and carol_model["pending"] is None, carol_model
    assert pod_of(kube_cluster, kube_namespace, "carol") is None
    assert {p["metadata"]["name"] for p in user_pods(kube_cluster, kube_namespace)} == before
    secrets = get_json(kube_cluster, f"/api/v1/namespaces/{kube_namespace}/secrets")["items"]
    assert not [s for s in secrets if "carol" in s["metadata"]["name"]]
    # a member of ml may use it
    admin(kube_platform, "POST", "/groups/ml", json={})
    admin(kube_platform, "POST", "/groups/ml/users", json={"users": ["carol"]})
    r = carol.api("POST", carol.server_path(), json={"profile": "gpu"})
    assert r.status_code in (201, 202), r.text[:300]
    carol.wait_ready(timeout=150)
    pod = pod_of(kube_cluster, kube_namespace, "carol")
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["LABDECK_PROFILE"] == "gpu"
    carol.stop_server()


def test_names_that_collide_after_naive_escaping_get_distinct_valid_objects(kube_platform, kube_cluster, kube_namespace):
    # naive escaping (anything not [a-z0-9-] -> "-") maps both to "da-ve"
    names = ["da.ve", "da-ve", "da_ve"]
    clients = [HubClient(kube_platform.url).login(n, kube_platform.password) for n in names]
    # names labdeck refuses never reach the cluster
    for bad in ("zoë/../x", "ève", "a" * 65):
        assert HubClient(kube_platform.url).login_form(bad, kube_platform.password).status_code != 302

    def spawn(c):
        return c.start_server(timeout=150)

    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(spawn, clients))
    pods = {n: pod_of(kube_cluster, kube_namespace, n) for n in names}
    assert all(pods.values()), pods
    pod_names = {n: p["metadata"]["name"] for n, p in pods.items()}
    claims = {n: next(v["persistentVolumeClaim"]["claimName"] for v in p["spec"]["volumes"] if v["name"] == "home") for n, p in pods.items()}
    secrets = {n: next(v["secret"]["secretName"] for v in p["spec"]["volumes"] if v["name"] == "labdeck-files") for n, p in pods.items()}
    print(f"\nobject names: pods={pod_names} pvcs={claims} secrets={secrets}")
    for objs in (pod_names, claims, secrets):
        assert len(set(objs.values())) == len(names), objs
        for value in objs.values():
            assert DNS_SUBDOMAIN.match(value) and len(value) <= 63, value
    for n in names:
        assert get_json(kube_cluster, f"/api/v1/namespaces/{kube_namespace}/secrets/{secrets[n]}") is not None
        assert get_json(kube_cluster, f"/api/v1/namespaces/{kube_namespace}/persistentvolumeclaims/{claims[n]}") is not None
    # each server is its user's
    for c in clients:
        r = requests.get(c.server_url() + "api/status", headers=c.headers(), timeout=30)
        assert r.status_code == 200, (c.name, r.status_code)
    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(lambda c: c.stop_server(), clients))
    for n in names:
        eventually(lambda n=n: pod_of(kube_cluster, kube_namespace, n) is None, what=f"{n}'s pod deleted")
        eventually(lambda n=n: get_json(kube_cluster, f"/api/v1/namespaces/{kube_namespace}/secrets/{secrets[n]}") is None,
                   what=f"{n}'s secret deleted")
