"""JupyterLab launcher tiles a local server can actually start.

jupyter-rsession-proxy registers its ``rstudio`` server with jupyter-server-proxy
whether or not RStudio Server is installed, and jupyter-server-proxy shows a
launcher tile for every registered server; on a machine without ``rserver``
(the embedded default) that tile opens an error page. :func:`install` makes
``labdeck-server`` (local servers only; the image ships rserver) turn off the
launcher entry of such a server: its route stays, its tile goes. Config cannot
do it: jupyter-server-proxy lists entry-point servers in addition to configured ones.
"""

from __future__ import annotations

import os
import shutil

#: jupyter-server-proxy server name → the program it needs (where jupyter-rsession-proxy looks for it)
NEEDS = {"rstudio": ("rserver", ("/usr/lib/rstudio-server/bin/rserver", "/usr/lib/rstudio/bin/rserver"))}


def runnable(name: str) -> bool:
    """False when the server ``name`` needs a program this machine does not have."""
    if name not in NEEDS:
        return True
    prog, paths = NEEDS[name]
    return bool(shutil.which(prog)) or any(os.access(p, os.X_OK) for p in paths)


def without_unrunnable_tiles(processes: list) -> list:
    """``processes`` (jupyter-server-proxy ``ServerProcess`` objects) with the tiles of unrunnable ones turned off."""
    for sp in processes:
        if not runnable(sp.name):
            sp.launcher_entry.enabled = False
    return processes


def install() -> bool:
    """Filter jupyter-server-proxy's entry-point servers in this process (before the server loads it)."""
    try:
        import jupyter_server_proxy
    except ImportError:
        return False
    original = getattr(jupyter_server_proxy, "get_entrypoint_server_processes", None)
    if original is None or getattr(original, "_labdeck", False):
        return original is not None

    def get_entrypoint_server_processes():
        return without_unrunnable_tiles(original())

    get_entrypoint_server_processes._labdeck = True
    jupyter_server_proxy.get_entrypoint_server_processes = get_entrypoint_server_processes
    return True
