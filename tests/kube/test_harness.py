"""The local Kubernetes harness itself: a real kube-apiserver, and pods run as processes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from tests.kube.cluster import LocalCluster
from tests.kube.kubelet import _pick_mount_mode, KubeletThread, ProcessKubelet, raw

pytestmark = pytest.mark.k8s


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0,
                     what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture
async def core(kube_cluster: LocalCluster):
    """A CoreV1Api as the admin user, on this test's event loop."""
    api = await config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))
    try:
        yield client.CoreV1Api(api)
    finally:
        await api.close()


async def read_pod(core: client.CoreV1Api, ns: str, name: str) -> dict | None:
    try:
        return await raw(core.read_namespaced_pod(name, ns, _preload_content=False))
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def is_ready(pod: dict | None) -> bool:
    conds = (pod or {}).get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pod_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# ---- the API server --------------------------------------------------------------------------


def test_cluster_serves_version(kube_cluster: LocalCluster) -> None:
    status, body = kube_cluster.request("/version")
    assert status == 200
    assert json.loads(body)["gitVersion"] == "v1.20.2"
    assert kube_cluster.url.startswith("https://127.0.0.1:")
    for f in (kube_cluster.kubeconfig, kube_cluster.admin_token_file):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600


async def test_version_via_client_and_namespace(core: client.CoreV1Api,
                                                kube_cluster: LocalCluster) -> None:
    api = await config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))
    async with api:
        info = await client.VersionApi(api).get_code()
    assert info.minor == "20"
    name = pod_name("ns")
    await core.create_namespace({"metadata": {"name": name}})
    ns = await core.read_namespace(name)
    assert ns.status.phase == "Active"


async def test_anonymous_cannot_list_secrets(kube_cluster: LocalCluster) -> None:
    """RBAC is on: without the token, secrets are forbidden."""
    req = urllib.request.Request(kube_cluster.url + "/api/v1/secrets")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5, context=kube_cluster._ssl_context())
    assert err.value.code in (401, 403)


# ---- pods as processes -----------------------------------------------------------------------


