"""The hub process of the embedded default: ``python -m jupyterhub`` with the user server's lazy imports.

JupyterHub imports ``jupyter_events`` → ``jsonschema`` → ``rfc3987_syntax``,
which compiles a grammar at import time (~1 CPU s, the largest single cost of
the hub's start, on the critical path of ``labdeck up``'s readiness).
:mod:`labdeck.spawner.userserver.lazyimports` defers it to the first IRI validation,
with the same answers; the chart's hub image starts as usual.
"""

from __future__ import annotations


def main() -> None:
    from labdeck.spawner.userserver import lazyimports

    lazyimports.install()
    from jupyterhub.app import main as hub_main

    hub_main()


if __name__ == "__main__":
    main()
