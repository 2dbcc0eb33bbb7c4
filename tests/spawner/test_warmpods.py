"""Warm pods' pure builders (labdeck.spawner.kube.warmpods), compared as whole dicts like kubespawner's test_objects."""

from __future__ import annotations

import pytest

from labdeck.spawner.kube import warmpods

RECIPE = warmpods.Recipe(image="ghcr.io/labdeck/singleuser:1.0", cpu_limit=1.0, mem_limit=2 * 2**30, mem_guarantee=2**30)
LABELS = {"app.kubernetes.io/name": "labdeck", "app.kubernetes.io/instance": "rel", "app.kubernetes.io/managed-by": "kubespawner"}


def test_pool_pod_has_nothing_personal_and_only_setuid_setgid():
    pod = warmpods.make_pool_pod(
        "rel-singleuser-warm-0a1b2c3d", RECIPE, labels=LABELS, homes_claim="rel-homes", env={"LANG": "C.UTF-8"},
        service_account="rel-singleuser", priority_class="rel-user-priority", pull_secrets=["regcred"],
    )  # fmt: skip
    assert pod == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "rel-singleuser-warm-0a1b2c3d",
            "labels": {**LABELS, "app.kubernetes.io/component": "singleuser-warm", "labdeck.dev/warm-pool": RECIPE.id, "labdeck.dev/warm": "ready"},
        },
        "spec": {
            "containers": [{
                "name": "notebook",
                "image": "ghcr.io/labdeck/singleuser:1.0",
                "imagePullPolicy": "IfNotPresent",
                "command": ["python", "-m", "labdeck.spawner.kube.podagent", "--bind=0.0.0.0", "--claim-port=8889", "--homes=/home",
                            "--files-dir=/etc/labdeck", "--key-file=/var/run/labdeck-warm/claim-key", "--min-uid=1000"],
                "env": [{"name": "LANG", "value": "C.UTF-8"}],
                "ports": [{"name": "notebook-port", "containerPort": 8888}, {"name": "warm-claim", "containerPort": 8889}],
                "resources": {"limits": {"cpu": "1.0", "memory": str(2 * 2**30)}, "requests": {"memory": str(2**30)}},
                "securityContext": {
                    "runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"], "add": ["SETUID", "SETGID"]}, "seccompProfile": {"type": "RuntimeDefault"},
                },
                "volumeMounts": [
                    {"name": "homes", "mountPath": "/home"},
                    {"name": "labdeck-files", "mountPath": "/etc/labdeck"},
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "warm-key", "mountPath": "/var/run/labdeck-warm", "readOnly": True},
                ],
                "workingDir": "/",
            }],
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {"runAsNonRoot": False},
            "volumes": [
                {"name": "homes", "persistentVolumeClaim": {"claimName": "rel-homes"}},
                {"name": "labdeck-files", "emptyDir": {"medium": "Memory"}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "warm-key", "secret": {"secretName": "rel-singleuser-warm-0a1b2c3d-key", "defaultMode": 0o400}},
            ],
            "serviceAccountName": "rel-singleuser",
            "priorityClassName": "rel-user-priority",
            "imagePullSecrets": [{"name": "regcred"}],
        },
    }  # fmt: skip
    # no fsGroup or supplemental groups anywhere: they would open every home on the shared volume to a group
    assert "fsGroup" not in str(pod) and "supplementalGroups" not in str(pod)


def test_recipe_id_names_image_and_resources_only():
    same = warmpods.Recipe(image=RECIPE.image, cpu_limit=1.0, mem_limit=2 * 2**30, mem_guarantee=2**30)
    assert same.id == RECIPE.id and len(RECIPE.id) == 16
    assert warmpods.Recipe(image=RECIPE.image, cpu_limit=2.0, mem_limit=2 * 2**30, mem_guarantee=2**30).id != RECIPE.id
    assert warmpods.Recipe(image="other:1").id != RECIPE.id


def test_key_secret_and_owner_patch():
    assert warmpods.make_key_secret("p-1", "k" * 43, LABELS) == {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "p-1-key", "labels": {**LABELS, "app.kubernetes.io/component": "singleuser-warm"}},
        "stringData": {"claim-key": "k" * 43},
    }  # fmt: skip
    assert warmpods.owner_patch("p-1", "uid-1") == {
        "metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p-1", "uid": "uid-1", "blockOwnerDeletion": False}]}
    }


def test_claim_patch_tests_the_pod_is_free_first():
    person = {**LABELS, "component": "singleuser-server", "hub.jupyter.org/username": "alice"}
    assert warmpods.claim_patch(person, {"hub.jupyter.org/username": "alice"}, "abc") == [
        {"op": "test", "path": "/metadata/labels/labdeck.dev~1warm", "value": "ready"},
        {"op": "replace", "path": "/metadata/labels", "value": {**person, "labdeck.dev/warm-pool": "abc", "labdeck.dev/warm": "claimed"}},
        {"op": "add", "path": "/metadata/annotations", "value": {"hub.jupyter.org/username": "alice"}},
        {"op": "add", "path": "/metadata/ownerReferences", "value": []},
    ]


def test_free_pods_are_owned_by_the_release():
    pod = warmpods.make_pool_pod("p", RECIPE, labels={}, homes_claim="h")
    owned = warmpods.owned_by_secret(pod, "rel-hub", "u-1")
    assert owned["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Secret", "name": "rel-hub", "uid": "u-1", "blockOwnerDeletion": False}]
    assert "ownerReferences" not in pod["metadata"] and owned["spec"] == pod["spec"]


def test_home_names_are_stable_private_and_distinct():
    a = warmpods.home_name("alice", b"k1")
    assert a == warmpods.home_name("alice", b"k1") and warmpods.HOME_NAME.match(a) and a.startswith("alice-")
    assert a != warmpods.home_name("alice", b"k2")  # not computable without the key
    # names that collide after slugging get different homes
    assert warmpods.home_name("da.ve", b"k1") != warmpods.home_name("da-ve", b"k1")
    for hostile in ("../root", "Zoë/..", "a" * 200, ""):
        assert warmpods.HOME_NAME.match(warmpods.home_name(hostile, b"k1")), hostile
    with pytest.raises(ValueError):
        warmpods.home_name("alice", b"")


def test_person_uid():
    assert warmpods.person_uid(7, 100000) == 100007
    for bad in ((-1, 100000), (1, 0), (1, 999)):
        with pytest.raises(ValueError):
            warmpods.person_uid(*bad)


def test_claim_message_is_checked_when_built():
    msg = warmpods.claim_message(argv=["labdeck-singleuser"], env={"A": "b"}, home=f"/home/{warmpods.home_name('al', b'k')}", uid=100001, gid=100001, files={})
    assert msg["umask"] == 0o077 and set(msg) == {"argv", "env", "home", "uid", "gid", "files", "umask"}
    with pytest.raises(warmpods.ClaimError):
        warmpods.claim_message(argv=["x"], env={}, home="/home/al", uid=100001, gid=100001, files={})