async def test_pod_runs_as_a_process(core: client.CoreV1Api, kubelet: ProcessKubelet,
                                     kube_namespace: str) -> None:
    ns, name = kube_namespace, pod_name("web")
    secret_name = f"{name}-secret"
    await core.create_namespaced_secret(ns, {
        "metadata": {"name": secret_name},
        "data": {
            "token": base64.b64encode(b"s3cr3t-value").decode(),
            "greeting": base64.b64encode(b"hello from a secret").decode(),
        },
    })
    mount = f"/etc/labdeck-harness-{name}"
    await core.create_namespaced_pod(ns, {
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "web",
                "image": "python:3.11-slim",
                "command": [sys.executable, "-m", "http.server"],
                "args": ["--bind", "$(POD_IP)", "8000"],
                "workingDir": mount,
                "env": [
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "POD_NAME",
                     "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "GREETING", "valueFrom": {
                        "secretKeyRef": {"name": secret_name, "key": "greeting"}}},
                    {"name": "SERVICE_URL", "value": "http://0.0.0.0:8000/"},
                ],
                "envFrom": [{"secretRef": {"name": secret_name}, "prefix": "S_"}],
                "volumeMounts": [{"name": "creds", "mountPath": mount, "readOnly": True}],
            }],
            "volumes": [{"name": "creds", "secret": {
                "secretName": secret_name,
                "defaultMode": 0o400,
                "items": [
                    {"key": "token", "path": "token"},
                    {"key": "greeting", "path": "sub/greeting.txt", "mode": 0o600},
                ],
            }}],
        },
    })

    pod = await eventually(lambda: _ready_pod(core, ns, name), what="pod Ready")
    ip = pod["status"]["podIP"]
    assert ip.startswith("127.0.1."), ip
    assert pod["spec"]["nodeName"] == kubelet.node_name
    assert pod["status"]["phase"] == "Running"
    cs = pod["status"]["containerStatuses"][0]
    assert cs["ready"] is True and "startedAt" in cs["state"]["running"]
    assert {c["type"] for c in pod["status"]["conditions"]} >= {
        "PodScheduled", "Initialized", "ContainersReady", "Ready"}

    # the server answers on the pod IP, serving the mounted secret (workingDir = mount)
    await eventually(lambda: asyncio.to_thread(port_open, ip, 8000), what="port 8000")
    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://{ip}:8000/token", timeout=5).read())
    assert body == b"s3cr3t-value"

    # the secret files on the host: content and modes
    run = next(r for r in kubelet.runs.values() if r.name == name)
    vol = run.dir / "volumes" / "creds"
    assert (vol / "token").read_bytes() == b"s3cr3t-value"
    assert stat.S_IMODE((vol / "token").stat().st_mode) == 0o400
    assert stat.S_IMODE((vol / "sub/greeting.txt").stat().st_mode) == 0o600

    # env: secretKeyRef, envFrom with prefix, fieldRef, 0.0.0.0 rewritten to the pod IP
    pid = kubelet.pid(name)
    assert pid is not None
    env = dict(
        kv.split("=", 1)
        for kv in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in kv
    )
    assert env["GREETING"] == "hello from a secret"
    assert env["S_token"] == "s3cr3t-value"
    assert env["POD_IP"] == ip and env["POD_NAME"] == name
    assert env["SERVICE_URL"] == f"http://{ip}:8000/"

    # events through the events API, in order
    async def reasons() -> list[str]:
        evs = await core.list_namespaced_event(
            ns, field_selector=f"involvedObject.name={name}")
        return [e.reason for e in sorted(evs.items, key=lambda e: e.metadata.name)]

    got = await eventually(
        lambda: _has_all(reasons, ["Scheduled", "Pulling", "Pulled", "Created", "Started"]),
        what="events")
    assert got[:5] == ["Scheduled", "Pulling", "Pulled", "Created", "Started"]

    # deleting (with a grace period) kills the process and the pod goes away
    await core.delete_namespaced_pod(name, ns)
    await eventually(lambda: _gone(core, ns, name), what="pod deleted")
    await eventually(lambda: asyncio.to_thread(lambda: not alive(pid)), what="process gone")
    assert not port_open(ip, 8000)
    assert not vol.exists()
    assert not Path(mount).exists(), "mount point created on the host was not removed"


async def test_exit_codes_set_phase(core: client.CoreV1Api, kubelet: ProcessKubelet,
                                    kube_namespace: str) -> None:
    ns = kube_namespace
    names = {}
    for code in (0, 3):
        names[code] = pod_name(f"exit{code}")
        await core.create_namespaced_pod(ns, _pod(
            names[code], [sys.executable, "-c", f"import sys; sys.exit({code})"]))
    for code, phase in ((0, "Succeeded"), (3, "Failed")):
        pod = await eventually(lambda: _phase(core, ns, names[code], phase), what=phase)
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == code
        await core.delete_namespaced_pod(names[code], ns, grace_period_seconds=0)


async def test_deleting_a_pod_ends_its_processes_in_other_sessions_too(core: client.CoreV1Api, kubelet: ProcessKubelet,
                                                                     kube_namespace: str, tmp_path: Path) -> None:
    """As a container's: JupyterHub starts managed services (the idle culler) in sessions of their own."""
    ns, name = kube_namespace, pod_name("sessions")
    pidfile = tmp_path / "detached.pid"
    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n"
    )
    await core.create_namespaced_pod(ns, _pod(name, [sys.executable, "-c", code]))
    await eventually(lambda: _ready_pod(core, ns, name), what="Ready")
    await eventually(lambda: asyncio.to_thread(lambda: pidfile.exists() and pidfile.read_text()), what="detached child started")
    detached = int(pidfile.read_text())
    assert alive(detached) and os.getsid(detached) != os.getsid(kubelet.pid(name))
    await core.delete_namespaced_pod(name, ns)
    await eventually(lambda: _gone(core, ns, name), what="pod deleted")
    await eventually(lambda: asyncio.to_thread(lambda: not alive(detached)), what="the detached child gone with its pod")


