"""``helm install`` of helm/labdeck into tests/kube's API server, with every pod running.

What runs, and what each real part is:

- kube-apiserver + etcd (:class:`tests.kube.cluster.LocalCluster`) and
  kube-controller-manager from the same Debian source (Deployments → ReplicaSets → Pods,
  Endpoints from pod readiness, garbage collection);
- the process kubelet (:mod:`tests.kube.kubelet`) for the release namespace, with the
  chart's images mapped to this machine (:func:`image_env`: the hub, broker, runs, viewer
  and user images are the harness image of :mod:`tests.kube.image` - this venv, copied where
  every uid can run it and no pod's emptyDir at ``/tmp`` hides it; the proxy image is its
  ``node_modules/.bin``; the user image also sets ``ServerApp.allow_root`` because the
  kubelet runs the release's processes as its own user - root here), readiness probes,
  ServiceAccount tokens (so the hub's KubeSpawner uses the chart's own Role) and per-pod
  ``/etc/hosts`` naming each Service by its ready endpoint addresses;
- before the release, :func:`preflight`: one pod per chart container (and the user image)
  with the chart's ``securityContext`` and emptyDir mounts, run as the chart's uids
  (``run_as_user``), each checking that its interpreter and packages load;
- moto (:mod:`labdeck.emulators.aws`, IAM enforced) as S3/STS/IAM on 127.0.0.1, the chart's
  ``cloud.aws.endpointUrl``, with ``cloud.providers: [aws]``: one role scoped per person
  by a session policy, which the endpoint evaluates, so alice's kernel is refused bob's
  prefix; the broker's and viewer's IAM keys reach their pods through ``extraEnv``;
- a real OpenID Connect provider (oidc-provider-mock, :mod:`tests.helpers.oidc`) on
  127.0.0.1: the chart's ``auth.oauth.issuer``. Pods share this machine's network (the
  kubelet gives them a private mount namespace only), so the hub pod reaches it on
  loopback, as the test's browser does.

:func:`install_args` passes what exists only at test time: addresses as ``--set``, the
OIDC client secret and the IAM keys in a 0600 values file (never on helm's command line).

Service names resolve to *pod* addresses (no kube-proxy, no cluster IPs), so every Service
must have ``port == targetPort``: the values set ``proxy.service.port: 8000``. Pods bind
their own ``127.0.3.N`` address where the chart says ``0.0.0.0`` on a command line; the
hub (8081), proxy (8000, 8001) and broker (8090) bind every address, as they do in a pod,
so those ports must be free on this machine (:func:`ports_in_use` names a clash).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from labdeck.hub import contract

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "labdeck"
VALUES = Path(__file__).resolve().parent / "chart-values.yaml"
RELEASE = "lc"
NAMESPACE = "labdeck-chart"
IP_PREFIX = "127.0.3."
USER_IMAGE = "labdeck/singleuser"
#: ports the chart's pods bind on every address (see module docstring)
WILDCARD_PORTS = (contract.HUB_PORT, contract.PROXY_HTTP_PORT, contract.PROXY_API_PORT, contract.SERVICE_PORTS[contract.BROKER])


def image_env(image, allow_root_dir: Path) -> dict[str, dict[str, str]]:
    """What each chart image's ``ENV`` is on this machine (the kubelet's ``image_env``): ``PATH``
    into the harness image (:mod:`tests.kube.image`), never into the checkout itself."""
    return {
        "ghcr.io/labdeck/hub": {**image.env(image.bin), "PYTHONUNBUFFERED": "1"},
        "quay.io/jupyterhub/configurable-http-proxy": image.env(image.node_bin, image.bin),
        USER_IMAGE: {**image.env(image.bin), "JUPYTER_CONFIG_PATH": str(allow_root_dir), "PYTHONUNBUFFERED": "1"},
    }


#: what a preflight pod runs instead of a component's program: the same interpreter, the same imports
PREFLIGHT_CHECKS = {
    "jupyterhub": ["python", "-c", "import jupyterhub.app, labdeck.hub.configurer, kubespawner, oauthenticator"],
    "labdeck": ["labdeck", "--help"],
    "configurable-http-proxy": ["configurable-http-proxy", "--version"],
    "labdeck-singleuser": ["python", "-c", "import labdeck.spawner.onboarding, jupyterhub.singleuser, jupyterlab, ipykernel"],
}


def preflight_pods(manifests: list[dict], singleuser_uid: int, singleuser_gid: int) -> list[dict]:
    """One pod per chart container (and the user image), as the chart would run it - image,
    ``securityContext`` (uid), emptyDir/hostPath mounts (``/tmp``) - running only a check that its
    interpreter and packages load: :data:`PREFLIGHT_CHECKS`, or ``python -c "import M"`` for ``python -m M``."""
    pods = []
    for m in manifests:
        if m.get("kind") != "Deployment":
            continue
        spec = m["spec"]["template"]["spec"]
        c = spec["containers"][0]
        argv = [*(c.get("command") or []), *(c.get("args") or [])]
        if argv[:2] == ["python", "-m"]:
            check = ["python", "-c", f"import {argv[2]}"]
        elif argv and argv[0] in PREFLIGHT_CHECKS:
            check = PREFLIGHT_CHECKS[argv[0]]
        else:
            raise AssertionError(f"{m['metadata']['name']}: no preflight check for {argv[:1]} (add one to PREFLIGHT_CHECKS)")
        volumes = [v for v in spec.get("volumes") or [] if "emptyDir" in v or "hostPath" in v]
        names = {v["name"] for v in volumes}
        pods.append(_preflight_pod(m["metadata"]["name"], c["image"], spec.get("securityContext") or {}, c.get("securityContext") or {},
                                   volumes, [vm for vm in c.get("volumeMounts") or [] if vm["name"] in names], check))  # fmt: skip
    sc = {"runAsUser": singleuser_uid, "runAsGroup": singleuser_gid, "fsGroup": singleuser_gid}
    pods.append(_preflight_pod("singleuser", f"{USER_IMAGE}:preflight", sc, {}, [], [], PREFLIGHT_CHECKS["labdeck-singleuser"]))
    return pods


def _preflight_pod(name: str, image: str, pod_sc: dict, sc: dict, volumes: list, mounts: list, check: list[str]) -> dict:
    container = {"name": "check", "image": image, "command": check, "securityContext": sc, "volumeMounts": mounts}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"preflight-{name}", "labels": {"labdeck-preflight": "1"}},
        "spec": {"restartPolicy": "Never", "securityContext": pod_sc, "volumes": volumes, "containers": [container]},
    }  # fmt: skip


def preflight(
    cluster, image, helm, chart: Path, args: list[str], workdir: Path, allow_root_dir: Path, timeout: float = 120,
    namespace: str = f"{NAMESPACE}-preflight",
) -> dict[str, float]:
    """Before the release: every chart image's interpreter runs as the uid the chart gives it,
    with the chart's emptyDir mounts, in the harness image. Fails naming the pod, its uid and
    its output (a checkout hidden under an emptyDir at ``/tmp``, a Python under ``/root`` that
    uid 1000 cannot execute). Returns each check's seconds."""
    import asyncio

    from tests.kube.kubelet import KubeletThread, ProcessKubelet

    rendered = helm("template", RELEASE, str(chart), "-n", NAMESPACE, *args).stdout
    manifests = [d for d in yaml.safe_load_all(rendered) if d]
    values = load_values()
    su = values.get("singleuser") or {}
    pods = preflight_pods(manifests, su.get("uid", 1000), su.get("fsGid", 100))
    ns = namespace
    asyncio.run(_create_namespace(str(cluster.kubeconfig), ns))
    thread = KubeletThread(ProcessKubelet(
        str(cluster.kubeconfig), ns, node_name="labdeck-preflight-node", workdir=workdir,
        default_commands={}, image_env=image_env(image, allow_root_dir), run_as_user=True, ip_prefix="127.0.4.",
    ))  # fmt: skip
    kubelet = thread.start()
    results: dict[str, float] = {}
    try:
        for pod in pods:
            name = pod["metadata"]["name"]
            _api(cluster, "POST", f"/api/v1/namespaces/{ns}/pods", pod)
            start = time.monotonic()
            deadline = start + timeout
            phase = ""
            while time.monotonic() < deadline:
                phase = (_api(cluster, "GET", f"/api/v1/namespaces/{ns}/pods/{name}") or {}).get("status", {}).get("phase", "")
                if phase in ("Succeeded", "Failed"):
                    break
                time.sleep(0.2)
            path = kubelet.log_path(name, ns)
            log = path.read_text(errors="replace") if path and path.exists() else ""
            uid = pod["spec"]["securityContext"].get("runAsUser")
            assert phase == "Succeeded", (
                f"{name} ({pod['spec']['containers'][0]['image']}, uid {uid}): {phase or 'no result'} after "
                f"{time.monotonic() - start:.0f}s running {pod['spec']['containers'][0]['command']}:\n{log[-2000:]}"
            )
            results[name] = time.monotonic() - start
            _api(cluster, "DELETE", f"/api/v1/namespaces/{ns}/pods/{name}?gracePeriodSeconds=0")
    finally:
        thread.stop()
    return results


