"""A "process kubelet": runs the pods of one namespace as local processes, for tests.

It stands in for scheduler + kubelet + the PVC controller on a machine without containers:

- registers a Ready Node (``labdeck-local-node``) and binds unscheduled pods to it
  (``pods/binding``), emitting the events a real cluster would (Scheduled, Pulling, Pulled,
  Created, Started) so KubeSpawner's progress shows them;
- runs the pod's first container as a process in its own session, with env, ``envFrom``,
  Secret/ConfigMap/downwardAPI/emptyDir/PVC volumes materialized under a per-pod directory,
  and ``volumeMounts`` bind-mounted at their paths inside a private mount namespace
  (``unshare --mount``, needs root). Without root it falls back to rewriting mount paths in
  env values, args and ``workingDir`` (``mounts="rewrite"``);
- gives each pod its own loopback address ``127.0.1.N`` as ``status.podIP``; ``0.0.0.0`` in
  args/env is rewritten to it, so every server binds its own address (same port, no clash);
- reports status (Running/Ready, then terminated with the exit code → Succeeded/Failed);
- on deletion stops the process group (SIGTERM, SIGKILL after the grace period, capped) and
  finishes the delete with ``gracePeriodSeconds=0`` (nothing else would);
- marks PVCs Bound and maps each to a directory under ``pvc_root`` (homes persist across
  pod restarts for as long as that directory does).

Opt-in, for running a whole chart (``tests/kube/chart_harness.py``):

- ``image_env``: image → environment the image would set (its ``ENV``: ``PATH`` into this
  venv or ``node_modules/.bin``), under the container's own env;
- ``cluster_dns``: each pod gets its own ``/etc/hosts`` (bind-mounted in its mount
  namespace, the host's file is untouched) naming every Service of the namespace by the
  address of a ready pod its selector matches, kept current every 0.5 s. (The Endpoints
  API refuses loopback addresses, so the endpoints controller's result cannot be used for
  127.x pod IPs.) No kube-proxy: a Service works only where ``port == targetPort``;
- ``service_account_tokens``: a pod that automounts its token gets a TokenRequest token of
  its ServiceAccount, ``ca.crt`` and ``namespace`` at
  ``/var/run/secrets/kubernetes.io/serviceaccount`` and ``KUBERNETES_SERVICE_HOST/PORT``,
  so in-cluster clients work with the chart's own RBAC;
- ``probes``: an ``httpGet`` readiness probe gates the pod's Ready condition (checked until
  it first succeeds);
- ``restarts``: ``restartPolicy`` Always/OnFailure restart the process in place with a
  capped back-off (``restartCount`` counts), instead of failing the pod;
- ``run_as_user`` (root, private mount namespaces): the process runs as the pod's
  ``runAsUser``/``runAsGroup`` with ``fsGroup`` and ``supplementalGroups``, and the
  container's ``capabilities`` (bounding set) and ``allowPrivilegeEscalation: false``
  (``no_new_privs``), through ``setpriv`` after the mounts; emptyDirs are 0777 as Kubernetes
  makes them. A callable (pod → bool) applies it to the pods it selects. Without it every
  process runs as the kubelet's user.

Not done: restarts unless ``restarts`` (a ReplicaSet would replace a failed pod), init containers and sidecars (only the first container runs),
``fsGroup`` ownership of volumes (Secret files stay the kubelet's, 0600), liveness/startup probes, resource limits, image
pulls, ``kubectl logs``/``exec`` (see :meth:`log_path`).

Use ``await ProcessKubelet(...).run()`` in a task, :class:`KubeletThread` from sync code,
or ``python -m tests.kube.kubelet --kubeconfig K --namespace NS``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import psutil
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.kube import podspec
from tests.helpers.procs import descendants
from tests.kube.cluster import _die_with_parent

log = logging.getLogger("labdeck.kubelet")

DEFAULT_NODE = "labdeck-local-node"
COMPONENT = "labdeck-process-kubelet"


def now() -> str:
    """RFC 3339 timestamp, second resolution (what ``lastTimestamp`` and ``startedAt`` use)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodRun:
    """What the kubelet knows about one pod it handles (keyed by UID)."""

    uid: str
    name: str
    namespace: str
    ip: str = ""
    dir: Path | None = None
    proc: subprocess.Popen | None = None
    exit_code: int | None = None
    deleting: bool = False
    created_targets: list[Path] = field(default_factory=list)
    task: asyncio.Task | None = None
    labels: dict = field(default_factory=dict)
    ready: bool = False


