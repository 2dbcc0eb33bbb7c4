"""Both modes ship the same Lab side of runs and shares: the server config and the prebuilt extension."""

import importlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "images/singleuser/jupyter_server_config.d/labdeck.json"


def test_server_config_replaces_jupyter_schedulers_extension_with_labdecks():
    cfg = json.loads((ROOT / CONFIG).read_text())
    ext = cfg["ServerApp"]["jpserver_extensions"]
    assert ext == {
        "jupyter_scheduler": False,
        "labdeck.runs.jupyter_scheduler": True,
        "labdeck.runs.lab_shares": True,
        "labdeck.data": True,
        "labdeck.spawner.userserver.oomwatch": True,
        # the metadata endpoint R's gargle reads (issue 23)
        "labdeck.credentials.metadata": True,
    }
    for module in ext:
        assert hasattr(importlib.import_module(module), "_jupyter_server_extension_points")
    for trait, dotted in cfg["SchedulerApp"].items():
        module, name = dotted.rsplit(".", 1)
        assert getattr(importlib.import_module(module), name), trait


def test_image_and_make_install_the_same_config_and_extension():
    dockerfile = (ROOT / "images/singleuser/Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert f"COPY {CONFIG} /usr/local/etc/jupyter/jupyter_server_config.d/labdeck.json" in dockerfile
    assert f"cp {CONFIG} $(VENV)/etc/jupyter/jupyter_server_config.d/labdeck.json" in makefile
    assert f'"etc/jupyter/jupyter_server_config.d" = ["{CONFIG}"]' in (ROOT / "pyproject.toml").read_text()
    assert f"!{CONFIG}" in (ROOT / "images/singleuser/Dockerfile.dockerignore").read_text()
    # one build script for both: make deps -> .venv, the image's labext-stage -> /usr/local
    assert "images/singleuser/build-labextension.sh runs/labextension $(VENV)" in makefile and re.search(r"^deps: .*\$\(LABEXT\)", makefile, re.M)
    assert re.search(r"build-labextension\.sh /src/runs/labextension /usr/local$", dockerfile, re.M)
    assert "COPY images/singleuser/build-labextension.sh /src/build-labextension.sh" in dockerfile
    assert "!images/singleuser/build-labextension.sh" in (ROOT / "images/singleuser/Dockerfile.dockerignore").read_text()
    # the data extension (S3 drive, BigQuery panel) too, its sources in the image's build context
    assert "images/singleuser/build-labextension.sh data/labextension $(VENV)" in makefile and re.search(r"^deps: .*\$\(LABEXT_DATA\)", makefile, re.M)
    assert re.search(r"build-labextension\.sh /src/data/labextension /usr/local", dockerfile, re.M)
    assert "!data/**" in (ROOT / "images/singleuser/Dockerfile.dockerignore").read_text()
    assert "COPY --from=labext-stage /usr/local/share/jupyter/labextensions/@labdeck" in dockerfile


@pytest.mark.parametrize("folder, name", [("runs", "@labdeck/lab"), ("data", "@labdeck/data")])
def test_extension_sources_are_locked(folder, name):
    pkg = json.loads((ROOT / folder / "labextension/package.json").read_text())
    lock = json.loads((ROOT / folder / "labextension/package-lock.json").read_text())
    assert pkg["name"] == name and pkg["jupyterlab"]["extension"] is True
    assert lock["packages"]["node_modules/@jupyterlab/builder"]["version"] == pkg["devDependencies"]["@jupyterlab/builder"]
