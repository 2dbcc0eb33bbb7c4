"""RStudio up to the boundary: what jupyter-rsession-proxy gives rserver and rsession, and the local launcher tile.

Posit's rserver cannot be installed here; a stand-in answers ``rserver --help``
the way 2025.09 does, so jupyter-rsession-proxy renders the real command.
"""

import os
import stat

import pytest

from tests.helpers.required import missing

jupyter_rsession_proxy = pytest.importorskip("jupyter_rsession_proxy")

RSERVER_HELP = """#!/bin/sh
cat <<'HELP'
  --www-root-path arg       The path prefix added by a proxy
  --server-data-dir arg     Path to the data directory
  --database-config-file arg
  --www-thread-pool-size arg
  --www-socket arg
  --rsession-which-r arg
HELP
"""


@pytest.fixture
def fake_rserver(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    prog = bin_dir / "rserver"
    prog.write_text(RSERVER_HELP)
    prog.chmod(prog.stat().st_mode | stat.S_IXUSR)
    (bin_dir / "rsession").write_text("#!/bin/sh\n")
    (bin_dir / "rsession").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-token-must-not-leak")
    monkeypatch.delenv("JUPYTER_RSESSION_PROXY_USE_SOCKET", raising=False)
    monkeypatch.setattr(jupyter_rsession_proxy, "get_system_user", lambda: "labdeck-alice")
    return prog


def test_rserver_command_and_environment(fake_rserver):
    sp = jupyter_rsession_proxy.setup_rserver()
    cmd = sp["command"](port=0, unix_socket="/tmp/rs.sock")
    data_dir = next(a.split("=", 1)[1] for a in cmd if a.startswith("--server-data-dir="))
    db_conf = next(a.split("=", 1)[1] for a in cmd if a.startswith("--database-config-file="))
    cookie = next(a.split("=", 1)[1] for a in cmd if a.startswith("--secure-cookie-key-file="))
    assert cmd == [
        "rserver",
        "--auth-none=1",
        "--www-frame-origin=same",
        "--www-verify-user-agent=0",
        f"--secure-cookie-key-file={cookie}",
        "--server-user=labdeck-alice",
        "--www-root-path={base_url}rstudio/",
        f"--server-data-dir={data_dir}",
        f"--database-config-file={db_conf}",
        "--www-socket={unix_socket}",
    ]
    # rserver gets USER on top of the server's environment, and nothing that would carry labdeck's
    # wiring on to rsession: rserver starts each rsession with a clean environment, so R must find
    # it in ~/.Renviron and at the SDKs' default paths (tests/integration/test_r_credentials.py)
    assert sp["environment"](port=0, unix_socket="/tmp/rs.sock") == {"USER": "labdeck-alice"}
    assert sp["unix_socket"] is True
    assert sp["launcher_entry"]["title"] == "RStudio"
    assert "server-token-must-not-leak" not in " ".join(cmd)
    assert os.stat(data_dir).st_mode & 0o077 == 0  # mkdtemp: private to the person


def test_rsession_standalone_command(fake_rserver):
    sp = jupyter_rsession_proxy.setup_rsession()
    assert sp["command"](port=8787) == [
        "rsession",
        "--standalone=1",
        "--program-mode=server",
        "--log-stderr=1",
        "--session-timeout-minutes=0",
        "--user-identity=labdeck-alice",
        "--www-port=8787",
    ]


def test_rsession_environment_names_r_only(fake_rserver, monkeypatch):
    if not __import__("shutil").which("R"):
        missing("R", "R is not installed (make r-deps)")
    monkeypatch.setenv("PATH", os.environ["PATH"] + ":/usr/local/bin:/usr/bin")
    env = jupyter_rsession_proxy.setup_rsession()["environment"](port=8787)
    assert sorted(env) == ["RSTUDIO_DEFAULT_R_VERSION", "RSTUDIO_DEFAULT_R_VERSION_HOME", "R_DOC_DIR", "R_HOME", "R_INCLUDE_DIR", "R_SHARE_DIR"]
    assert os.path.isdir(env["R_HOME"])


def test_local_launcher_hides_rstudio_without_rserver(tmp_path, monkeypatch):
    from jupyter_server_proxy.config import ServerProcess

    from labdeck.spawner.userserver import launchers

    monkeypatch.setattr(launchers, "NEEDS", {"rstudio": ("rserver", (str(tmp_path / "nowhere"),))})
    monkeypatch.setenv("PATH", str(tmp_path))
    procs = [ServerProcess(name="rstudio", **jupyter_rsession_proxy.setup_rserver()), ServerProcess(name="other", command=["x"])]
    assert [p.launcher_entry.enabled for p in launchers.without_unrunnable_tiles(procs)] == [False, True]
    # with rserver installed, the tile stays
    (tmp_path / "rserver").write_text("#!/bin/sh\n")
    (tmp_path / "rserver").chmod(0o755)
    procs = [ServerProcess(name="rstudio", **jupyter_rsession_proxy.setup_rserver())]
    assert [p.launcher_entry.enabled for p in launchers.without_unrunnable_tiles(procs)] == [True]


def test_install_filters_the_entry_points_jupyter_server_proxy_loads(monkeypatch, tmp_path):
    import jupyter_server_proxy

    from labdeck.spawner.userserver import launchers

    monkeypatch.setattr(jupyter_server_proxy, "get_entrypoint_server_processes", jupyter_server_proxy.get_entrypoint_server_processes)
    monkeypatch.setattr(launchers, "NEEDS", {"rstudio": ("rserver", (str(tmp_path / "nowhere"),))})
    monkeypatch.setenv("PATH", str(tmp_path))
    assert launchers.install() and launchers.install()  # idempotent
    procs = {p.name: p for p in jupyter_server_proxy.get_entrypoint_server_processes()}
    assert procs["rstudio"].launcher_entry.enabled is False
