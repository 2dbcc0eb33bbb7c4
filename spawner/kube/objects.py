"""Pure builders of the Kubernetes objects labdeck adds to a KubeSpawner user pod.

Plain values in, ``kubernetes_asyncio`` models out; no API calls and no state
(like kubespawner's ``objects.py``). ``LabdeckKubeSpawner`` is the one place that
links them to the cluster.
"""

from __future__ import annotations

import copy

from kubernetes_asyncio.client import models as k8s

from labdeck.hub import contract

#: env vars KubeSpawner would put in the pod spec in clear text; moved into the Secret
SECRET_ENV = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
#: the Secret key of the server's token; mounted as the token file the in-server client reads
TOKEN_KEY = contract.TOKEN_FILE
#: secret files are root-owned with the pod's fsGroup; 0440 lets the non-root user read them
FILES_MODE = 0o440

#: profile keys that map directly onto KubeSpawner traits
_PROFILE_TRAITS = {"image": "image", "node_selector": "node_selector"}
_SIZE_TRAITS = ("cpu_limit", "mem_limit", "cpu_guarantee", "mem_guarantee")


def secret_name(pod_name: str) -> str:
    """The per-server Secret holding labdeck's files and the server's API token."""
    return f"{pod_name}-labdeck"[:253]


def make_secret(name: str, namespace: str, files: dict[str, str], api_token: str, labels: dict[str, str]) -> k8s.V1Secret:
    """The per-server Secret.

    Parameters
    ----------
    name, namespace : str
        Object name (from :func:`secret_name`) and namespace.
    files : dict
        File name → content, mounted read-only in the pod.
    api_token : str
        The server's JupyterHub API token; referenced from the pod's env, so it
        never appears in the pod spec.
    labels : dict
        Labels (the pod's common labels, so the Secret is found with the pod).
    """
    return k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=dict(labels)),
        type="Opaque",
        string_data={TOKEN_KEY: api_token, **files},
    )


def secret_owner_patch(pod_name: str, pod_uid: str) -> k8s.V1Secret:
    """A patch making the per-server Secret owned by its pod: the API server's garbage collector
    deletes the Secret with the pod, also when the hub never runs ``stop()`` (a hub lost, a pod
    deleted by hand). The reference is kubespawner's own (:func:`kubespawner.objects.make_owner_reference`)."""
    from kubespawner.objects import make_owner_reference

    return k8s.V1Secret(metadata=k8s.V1ObjectMeta(owner_references=[make_owner_reference(pod_name, pod_uid)]))


def with_labdeck_files(pod: k8s.V1Pod, secret: str, mount_path: str, files: list[str]) -> k8s.V1Pod:
    """A copy of ``pod`` that mounts ``files`` from ``secret`` read-only and reads its token from it."""
    pod = copy.deepcopy(pod)
    spec = pod.spec
    spec.volumes = list(spec.volumes or []) + [
        k8s.V1Volume(
            name="labdeck-files",
            secret=k8s.V1SecretVolumeSource(
                secret_name=secret,
                default_mode=FILES_MODE,
                items=[k8s.V1KeyToPath(key=f, path=f) for f in sorted(files)],
            ),
        )
    ]
    container = spec.containers[0]
    container.volume_mounts = list(container.volume_mounts or []) + [
        k8s.V1VolumeMount(name="labdeck-files", mount_path=mount_path, read_only=True)
    ]
    env = []
    for var in container.env or []:
        if var.name in SECRET_ENV:
            env.append(
                k8s.V1EnvVar(
                    name=var.name,
                    value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=TOKEN_KEY)),
                )
            )
        else:
            env.append(var)
    container.env = env
    return pod


def profile_overrides(profile: dict, size: dict | None) -> dict:
    """KubeSpawner trait values for a validated profile and size (``kubespawner_override`` last)."""
    out = {}
    for key, trait in _PROFILE_TRAITS.items():
        if profile.get(key):
            out[trait] = profile[key]
    if size:
        for key in _SIZE_TRAITS:
            if size.get(key) is not None:
                out[key] = size[key]
    for key in _SIZE_TRAITS:
        if profile.get(key) is not None:
            out[key] = profile[key]
    out.update(profile.get("kubespawner_override") or {})
    return out


def container_security_context() -> dict:
    """Non-root, no privilege escalation, no capabilities."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def ephemeral_home(volumes: list[dict]) -> list[dict]:
    """``volumes`` with every PersistentVolumeClaim replaced by an ``emptyDir`` of the same name.

    A run's server reads its input from and writes its output to S3; giving it
    the person's home claim would need a PVC per run (claims are per server)
    and leave one behind for every run.
    """
    out = []
    for volume in volumes:
        if "persistentVolumeClaim" in volume:
            volume = {"name": volume["name"], "emptyDir": {}}
        out.append(dict(volume))
    return out
