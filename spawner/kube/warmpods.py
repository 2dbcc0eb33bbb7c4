"""Pure builders of Kubernetes warm pods (``singleuser.warmPool``): the pod, its claim key, the claim.

A warm pod is a user pod started ahead of demand that belongs to nobody. Its
volumes are fixed at creation, so nothing in it may depend on the person:

- it runs :mod:`labdeck.spawner.kube.podagent` as uid 0 with **only** ``SETUID`` and
  ``SETGID`` (every other capability dropped, ``allowPrivilegeEscalation: false``
  = ``no_new_privs``, no ``fsGroup``, no supplemental groups), which imports the
  server once and waits for one claim on :data:`labdeck.hub.contract.WARM_CLAIM_PORT`;
- it mounts the **shared homes volume** (one ReadWriteMany claim) at
  :data:`~labdeck.hub.contract.KUBE_WARM_HOMES`, an in-memory ``emptyDir`` for
  labdeck's files, an ``emptyDir`` at ``/tmp`` and its own **claim key** (a
  Secret of its own, 0400, random per pod);
- its labels say only which pool it belongs to (:data:`LABEL_POOL`) and that it
  is free (:data:`LABEL_STATE` ``=ready``); no name, no token, no home.

A claim is two steps, both here as plain values: the pod's labels are swapped
to the person's with a JSON patch whose first operation *tests* that the pod is
still ``ready`` (:func:`claim_patch`: the API server applies it atomically, so
two hubs, or two spawns, can never both win one pod); then the hub sends the
pod's agent the person's identity (:func:`claim_message`: uid, gid, home, argv,
environment with the API token, labdeck's files) with that pod's key. The
agent drops to the person's uid and runs their server in its own process.

Every person has their own uid (:func:`person_uid`) and a home named by an HMAC
of their name (:func:`home_name`), so nobody can guess, list or take another's.
Like kubespawner's ``objects.py``: plain values in, plain dicts out, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from labdeck.hub import contract

#: pool membership (the recipe id) and state of a warm pod
LABEL_POOL = "labdeck.dev/warm-pool"
LABEL_STATE = "labdeck.dev/warm"
READY, CLAIMED = "ready", "claimed"
#: app.kubernetes.io/component of a free warm pod (a claimed one becomes singleuser-server)
COMPONENT = "singleuser-warm"
#: KubeSpawner.poll reads the status of the container with this name
CONTAINER = "notebook"
KEY_DIR = "/var/run/labdeck-warm"
KEY_ITEM = "claim-key"
KEY_FILE = f"{KEY_DIR}/{KEY_ITEM}"
#: where labdeck's files (AWS config, …) are written at claim, as in a cold pod
FILES_DIR = "/etc/labdeck"
#: the homes volume's root: others may create (after their uid drop) but not list; sticky
HOMES_MODE = 0o1733
#: the lowest uid a claim may give (never root, never a system account)
MIN_UID = 1000
#: what a home's name may look like (a slug, "-", 20 hex digits of HMAC)
HOME_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}-[0-9a-f]{20}$")
#: a file labdeck writes into FILES_DIR
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Recipe:
    """What a warm pod is fixed to at creation: image and resources (never a person)."""

    image: str
    pull_policy: str = "IfNotPresent"
    cpu_limit: float | None = None
    cpu_guarantee: float | None = None
    mem_limit: int | None = None
    mem_guarantee: int | None = None
    node_selector: tuple = ()

    @property
    def id(self) -> str:
        """A label value naming this recipe (same recipe, same pool)."""
        return hashlib.sha256(json.dumps(self.__dict__, sort_keys=True, default=list).encode()).hexdigest()[:16]


def person_uid(user_id: int, base: int) -> int:
    """The person's own uid: ``base`` + the hub's user id (stable for as long as the hub database)."""
    if not isinstance(user_id, int) or user_id < 0:
        raise ValueError(f"user id must be a non-negative integer, not {user_id!r}")
    if base < MIN_UID:
        raise ValueError(f"uid base must be at least {MIN_UID}, not {base}")
    return base + user_id


def home_name(username: str, key: bytes) -> str:
    """The person's home directory name: a readable slug plus an HMAC of the name under the hub's homes key.

    The homes root cannot be listed and the HMAC cannot be computed without the
    key, so nobody can create (squat) another person's home before them.
    """
    if not key:
        raise ValueError("the homes key is empty")
    slug = re.sub(r"[^a-z0-9]+", "-", username.lower()).strip("-")[:40].strip("-") or "x"
    digest = hmac.new(key, username.encode(), hashlib.sha256).hexdigest()[:20]
    return f"{slug}-{digest}"


def resources(recipe: Recipe) -> dict:
    """``resources`` of the container, as KubeSpawner's make_pod writes them."""
    out: dict = {}
    for section, cpu, mem in (("limits", recipe.cpu_limit, recipe.mem_limit), ("requests", recipe.cpu_guarantee, recipe.mem_guarantee)):
        values = {}
        if cpu is not None:
            values["cpu"] = str(cpu)
        if mem is not None:
            values["memory"] = str(mem)
        if values:
            out[section] = values
    return out


