"""A wheel built from the repository runs `labdeck up` like the editable install.

``pip wheel .`` → a fresh venv holding only that wheel (its dependencies are
made visible from the test venv by a ``.pth`` line, so nothing is downloaded
twice and no file of the checkout is importable) → ``labdeck up`` from the
fresh venv, run outside the checkout → a person logs in, spawns, finds the
welcome notebook in their home and uses S3 from a kernel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.helpers.hubclient import HubClient
from tests.helpers.platform import start_platform

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
S3_CALL = (
    "import boto3, os\n"
    "b, p = os.environ['LABDECK_S3_HOME'][5:].split('/', 1)\n"
    "s3 = boto3.client('s3'); s3.put_object(Bucket=b, Key=p + 'w.txt', Body=b'wheel')\n"
    "print(s3.get_object(Bucket=b, Key=p + 'w.txt')['Body'].read().decode())"
)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(work / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=600, cwd=work,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (work / "dist").glob("labdeck-*.whl")
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # the test venv's dependencies, after the fresh venv's own site-packages (so labdeck comes from the wheel)
    (site / "labdeck-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--no-deps", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    # jupyterhub-singleuser is a dependency's script: give the fresh venv its own, so servers
    # and kernels run on the fresh venv's Python (and import labdeck from the wheel)
    script = env_dir / "bin" / "jupyterhub-singleuser"
    script.write_text(f"#!{py}\nimport sys\nfrom jupyterhub.singleuser import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return env_dir, site


def test_the_wheel_holds_every_data_file_and_no_checkout_path(wheel_venv):
    env_dir, site = wheel_venv
    py = env_dir / "bin" / "python"
    out = subprocess.check_output(
        [str(py), "-c", "import labdeck.hub.local.plan as p, labdeck.spawner.onboarding as o; print(p.HUB_CONFIG); print(o.default_onboarding_dir())"],
        text=True, cwd="/",
    )  # fmt: skip
    hub_config, welcome = (Path(line) for line in out.split())
    assert site in hub_config.parents and hub_config.is_file()
    assert site in welcome.parents and (welcome / "Welcome.ipynb").is_file()
    assert (env_dir / "share/jupyter/lab/settings/overrides.json").read_text() == (ROOT / "images/singleuser/overrides.json").read_text()
    for script in ("labdeck", "labdeck-credentials", "labdeck-singleuser"):
        assert (env_dir / "bin" / script).exists(), script


def test_labdeck_up_from_the_wheel_serves_a_working_server(wheel_venv, tmp_path, monkeypatch):
    env_dir, _ = wheel_venv
    monkeypatch.setattr("tests.helpers.platform.LABDECK", str(env_dir / "bin" / "labdeck"))
    monkeypatch.setattr("tests.helpers.platform.ROOT", tmp_path)  # run outside the checkout
    chp = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    # the fresh venv's bin first: labdeck-credentials and labdeck-singleuser come from the wheel
    path = os.pathsep.join([str(env_dir / "bin"), os.environ.get("PATH", ""), str(Path(sys.executable).parent)])
    plat = start_platform(tmp_path / "state", extra_env={"LABDECK_CHP": str(chp), "PATH": path})
    try:
        alice = HubClient(plat.url).login("alice", plat.password)
        alice.start_server()
        alice.wait_ready(timeout=120)
        kernel = alice.start_kernel()
        assert alice.execute(S3_CALL, kernel).check().stdout.strip() == "wheel"
        where = alice.execute("import labdeck.spawner; print(labdeck.spawner.__file__)", kernel).check().stdout
        assert str(env_dir) in where and str(ROOT) not in where, where
        assert (plat.state_dir / "homes" / "alice" / "Welcome.ipynb").is_file()
    finally:
        plat.stop()
