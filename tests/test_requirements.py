"""The pinned requirement files: the single-user image and `make up` install the same packages."""

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HUB = ROOT / "images/hub/requirements.txt"
SINGLEUSER = ROOT / "images/singleuser/requirements.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]+\])?==(?P<version>[^\s;#]+)$")


def _lines(path):
    return [s for s in (line.split("#", 1)[0].strip() for line in path.read_text().splitlines()) if s]


def _pins(path):
    pins = {}
    for line in _lines(path):
        m = PIN.match(line)
        assert m, f"{path.name}: not pinned with ==: {line!r}"
        name = re.sub(r"[-_.]+", "-", m["name"]).lower()
        assert name not in pins, f"{path.name}: {name} pinned twice"
        pins[name] = m["version"]
    return pins


@pytest.mark.parametrize("path", [HUB, SINGLEUSER], ids=["hub", "singleuser"])
def test_every_line_is_pinned(path):
    assert _pins(path)


def test_shared_pins_agree():
    hub, su = _pins(HUB), _pins(SINGLEUSER)
    disagree = {n: (hub[n], su[n]) for n in hub.keys() & su.keys() if hub[n] != su[n]}
    assert not disagree


def test_singleuser_image_installs_the_file_make_installs():
    dockerfile = (ROOT / "images/singleuser/Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "images/singleuser/requirements.txt" in makefile
    assert re.search(r"^COPY images/singleuser/requirements\.txt (\S+)$", dockerfile, re.M)
    target = re.search(r"^COPY images/singleuser/requirements\.txt (\S+)$", dockerfile, re.M)[1]
    assert f"pip install --no-cache-dir -r {target}" in dockerfile
    # nothing else is installed from PyPI by name: only the requirement file and labdeck's own wheel
    installs = re.findall(r"pip install ([^\\\n&]+)", dockerfile)
    for args in installs:
        assert f"-r {target}" in args or ".whl" in args, args


def test_hub_image_installs_its_requirement_file():
    dockerfile = (ROOT / "images/hub/Dockerfile").read_text()
    assert "-r /tmp/requirements.txt" in dockerfile and "COPY images/hub/requirements.txt /tmp/requirements.txt" in dockerfile


def test_singleuser_has_the_proxies_for_rstudio():
    su = _pins(SINGLEUSER)
    assert {"jupyter-server-proxy", "jupyter-rsession-proxy", "jupyterlab"} <= su.keys()


def test_hub_requirements_cover_labdeck_dependencies():
    """The hub image installs labdeck with --no-deps, so every dependency must be pinned there."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", d)[0]).lower() for d in deps}
    assert names <= _pins(HUB).keys(), names - _pins(HUB).keys()


def test_jupyterlab_overrides_are_installed_by_both_modes():
    """The image and `make up` install the same JupyterLab defaults (no news prompt for new hires)."""
    import json

    overrides = ROOT / "images" / "singleuser" / "overrides.json"
    settings = json.loads(overrides.read_text())["@jupyterlab/apputils-extension:notification"]
    assert settings == {"fetchNews": "false", "checkForUpdates": False}
    assert "COPY images/singleuser/overrides.json /usr/local/share/jupyter/lab/settings/overrides.json" in (
        ROOT / "images" / "singleuser" / "Dockerfile"
    ).read_text()
    assert "cp images/singleuser/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json" in (ROOT / "Makefile").read_text()


R_PACKAGES = ROOT / "images/singleuser/r-packages.txt"
R_PIN = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9])==(?P<version>[0-9]+([.-][0-9]+)+)$")


def test_r_cloud_clients_are_pinned_from_a_dated_snapshot():
    """The image's R clients (issue 23): every line name==version, from one dated CRAN snapshot."""
    text = R_PACKAGES.read_text()
    snapshots = re.findall(r"^# snapshot: (\d{4}-\d{2}-\d{2})$", text, re.M)
    assert len(snapshots) == 1
    pins = {}
    for line in _lines(R_PACKAGES):
        m = R_PIN.match(line)
        assert m, f"r-packages.txt: not pinned with ==: {line!r}"
        assert m["name"] not in pins, f"{m['name']} pinned twice"
        pins[m["name"]] = m["version"]
    assert {"bigrquery", "DBI", "arrow", "gargle"} <= set(pins)
    assert "paws" in pins or "paws.storage" in pins
    # paws reads container credentials from 0.7.0; labdeck's wiring is credential_process, but keep both working
    assert tuple(int(x) for x in pins["paws.common"].split(".")) >= (0, 7, 0)


def test_singleuser_image_installs_the_r_pins_and_checks_them():
    dockerfile = (ROOT / "images/singleuser/Dockerfile").read_text()
    script = (ROOT / "images/singleuser/install-r-packages.R").read_text()
    assert "COPY images/singleuser/r-packages.txt images/singleuser/install-r-packages.R /tmp/r/" in dockerfile
    assert 'RUN Rscript /tmp/r/install-r-packages.R /tmp/r/r-packages.txt "${CRAN_SNAPSHOT_BASE}"' in dockerfile
    # nothing from CRAN by name outside the pinned list
    assert "install.packages(" not in dockerfile
    assert "install.packages(pins[, 1]" in script and "stop(\"not the pinned versions" in script
