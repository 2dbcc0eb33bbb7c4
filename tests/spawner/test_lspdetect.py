"""Language servers are found once, when the environment is built (labdeck.spawner.userserver.lspdetect).

The detection runs jupyter-lsp's own finders in a subprocess with a PATH we
control: a stand-in ``Rscript`` that answers the languageserver probe makes
the R server "installed"; without it nothing is. jupyter-lsp's manager, with
detection off as servers start (``hub.performance.server_args``), reads the
servers found from that file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[2]
FAKE_RSCRIPT = """#!/bin/sh
# answers jupyter-lsp's probe: the languageserver package is installed here
case "$*" in *"system.file(package='languageserver')"*) printf /opt/fake/languageserver ;; esac
"""


def detect(tmp_path: Path, with_r: bool) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if with_r:
        (bin_dir / "Rscript").write_text(FAKE_RSCRIPT)
        (bin_dir / "Rscript").chmod(0o755)
    out = tmp_path / "etc" / "jupyter_server_config.d" / "labdeck-language-servers.json"
    env = {"PATH": f"{bin_dir}:{os.path.dirname(sys.executable)}", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "labdeck.spawner.userserver.lspdetect", str(out)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    return json.loads(out.read_text())


def test_an_installed_language_server_is_written(tmp_path):
    config = detect(tmp_path, with_r=True)["LanguageServerManager"]
    assert list(config["language_servers"]) == ["r-languageserver"]
    assert config["language_servers"]["r-languageserver"]["argv"][0] == str(tmp_path / "bin" / "Rscript")


def test_nothing_installed_gives_no_servers(tmp_path):
    assert detect(tmp_path, with_r=False) == {"LanguageServerManager": {"language_servers": {}}}


def test_servers_start_without_detection_and_jupyter_lsp_reads_the_file(tmp_path, monkeypatch):
    from jupyter_lsp.manager import LanguageServerManager
    from traitlets.config.loader import KVArgParseConfigLoader

    from labdeck.hub.performance import server_args

    written = detect(tmp_path, with_r=True)
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(tmp_path / "etc"))
    args = [a for a in server_args({}) if a.startswith("--LanguageServerManager.")]
    config = KVArgParseConfigLoader(args, classes=[LanguageServerManager]).load_config()
    manager = LanguageServerManager(config=Config(config))
    assert manager.autodetect is False

    def no_detection(*a, **kw):
        raise AssertionError("detection ran at server start")

    manager._autodetect_language_servers = no_detection
    manager.init_language_servers()
    got, want = manager.language_servers, written["LanguageServerManager"]["language_servers"]
    # what starts the server and for which files (jupyter-lsp fills in its schema defaults)
    fields = ("argv", "languages", "display_name", "mime_types")
    assert {k: {f: s.get(f) for f in fields} for k, s in got.items()} == {k: {f: s.get(f) for f in fields} for k, s in want.items()}
    assert list(got) == ["r-languageserver"]


@pytest.mark.parametrize(
    "path, line",
    [
        ("Makefile", "$(PY) -m labdeck.spawner.userserver.lspdetect $@"),
        ("images/singleuser/Dockerfile", "RUN python -m labdeck.spawner.userserver.lspdetect /usr/local/etc/jupyter/jupyter_server_config.d/labdeck-language-servers.json"),
    ],
)
def test_both_environments_write_it_where_servers_read_their_config(path, line):
    assert line in (ROOT / path).read_text()
