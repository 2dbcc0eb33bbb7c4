"""Session fixtures for tests that need a Kubernetes API (mark them ``k8s``).

- ``kube_cluster``: a started :class:`tests.kube.cluster.LocalCluster`
  (``.url``, ``.kubeconfig``, ``.admin_token_file``, ``.ca_file``). Builds kube-apiserver
  on first use (~5 min, cached under ~/.cache/labdeck/kube); skips with the build script's
  reason when it cannot be built here. ``LABDECK_KUBE_REQUIRE=1`` turns that skip into a
  failure (CI on machines that must run these).
- ``kube_namespace``: a namespace created for the session (``labdeck-test``, or
  ``$LABDECK_KUBE_NAMESPACE``), as a string.
- ``kubelet``: a :class:`tests.kube.kubelet.ProcessKubelet` running in a thread that runs
  the pods of ``kube_namespace`` as local processes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from tests.helpers.required import missing

from tests.kube.cluster import ClusterError, LocalCluster, ensure_apiserver
from tests.kube.kubelet import KubeletThread, ProcessKubelet


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[LocalCluster]:
    """etcd + kube-apiserver on 127.0.0.1 for the whole session."""
    try:
        ensure_apiserver()
    except ClusterError as e:
        missing("kube-apiserver", e)
    with LocalCluster() as cluster:
        yield cluster


async def _create_namespace(kubeconfig: str, name: str) -> None:
    from kubernetes_asyncio import client, config
    from kubernetes_asyncio.client.exceptions import ApiException

    async with await config.new_client_from_config(config_file=kubeconfig) as api:
        try:
            await client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
        except ApiException as e:
            if e.status != 409:
                raise


@pytest.fixture(scope="session")
def kube_namespace(kube_cluster: LocalCluster) -> str:
    """A namespace for the session's pods (the hub's namespace in spawner tests)."""
    name = os.environ.get("LABDECK_KUBE_NAMESPACE", "labdeck-test")
    asyncio.run(_create_namespace(str(kube_cluster.kubeconfig), name))
    return name


@pytest.fixture(scope="session")
def kubelet(
    kube_cluster: LocalCluster, kube_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessKubelet]:
    """The process kubelet for ``kube_namespace``; stops (killing its pods) at session end.

    Its ``default_commands`` dict may be extended by tests before creating pods whose spec
    has no ``command`` (image → argv). Every image's ``PATH`` leads into the harness image
    (:mod:`tests.kube.image`), as the chart harness's do, never into the checkout.
    """
    from tests.kube.image import ensure_image

    workdir = tmp_path_factory.mktemp("kubelet")
    image = ensure_image()
    thread = KubeletThread(
        ProcessKubelet(str(kube_cluster.kubeconfig), kube_namespace, workdir=workdir, image_env={"*": image.env(image.bin)})
    )
    kubelet = thread.start()
    yield kubelet
    thread.stop()
