"""The systems ``bench/kube.py`` compares, and one spawn's timeline on each.

- :class:`Vanilla`: JupyterHub + KubeSpawner from a clean venv, its hub a local process on the
  harness's API server, its pods in a namespace of their own with their own process kubelet;
- :class:`Labdeck`: the chart's release (cold pods, or warm pods after ``helm upgrade``);
- :class:`PodWatch`: a watch on a namespace's pods, giving each pod's created / scheduled /
  started times on this process's monotonic clock; :func:`spawn` puts them on one timeline
  with the client's request and the progress stream's ``ready``.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import vanilla_venv  # noqa: E402
from common import CHP  # noqa: E402
from people import User  # noqa: E402
from labdeck.hub.local.waits import free_port  # noqa: E402 - outside the ephemeral port range

VANILLA_NS = "vanilla-bench"
VANILLA_IMAGE = "vanilla/singleuser:bench"


# ------------------------------------------------------------------ pod timeline


class PodWatch:
    """A watch on one namespace's pods: when each was first seen, bound, started, ready, claimed, and its address."""

    def __init__(self, cluster, namespace: str):
        self.cluster, self.namespace = cluster, namespace
        self.pods: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        token = self.cluster.admin_token_file.read_text().strip()
        url = f"{self.cluster.url}/api/v1/namespaces/{self.namespace}/pods"
        rv = ""
        while not self.stopped.is_set():
            try:
                params = {"watch": "1", "timeoutSeconds": "60", "allowWatchBookmarks": "false"}
                if rv:
                    params["resourceVersion"] = rv
                with requests.get(url, params=params, headers={"Authorization": f"Bearer {token}"}, stream=True,
                                  verify=str(self.cluster.ca_file), timeout=(10, 90)) as r:  # fmt: skip
                    for line in r.iter_lines():
                        if self.stopped.is_set():
                            return
                        if not line:
                            continue
                        ev = json.loads(line)
                        if ev.get("type") == "ERROR":
                            rv = ""
                            break
                        self._seen(ev["object"])
                        rv = ev["object"]["metadata"].get("resourceVersion", rv)
            except (requests.RequestException, ValueError):
                time.sleep(0.2)

    def _seen(self, pod: dict) -> None:
        now = time.monotonic()
        meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        with self.lock:
            rec = self.pods.setdefault(meta["uid"], {"name": meta["name"], "added": now})
            user = (meta.get("annotations") or {}).get("hub.jupyter.org/username")
            if user and "user" not in rec:
                rec["user"], rec["claimed"] = user, now
            if spec.get("nodeName"):
                rec.setdefault("scheduled", now)
            if status.get("podIP"):
                rec["ip"] = status["podIP"]
            for cs in status.get("containerStatuses") or []:
                if "running" in (cs.get("state") or {}):
                    rec.setdefault("started", now)
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
                rec.setdefault("ready", now)
            if (meta.get("labels") or {}).get("labdeck.dev/warm") == "ready":
                rec["warm_free"] = True

    def of(self, user: str, after: float) -> dict | None:
        """The pod of ``user`` claimed or created after ``after``."""
        with self.lock:
            found = [dict(r) for r in self.pods.values() if r.get("user") == user and r.get("claimed", 0) >= after - 0.5]
        return found[-1] if found else None

    def stop(self) -> None:
        self.stopped.set()


def wait_listening(watch: PodWatch, user: str, after: float, port: int, deadline: float) -> float | None:
    """When the user's server first accepts a connection (a connect every 10 ms once its pod has an address)."""
    while time.monotonic() < deadline:
        rec = watch.of(user, after)
        if rec and rec.get("ip"):
            try:
                with socket.create_connection((rec["ip"], port), timeout=0.2):
                    return time.monotonic()
            except OSError:
                pass
        time.sleep(0.01)
    return None


# ------------------------------------------------------------------ systems