def _api(cluster, method: str, path: str, body: dict | None = None) -> dict | None:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"{cluster.url}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {cluster.admin_token_file.read_text().strip()}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10, context=cluster._ssl_context()) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise AssertionError(f"{method} {path}: {e.code} {e.read()[:300]!r}") from None


async def _create_namespace(kubeconfig: str, name: str) -> None:
    from kubernetes_asyncio import client, config
    from kubernetes_asyncio.client.exceptions import ApiException

    async with await config.new_client_from_config(config_file=kubeconfig) as api:
        try:
            await client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
        except ApiException as e:
            if e.status != 409:
                raise


def ports_in_use(host: str = "127.0.0.1") -> list[int]:
    busy = []
    for port in WILDCARD_PORTS:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                busy.append(port)
    return busy


def relaxed_chart(dst: Path) -> Path:
    """helm/labdeck with ``kubeVersion`` relaxed to the harness API server's 1.20 (nothing else changes)."""
    target = dst / "labdeck"
    shutil.copytree(CHART, target)
    meta = target / "Chart.yaml"
    text, n = re.subn(r"(?m)^kubeVersion:.*$", 'kubeVersion: ">=1.20.0-0"', meta.read_text())
    assert n == 1
    meta.write_text(text)
    return target


@dataclass
class Moto:
    """The S3/STS/IAM endpoint of the release, seeded like the embedded default's (the broker's and viewer's IAM users)."""

    endpoint: str
    proc: subprocess.Popen
    bucket: str
    broker_keys: dict[str, str] = field(repr=False)
    viewer_keys: dict[str, str] = field(repr=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _keys(path: Path) -> dict[str, str]:
    import configparser

    cp = configparser.ConfigParser()
    cp.read(path)
    return {"AWS_ACCESS_KEY_ID": cp["default"]["aws_access_key_id"], "AWS_SECRET_ACCESS_KEY": cp["default"]["aws_secret_access_key"]}


def start_moto(workdir: Path, bucket: str = contract.DEFAULT_BUCKET, region: str = contract.DEFAULT_REGION) -> Moto:
    import requests

    from labdeck.emulators import aws
    from tests.helpers.platform import free_port

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(workdir / "moto.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "labdeck.emulators.aws", "--port", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "inf", "AWS_ACCESS_KEY_ID": "seed", "AWS_SECRET_ACCESS_KEY": "seed"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{endpoint}/moto-api/", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.2)
    # the broker's IAM user may assume the users' role (cloud.aws.roleArn in chart-values.yaml)
    broker_file, viewer_file = workdir / "broker-aws", workdir / "viewer-aws"
    aws.seed(endpoint, bucket, region, str(broker_file), str(viewer_file))
    return Moto(endpoint, proc, bucket, _keys(broker_file), _keys(viewer_file))


def install_args(moto: Moto, onboarding_dir: Path, issuer: str, client_secret: str, workdir: Path) -> list[str]:
    """helm arguments of the install (after the chart): the values file, then what only exists at test time.

    Addresses and paths are ``--set``; the OIDC client secret and the broker's and
    viewer's IAM keys go into a 0600 values file, so they never appear in a process list.
    """
    secret = {
        "auth": {"oauth": {"clientSecret": client_secret}},
        "broker": {"extraEnv": dict(moto.broker_keys)},
        "viewer": {"extraEnv": dict(moto.viewer_keys)},
    }
    path = workdir / "secret-values.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(secret, f)
    sets = [
        f"auth.oauth.issuer={issuer}",
        f"cloud.aws.endpointUrl={moto.endpoint}",
        f"cloud.aws.bucket={moto.bucket}",
        f"singleuser.onboardingDir={onboarding_dir}",
    ]
    args = ["-f", str(VALUES), "-f", str(path)]
    for s in sets:
        args += ["--set", s]
    return args


@dataclass
class Helm:
    """The helm binary with its own HOME and the cluster's kubeconfig (never the user's)."""

    path: str
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.path, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stderr[-3000:]}"
        return proc