async def test_default_command_by_image(core: client.CoreV1Api, kubelet: ProcessKubelet,
                                        kube_namespace: str) -> None:
    """Without ``command``, the image's entrypoint comes from ``default_commands``."""
    image = "labdeck/harness-echo:1"
    kubelet.default_commands[image] = [sys.executable, "-c",
                                       "import sys; print('entry', *sys.argv[1:])"]
    name = pod_name("entry")
    await core.create_namespaced_pod(kube_namespace, _pod(name, None, image=image,
                                                          args=["a", "$(X)"],
                                                          env=[{"name": "X", "value": "b"}]))
    await eventually(lambda: _phase(core, kube_namespace, name, "Succeeded"), what="Succeeded")
    assert kubelet.log_path(name).read_text().strip() == "entry a b"
    await core.delete_namespaced_pod(name, kube_namespace, grace_period_seconds=0)


async def test_pvc_is_bound_and_persists(core: client.CoreV1Api, kubelet: ProcessKubelet,
                                         kube_namespace: str) -> None:
    ns, claim = kube_namespace, pod_name("home")
    await core.create_namespaced_persistent_volume_claim(ns, {
        "metadata": {"name": claim},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}},
    })

    async def bound() -> bool:
        pvc = await core.read_namespaced_persistent_volume_claim(claim, ns)
        return pvc.status.phase == "Bound"

    await eventually(bound, what="PVC Bound")
    home = f"/home/labdeck-harness-{claim}"
    vols = [{"name": "home", "persistentVolumeClaim": {"claimName": claim}}]
    mounts = [{"name": "home", "mountPath": home}]
    write = pod_name("writer")
    await core.create_namespaced_pod(ns, _pod(
        write, ["sh", "-c", "echo kept > notes.txt"], volumes=vols, mounts=mounts,
        working_dir=home))
    await eventually(lambda: _phase(core, ns, write, "Succeeded"), what="writer done")
    await core.delete_namespaced_pod(write, ns, grace_period_seconds=0)
    read = pod_name("reader")
    await core.create_namespaced_pod(ns, _pod(
        read, ["sh", "-c", f"test \"$(cat {home}/notes.txt)\" = kept"], volumes=vols,
        mounts=mounts))
    await eventually(lambda: _phase(core, ns, read, "Succeeded"), what="reader saw the file")
    await core.delete_namespaced_pod(read, ns, grace_period_seconds=0)
    assert (kubelet.pvc_root / ns / claim / "notes.txt").read_text() == "kept\n"


async def test_missing_secret_waits_then_runs(core: client.CoreV1Api, kubelet: ProcessKubelet,
                                              kube_namespace: str) -> None:
    """Like a kubelet: a pod whose Secret does not exist yet starts once it appears."""
    ns, name = kube_namespace, pod_name("late")
    await core.create_namespaced_pod(ns, _pod(
        name, ["sh", "-c", "test \"$V\" = ok"],
        env=[{"name": "V", "valueFrom": {"secretKeyRef": {"name": name, "key": "v"}}}]))

    async def failed_mount() -> bool:
        evs = await core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}")
        return any(e.reason == "FailedMount" for e in evs.items)

    await eventually(failed_mount, what="FailedMount event")
    await core.create_namespaced_secret(ns, {"metadata": {"name": name},
                                             "stringData": {"v": "ok"}})
    await eventually(lambda: _phase(core, ns, name, "Succeeded"), what="Succeeded")
    await core.delete_namespaced_pod(name, ns, grace_period_seconds=0)


