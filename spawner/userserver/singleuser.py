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
    # imported by every server after the fork until issue 27 (found by comparing sys.modules of a
    # claimed server with its zygote's; 165 modules, ~7 MiB a server allocated for itself)
    # jupyter-server's default services, loaded when the web app is built
    "jupyter_server.services.api.handlers",
    "jupyter_server.services.config.handlers",
    "jupyter_server.services.contents.handlers",
    "jupyter_server.services.events.handlers",
    "jupyter_server.services.kernels.handlers",
    "jupyter_server.services.kernelspecs.handlers",
    "jupyter_server.services.nbconvert.handlers",
    "jupyter_server.services.security.handlers",
    "jupyter_server.services.sessions.handlers",
    "jupyter_server.services.shutdown",
    "jupyter_server.kernelspecs.handlers",
    "jupyter_server.nbconvert.handlers",
    "jupyter_server.view.handlers",
    "tornado.platform.asyncio",
    "anyio._backends._asyncio",
    "jupyter_core.migrate",
    # server extensions loaded at every start
    "notebook_shim.nbserver",
    "jupyter_lsp.virtual_documents_shadow",
    "jupyter_rsession_proxy",
    "jupyter_scheduler.scheduler",
    "jupyter_scheduler.executors",
    "jupyter_scheduler.job_files_manager",
    "jupyter_scheduler.parameterize",
    "labdeck.runs.jupyter_scheduler",
    "labdeck.runs.lab_shares",
    "labdeck.data.handlers",
    "labdeck.credentials.metadata",
    "labdeck.spawner.userserver.oomwatch",
    "labdeck.spawner.userserver.launchers",
    "labdeck.spawner.userserver.kernelports",  # installed by run(); imports jupyter_client.connect
    # the kernel spec manager's first listing (JupyterLab asks at once): the native kernel's spec
    # and IPython.paths (jupyter_client adds ~/.ipython/kernels; importing IPython is 66 modules)
    "ipykernel.kernelspec",
    "IPython.paths",
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


def prewarm() -> list[str]:
    """Load, once and in the zygote, what every server loads the same way when JupyterLab opens and keeps.

    Only data that is the same for everyone and read from the installed packages:

    - babel's global CLDR data and its English locale (English over ``root``): on the first
      page, jupyterlab_server's translations handler asks babel for language display names with
      English as the default and fallback; each server loaded ~4 MiB of pickles (tracemalloc of a
      claimed server). Other languages still load in the server that asks for them. The pickles
      hold ``babel.dates`` objects, so this imports ``babel.localtime``, which reads ``TZ`` at
      import: ``TZ`` is in the warm pool's ``IMPORT_TIME_ENV`` (a claim with another starts cold).

    Returns what was loaded (a missing or older package is skipped).
    """
    done = []
    try:
        from babel import core, localedata

        core.get_global("parent_exceptions")  # babel's global data: one pickle, cached in babel.core
        localedata.load("en")  # cached in babel.localedata, 'root' merged in
        if hasattr(localedata, "get_locale_data"):  # babel >= 2.17 wraps it once more (cached too)
            localedata.get_locale_data("en")
        done.append("babel")
    except Exception:
        pass
    return done


def run(argv: list[str]) -> int:
    """Run jupyterhub-singleuser with ``argv`` (without the program name) in this process."""
    lazyimports.install()
    from labdeck.spawner.userserver import launchers

    launchers.install()  # no RStudio tile where rserver is missing
    from labdeck.spawner.userserver import kernelports

    kernelports.install()  # kernel ports that outgoing connections cannot take
    from jupyterhub.singleuser import main as singleuser_main

    sys.argv = ["jupyterhub-singleuser", *argv]
    return singleuser_main() or 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