def key_secret_name(pod_name: str) -> str:
    return f"{pod_name}-key"


def security_context() -> dict:
    """The agent's container: root with SETUID/SETGID only, no escalation; after its drop nothing."""
    return {
        "runAsUser": 0,
        "runAsGroup": 0,
        "runAsNonRoot": False,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["SETUID", "SETGID"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def make_pool_pod(
    name: str,
    recipe: Recipe,
    *,
    labels: dict,
    homes_claim: str,
    env: dict | None = None,
    service_account: str = "",
    priority_class: str = "",
    pull_secrets: list | None = None,
    bind: str = "0.0.0.0",
    min_uid: int = MIN_UID,
) -> dict:
    """A warm pod of ``recipe``: nothing personal in it (see the module docstring).

    Parameters
    ----------
    name : str
        Pod name (the pool's prefix and a random suffix).
    recipe : Recipe
        Image and resources.
    labels : dict
        The release's common labels; pool and state labels are added.
    homes_claim : str
        The shared ReadWriteMany claim holding every person's home.
    env : dict
        Environment every server shares (the admin's ``singleuser.extraEnv``, the image's PATH).
    bind : str
        The address the agent and, after the claim, the server listen on (the pod's).
    """
    agent = [
        "python", "-m", "labdeck.spawner.kube.podagent",
        f"--bind={bind}", f"--claim-port={contract.WARM_CLAIM_PORT}",
        f"--homes={contract.KUBE_WARM_HOMES}", f"--files-dir={FILES_DIR}", f"--key-file={KEY_FILE}",
        f"--min-uid={min_uid}",
    ]  # fmt: skip
    container = {
        "name": CONTAINER,
        "image": recipe.image,
        "imagePullPolicy": recipe.pull_policy,
        "command": agent,
        "env": [{"name": k, "value": v} for k, v in sorted((env or {}).items())],
        "ports": [
            {"name": "notebook-port", "containerPort": contract.SINGLEUSER_PORT},
            {"name": "warm-claim", "containerPort": contract.WARM_CLAIM_PORT},
        ],
        "resources": resources(recipe),
        "securityContext": security_context(),
        "volumeMounts": [
            {"name": "homes", "mountPath": contract.KUBE_WARM_HOMES},
            {"name": "labdeck-files", "mountPath": FILES_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "warm-key", "mountPath": KEY_DIR, "readOnly": True},
        ],
        "workingDir": "/",
    }
    spec = {
        "containers": [container],
        # a claimed server that exits ends the pod; an agent is never restarted into a claimed pod
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # no fsGroup / supplementalGroups: a shared volume must keep each home's owner and mode
        "securityContext": {"runAsNonRoot": False},
        "volumes": [
            {"name": "homes", "persistentVolumeClaim": {"claimName": homes_claim}},
            {"name": "labdeck-files", "emptyDir": {"medium": "Memory"}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "warm-key", "secret": {"secretName": key_secret_name(name), "defaultMode": 0o400}},
        ],
    }
    if recipe.node_selector:
        spec["nodeSelector"] = dict(recipe.node_selector)
    if service_account:
        spec["serviceAccountName"] = service_account
    if priority_class:
        spec["priorityClassName"] = priority_class
    if pull_secrets:
        spec["imagePullSecrets"] = [dict(s) if isinstance(s, dict) else {"name": s} for s in pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {**labels, "app.kubernetes.io/component": COMPONENT, LABEL_POOL: recipe.id, LABEL_STATE: READY},
        },
        "spec": spec,
    }


def make_key_secret(pod_name: str, key: str, labels: dict) -> dict:
    """The pod's claim key (random, one per pod): only the hub and that pod's agent (uid 0, 0400) read it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": key_secret_name(pod_name), "labels": {**labels, "app.kubernetes.io/component": COMPONENT}},
        "stringData": {KEY_ITEM: key},
    }


def owner_patch(pod_name: str, pod_uid: str) -> dict:
    """Make the pod own its key Secret (deleted with the pod by the garbage collector)."""
    return {"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid, "blockOwnerDeletion": False}]}}


def owned_by_secret(pod: dict, name: str, uid: str) -> dict:
    """``pod`` owned by the release's hub Secret: free warm pods go with the release (``helm uninstall``)."""
    meta = {**pod["metadata"], "ownerReferences": [{"apiVersion": "v1", "kind": "Secret", "name": name, "uid": uid, "blockOwnerDeletion": False}]}
    return {**pod, "metadata": meta}


def claim_patch(labels: dict, annotations: dict, pool: str) -> list:
    """A JSON patch that claims a free warm pod for a person, or fails whole (422) if it is not free.

    ``labels``/``annotations`` are what KubeSpawner gives the person's pod
    (``_build_pod_labels``/``_build_common_annotations``); they replace the pod's.
    """
    return [
        {"op": "test", "path": "/metadata/labels/" + LABEL_STATE.replace("~", "~0").replace("/", "~1"), "value": READY},
        {"op": "replace", "path": "/metadata/labels", "value": {**labels, LABEL_POOL: pool, LABEL_STATE: CLAIMED}},
        {"op": "add", "path": "/metadata/annotations", "value": dict(annotations)},
        # a claimed pod is the person's server: it no longer goes with the release, as a cold pod does not
        {"op": "add", "path": "/metadata/ownerReferences", "value": []},
    ]


def claim_message(*, argv: list, env: dict, home: str, uid: int, gid: int, files: dict, umask: int = 0o077) -> dict:
    """What the hub sends a warm pod's agent at claim: everything personal, and only then."""
    msg = {"argv": list(argv), "env": dict(env), "home": home, "uid": uid, "gid": gid, "files": dict(files), "umask": umask}
    check_claim(msg, contract.KUBE_WARM_HOMES, MIN_UID)
    return msg


class ClaimError(ValueError):
    """A malformed or unacceptable claim (the agent refuses it and stays free)."""


def check_claim(msg, homes: str, min_uid: int) -> None:
    """Refuse anything but a well-formed claim: types, a uid that is never root or a system account, a home
    that is a direct child of ``homes`` with an HMAC name, plain file names."""
    if not isinstance(msg, dict) or set(msg) != {"argv", "env", "home", "uid", "gid", "files", "umask"}:
        raise ClaimError("a claim has exactly argv, env, home, uid, gid, files and umask")
    argv, env, files = msg["argv"], msg["env"], msg["files"]
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise ClaimError("argv must be a non-empty list of strings")
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ClaimError("env must map strings to strings")
    if any(not k or "=" in k or "\0" in k or "\0" in v for k, v in env.items()):
        raise ClaimError("env has an invalid name or value")
    for key in ("uid", "gid"):
        v = msg[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < min_uid or v > 2**31 - 2:
            raise ClaimError(f"{key} must be an integer of at least {min_uid}")
    umask = msg["umask"]
    if not isinstance(umask, int) or isinstance(umask, bool) or not 0o022 <= umask <= 0o777 or umask & 0o022 != 0o022:
        raise ClaimError("umask must keep group and others from writing")
    home = msg["home"]
    parent, _, leaf = (home or "").rpartition("/") if isinstance(home, str) else ("", "", "")
    if parent != homes.rstrip("/") or not HOME_NAME.match(leaf):
        raise ClaimError("home must be a directory of the homes volume with a home name")
    if not isinstance(files, dict) or not all(isinstance(k, str) and FILE_NAME.match(k) and isinstance(v, str) for k, v in files.items()):
        raise ClaimError("files must map plain file names to text")
