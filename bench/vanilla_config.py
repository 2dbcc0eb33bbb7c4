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

# next to this file: JupyterHub loads `-f` with no search path, so a bare name would be looked up in the
# working directory and, not found there, silently ignored (traitlets treats a missing subconfig as empty)
load_subconfig("vanilla_hub_config.py", path=os.path.dirname(os.path.abspath(__file__)))  # noqa: F821 (provided by traitlets)
d = os.environ["BENCH_VANILLA_DIR"]
c = get_config()  # noqa: F821 (provided by JupyterHub)

c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = f"{d}/homes/{{username}}"
c.Spawner.default_url = "/lab"
if hasattr(os, "geteuid") and os.geteuid() == 0:
    # jupyter-server refuses to run as root without it (labdeck's spawner adds the same)
    c.Spawner.args = ["--allow-root"]