def make_helm(helm_path: str, kubeconfig: Path, home: Path) -> Helm:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "KUBECONFIG": str(kubeconfig),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return Helm(helm_path, env)


@dataclass
class Release:
    """A running release: where to reach it and how to look inside."""

    cluster: object
    kubelet: object
    helm: Helm
    chart: Path
    #: helm arguments of the install and of every upgrade (:func:`install_args`)
    args: list[str] = field(repr=False)
    #: the OIDC provider people log in through (tests.helpers.oidc.OIDCProvider)
    idp: object = field(default=None, repr=False)
    names: dict[str, str] = field(default_factory=dict)

    def get(self, path: str) -> dict | None:
        status, body = self.cluster.request(path)
        if status == 404:
            return None
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    def delete_pod(self, name: str) -> None:
        import urllib.request

        req = urllib.request.Request(
            f"{self.cluster.url}/api/v1/namespaces/{NAMESPACE}/pods/{name}", method="DELETE",
            headers={"Authorization": f"Bearer {self.cluster.admin_token_file.read_text().strip()}"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10, context=self.cluster._ssl_context()) as r:
            assert r.status in (200, 202)

    def pods(self, selector: str = "") -> list[dict]:
        q = f"?labelSelector={selector}" if selector else ""
        return self.get(f"/api/v1/namespaces/{NAMESPACE}/pods{q}")["items"]

    def component_pod(self, component: str) -> dict | None:
        running = [
            p for p in self.pods(f"app.kubernetes.io/component%3D{component}")
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        ]
        return running[0] if running else None

    def ip_of(self, component: str) -> str:
        pod = self.component_pod(component)
        assert pod, f"no running {component} pod"
        return pod["status"]["podIP"]

    @property
    def url(self) -> str:
        """The public URL: the proxy-public Service's endpoint (port == targetPort here)."""
        return f"http://{self.ip_of('proxy')}:{contract.PROXY_HTTP_PORT}"

    def deployments_available(self) -> dict[str, bool]:
        deps = self.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")["items"]
        return {
            d["metadata"]["name"]: (d.get("status") or {}).get("availableReplicas", 0) >= d["spec"]["replicas"]
            for d in deps
            if d["spec"]["replicas"]
        }

    def wait_available(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        last = {}
        while time.monotonic() < deadline:
            last = self.deployments_available()
            if last and all(last.values()):
                return
            time.sleep(0.5)
        raise AssertionError(f"Deployments not available after {timeout}s: {last}\n{self.diagnose()}")

    def wait_routes(self, timeout: float = 90) -> None:
        """Until the hub answers through the proxy and has registered the runs and viewer routes."""
        import requests

        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                codes = [requests.get(f"{self.url}{p}", timeout=5).status_code
                         for p in ("/hub/health", "/services/runs/health", "/services/viewer/health")]
                if codes == [200, 200, 200]:
                    return
                last = str(codes)
            except requests.RequestException as e:
                last = str(e)
            time.sleep(0.5)
        raise AssertionError(f"hub and services not reachable through the proxy after {timeout}s: {last}\n{self.diagnose()}")

    def log(self, component: str) -> str:
        pod = self.component_pod(component)
        path = pod and self.kubelet.log_path(pod["metadata"]["name"], NAMESPACE)
        return path.read_text(errors="replace") if path and path.exists() else ""

    def diagnose(self) -> str:
        out = []
        for ep in self.get(f"/api/v1/namespaces/{NAMESPACE}/endpoints")["items"]:
            out.append(f"endpoints {ep['metadata']['name']}: {json.dumps(ep.get('subsets'))}")
        for run in list(self.kubelet.runs.values()):
            hosts = run.dir / "hosts" if run.dir else None
            if hosts and hosts.exists():
                out.append(f"hosts of {run.name}:\n{hosts.read_text()}")
        for pod in self.pods():
            name = pod["metadata"]["name"]
            out.append(f"--- {name}: {pod['status'].get('phase')}")
            path = self.kubelet.log_path(name, NAMESPACE)
            if path and path.exists():
                out.append(path.read_text(errors="replace")[-2500:])
        return "\n".join(out)

    def values_file(self) -> Path:
        return VALUES


def load_values() -> dict:
    return yaml.safe_load(VALUES.read_text())
