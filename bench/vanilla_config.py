"""Vanilla JupyterHub for the benchmarks: the stock defaults, only what it needs to run here.

Started by ``bench/common.py`` as ``python -m jupyterhub -f bench/vanilla_config.py``
with everything it varies in the environment (never on the command line):

- ``BENCH_VANILLA_DIR``: a temporary directory (sqlite, cookie secret, homes);
- ``BENCH_VANILLA_PORT`` / ``BENCH_VANILLA_HUB_PORT`` / ``BENCH_VANILLA_API_PORT``: 127.0.0.1 ports;
- ``BENCH_VANILLA_PASSWORD``: the DummyAuthenticator password;
- ``BENCH_CHP``: the same configurable-http-proxy labdeck uses (node_modules/.bin).

Deliberately *no* tuning: timeouts, spawn limits and server arguments stay at
JupyterHub 6.1.1's defaults, so the comparison shows what labdeck adds.
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

c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = f"{d}/homes/{{username}}"
c.Spawner.default_url = "/lab"
if hasattr(os, "geteuid") and os.geteuid() == 0:
    # jupyter-server refuses to run as root without it (labdeck's spawner adds the same)
    c.Spawner.args = ["--allow-root"]