class ProcessKubelet:
    """Run the pods of ``namespace`` (``None``: all namespaces) as local processes.

    Parameters
    ----------
    kubeconfig
        Path of a kubeconfig with rights on nodes, pods, pods/binding, pods/status, events,
        secrets, configmaps and persistentvolumeclaims(/status).
    namespace
        Namespace to watch, or ``None`` for all.
    node_name
        Name of the Node to register and bind pods to.
    workdir
        Where per-pod directories live (default: a temporary directory removed on shutdown).
    pvc_root
        Where PVC directories live (default ``<workdir>/pvcs``).
    default_commands
        Image → entrypoint argv, for containers without ``command``; ``"*"`` matches any image.
    mounts
        ``"unshare"`` (bind mounts in a private mount namespace, root only), ``"rewrite"``
        (rewrite paths in env/args/workingDir) or ``"auto"``.
    max_grace
        Upper bound in seconds on the termination grace period honoured.
    """

    def __init__(
        self,
        kubeconfig: str,
        namespace: str | None,
        node_name: str = DEFAULT_NODE,
        workdir: str | Path | None = None,
        pvc_root: str | Path | None = None,
        default_commands: Mapping[str, Sequence[str]] | None = None,
        mounts: str = "auto",
        ip_prefix: str = "127.0.1.",
        max_grace: float = 10.0,
        base_env: Mapping[str, str] | None = None,
        bind_pvcs: bool = True,
        image_env: Mapping[str, Mapping[str, str]] | None = None,
        cluster_dns: bool = False,
        service_account_tokens: bool = False,
        probes: bool = False,
        restarts: bool = False,
        run_as_user: bool | Callable[[dict], bool] = False,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.restarts = restarts
        self.run_as_user = run_as_user
        self.image_env = {k: dict(v) for k, v in (image_env or {}).items()}
        self.cluster_dns = cluster_dns
        self.service_account_tokens = service_account_tokens
        self.probes = probes
        self._hosts: dict[str, str] = {}
        self.namespace = namespace
        self.node_name = node_name
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="labdeck-kubelet-"))
        self.pvc_root = Path(pvc_root) if pvc_root else self.workdir / "pvcs"
        self.default_commands: dict[str, list[str]] = {
            k: list(v) for k, v in (default_commands or {}).items()
        }
        self.mounts = _pick_mount_mode(mounts)
        if run_as_user and self.mounts != "unshare":
            raise ValueError("run_as_user needs root with private mount namespaces (mounts='unshare')")
        self.ip_prefix = ip_prefix
        self.max_grace = max_grace
        self.base_env = dict(base_env) if base_env is not None else _default_base_env()
        self.bind_pvcs = bind_pvcs
        self.ready = asyncio.Event()
        self.runs: dict[str, PodRun] = {}
        self._ips: set[str] = set()
        self._next_ip = 2
        self._api: client.ApiClient | None = None
        self._core: client.CoreV1Api | None = None
        self._tasks: set[asyncio.Task] = set()
        self._target_users: dict[Path, int] = {}

    # ---- public -----------------------------------------------------------------------------

    def log_path(self, pod_name: str, namespace: str | None = None) -> Path | None:
        """The stdout/stderr file of a pod's process (there is no ``kubectl logs``)."""
        for run in self.runs.values():
            if run.name == pod_name and namespace in (None, run.namespace) and run.dir:
                return run.dir / "container.log"
        return None

    def pid(self, pod_name: str) -> int | None:
        """PID of a running pod's process, or None."""
        for run in self.runs.values():
            if run.name == pod_name and run.proc and run.proc.poll() is None:
                return run.proc.pid
        return None

    async def run(self) -> None:
        """Register the node and handle pods (and PVCs) until cancelled; then shut down."""
        self._api = await config.new_client_from_config(config_file=self.kubeconfig)
        self._core = client.CoreV1Api(self._api)
        try:
            await self._register_node()
            if self.bind_pvcs:
                self._spawn(self._pvc_loop())
            if self.cluster_dns:
                self._spawn(self._dns_loop())
            await self._pod_loop()
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Kill every process this kubelet started, remove its files, close the client."""
        for t in list(self._tasks):
            t.cancel()
        for run in list(self.runs.values()):
            if run.task:
                run.task.cancel()
            await self._kill(run, grace=min(self.max_grace, 3.0))
            self._cleanup(run)
        self.runs.clear()
        if self._core is not None:
            try:
                await asyncio.wait_for(self._core.delete_node(self.node_name), 5)
            except (ApiException, OSError, asyncio.TimeoutError):
                pass
        if self._api is not None:
            await self._api.close()
            self._api = self._core = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- node, watch loop ------------------------------------------------------------------

    async def _register_node(self) -> None:
        assert self._core is not None
        body = {
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "labdeck.dev/process-kubelet": "true",
                },
            },
        }
        try:
            await self._core.create_node(body)
        except ApiException as e:
            if e.status != 409:
                raise
        cap = {"cpu": str(os.cpu_count() or 1), "memory": "16Gi", "pods": "250"}
        status = {
            "status": {
                "capacity": cap,
                "allocatable": cap,
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.node_name},
                ],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "process kubelet is posting ready status",
                        "lastHeartbeatTime": now(),
                        "lastTransitionTime": now(),
                    }
                ],
                "nodeInfo": _node_info(),
            }
        }
        await self._core.patch_node_status(self.node_name, status)

    async def _list_pods(self) -> tuple[list[dict], str]:
        assert self._core is not None
        if self.namespace:
            data = await raw(
                self._core.list_namespaced_pod(self.namespace, _preload_content=False))
        else:
            data = await raw(self._core.list_pod_for_all_namespaces(_preload_content=False))
        return data["items"], data["metadata"]["resourceVersion"]

    async def _pod_loop(self) -> None:
        """List + watch pods forever; relist when the watch expires or fails."""
        assert self._core is not None
        backoff = 0.5
        while True:
            try:
                pods, rv = await self._list_pods()
                for pod in pods:
                    self._handle("ADDED", pod)
                self._reap_vanished({p["metadata"]["uid"] for p in pods})
                self.ready.set()
                w = watch.Watch()
                func = (
                    self._core.list_namespaced_pod
                    if self.namespace
                    else self._core.list_pod_for_all_namespaces
                )
                args = (self.namespace,) if self.namespace else ()
                async with w.stream(func, *args, resource_version=rv, timeout_seconds=60) as s:
                    async for ev in s:
                        if ev["type"] == "ERROR":
                            break  # e.g. 410 Gone: relist
                        self._handle(ev["type"], ev["raw_object"])
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as e:  # keep serving; log and relist with a bounded backoff
                log.warning("pod watch failed (%s); relisting", e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _reap_vanished(self, live_uids: set[str]) -> None:
        for uid, run in list(self.runs.items()):
            if uid not in live_uids:
                self._spawn(self._on_deleted(run))

    def _handle(self, kind: str, pod: dict) -> None:
        """Dispatch one pod event without blocking the watch."""
        meta, spec = pod["metadata"], pod.get("spec", {})
        uid = meta["uid"]
        run = self.runs.get(uid)
        if kind == "DELETED":
            if run:
                self._spawn(self._on_deleted(run))
            return
        node = spec.get("nodeName")
        if node and node != self.node_name:
            return
        if meta.get("deletionTimestamp"):
            if run is None:
                run = self.runs[uid] = PodRun(uid, meta["name"], meta["namespace"])
            if not run.deleting:
                run.deleting = True
                self._spawn(self._on_terminating(run, pod))
            return
        if run is not None or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        if node is None and spec.get("schedulerName", "default-scheduler") != "default-scheduler":
            return
        run = self.runs[uid] = PodRun(uid, meta["name"], meta["namespace"])
        run.task = self._spawn(self._start_pod(run, pod))

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("kubelet task failed", exc_info=task.exception())

    # ---- starting a pod -------------------------------------------------------------------

    async def _start_pod(self, run: PodRun, pod: dict) -> None:
        assert self._core is not None
        ns, name = run.namespace, run.name
        if not pod["spec"].get("nodeName"):
            await self._bind(run)
            await self._event(run, "Scheduled", f"Successfully assigned {ns}/{name} to "
                              f"{self.node_name}", source="default-scheduler")
            pod = await self._read_pod(run) or pod
        run.ip = self._alloc_ip()
        run.labels = dict(pod["metadata"].get("labels") or {})
        run.dir = self.workdir / "pods" / f"{ns}_{name}_{run.uid[:8]}"
        run.dir.mkdir(parents=True, exist_ok=True)
        pod.setdefault("status", {})["podIP"] = run.ip
        pod["status"]["hostIP"] = "127.0.0.1"
        await self._patch_status(run, {
            "phase": "Pending",
            "hostIP": "127.0.0.1",
            "podIP": run.ip,
            "podIPs": [{"ip": run.ip}],
            "startTime": now(),
            "conditions": _conditions(scheduled=True, ready=False),
        })
        container = pod["spec"]["containers"][0]
        if len(pod["spec"]["containers"]) > 1 or pod["spec"].get("initContainers"):
            await self._event(run, "Warning", "only the first container runs locally",
                              reason="Unsupported", type_="Warning")
        prepared = await self._prepare(run, pod, container)
        if prepared is None:
            return
        argv, env, cwd = prepared
        image = container.get("image", "")
        await self._event(run, "Pulling", f'Pulling image "{image}"')
        await self._event(run, "Pulled", f'Container image "{image}" already present on '
                          "machine (process kubelet: nothing to pull)")
        policy = pod["spec"].get("restartPolicy", "Always")
        restarts = 0
        while True:
            await self._event(run, "Created", f"Created container {container['name']}")
            try:
                run.proc = self._launch(run, argv, env, cwd)
            except OSError as e:
                await self._event(run, "Failed", f"Error: {e}", type_="Warning")
                await self._finish(run, container["name"], 128, "StartError", str(e))
                return
            await self._event(run, "Started", f"Started container {container['name']}")
            started = now()
            probe_url = None
            if self.probes:
                probe_url = podspec.http_probe_url(container, container.get("readinessProbe"), run.ip)

            def running(ready: bool, started=started, restarts=restarts) -> dict:
                run.ready = ready
                return {
                    "phase": "Running",
                    "conditions": _conditions(scheduled=True, ready=ready),
                    "containerStatuses": [{
                        "name": container["name"],
                        "image": image,
                        "imageID": f"process://{image}",
                        "containerID": f"process://{run.proc.pid}",
                        "ready": ready,
                        "started": True,
                        "restartCount": restarts,
                        "state": {"running": {"startedAt": started}},
                        "lastState": {},
                    }],
                }

            await self._patch_status(run, running(probe_url is None))
            if probe_url:
                self._spawn(self._probe_ready(run, probe_url, running))
            code = await self._wait_exit(run)
            if run.deleting:
                return
            again = self.restarts and (policy == "Always" or (policy == "OnFailure" and code != 0))
            if not again:
                await self._finish(run, container["name"], code,
                                   "Completed" if code == 0 else "Error", "", started)
                return
            # like a kubelet: restart in place with a capped exponential back-off (CrashLoopBackOff)
            restarts += 1
            delay = min(0.5 * 2 ** restarts, 10.0)
            await self._event(run, "BackOff", f"Back-off {delay:g}s restarting failed container "
                              f"{container['name']} (exit code {code})", type_="Warning")
            run.ready = False
            await self._patch_status(run, {"conditions": _conditions(scheduled=True, ready=False)})
            await asyncio.sleep(delay)
            if run.deleting:
                return

    async def _probe_ready(self, run: PodRun, url: str, running) -> None:
        """Poll a readiness probe until it answers 2xx/3xx once, then report the pod Ready."""
        import urllib.request

        def check() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return 200 <= r.status < 400
            except OSError:
                return False

        while run.proc is not None and run.proc.poll() is None and not run.deleting:
            if await asyncio.get_running_loop().run_in_executor(None, check):
                await self._patch_status(run, running(True))
                return
            await asyncio.sleep(0.5)

    async def _service_account(self, run: PodRun, pod: dict) -> tuple[Path, dict[str, str]] | None:
        """The pod's ServiceAccount token directory and env, as a kubelet's token projection gives it."""
        spec = pod["spec"]
        if not self.service_account_tokens or spec.get("automountServiceAccountToken") is False:
            return None
        assert self._core is not None and run.dir is not None
        sa = spec.get("serviceAccountName") or "default"
        body = {"spec": {"audiences": [], "expirationSeconds": 3600}}
        tr = await raw(self._core.create_namespaced_service_account_token(
            sa, run.namespace, body, _preload_content=False))
        cfg = self._api.configuration if self._api else None
        d = run.dir / "serviceaccount"
        d.mkdir(mode=0o700, exist_ok=True)
        podspec._write_file(d / "token", tr["status"]["token"].encode(), 0o600)
        podspec._write_file(d / "namespace", run.namespace.encode(), 0o644)
        if cfg is not None and cfg.ssl_ca_cert:
            podspec._write_file(d / "ca.crt", Path(cfg.ssl_ca_cert).read_bytes(), 0o644)
        from urllib.parse import urlsplit

        host = urlsplit(cfg.host if cfg else "https://127.0.0.1:443")
        env = {"KUBERNETES_SERVICE_HOST": host.hostname or "127.0.0.1",
               "KUBERNETES_SERVICE_PORT": str(host.port or 443)}
        return d, env

    async def _endpoints(self, namespace: str) -> dict[str, list[str]]:
        """Service → ready pod addresses in ``namespace`` (the pods this kubelet runs)."""
        assert self._core is not None
        services = (await raw(self._core.list_namespaced_service(namespace, _preload_content=False)))["items"]
        pods = [(r.labels, r.ip) for r in self.runs.values()
                if r.namespace == namespace and r.ready and not r.deleting and r.ip]
        return podspec.service_addresses(services, pods)

    async def _dns_loop(self) -> None:
        """Keep every running pod's hosts file current with the namespace's Endpoints."""
        while True:
            try:
                by_ns: dict[str, dict[str, list[str]]] = {}
                for run in list(self.runs.values()):
                    if run.dir is None or not (run.dir / "hosts").exists():
                        continue
                    if run.namespace not in by_ns:
                        by_ns[run.namespace] = await self._endpoints(run.namespace)
                    self._write_hosts(run, by_ns[run.namespace])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("DNS loop: %s", e)
            await asyncio.sleep(0.5)

    def _write_hosts(self, run: PodRun, endpoints: dict[str, list[str]]) -> None:
        assert run.dir is not None
        text = podspec.hosts_file(endpoints, run.namespace, run.name, run.ip)
        if self._hosts.get(run.uid) == text and (run.dir / "hosts").exists():
            return
        path = run.dir / "hosts"
        # rewrite in place: the pod's /etc/hosts is a bind mount of this inode
        with open(path, "r+" if path.exists() else "w") as f:
            f.truncate(0)
            f.write(text)
        self._hosts[run.uid] = text

    async def _prepare(
        self, run: PodRun, pod: dict, container: dict
    ) -> tuple[list[str], dict[str, str], str | None] | None:
        """Materialize volumes and build argv/env/cwd, retrying missing objects ~60 s."""
        assert run.dir is not None
        last = ""
        for attempt in range(60):
            if run.deleting:
                return None
            cache: dict[tuple[str, str], Mapping[str, bytes] | None] = {}
            try:
                for kind, ref in _references(pod, container):
                    cache[(kind, ref)] = await self._fetch(kind, run.namespace, ref)
                await self._ensure_claims(run, pod)
                lookup = lambda kind, ref: cache.get((kind, ref))  # noqa: E731
                plan = podspec.materialize_volumes(
                    pod, run.dir, lookup, lambda claim: self.pvc_root / run.namespace / claim
                )
                mounts = podspec.resolve_mounts(container, plan)
                base = dict(self.base_env)
                base.update(podspec.image_entry(self.image_env, container.get("image", "")) or {})
                base["HOSTNAME"] = run.name
                sa = await self._service_account(run, pod)
                if sa is not None:
                    base.update(sa[1])
                    mounts.append(podspec.Mount(sa[0], "/var/run/secrets/kubernetes.io/serviceaccount", True))
                if self.cluster_dns:
                    self._write_hosts(run, await self._endpoints(run.namespace))
                    mounts.append(podspec.Mount(run.dir / "hosts", "/etc/hosts", True))
                env = podspec.build_env(pod, container, lookup, base)
                argv = podspec.build_argv(container, env, self.default_commands)
                if self.run_as_user and (not callable(self.run_as_user) or self.run_as_user(pod)):
                    argv = [*podspec.run_as(pod, container), *argv]
                break
            except podspec.PodSpecError as e:
                if str(e) != last:
                    reason = "FailedMount" if "not found" in str(e) else "Failed"
                    await self._event(run, reason, str(e), type_="Warning")
                    last = str(e)
                if "default_commands" in str(e) or "unsupported" in str(e):
                    await self._finish(run, container["name"], 128, "CreateContainerError",
                                       str(e))
                    return None
                await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
        else:
            await self._finish(run, container["name"], 128, "CreateContainerConfigError", last)
            return None
        for w in plan.warnings:
            await self._event(run, "Unsupported", w, type_="Warning")
        argv = podspec.rewrite_wildcard(argv, run.ip)
        env = podspec.rewrite_wildcard(env, run.ip)
        cwd = container.get("workingDir") or None
        if self.mounts == "unshare" and mounts:
            self._make_targets(run, mounts)
            script = run.dir / "mounts.sh"
            script.write_text(podspec.mount_script(mounts, cwd))
            argv = ["unshare", "--mount", "--propagation", "private", "/bin/sh", str(script),
                    *argv]
            cwd = None
        elif mounts:
            argv = podspec.rewrite_paths(argv, mounts)
            env = podspec.rewrite_paths(env, mounts)
            if cwd:
                cwd = podspec.rewrite_paths([cwd], mounts)[0]
        if cwd and not Path(cwd).is_dir():
            Path(cwd).mkdir(parents=True, exist_ok=True)
        return argv, env, cwd

    def _make_targets(self, run: PodRun, mounts: Sequence[podspec.Mount]) -> None:
        """Create missing mount points on the host; remember them to remove when unused."""
        for m in mounts:
            target = Path(m.target)
            missing = []
            p = target
            while not p.exists():
                missing.append(p)
                p = p.parent
            if m.source.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():  # never touch an existing host file (/etc/hosts)
                    target.touch()
            else:
                target.mkdir(parents=True, exist_ok=True)
            for p in missing:
                self._target_users[p] = self._target_users.get(p, 0) + 1
                run.created_targets.append(p)
            for p in (target, *target.parents):  # made earlier for another pod: share it
                if p in self._target_users and p not in missing:
                    self._target_users[p] += 1
                    run.created_targets.append(p)

    def _launch(
        self, run: PodRun, argv: list[str], env: dict[str, str], cwd: str | None
    ) -> subprocess.Popen:
        assert run.dir is not None
        out = open(run.dir / "container.log", "ab")
        try:
            return subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
            )
        finally:
            out.close()

    async def _wait_exit(self, run: PodRun) -> int:
        assert run.proc is not None
        while (code := run.proc.poll()) is None:
            await asyncio.sleep(0.2)
        run.exit_code = code
        return code

    async def _finish(
        self, run: PodRun, cname: str, code: int, reason: str, message: str,
        started: str | None = None,
    ) -> None:
        """Report the container terminated; phase Succeeded (exit 0) or Failed."""
        term = {"exitCode": code, "reason": reason, "finishedAt": now()}
        if message:
            term["message"] = message[:1000]
        if started:
            term["startedAt"] = started
        await self._patch_status(run, {
            "phase": "Succeeded" if code == 0 else "Failed",
            "conditions": _conditions(scheduled=True, ready=False),
            "containerStatuses": [{
                "name": cname, "ready": False, "started": False, "restartCount": 0,
                "image": "", "imageID": "", "state": {"terminated": term},
            }],
        })

    # ---- deleting a pod -------------------------------------------------------------------

    async def _on_terminating(self, run: PodRun, pod: dict) -> None:
        """deletionTimestamp set: stop the process, then finish the delete (grace 0)."""
        assert self._core is not None
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        grace = self.max_grace if grace is None else min(float(grace), self.max_grace)
        if run.task and not run.task.done() and run.proc is None:
            run.task.cancel()  # still preparing
        if run.proc is not None:
            await self._event(run, "Killing", "Stopping container")
        await self._kill(run, grace)
        if run.proc is not None and run.proc.returncode is not None:
            code = run.proc.returncode
            code = 128 - code if code < 0 else code  # killed by signal N → 128+N
            cname = pod["spec"]["containers"][0]["name"]
            await self._patch_status(run, {
                "conditions": _conditions(scheduled=True, ready=False),
                "containerStatuses": [{
                    "name": cname, "ready": False, "started": False, "restartCount": 0,
                    "image": "", "imageID": "",
                    "state": {"terminated": {"exitCode": code, "reason": "Killed"
                                             if code > 128 else "Completed",
                                             "finishedAt": now()}},
                }],
            })
        await self._finish_delete(run)

    async def _finish_delete(self, run: PodRun) -> None:
        """Delete the pod for good (what a kubelet does once its containers are gone).

        Without this, a pod deleted with a grace period stays Terminating forever. Checks
        that the pod is gone and retries a few times (bounded) if it is not.
        """
        assert self._core is not None
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": run.uid}}
        for _ in range(10):
            try:
                await raw(self._core.delete_namespaced_pod(
                    run.name, run.namespace, grace_period_seconds=0, body=body,
                    _preload_content=False,
                ))
            except ApiException as e:
                if e.status in (404, 409):  # gone, or a new pod with the same name
                    return
                raise
            current = await self._read_pod(run)
            if current is None or current["metadata"]["uid"] != run.uid:
                return
            await asyncio.sleep(0.2)
        log.warning("pod %s/%s still present after final deletes", run.namespace, run.name)

    async def _on_deleted(self, run: PodRun) -> None:
        run.deleting = True
        if run.task and not run.task.done() and run.proc is None:
            run.task.cancel()
        await self._kill(run, min(self.max_grace, 2.0))
        self._cleanup(run)
        self.runs.pop(run.uid, None)

    async def _kill(self, run: PodRun, grace: float) -> None:
        """SIGTERM the pod's processes, SIGKILL after ``grace`` seconds, reap.

        A container's processes all end with it, also those in sessions of their own (JupyterHub
        starts its managed services, such as the idle culler, with ``start_new_session``): the
        pod's descendants are found before the first signal, while they are still its children,
        and signalled with its process group.
        """
        proc = run.proc
        if proc is None or proc.poll() is not None:
            return
        inside = descendants(proc.pid)
        _signal_all(proc.pid, inside, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if proc.poll() is None:
            _signal_all(proc.pid, inside, signal.SIGKILL)
            for _ in range(50):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
        # the group, and descendants elsewhere, may hold processes that ignored SIGTERM
        _signal_all(proc.pid, inside, signal.SIGKILL)

    def _cleanup(self, run: PodRun) -> None:
        self._hosts.pop(run.uid, None)
        if run.ip:
            self._ips.discard(run.ip)
        if run.dir:
            shutil.rmtree(run.dir, ignore_errors=True)
        for p in sorted(set(run.created_targets), key=lambda p: len(p.parts), reverse=True):
            self._target_users[p] = self._target_users.get(p, 1) - 1
            if self._target_users[p] <= 0:
                self._target_users.pop(p, None)
                try:
                    p.unlink() if p.is_file() else p.rmdir()
                except OSError:
                    pass
        run.created_targets.clear()

    # ---- API helpers ----------------------------------------------------------------------

    async def _bind(self, run: PodRun) -> None:
        assert self._core is not None
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": run.name, "uid": run.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        # _preload_content=False: the client cannot deserialize the Status it returns
        await raw(self._core.create_namespaced_pod_binding(
            run.name, run.namespace, body, _preload_content=False
        ))

    async def _read_pod(self, run: PodRun) -> dict | None:
        assert self._core is not None
        try:
            return await raw(self._core.read_namespaced_pod(
                run.name, run.namespace, _preload_content=False
            ))
        except ApiException:
            return None

    async def _patch_status(self, run: PodRun, status: dict) -> None:
        assert self._core is not None
        try:
            await raw(self._core.patch_namespaced_pod_status(
                run.name, run.namespace, {"metadata": {"uid": run.uid}, "status": status},
                _preload_content=False,
            ))
        except ApiException as e:
            if e.status not in (404, 409, 422):
                raise
            log.debug("status patch for %s/%s: %s", run.namespace, run.name, e.reason)

    async def _event(
        self, run: PodRun, reason: str, message: str, type_: str = "Normal",
        source: str = "kubelet",
    ) -> None:
        """Create a core/v1 Event on the pod (names sort by creation time)."""
        assert self._core is not None
        ts = now()
        body = {
            "metadata": {"name": f"{run.name}.{time.time_ns():x}", "namespace": run.namespace},
            "involvedObject": {
                "apiVersion": "v1", "kind": "Pod", "name": run.name,
                "namespace": run.namespace, "uid": run.uid,
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": source, "host": self.node_name},
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "reportingComponent": COMPONENT,
            "reportingInstance": self.node_name,
        }
        try:
            await raw(self._core.create_namespaced_event(run.namespace, body,
                                                         _preload_content=False))
        except ApiException as e:
            log.warning("event %s for %s not created: %s", reason, run.name, e.reason)

    async def _fetch(self, kind: str, namespace: str, name: str) -> Mapping[str, bytes] | None:
        assert self._core is not None
        read = (self._core.read_namespaced_secret if kind == "Secret"
                else self._core.read_namespaced_config_map)
        try:
            obj = await raw(read(name, namespace, _preload_content=False))
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return podspec.decode_data(obj, kind)

    def _alloc_ip(self) -> str:
        for _ in range(253):
            ip = f"{self.ip_prefix}{self._next_ip}"
            self._next_ip = self._next_ip + 1 if self._next_ip < 254 else 2
            if ip not in self._ips:
                self._ips.add(ip)
                return ip
        raise RuntimeError("no free pod IP left")

    # ---- PVC binder -----------------------------------------------------------------------

    async def _pvc_loop(self) -> None:
        """Mark Pending PVCs Bound (no provisioner runs); their data lives under pvc_root."""
        assert self._core is not None
        while True:
            try:
                if self.namespace:
                    data = await raw(self._core.list_namespaced_persistent_volume_claim(
                        self.namespace, _preload_content=False))
                else:
                    data = await raw(
                        self._core.list_persistent_volume_claim_for_all_namespaces(
                            _preload_content=False))
                for pvc in data["items"]:
                    if (pvc.get("status") or {}).get("phase") != "Bound":
                        await self._bind_pvc(pvc)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("PVC binder: %s", e)
            await asyncio.sleep(0.5)

    async def _ensure_claims(self, run: PodRun, pod: dict) -> None:
        """Bind the pod's PVCs now (the binder loop may not have seen them yet)."""
        assert self._core is not None
        for vol in pod["spec"].get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            try:
                pvc = await raw(self._core.read_namespaced_persistent_volume_claim(
                    claim, run.namespace, _preload_content=False))
            except ApiException as e:
                if e.status == 404:
                    raise podspec.PodSpecError(
                        f'persistentvolumeclaim "{claim}" not found') from None
                raise
            if (pvc.get("status") or {}).get("phase") != "Bound":
                await self._bind_pvc(pvc)

    async def _bind_pvc(self, pvc: dict) -> None:
        assert self._core is not None
        meta, spec = pvc["metadata"], pvc.get("spec", {})
        (self.pvc_root / meta["namespace"] / meta["name"]).mkdir(parents=True, exist_ok=True)
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        await raw(self._core.patch_namespaced_persistent_volume_claim_status(
            meta["name"], meta["namespace"],
            {"status": {"phase": "Bound", "accessModes": spec.get("accessModes") or
                        ["ReadWriteOnce"], "capacity": {"storage": size}}},
            _preload_content=False,
        ))


