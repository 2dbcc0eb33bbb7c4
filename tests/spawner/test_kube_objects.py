"""Pod and Secret specs for Kubernetes, built without a cluster."""

import re

import pytest
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client import models as k8s
from traitlets.config import Config

from labdeck.spawner.kube import objects

# sanitize_for_serialization needs no connection: skip __init__ (which wants an event loop)
serialize = object.__new__(ApiClient).sanitize_for_serialization


def test_secret_holds_files_and_token():
    s = objects.make_secret("jupyter-alice-labdeck", "ns", {"aws_config": "[default]\n"}, "tok", {"app": "jupyterhub"})
    assert serialize(s) == {
        "metadata": {"name": "jupyter-alice-labdeck", "namespace": "ns", "labels": {"app": "jupyterhub"}},
        "type": "Opaque",
        "stringData": {"jupyterhub-api-token": "tok", "aws_config": "[default]\n"},
    }


def test_pod_mounts_files_read_only_and_takes_token_from_secret():
    pod = k8s.V1Pod(
        spec=k8s.V1PodSpec(
            containers=[
                k8s.V1Container(
                    name="notebook",
                    env=[k8s.V1EnvVar(name="JUPYTERHUB_API_TOKEN", value="s3cr3t-v4lue"), k8s.V1EnvVar(name="JPY_API_TOKEN", value="s3cr3t-v4lue"), k8s.V1EnvVar(name="X", value="1")],
                )
            ]
        )
    )
    out = serialize(objects.with_labdeck_files(pod, "s", "/etc/labdeck", ["gcp_credentials.json", "aws_config"]))
    c = out["spec"]["containers"][0]
    assert c["volumeMounts"] == [{"name": "labdeck-files", "mountPath": "/etc/labdeck", "readOnly": True}]
    assert out["spec"]["volumes"] == [
        {
            "name": "labdeck-files",
            "secret": {
                "secretName": "s",
                "defaultMode": 0o440,
                "items": [{"key": "aws_config", "path": "aws_config"}, {"key": "gcp_credentials.json", "path": "gcp_credentials.json"}],
            },
        }
    ]
    assert c["env"] == [
        {"name": "JUPYTERHUB_API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "jupyterhub-api-token"}}},
        {"name": "JPY_API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "jupyterhub-api-token"}}},
        {"name": "X", "value": "1"},
    ]
    assert "s3cr3t-v4lue" not in str(out)
    # the input pod is not mutated
    assert pod.spec.containers[0].env[0].value == "s3cr3t-v4lue"


def test_profile_overrides():
    profile = {"slug": "gpu", "image": "img:1", "node_selector": {"gpu": "yes"}, "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}}}
    size = {"slug": "small", "cpu_limit": 1, "mem_limit": "2G"}
    assert objects.profile_overrides(profile, size) == {
        "image": "img:1",
        "node_selector": {"gpu": "yes"},
        "cpu_limit": 1,
        "mem_limit": "2G",
        "extra_resource_limits": {"nvidia.com/gpu": "1"},
    }


class FakeGroup:
    def __init__(self, name):
        self.name = name


class FakeUser:
    """Just enough of a hub User for KubeSpawner to build names and env."""

    def __init__(self, name, groups=()):
        self.name = name
        self.id = 1
        self.url = f"/user/{name}/"
        self.groups = [FakeGroup(g) for g in groups]
        self.settings = {}
        self.server = None
        self.spawners = {}


class FakeHub:
    public_host = ""
    url = "http://hub:8081/hub/"
    base_url = "/"
    api_url = "http://hub:8081/hub/api"


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: unused}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


@pytest.fixture
def make_spawner(tmp_path, monkeypatch):
    """A LabdeckKubeSpawner with a fake user and hub; its kube client points nowhere and is never called."""
    from kubespawner import KubeSpawner

    from labdeck.spawner.kube.spawner import LabdeckKubeSpawner

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    import kubernetes_asyncio.config.kube_config as kc

    # read at import time by kubernetes_asyncio, so patch the module constant too
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(kc, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    def make(name="alice", groups=(), **cfg):
        c = Config()
        for k, v in cfg.items():
            setattr(c.LabdeckKubeSpawner, k, v)
        c.LabdeckKubeSpawner.broker_url = "http://broker:8090/services/broker/"
        c.LabdeckKubeSpawner.s3_bucket = "data"
        c.LabdeckKubeSpawner.namespace = "labdeck"
        sp = LabdeckKubeSpawner(config=c, user=FakeUser(name, groups), hub=FakeHub())
        sp.api_token = "secret-token-value"
        assert isinstance(sp, KubeSpawner)
        return sp

    return make


async def test_full_pod_manifest_for_a_profile(make_spawner):
    sp = make_spawner(
        profiles=[{"slug": "lab", "default": True, "image": "labdeck/singleuser:1"}],
        sizes=[{"slug": "m", "cpu_limit": 2, "mem_limit": "8G", "default": True}],
    )
    sp.labdeck_choose({"profile": "lab", "size": "m"})
    sp._labdeck_files = sp.labdeck_files()
    pod = serialize(await sp.get_pod_manifest())
    c = pod["spec"]["containers"][0]
    assert c["image"] == "labdeck/singleuser:1"
    assert c["resources"]["limits"] == {"cpu": 2.0, "memory": 8 * 1024**3}
    assert c["args"][0] == "labdeck-singleuser"
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["automountServiceAccountToken"] is False
    env = {e["name"]: e for e in c["env"]}
    assert env["LABDECK_S3_HOME"]["value"] == "s3://data/home/alice/"
    assert env["AWS_CONFIG_FILE"]["value"] == "/etc/labdeck/aws_config"
    assert "valueFrom" in env["JUPYTERHUB_API_TOKEN"]
    assert "secret-token-value" not in str(pod)
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/etc/labdeck"]["readOnly"] is True


@pytest.mark.parametrize("name", ["alice", "a.b", "a_b", "a-b", "alice@example.com", "ünïcødé", "x" * 64, "../bob"])
async def test_object_names_are_valid_and_distinct(make_spawner, name):
    sp = make_spawner(name)
    names = {sp.pod_name, sp.labdeck_secret_name}
    for n in names:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) and len(n) <= 63, n


async def test_distinct_users_get_distinct_objects(make_spawner):
    names = ["alice", "a.b", "a_b", "a-b", "alice@example.com", "Alice"]
    pods = {make_spawner(n).pod_name for n in names}
    assert len(pods) == len(names)


async def test_forged_profile_is_refused_on_kube_too(make_spawner):
    from tornado import web

    sp = make_spawner(profiles=[{"slug": "lab", "default": True}, {"slug": "gpu", "groups": ["ml"], "image": "gpu:1"}])
    with pytest.raises(web.HTTPError) as e:
        sp.labdeck_choose({"profile": "gpu"})
    assert e.value.status_code == 403
    assert sp.image != "gpu:1"


async def test_kubespawner_profile_list_does_not_reject_labdeck_profiles(make_spawner):
    """KubeSpawner.load_user_options (called in _start) checked user_options["profile"] against
    its own empty profile_list: every spawn naming a labdeck profile failed ("No such profile")."""
    sp = make_spawner("carol", groups=("ml",), profiles=[{"slug": "lab", "default": True}, {"slug": "gpu", "groups": ["ml"], "image": "gpu:1"}])
    sp.user_options = {"profile": "gpu"}
    sp.labdeck_choose(sp.user_options)
    await sp.load_user_options()
    assert sp.image == "gpu:1"


async def test_admin_onboarding_dir_reaches_the_pod(make_spawner, tmp_path):
    """singleuser.onboardingDir (LabdeckSpawnerMixin.onboarding_dirs) reaches the pod's environment, and
    the pod's own ``labdeck-onboard`` copies labdeck's welcome files *and* the admin's into the home."""
    import subprocess
    import sys

    from labdeck.spawner.onboarding import default_onboarding_dir

    admin = tmp_path / "org-onboarding"
    (admin / "guides").mkdir(parents=True)
    (admin / "guides" / "Data.ipynb").write_text("{}")
    sp = make_spawner(onboarding_dirs=[default_onboarding_dir(), str(admin)])
    sp._labdeck_files = sp.labdeck_files()
    pod = serialize(await sp.get_pod_manifest())
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    home = tmp_path / "home"
    home.mkdir()
    # what the pod runs first (labdeck-singleuser calls the same main before exec'ing the server)
    proc = subprocess.run(
        [sys.executable, "-m", "labdeck.spawner.onboarding"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "LABDECK_ONBOARDING_DIRS": env["LABDECK_ONBOARDING_DIRS"]},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (home / "Welcome.ipynb").is_file()
    assert (home / "guides" / "Data.ipynb").read_text() == "{}"
    assert str(admin) in env["LABDECK_ONBOARDING_DIRS"] and default_onboarding_dir() not in env["LABDECK_ONBOARDING_DIRS"]


def test_a_runs_server_gets_an_ephemeral_home_and_no_claim():
    from labdeck.hub import contract
    from labdeck.runs.records import Run

    home = {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
    other = {"name": "data", "configMap": {"name": "x"}}
    assert objects.ephemeral_home([home, other]) == [{"name": "home", "emptyDir": {}}, other]
    assert home["persistentVolumeClaim"] == {"claimName": "{pvc_name}"}  # the input is not modified
    run = Run.__new__(Run)
    run.id = "0123456789ab"
    assert run.server_name == "run-0123456789ab" and contract.is_run_server(run.server_name)
    for name in ("", "run-", "run-XYZ", "run-0123456789abc", "laptop", "myrun-0123456789ab"):
        assert not contract.is_run_server(name), name



def test_secret_owner_patch_names_the_pod():
    from kubernetes_asyncio.client import ApiClient

    patch = objects.secret_owner_patch("jupyter-alice", "0f1e2d3c-0000-4000-8000-000000000001")

    async def serialize():
        async with ApiClient() as api:
            return api.sanitize_for_serialization(patch)

    import asyncio

    assert asyncio.run(serialize()) == {"metadata": {"ownerReferences": [{
        "apiVersion": "v1", "kind": "Pod", "name": "jupyter-alice", "uid": "0f1e2d3c-0000-4000-8000-000000000001",
        "blockOwnerDeletion": True, "controller": False}]}}
