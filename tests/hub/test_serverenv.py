"""labdeck.hub.local.serverenv: can other users reach a path, and the environment servers run from."""

import os
import shutil
import subprocess
import sys

import pytest

from labdeck.hub.local.serverenv import ensure_server_env, reachable_by_others


def test_reachable_by_others_needs_x_on_every_directory(tmp_path):
    d = tmp_path / "a" / "b"
    d.mkdir(parents=True)
    f = d / "tool"
    f.write_text("x")
    os.chmod(f, 0o755)
    for p in (tmp_path, tmp_path / "a", d):
        os.chmod(p, 0o755)
    chain_ok = all(os.stat(p).st_mode & 0o001 for p in tmp_path.parents)
    assert reachable_by_others(str(f)) is chain_ok
    os.chmod(tmp_path / "a", 0o700)
    assert reachable_by_others(str(f)) is False
    os.chmod(tmp_path / "a", 0o755)
    os.chmod(f, 0o700)
    assert reachable_by_others(str(f)) is False


@pytest.mark.skipif(os.geteuid() != 0 or reachable_by_others(sys.executable), reason="needs root and a Python private to root (as in make up here)")
def test_server_env_runs_labdecks_packages_as_nobody(tmp_path):
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp(prefix="labdeck-serverenv-", dir="/tmp"))
    bin_dir = None
    try:
        os.chmod(root, 0o755)
        if not all(os.stat(p).st_mode & 0o001 for p in root.parents):
            pytest.skip(f"{root} is not reachable by other users")
        bin_dir = ensure_server_env(root / "server-env")
        again = ensure_server_env(root / "server-env")  # cached: not rebuilt
        assert again == bin_dir
        out = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", os.path.join(bin_dir, "python"), "-c",
             "import labdeck.spawner.local.accounts, jupyterhub, ipykernel, soupsieve, sys; soupsieve.compile('img:not([alt])'); "
             "print(sys.version.split()[0])"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        # the very Python that installed the packages (Debian's 3.11.2 cannot compile soupsieve's selectors)
        assert out.stdout.strip() == sys.version.split()[0], out.stderr
        with open(os.path.join(bin_dir, "jupyterhub-singleuser")) as f:
            assert f.readline().strip() == f"#!{bin_dir}/python"
        # under R's LD_LIBRARY_PATH (the system's lib dir first, where another libpython3.X may be) it
        # still loads its own libpython, and reticulate finds that library in its base prefix
        code = ("import ssl, sys, glob, os; v = f'{sys.version_info[0]}.{sys.version_info[1]}'; "
                "print(len(glob.glob(os.path.join(sys.base_exec_prefix, f'libpython{v}*.so*'))) > 0 or sys.base_exec_prefix == '/usr')")
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", os.path.join(bin_dir, "python"), "-c", code],
                             env={"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": "/usr/lib/x86_64-linux-gnu:/usr/lib"},
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.stdout.strip() == "True", out.stderr[-2000:]
        # a command added to this environment later (an upgrade) appears after the next start
        (root / "server-env" / "labdeck-server-env.json").write_text("{}")
        assert ensure_server_env(root / "server-env") == bin_dir
        # the state directory moved: the environment is rebuilt where it now is, and runs there
        (root / "moved").mkdir()
        os.chmod(root / "moved", 0o755)
        for name in ("server-env", "server-env-python"):
            (root / name).rename(root / "moved" / name)
        moved = ensure_server_env(root / "moved" / "server-env")
        assert moved == str(root / "moved" / "server-env" / "bin")
        with open(os.path.join(moved, "jupyterhub-singleuser")) as f:
            assert f.readline().strip() == f"#!{moved}/python"
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", os.path.join(moved, "python"), "-c",
                              "import labdeck.spawner.local.accounts, sys; print(sys.prefix)"], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.stdout.strip() == str(root / "moved" / "server-env"), out.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)
