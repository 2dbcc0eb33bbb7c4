"""Every benchmark script imports: a name moved between bench modules fails here, not at measurement time.

The benches are run by hand (they take minutes and want a quiet machine), so nothing else in
``make test`` would notice that one of them can no longer start.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py"))
#: JupyterHub config files (they use the ``c`` JupyterHub's loader gives them): compiled, not imported
CONFIGS = [s for s in SCRIPTS if s.endswith("_config.py")]
MODULES = [s for s in SCRIPTS if s not in CONFIGS]
MAINS = [s for s in MODULES if any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in ast.parse((BENCH / s).read_text()).body)]


@pytest.mark.parametrize("script", MODULES)
def test_bench_module_imports(script):
    # a fresh interpreter with bench/ first on sys.path, as `python bench/<script>` has it
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(BENCH)!r}); import {script[:-3]}"],
        cwd=BENCH, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("script, spawner", [("vanilla_config.py", "simple"), ("vanilla_kube_config.py", "kubespawner.KubeSpawner")])
def test_vanilla_configs_load_the_shared_hub_part(script, spawner, monkeypatch, tmp_path):
    """Both vanilla hubs get their addresses, database and login from vanilla_hub_config.py, and only the spawner differs.

    Loaded as ``jupyterhub -f /abs/path`` loads it (``Application.load_config_file``: no search path)
    from another working directory: a subconfig looked up there is silently not found.
    """
    from traitlets.config.application import Application

    env = {"BENCH_VANILLA_DIR": "/v", "BENCH_VANILLA_PORT": "1", "BENCH_VANILLA_HUB_PORT": "2", "BENCH_VANILLA_API_PORT": "3",
           "BENCH_VANILLA_PASSWORD": "pw", "BENCH_CHP": "chp", "BENCH_VANILLA_NAMESPACE": "ns", "BENCH_VANILLA_IMAGE": "img"}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    app = Application()
    app.load_config_file(str(BENCH / script))
    c = app.config
    assert (c.JupyterHub.bind_url, c.JupyterHub.hub_bind_url, c.JupyterHub.db_url) == ("http://127.0.0.1:1", "http://127.0.0.1:2", "sqlite:////v/jupyterhub.sqlite")
    assert (c.ConfigurableHTTPProxy.command, c.ConfigurableHTTPProxy.api_url) == (["chp"], "http://127.0.0.1:3")
    assert (c.JupyterHub.authenticator_class, c.DummyAuthenticator.password) == ("dummy", "pw")
    assert c.JupyterHub.spawner_class == spawner


@pytest.mark.parametrize("script", MAINS)
def test_bench_script_parses_its_arguments(script):
    """``--help`` goes through the script's argparse (and its Usage: line says how to run it)."""
    out = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("usage:"), out.stdout[:500]
    assert "Usage:" in (ast.get_docstring(ast.parse((BENCH / script).read_text())) or ""), f"bench/{script}: no Usage: line"
