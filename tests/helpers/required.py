"""Skips that CI turns into failures.

A pinned test dependency (helm, hadolint, kube-apiserver, Chromium, R) that cannot be found
or built on a developer's machine skips the tests that need it, with the reason. In CI the
same absence means the build is broken - a skipped tier would hide every failure in it -
so :func:`missing` fails instead when ``CI`` is true (``.ci/run`` sets it) or
``LABDECK_KUBE_REQUIRE=1`` (the older switch of the kube tier).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def strict() -> bool:
    """True where a missing test dependency is a failure (CI)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("LABDECK_KUBE_REQUIRE") == "1"


def missing(what: str, reason: object) -> NoReturn:
    """Skip (or, in CI, fail) because the test dependency ``what`` is unavailable."""
    message = f"{what} unavailable: {reason}"
    if strict():
        pytest.fail(f"{message} (CI: a pinned test dependency must be present; it is installed by make test)")
    pytest.skip(message)
