"""Pure pod-spec → process translation used by the process kubelet (no cluster needed)."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from tests.kube import podspec

POD = {
    "metadata": {"name": "p1", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
    "spec": {"nodeName": "n1"},
    "status": {"podIP": "127.0.1.9"},
}
DATA = {
    ("Secret", "s"): podspec.decode_data(
        {"data": {"k": base64.b64encode(b"v").decode()}, "stringData": {"t": "w"}}, "Secret"),
    ("ConfigMap", "c"): podspec.decode_data({"data": {"x": "1"}}, "ConfigMap"),
}


def lookup(kind: str, name: str):
    return DATA.get((kind, name))


def test_expand_vars_like_kubernetes() -> None:
    env = {"A": "1"}
    assert podspec.expand_vars("$(A)-$(B)-$$(A)", env) == "1-$(B)-$(A)"


def test_env_order_and_sources() -> None:
    container = {
        "envFrom": [{"secretRef": {"name": "s"}, "prefix": "S_"}, {"configMapRef": {"name": "c"}}],
        "env": [
            {"name": "x", "value": "override"},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "URL", "value": "http://$(IP):8888/"},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k",
                                                           "optional": True}}},
        ],
    }
    env = podspec.build_env(POD, container, lookup, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "S_k": "v", "S_t": "w", "x": "override", "IP": "127.0.1.9",
                   "APP": "web", "K": "v", "URL": "http://127.0.1.9:8888/"}


def test_missing_secret_is_an_error() -> None:
    container = {"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "z"}}}]}
    with pytest.raises(podspec.PodSpecError, match="not found"):
        podspec.build_env(POD, container, lookup, {})


def test_argv_from_image_map_and_wildcard_rewrite() -> None:
    container = {"image": "jupyter/base:1.0", "args": ["--ip=0.0.0.0", "$(P)"]}
    argv = podspec.build_argv(container, {"P": "8888"}, {"jupyter/base": ["start"]})
    assert argv == ["start", "--ip=0.0.0.0", "8888"]
    assert podspec.rewrite_wildcard(argv, "127.0.1.3")[1] == "--ip=127.0.1.3"
    with pytest.raises(podspec.PodSpecError, match="default_commands"):
        podspec.build_argv({"image": "other"}, {}, {})


def test_volumes_items_and_modes(tmp_path: Path) -> None:
    pod = dict(POD, spec={"volumes": [
        {"name": "sec", "secret": {"secretName": "s"}},
        {"name": "cm", "configMap": {"name": "c", "items": [{"key": "x", "path": "d/x.conf",
                                                             "mode": 0o640}]}},
        {"name": "home", "persistentVolumeClaim": {"claimName": "h"}},
        {"name": "tmp", "emptyDir": {}},
    ]})
    plan = podspec.materialize_volumes(pod, tmp_path / "pod", lookup,
                                       lambda claim: tmp_path / "pvc" / claim)
    sec = plan.paths["sec"]
    assert (sec / "k").read_bytes() == b"v"
    assert stat.S_IMODE((sec / "k").stat().st_mode) == podspec.SECRET_DEFAULT_MODE
    assert stat.S_IMODE((plan.paths["cm"] / "d/x.conf").stat().st_mode) == 0o640
    assert plan.paths["home"] == tmp_path / "pvc" / "h" and plan.paths["home"].is_dir()
    mounts = podspec.resolve_mounts(
        {"volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"},
                          {"name": "sec", "mountPath": "/etc/s", "readOnly": True}]}, plan)
    script = podspec.mount_script(mounts, "/home/jovyan")
    assert "mount --bind" in script and "remount,bind,ro /etc/s" in script
    assert script.rstrip().endswith('exec "$@"')
    assert podspec.rewrite_paths({"HOME": "/home/jovyan"}, mounts) == {"HOME": str(plan.paths["home"])}


@pytest.mark.parametrize(
    "pod_sc, container_sc, expect",
    [
        ({}, {}, []),
        ({"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 100}, {},
         ["setpriv", "--reuid=1000", "--regid=1000", "--groups=100", "--"]),
        ({"runAsUser": 1000, "fsGroup": 100, "supplementalGroups": [5, 100]}, {"runAsUser": 65534, "runAsGroup": 65534},
         ["setpriv", "--reuid=65534", "--regid=65534", "--groups=100,5", "--"]),
        ({"runAsUser": 0}, {}, ["setpriv", "--reuid=0", "--regid=0", "--clear-groups", "--"]),
        ({"fsGroup": 100}, {}, []),
    ],
    ids=["none", "pod", "container-over-pod", "root-explicit", "group-only"],
)
def test_run_as_follows_security_context(pod_sc, container_sc, expect) -> None:
    pod = {"spec": {"securityContext": pod_sc}}
    assert podspec.run_as(pod, {"securityContext": container_sc}) == expect


@pytest.mark.parametrize("bad", ["1000", -1, True, 1.5])
def test_run_as_refuses_what_is_not_a_uid(bad) -> None:
    with pytest.raises(podspec.PodSpecError, match="unsupported uid/gid"):
        podspec.run_as({"spec": {"securityContext": {"runAsUser": bad}}}, {})


def test_empty_dir_is_writable_by_any_uid(tmp_path: Path) -> None:
    pod = {"spec": {"volumes": [{"name": "tmp", "emptyDir": {}}]}}
    plan = podspec.materialize_volumes(pod, tmp_path, lookup, lambda c: tmp_path / c)
    assert stat.S_IMODE(plan.paths["tmp"].stat().st_mode) == 0o777
