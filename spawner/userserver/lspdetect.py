"""Find the installed language servers once, when the environment is built, not at every server start.

jupyter-lsp looks for language servers each time a user server starts: it
scans every package's entry points and runs each finder's probe (for R,
``Rscript -e "cat(system.file(package='languageserver'))"``, a whole R
start-up), twice. That was ~0.15-0.19 CPU s of every server start, the largest
single part of a warm start (``bench/storm.py``: a storm of 40 went from
median 8.6 s to 6.1 s without it), while what it finds only changes when
someone installs a language server into the environment.

``python -m labdeck.spawner.userserver.lspdetect OUT`` runs jupyter-lsp's own
detection in this environment and writes what it found as
``LanguageServerManager.language_servers`` to OUT, a file in the
environment's ``jupyter_server_config.d``, where jupyter-lsp itself reads
language servers from. ``make deps`` and the single-user image run it after
installing packages; installing a language server later means running it
again. Servers start with ``--LanguageServerManager.autodetect=False``
(:func:`labdeck.hub.performance.server_args`, both modes), so they use that
file instead of detecting. A language server a person installs in their own R
library or ``~/.local`` is not found; an admin who wants that removes the
argument (``hub.config.Spawner.args``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile


def detected() -> dict:
    """jupyter-lsp's installed language servers here, as its manager finds them at a server's start."""
    from jupyter_lsp.manager import LanguageServerManager

    manager = LanguageServerManager()
    return {key: spec for key, spec in manager._autodetect_language_servers(only_installed=True) if spec.get("argv")}


def server_config(servers: dict) -> dict:
    """The config file's content: the servers found (jupyter-lsp reads this section from conf.d files)."""
    return {"LanguageServerManager": {"language_servers": servers}}


def write(path: str, config: dict) -> None:
    """Write ``config`` as JSON at ``path`` atomically (readable by everyone: it is not secret)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".lsp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=1, sort_keys=True)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the config file to write (…/etc/jupyter/jupyter_server_config.d/labdeck-language-servers.json)")
    args = ap.parse_args(argv)
    servers = detected()
    write(args.out, server_config(servers))
    print(f"labdeck: language servers found: {', '.join(sorted(servers)) or 'none'} ({args.out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