async def test_stop_leaves_nothing_behind(tmp_path: Path) -> None:
    """A second cluster + kubelet: stopping them kills every process and removes the dir."""
    cluster = await asyncio.to_thread(LocalCluster().start)
    try:
        token = cluster.admin_token_file.read_text()
        pids = dict(cluster.pids)
        for pid in pids.values():
            assert token.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        await _create_ns(cluster, "stop-test")
        thread = KubeletThread(ProcessKubelet(str(cluster.kubeconfig), "stop-test",
                                              workdir=tmp_path / "kubelet"))
        kubelet = await asyncio.to_thread(thread.start)
        api = await config.new_client_from_config(config_file=str(cluster.kubeconfig))
        async with api:
            core = client.CoreV1Api(api)
            await core.create_namespaced_pod("stop-test", _pod(
                "sleeper", [sys.executable, "-c", "import time; time.sleep(600)"]))
            await eventually(lambda: _ready_pod(core, "stop-test", "sleeper"), what="Ready")
        pod_pid = kubelet.pid("sleeper")
        assert pod_pid and alive(pod_pid)
        await asyncio.to_thread(thread.stop)
        assert not alive(pod_pid)
    finally:
        workdir = cluster.workdir
        logs = [cluster.log_path(n).read_bytes() for n in ("etcd", "kube-apiserver")]
        await asyncio.to_thread(cluster.stop)
    assert not any(alive(p) for p in pids.values())
    assert not workdir.exists()
    assert not any(token.encode() in log for log in logs)


@pytest.mark.skipif(os.geteuid() != 0, reason="runAsUser needs root")
async def test_run_as_user_with_empty_dir_over_tmp(kube_cluster: LocalCluster, core: client.CoreV1Api,
                                                   tmp_path: Path) -> None:
    """``run_as_user``: the process has the pod's uid, gid and fsGroup, and writes its emptyDir at /tmp."""
    if _pick_mount_mode("auto") != "unshare":
        pytest.skip("no private mount namespaces here")
    ns = pod_name("runas")
    await core.create_namespace({"metadata": {"name": ns}})
    thread = KubeletThread(ProcessKubelet(str(kube_cluster.kubeconfig), ns, node_name="labdeck-runas-node",
                                          workdir=tmp_path / "kubelet", run_as_user=True, ip_prefix="127.0.5."))
    kubelet = await asyncio.to_thread(thread.start)
    try:
        pod = _pod("who", ["sh", "-c", "id -u; id -g; id -G; echo x > /tmp/probe && cat /tmp/probe; ls -ld /tmp/probe"],
                   volumes=[{"name": "tmp", "emptyDir": {}}], mounts=[{"name": "tmp", "mountPath": "/tmp"}])
        pod["spec"]["securityContext"] = {"runAsUser": 65534, "runAsGroup": 65533, "fsGroup": 4242}
        await core.create_namespaced_pod(ns, pod)
        await eventually(lambda: _phase(core, ns, "who", "Succeeded"), what="Succeeded")
        lines = kubelet.log_path("who").read_text().split("\n")
        assert lines[:4] == ["65534", "65533", "65533 4242", "x"], lines
        assert lines[4].split()[2] == "65534" or lines[4].split()[2] == "nobody", lines[4]
        assert not Path("/tmp/probe").exists(), "the emptyDir, not the host's /tmp"
    finally:
        await asyncio.to_thread(thread.stop)


# ---- helpers ---------------------------------------------------------------------------------


def _pod(name: str, command: list[str] | None, image: str = "busybox", args: list[str] = (),
         env: list[dict] = (), volumes: list[dict] = (), mounts: list[dict] = (),
         working_dir: str | None = None) -> dict:
    container: dict[str, Any] = {"name": "main", "image": image, "args": list(args),
                                 "env": list(env), "volumeMounts": list(mounts)}
    if command:
        container["command"] = command
    if working_dir:
        container["workingDir"] = working_dir
    return {"metadata": {"name": name}, "spec": {
        "restartPolicy": "Never", "containers": [container], "volumes": list(volumes)}}


async def _ready_pod(core: client.CoreV1Api, ns: str, name: str) -> dict | None:
    pod = await read_pod(core, ns, name)
    return pod if is_ready(pod) else None


async def _phase(core: client.CoreV1Api, ns: str, name: str, phase: str) -> dict | None:
    pod = await read_pod(core, ns, name)
    return pod if pod and pod.get("status", {}).get("phase") == phase else None


async def _gone(core: client.CoreV1Api, ns: str, name: str) -> bool:
    return await read_pod(core, ns, name) is None


async def _has_all(get: Callable[[], Awaitable[list[str]]], want: list[str]) -> list[str] | None:
    got = await get()
    return got if set(want) <= set(got) else None


