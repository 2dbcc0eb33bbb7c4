"""What runs inside a user-server process: ``jupyterhub-singleuser`` without the wasted imports.

``labdeck-server [ARGS]`` is ``jupyterhub-singleuser [ARGS]`` with
:mod:`labdeck.spawner.userserver.lazyimports` installed first; the local spawner's cold
start runs it and the warm pool's zygote calls :func:`run` in each child.
"""

from __future__ import annotations

import sys

from labdeck.spawner.userserver import lazyimports

#: what a server imports before it knows whose it is (the zygote imports these
#: once; a cold start imports them as it goes). Missing optional ones are skipped.
PREIMPORTS = [
    "jupyterhub.singleuser",
    "jupyterhub.singleuser.extension",
    "jupyter_server.serverapp",
    "jupyter_server.services.contents.largefilemanager",
    "jupyter_server.services.kernels.kernelmanager",
    "jupyterlab.labapp",
    "jupyterlab_server",
    "jupyter_server_terminals",
    "jupyter_lsp",
    "jupyter_lsp.serverextension",
    "notebook_shim.shim",
    "jupyter_scheduler.extension",
    "jupyter_server_proxy",
    "nbdime.webapp.nb_server_extension",
    "terminado",
    "jupyter_client.ioloop",
    "jupyter_client.provisioning",
    "nbformat",
    "nbconvert",
]


def preimport(names=PREIMPORTS) -> list[str]:
    """Import what a server start would import; return the names that failed (optional ones)."""
    import importlib

    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            missing.append(name)
    return missing


def run(argv: list[str]) -> int:
    """Run jupyterhub-singleuser with ``argv`` (without the program name) in this process."""
    lazyimports.install()
    from labdeck.spawner.userserver import launchers

    launchers.install()  # no RStudio tile where rserver is missing
    from jupyterhub.singleuser import main as singleuser_main

    sys.argv = ["jupyterhub-singleuser", *argv]
    return singleuser_main() or 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
