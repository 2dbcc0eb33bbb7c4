"""Fixtures for the chart tests: the helm binary and rendered manifests (helpers in chartlib.py)."""

import pytest
from chartlib import _helm_path, helm_template

from tests.helpers.required import missing


@pytest.fixture(scope="session")
def helm() -> str:
    path, reason = _helm_path()
    if path is None:
        missing("helm", reason)
    return path


@pytest.fixture(scope="session")
def render(helm):
    cache = {}

    def _render(*value_files, set_values=()):
        key = (value_files, tuple(set_values))
        if key not in cache:
            cache[key] = helm_template(helm, *value_files, set_values=set_values)
        return cache[key]

    return _render