async def _create_ns(cluster: LocalCluster, name: str) -> None:
    api = await config.new_client_from_config(config_file=str(cluster.kubeconfig))
    async with api:
        await client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})


# ---- KubeSpawner against the harness ---------------------------------------------------------

FAKE_SINGLEUSER = """
import http.server, os, urllib.parse
url = urllib.parse.urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
open("spawned.txt", "a").write("started\\n")

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("ok " + os.environ.get("JUPYTERHUB_USER", "?")).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer((url.hostname, url.port), H).serve_forever()
"""


async def test_kubespawner_spawns_and_stops(kube_cluster: LocalCluster, kubelet: ProcessKubelet,
                                            kube_namespace: str, core: client.CoreV1Api,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Vanilla KubeSpawner starts a pod (with a PVC home), sees progress events, reaches the
    server on the pod IP, and stops it — the loop labdeck's spawner tests build on."""
    from kubernetes_asyncio.config import kube_config
    from kubespawner import KubeSpawner
    from traitlets.config import Config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kube_cluster.kubeconfig))
    image = "labdeck/harness-singleuser:test"
    kubelet.default_commands[image] = [sys.executable, "-c", FAKE_SINGLEUSER]
    c = Config()
    c.KubeSpawner.namespace = kube_namespace
    c.KubeSpawner.image = image
    c.KubeSpawner.start_timeout = 60
    c.KubeSpawner.delete_grace_period = 1
    c.KubeSpawner.storage_pvc_ensure = True
    c.KubeSpawner.storage_capacity = "1Gi"
    c.KubeSpawner.volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
    c.KubeSpawner.volume_mounts = [{"name": "home", "mountPath": "/home/labdeck-harness-jovyan"}]
    c.KubeSpawner.working_dir = "/home/labdeck-harness-jovyan"
    spawner = KubeSpawner(config=c, api_token="unused", oauth_client_id="unused", _mock=True)
    try:
        url = await asyncio.wait_for(spawner.start(), 90)
        assert url.startswith("http://127.0.1."), url
        host, port = urllib.parse.urlparse(url).hostname, urllib.parse.urlparse(url).port
        # Ready means "process started" (no readiness probe), like a real kubelet; the hub
        # then waits for the server to answer, so do the same here
        await eventually(lambda: asyncio.to_thread(port_open, host, port), what="server up")
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
        assert body.startswith(b"ok")
        reasons = {e["reason"] for e in spawner.events}
        assert {"Scheduled", "Pulled", "Started"} <= reasons, reasons
        pvc = await core.read_namespaced_persistent_volume_claim(spawner.pvc_name,
                                                                 kube_namespace)
        assert pvc.status.phase == "Bound"
        home = kubelet.pvc_root / kube_namespace / spawner.pvc_name
        assert (home / "spawned.txt").read_text() == "started\n"
        assert await spawner.poll() is None
        await asyncio.wait_for(spawner.stop(), 60)
        assert await read_pod(core, kube_namespace, spawner.pod_name) is None
        assert not port_open(host, port)
    finally:
        for reflector in list(KubeSpawner.reflectors.values()):
            await reflector.stop()
        KubeSpawner.reflectors.clear()


async def test_rewrite_mode_without_mount_namespaces(
    kube_cluster: LocalCluster, core: client.CoreV1Api, tmp_path: Path
) -> None:
    """``mounts="rewrite"`` (non-root fallback): mount paths in args/env become host paths."""
    ns = pod_name("rewrite")
    await core.create_namespace({"metadata": {"name": ns}})
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "conf"},
                                                 "data": {"a.txt": "from-configmap"}})
    thread = KubeletThread(ProcessKubelet(str(kube_cluster.kubeconfig), ns,
                                          node_name="labdeck-rewrite-node",
                                          workdir=tmp_path, mounts="rewrite"))
    kubelet = await asyncio.to_thread(thread.start)
    try:
        await core.create_namespaced_pod(ns, _pod(
            "reader", ["sh", "-c", 'cat /etc/labdeck-conf/a.txt; echo " $CONF"'],
            env=[{"name": "CONF", "value": "/etc/labdeck-conf/a.txt"}],
            volumes=[{"name": "c", "configMap": {"name": "conf"}}],
            mounts=[{"name": "c", "mountPath": "/etc/labdeck-conf"}]))
        await eventually(lambda: _phase(core, ns, "reader", "Succeeded"), what="Succeeded")
        out = kubelet.log_path("reader").read_text()
        assert out.startswith("from-configmap ")
        assert out.strip().endswith("/volumes/c/a.txt") and str(tmp_path) in out
    finally:
        await asyncio.to_thread(thread.stop)
    assert not Path("/etc/labdeck-conf").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")
