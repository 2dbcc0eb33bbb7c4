"""``helm install`` of helm/labdeck into a real kube-apiserver (tests/kube, Kubernetes 1.20.2).

What this checks, that rendering and schema validation (tests/chart) cannot: the API server
accepts every object the chart renders (helm 4 applies them server-side, so the server's own
typed validation runs), ``helm upgrade`` keeps the generated secrets (the chart's ``lookup``
only sees a cluster in a real install), and ``helm uninstall`` removes what it created.

No ``--wait``: this cluster has no controller-manager and no scheduler, so Deployments,
DaemonSets and Jobs never get pods; what matters is that the objects are accepted.

The chart declares ``kubeVersion: >=1.28.0-0``; the harness API server is 1.20.2 (the newest
that builds from Debian bookworm's source). The test installs a copy of the chart with that
constraint relaxed - nothing else in the copy changes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart.chartlib import CHART, _helm_path
from tests.helpers.required import missing

pytestmark = [pytest.mark.k8s, pytest.mark.chart]

VALUES = Path(__file__).resolve().parent / "helm-values.yaml"
NAMESPACE = "labdeck-helm"
RELEASE = "kd"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "kube"
GENERATED_KEYS = ("hub.cookie-secret", "proxy.token", "broker.api-token", "runs.api-token", "viewer.api-token")
CLUSTER_SCOPED = {"PriorityClass", "ClusterRole", "ClusterRoleBinding", "Namespace", "StorageClass"}


@pytest.fixture(scope="module")
def helm(kube_cluster, tmp_path_factory):
    path, reason = _helm_path()
    if path is None:
        missing("helm", reason)
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "KUBECONFIG": str(kube_cluster.kubeconfig),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }

    def run(*args, check=True):
        proc = subprocess.run([path, *args], env=env, capture_output=True, text=True, timeout=300)
        if check:
            assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stderr[-3000:]}"
        return proc

    return run


@pytest.fixture(scope="module")
def chart(tmp_path_factory) -> Path:
    """helm/labdeck with ``kubeVersion`` relaxed to this API server's 1.20 (see module docstring)."""
    dst = tmp_path_factory.mktemp("chart") / "labdeck"
    shutil.copytree(CHART, dst)
    meta = dst / "Chart.yaml"
    text, n = re.subn(r"(?m)^kubeVersion:.*$", 'kubeVersion: ">=1.20.0-0"', meta.read_text())
    assert n == 1
    meta.write_text(text)
    return dst


def api_path(cluster, obj: dict, namespace: str) -> str:
    """The REST path of ``obj``, the resource name found by API discovery."""
    api_version, kind, name = obj["apiVersion"], obj["kind"], obj["metadata"]["name"]
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    status, body = cluster.request(base)
    assert status == 200, f"{api_version} is not served by this API server"
    resources = [r for r in json.loads(body)["resources"] if r["kind"] == kind and "/" not in r["name"]]
    assert resources, f"{kind} is not served in {api_version}"
    plural = resources[0]["name"]
    if kind in CLUSTER_SCOPED or not resources[0]["namespaced"]:
        return f"{base}/{plural}/{name}"
    return f"{base}/namespaces/{namespace}/{plural}/{name}"


def manifest(helm) -> list[dict]:
    out = helm("get", "manifest", RELEASE, "-n", NAMESPACE).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def secret_data(cluster, name: str) -> dict[str, str]:
    status, body = cluster.request(f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}")
    assert status == 200, body[:300]
    return {k: base64.b64decode(v).decode() for k, v in json.loads(body)["data"].items()}


def test_install_upgrade_uninstall_against_the_api_server(kube_cluster, helm, chart):
    proc = helm("install", RELEASE, str(chart), "-n", NAMESPACE, "--create-namespace", "-f", str(VALUES), "--timeout", "120s")
    assert "STATUS: deployed" in proc.stdout
    objs = manifest(helm)
    hooks = [d for d in yaml.safe_load_all(helm("get", "hooks", RELEASE, "-n", NAMESPACE).stdout) if d]
    assert hooks == []  # prePuller.hook is off here (see helm-values.yaml)

    # every object helm rendered exists as the API server stored it
    accepted = []
    for obj in objs:
        path = api_path(kube_cluster, obj, NAMESPACE)
        status, body = kube_cluster.request(path)
        assert status == 200, f"{obj['kind']}/{obj['metadata']['name']}: HTTP {status} {body[:200]!r}"
        stored = json.loads(body)
        assert stored["metadata"]["labels"].get("app.kubernetes.io/managed-by") == "Helm" or obj["kind"] in CLUSTER_SCOPED
        accepted.append(f"{obj['apiVersion']} {obj['kind']}/{obj['metadata']['name']}")
    kinds = {o["kind"] for o in objs}
    expected = {
        "ServiceAccount", "Secret", "ConfigMap", "PersistentVolumeClaim", "Service", "Deployment", "DaemonSet",
        "Role", "RoleBinding", "NetworkPolicy", "PodDisruptionBudget", "Ingress", "PriorityClass",
    }
    assert expected <= kinds, expected - kinds
    # the chart picks the PDB API this server serves (policy/v1 only exists from 1.21)
    assert {o["apiVersion"] for o in objs if o["kind"] == "PodDisruptionBudget"} == {"policy/v1beta1"}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "helm_accepted_objects.txt").write_text("\n".join(sorted(accepted)) + "\n")
    print(f"\nAPI server (v1.20.2) accepted {len(accepted)} chart objects:\n  " + "\n  ".join(sorted(accepted)))

    # upgrade (with a change) keeps the generated secrets
    hub_secret = next(o["metadata"]["name"] for o in objs if o["kind"] == "Secret" and o["metadata"]["name"].endswith("-hub"))
    before = secret_data(kube_cluster, hub_secret)
    for key in GENERATED_KEYS:
        assert len(before[key]) >= 32, key
    helm("upgrade", RELEASE, str(chart), "-n", NAMESPACE, "-f", str(VALUES), "--set", "hub.concurrentSpawnLimit=21", "--timeout", "120s")
    after = secret_data(kube_cluster, hub_secret)
    for key in GENERATED_KEYS:
        assert after[key] == before[key], f"{key} changed on upgrade"
    assert "concurrentSpawnLimit: 21" in after["values.yaml"]
    assert json.loads(helm("status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)["version"] == 2

    # uninstall removes everything it created; objects annotated helm.sh/resource-policy: keep stay
    objs = manifest(helm)
    kept = [o for o in objs if (o["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") == "keep"]
    proc = helm("uninstall", RELEASE, "-n", NAMESPACE, "--timeout", "120s")
    left, gone = [], []
    for obj in objs:
        status, _ = kube_cluster.request(api_path(kube_cluster, obj, NAMESPACE))
        (left if status == 200 else gone).append(f"{obj['kind']}/{obj['metadata']['name']}")
        if obj not in kept:
            assert status == 404, f"{obj['kind']}/{obj['metadata']['name']} left after uninstall"
    assert [f"{o['kind']}/{o['metadata']['name']}" for o in kept] == left
    assert {o["kind"] for o in kept} == {"PersistentVolumeClaim"}  # the hub, runs and viewer databases
    print(f"uninstall removed {len(gone)} objects; kept (helm.sh/resource-policy: keep): {left}")