# ---- module helpers -----------------------------------------------------------------------


async def raw(call: Any) -> dict:
    """Await an API call made with ``_preload_content=False``; return the JSON body.

    The client skips its status check without preloading, so non-2xx answers are turned
    into :class:`ApiException` here, as the preloading path would.
    """
    resp = await call
    body = await resp.read()
    if not 200 <= resp.status <= 299:
        raise ApiException(status=resp.status, reason=body.decode(errors="replace")[:500])
    return json.loads(body) if body else {}


def _references(pod: dict, container: dict) -> set[tuple[str, str]]:
    """Every (kind, name) of Secret/ConfigMap the pod's volumes and container env use."""
    refs: set[tuple[str, str]] = set()
    for vol in pod["spec"].get("volumes") or []:
        if "secret" in vol:
            refs.add(("Secret", vol["secret"]["secretName"]))
        if "configMap" in vol:
            refs.add(("ConfigMap", vol["configMap"]["name"]))
        for s in (vol.get("projected") or {}).get("sources") or []:
            if "secret" in s:
                refs.add(("Secret", s["secret"]["name"]))
            if "configMap" in s:
                refs.add(("ConfigMap", s["configMap"]["name"]))
    for src in container.get("envFrom") or []:
        if "secretRef" in src:
            refs.add(("Secret", src["secretRef"]["name"]))
        if "configMapRef" in src:
            refs.add(("ConfigMap", src["configMapRef"]["name"]))
    for e in container.get("env") or []:
        vf = e.get("valueFrom") or {}
        if "secretKeyRef" in vf:
            refs.add(("Secret", vf["secretKeyRef"]["name"]))
        if "configMapKeyRef" in vf:
            refs.add(("ConfigMap", vf["configMapKeyRef"]["name"]))
    return refs