class Vanilla:
    name = "vanilla"

    def __init__(self, cluster, workdir: Path, allow_root: Path):
        from tests.kube.kubelet import KubeletThread, ProcessKubelet

        self.tmp = Path(tempfile.mkdtemp(prefix="bench-kube-vanilla-", dir=workdir))
        self.password = secrets.token_urlsafe(12)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        vbin = vanilla_venv.ensure(kube=True)
        import asyncio

        from tests.kube.chart_harness import _create_namespace

        asyncio.run(_create_namespace(str(cluster.kubeconfig), VANILLA_NS))
        self.kubelet_thread = KubeletThread(ProcessKubelet(
            str(cluster.kubeconfig), VANILLA_NS, node_name="vanilla-bench-node", workdir=self.tmp / "kubelet",
            # the image's CMD: KubeSpawner's default cmd (None) runs what the image says, as docker-stacks' images do
            default_commands={VANILLA_IMAGE: ["jupyterhub-singleuser"]}, ip_prefix="127.0.6.",  # 127.0.5. is test_harness.py's
            image_env={VANILLA_IMAGE: {"PATH": f"{vbin}:/usr/bin:/bin", "JUPYTER_CONFIG_PATH": str(allow_root), "PYTHONUNBUFFERED": "1"}},
        ))  # fmt: skip
        self.kubelet = self.kubelet_thread.start()
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")},
            "VIRTUAL_ENV": str(vbin.parent), "KUBECONFIG": str(cluster.kubeconfig),
            "BENCH_VANILLA_DIR": str(self.tmp), "BENCH_VANILLA_PORT": str(self.port),
            "BENCH_VANILLA_HUB_PORT": str(free_port()), "BENCH_VANILLA_API_PORT": str(free_port()),
            "BENCH_VANILLA_PASSWORD": self.password, "BENCH_CHP": str(CHP),
            "BENCH_VANILLA_NAMESPACE": VANILLA_NS, "BENCH_VANILLA_IMAGE": VANILLA_IMAGE,
            "PATH": f"{vbin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        }  # fmt: skip
        self.log_path = self.tmp / "jupyterhub.log"
        with open(self.log_path, "wb") as f:
            self.proc = subprocess.Popen([str(vbin / "python"), "-m", "jupyterhub", "-f", str(Path(__file__).parent / "vanilla_kube_config.py")],
                                         env=env, cwd=str(self.tmp), stdout=f, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.watch = PodWatch(cluster, VANILLA_NS)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vanilla hub exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/hub/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise RuntimeError("vanilla hub not healthy")

    def login(self, name: str) -> User:
        from tests.helpers.hubclient import HubClient

        c = HubClient(self.url).login(name, self.password)
        return User(self.url, name, token=c.token)

    def hub_log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def hook_s(self, user: str) -> float | None:
        return None

    def stop(self) -> None:
        self.watch.stop()
        if self.proc.poll() is None:
            self.proc.terminate()  # cleanup_servers: the hub deletes its pods
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        self.kubelet_thread.stop()


class Labdeck:
    def __init__(self, release, cluster, name: str):
        from tests.helpers import oidc
        from tests.kube import chart_harness as ch

        self.release, self.name, self.url = release, name, release.url
        self._login = oidc.journey_login(release.url)
        self.watch = PodWatch(cluster, ch.NAMESPACE)

    def login(self, name: str) -> User:
        c = self._login(name)
        return User(self.url, name, token=c.token)

    def hub_log(self) -> str:
        return self.release.log("hub")

    def hook_s(self, user: str) -> float | None:
        import re

        found = re.findall(rf"labdeck start steps for {re.escape(user)} took (\d+) ms", self.hub_log())
        return float(found[-1]) / 1000 if found else None

    def stop(self) -> None:
        self.watch.stop()


# ------------------------------------------------------------------ one spawn


def spawn(system, user: User, timeout: float = 240, t0: float | None = None) -> dict:
    """POST → ready, with the pod's timeline; ``t0`` is the common start of a storm."""
    row: dict = {"user": user.name}
    start = time.monotonic()
    listening: dict = {}
    probe = threading.Thread(target=lambda: listening.update(t=wait_listening(system.watch, user.name, start, 8888, start + timeout)), daemon=True)
    user.request_spawn()
    probe.start()
    events = user.follow_progress(start + timeout)
    ready = events[-1]["t"]
    probe.join(max(0.1, start + timeout - time.monotonic()))
    row["spawn_s"] = ready - start
    if t0 is not None:
        row["ready_from_start_s"] = ready - t0
    row["progress_events"] = len(events)
    rec = system.watch.of(user.name, start) or {}
    row["pod"] = rec.get("name")
    warm = bool(rec.get("warm_free")) and rec.get("added", start) < start
    row["warm"] = warm
    t_listen = listening.get("t")
    if warm:
        row["claim_s"] = rec["claimed"] - start
        if t_listen:
            row["server_s"] = t_listen - rec["claimed"]
    else:
        for key, a, b in (("hub_s", None, "added"), ("schedule_s", "added", "scheduled"), ("kubelet_s", "scheduled", "started")):
            if b in rec and (a is None or a in rec):
                row[key] = rec[b] - (start if a is None else rec[a])
        if t_listen and "started" in rec:
            row["server_s"] = t_listen - rec["started"]
    if t_listen:
        row["notice_s"] = ready - t_listen
    row["hook_s"] = system.hook_s(user.name)
    return row


def stop_all(users: list[User]) -> None:
    threads = [threading.Thread(target=u.stop_server, kwargs={"timeout": 120}) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)



def wait_pool(release, n: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        free = [p for p in release.pods("labdeck.dev%2Fwarm%3Dready") if p["status"].get("phase") == "Running"]
        ready = 0
        for p in free:
            try:
                ready += requests.get(f"http://{p['status']['podIP']}:8889/ready", timeout=1).status_code == 200
            except requests.RequestException:
                pass
        if ready >= n:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the warm pool did not fill to {n} in {timeout}s")