async def test_same_mount_path_isolated_per_pod(core: client.CoreV1Api, kubelet: ProcessKubelet,
                                                kube_namespace: str) -> None:
    """Two pods mount their own PVC at the same path; removing one leaves the other's mount."""
    if kubelet.mounts != "unshare":
        pytest.skip("kubelet is in rewrite mode")
    ns, home = kube_namespace, f"/home/labdeck-harness-{uuid.uuid4().hex[:6]}"
    names = [pod_name("twin"), pod_name("twin")]
    for name in names:
        await core.create_namespaced_persistent_volume_claim(ns, {
            "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}})
        await core.create_namespaced_pod(ns, _pod(
            name, ["sh", "-c", f"echo $POD_NAME > {home}/who; exec sleep 600"],
            env=[{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": name}}],
            mounts=[{"name": "home", "mountPath": home}]))
    for name in names:
        await eventually(lambda: _ready_pod(core, ns, name), what=f"{name} Ready")
        await eventually(lambda: asyncio.to_thread(
            (kubelet.pvc_root / ns / name / "who").exists), what="file written")
    assert not list(Path(home).iterdir()), "host path must stay empty (mounts are private)"
    await core.delete_namespaced_pod(names[0], ns, grace_period_seconds=0)
    await eventually(lambda: _gone(core, ns, names[0]), what="first pod gone")
    pid = kubelet.pid(names[1])
    seen = await asyncio.to_thread(subprocess.run, ["nsenter", "-t", str(pid), "-m", "cat",
                                                    f"{home}/who"], capture_output=True)
    assert seen.stdout.decode().strip() == names[1]
    await core.delete_namespaced_pod(names[1], ns, grace_period_seconds=0)
    await eventually(lambda: _gone(core, ns, names[1]), what="second pod gone")
    await eventually(lambda: asyncio.to_thread(lambda: not Path(home).exists()),
                     what="mount point removed")


async def test_service_account_kubeconfig_and_rbac(kube_cluster: LocalCluster,
                                                   core: client.CoreV1Api,
                                                   kube_namespace: str, tmp_path: Path) -> None:
    """A ServiceAccount token (TokenRequest API) authenticates; RBAC decides what it may do."""
    name = pod_name("hub")
    kc = kube_cluster.service_account_kubeconfig(kube_namespace, name, tmp_path / "hub.kubeconfig")
    assert stat.S_IMODE(kc.stat().st_mode) == 0o600
    api = await config.new_client_from_config(config_file=str(kc))
    async with api:
        sa_core = client.CoreV1Api(api)
        with pytest.raises(ApiException) as err:
            await sa_core.list_namespaced_pod(kube_namespace)
        assert err.value.status == 403
        rbac = client.RbacAuthorizationV1Api(core.api_client)
        await rbac.create_namespaced_role(kube_namespace, {
            "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})
        await rbac.create_namespaced_role_binding(kube_namespace, {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name,
                          "namespace": kube_namespace}]})
        await eventually(lambda: _can_list(sa_core, kube_namespace), what="RBAC allows list")
        with pytest.raises(ApiException) as err:
            await sa_core.list_namespaced_secret(kube_namespace)
        assert err.value.status == 403


async def _can_list(core: client.CoreV1Api, ns: str) -> bool:
    try:
        await core.list_namespaced_pod(ns)
        return True
    except ApiException:
        return False