def _conditions(scheduled: bool, ready: bool) -> list[dict]:
    ts = now()
    s = lambda b: "True" if b else "False"  # noqa: E731
    return [
        {"type": "PodScheduled", "status": s(scheduled), "lastTransitionTime": ts},
        {"type": "Initialized", "status": "True", "lastTransitionTime": ts},
        {"type": "ContainersReady", "status": s(ready), "lastTransitionTime": ts},
        {"type": "Ready", "status": s(ready), "lastTransitionTime": ts},
    ]


def _node_info() -> dict[str, str]:
    u = os.uname()
    return {
        "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": u.release,
        "osImage": "labdeck process kubelet", "containerRuntimeVersion": "process://0",
        "kubeletVersion": "v0.0.0-process", "kubeProxyVersion": "", "operatingSystem": "linux",
        "architecture": "amd64",
    }


def _default_base_env() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "C.UTF-8"}
    for k in ("HOME", "TZ"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def _pick_mount_mode(mode: str) -> str:
    if mode not in ("auto", "unshare", "rewrite"):
        raise ValueError(f"mounts must be auto, unshare or rewrite, not {mode!r}")
    if mode != "auto":
        return mode
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return "rewrite"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
         "mount -t tmpfs none /mnt 2>/dev/null || mount --bind /tmp /tmp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return "unshare" if probe.returncode == 0 else "rewrite"


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_all(pid: int, procs: list[psutil.Process], sig: int) -> None:
    """``sig`` to the process group of ``pid`` and to each of ``procs`` still running (psutil
    checks each is the same process, not a reused pid)."""
    _signal_group(pid, sig)
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass


class KubeletThread:
    """Run a :class:`ProcessKubelet` on its own event loop in a thread (for sync fixtures)."""

    def __init__(self, kubelet: ProcessKubelet) -> None:
        self.kubelet = kubelet
        self._thread = threading.Thread(target=self._main, name="process-kubelet", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._started = threading.Event()
        self.error: BaseException | None = None

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._run())
        finally:
            self._loop.close()

    async def _run(self) -> None:
        self.kubelet.ready = asyncio.Event()
        self._task = asyncio.ensure_future(self.kubelet.run())
        waiter = asyncio.ensure_future(self.kubelet.ready.wait())
        await asyncio.wait([self._task, waiter], return_when=asyncio.FIRST_COMPLETED)
        self._started.set()
        waiter.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        except BaseException as e:  # reported through .error / start()
            self.error = e
            self._started.set()

    def start(self, timeout: float = 30.0) -> ProcessKubelet:
        """Start the thread; wait until the node is registered and pods are listed."""
        self._thread.start()
        if not self._started.wait(timeout):
            self.stop()
            raise TimeoutError(f"process kubelet not ready after {timeout}s")
        if self._task is not None and self._task.done() and not self._task.cancelled():
            exc = self._task.exception()
            if exc is not None:
                self.stop()
                raise exc
        return self.kubelet

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel the kubelet (which kills its pods' processes) and join the thread."""
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._task.cancel)
            except RuntimeError:
                pass
        self._thread.join(timeout)


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.kube.kubelet --kubeconfig K --namespace NS``."""
    p = argparse.ArgumentParser(prog="python -m tests.kube.kubelet", description=__doc__.split(
        "\n")[0])
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--namespace", help="namespace to watch (default: all)")
    p.add_argument("--node-name", default=DEFAULT_NODE)
    p.add_argument("--workdir", help="per-pod dirs (default: a temp dir, removed at exit)")
    p.add_argument("--pvc-root", help="where PVC directories live")
    p.add_argument("--mounts", default="auto", choices=["auto", "unshare", "rewrite"])
    p.add_argument("--default-command", action="append", default=[], metavar="IMAGE=ARGV",
                   help="entrypoint for an image, e.g. 'jupyter/base=jupyterhub-singleuser' "
                   "(argv split on spaces; IMAGE '*' matches any)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    commands = {}
    for item in args.default_command:
        image, _, cmd = item.partition("=")
        commands[image] = cmd.split()
    kubelet = ProcessKubelet(
        args.kubeconfig, args.namespace, node_name=args.node_name, workdir=args.workdir,
        pvc_root=args.pvc_root, default_commands=commands, mounts=args.mounts,
    )
    log.info("node %s, namespace %s, mounts=%s", kubelet.node_name,
             kubelet.namespace or "(all)", kubelet.mounts)

    async def _main() -> None:
        task = asyncio.ensure_future(kubelet.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(_main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
