"""The hub part both vanilla benchmarks share: addresses, database, proxy, login - JupyterHub's defaults otherwise.

Loaded by ``bench/vanilla_config.py`` (local processes) and ``bench/vanilla_kube_config.py``
(KubeSpawner) with ``load_subconfig``; everything it varies comes from the environment:

- ``BENCH_VANILLA_DIR``: a temporary directory (sqlite, cookie secret);
- ``BENCH_VANILLA_PORT`` / ``BENCH_VANILLA_HUB_PORT`` / ``BENCH_VANILLA_API_PORT``: 127.0.0.1 ports;
- ``BENCH_VANILLA_PASSWORD``: the DummyAuthenticator password;
- ``BENCH_CHP``: the same configurable-http-proxy labdeck uses (node_modules/.bin).
"""

import os

d = os.environ["BENCH_VANILLA_DIR"]
c = get_config()  # noqa: F821 (provided by JupyterHub)

c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ['BENCH_VANILLA_PORT']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ['BENCH_VANILLA_HUB_PORT']}"
c.JupyterHub.db_url = f"sqlite:///{d}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{d}/cookie_secret"
c.JupyterHub.pid_file = f"{d}/hub.pid"
c.JupyterHub.default_url = "/hub/home"

c.ConfigurableHTTPProxy.command = [os.environ["BENCH_CHP"]]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['BENCH_VANILLA_API_PORT']}"

c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ["BENCH_VANILLA_PASSWORD"]
