"""Vanilla JupyterHub + KubeSpawner for ``bench/kube.py``: stock defaults, z2jh's storage default, nothing tuned.

Started by ``bench/kube.py`` as ``python -m jupyterhub -f bench/vanilla_kube_config.py`` from the
clean ``vanilla-kube-venv`` (``bench/vanilla_venv.py``: JupyterHub, JupyterLab and
jupyterhub-kubespawner from PyPI and nothing else), as a local process talking to the kube
harness's API server (``KUBECONFIG``), with everything it varies in the environment:

- ``BENCH_VANILLA_DIR``, ``BENCH_VANILLA_PORT`` / ``_HUB_PORT`` / ``_API_PORT``, ``BENCH_VANILLA_PASSWORD``,
  ``BENCH_CHP``: the shared hub part, ``bench/vanilla_hub_config.py``;
- ``BENCH_VANILLA_NAMESPACE``: the namespace of its user pods (its own process kubelet runs them);
- ``BENCH_VANILLA_IMAGE``: the user image (the kubelet maps it to this vanilla venv).

Only what it needs to run here, plus one choice to compare like with like: a home PVC per
user (``claim-{username}`` at ``/home/jovyan``), z2jh's default ``singleuser.storage.type:
dynamic``, as labdeck's chart has. Timeouts, limits and server arguments stay KubeSpawner's
and JupyterHub's defaults, except ``start_timeout = 300`` (z2jh's ``singleuser.startTimeout``).
"""

import os

# next to this file: JupyterHub loads `-f` with no search path, so a bare name would be looked up in the
# working directory and, not found there, silently ignored (traitlets treats a missing subconfig as empty)
load_subconfig("vanilla_hub_config.py", path=os.path.dirname(os.path.abspath(__file__)))  # noqa: F821 (provided by traitlets)
c = get_config()  # noqa: F821 (provided by JupyterHub)

c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.namespace = os.environ["BENCH_VANILLA_NAMESPACE"]
c.KubeSpawner.image = os.environ["BENCH_VANILLA_IMAGE"]
# the hub runs outside the cluster: pods reach it on loopback (they share this machine's network)
c.KubeSpawner.hub_connect_url = f"http://127.0.0.1:{os.environ['BENCH_VANILLA_HUB_PORT']}"
c.KubeSpawner.start_timeout = 300
c.KubeSpawner.default_url = "/lab"
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.pvc_name_template = "claim-{user_server}"
c.KubeSpawner.storage_capacity = "1Gi"
c.KubeSpawner.volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
c.KubeSpawner.volume_mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
