"""Read the Helm chart's mounted values: the one place chart config reaches Python.

The labdeck equivalent of z2jh's ``z2jh.py``. The chart writes all of
``.Values`` (plus ``Chart``, ``Release`` and the resource ``Names``) into the
``values.yaml`` key of the hub Secret and mounts it read-only; generated
secrets (cookie secret, proxy token, broker API token) are separate keys of
the same Secret, mounted as files in a directory.

Design rules:

- Nothing is read at import time. Paths come from the environment when a
  function is called (``LABDECK_VALUES_FILE``, ``LABDECK_SECRET_DIR``), so tests
  point them at a temporary directory without reloading the module.
- Lookups are pure functions of a ``values`` mapping; every public function
  takes an optional ``values=`` argument and only loads the file when it is
  omitted. The loaded file is cached per path.
- A missing key gives the default; a key whose *parent* is not a mapping is a
  malformed values file and raises ``ValuesError`` naming the key.
- Secret values are never logged and never part of an error message.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from labdeck.hub import contract

VALUES_FILE_ENV = contract.ENV_VALUES_FILE
DEFAULT_VALUES_FILE = "/usr/local/etc/labdeck/values.yaml"
SECRET_DIR_ENV = contract.ENV_SECRET_DIR
DEFAULT_SECRET_DIR = "/usr/local/etc/labdeck/secret"

_MISSING = object()


class ValuesError(ValueError):
    """The mounted values file is missing, unreadable or malformed."""


def values_file_path() -> Path:
    """Path of the mounted values file: ``$LABDECK_VALUES_FILE`` or the chart default."""
    return Path(os.environ.get(VALUES_FILE_ENV) or DEFAULT_VALUES_FILE)


def secret_dir_path() -> Path:
    """Directory holding one file per generated secret: ``$LABDECK_SECRET_DIR`` or the default."""
    return Path(os.environ.get(SECRET_DIR_ENV) or DEFAULT_SECRET_DIR)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ValuesError(f"cannot read labdeck values file {path}: {e.strerror}") from None
    return parse_values(text, source=path)


def parse_values(text: str, source: str = "<values>") -> dict:
    """Parse the text of a values file; an empty file is ``{}``, a non-mapping is an error."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValuesError(f"{source} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValuesError(f"{source} must hold a mapping at the top level, not {type(data).__name__}")
    return data


def load_values(path: str | os.PathLike | None = None) -> dict:
    """Load (and cache) the values file at ``path``, default :func:`values_file_path`."""
    return _load_cached(str(path or values_file_path()))


def clear_cache() -> None:
    """Forget loaded values files (for tests and for reloading after a change)."""
    _load_cached.cache_clear()


def lookup(values: Mapping, key: str, default: Any = None) -> Any:
    """Return ``values[a][b][c]`` for ``key="a.b.c"``, or ``default`` when a level is absent.

    An explicit ``null`` in the values counts as absent. A level that exists but
    is not a mapping (``a.b`` is a string, say) raises ``ValuesError``.
    """
    if not key or any(part == "" for part in key.split(".")):
        raise ValueError(f"invalid values key {key!r}")
    node: Any = values
    walked = []
    for part in key.split("."):
        if not isinstance(node, Mapping):
            raise ValuesError(f"values key {'.'.join(walked)!r} must be a mapping to look up {key!r}")
        walked.append(part)
        node = node.get(part, _MISSING)
        if node is _MISSING or node is None:
            return default
    return node


def get_config(key: str, default: Any = None, *, values: Mapping | None = None) -> Any:
    """Value at dotted ``key`` of the chart values (``"singleuser.image.name"``), or ``default``."""
    if values is None:
        values = load_values()
    return lookup(values, key, default)


def set_config_if_not_none(section: Any, trait: str, key: str, *, values: Mapping | None = None) -> None:
    """Set ``section.<trait>`` from ``key`` when the value is present and not ``null``.

    ``section`` is a traitlets config section such as ``c.KubeSpawner``. Empty
    strings, ``0`` and ``False`` are set: only absence leaves the trait's own
    default in place, so a chart default can be overridden to "off".
    """
    value = get_config(key, None, values=values)
    if value is not None:
        setattr(section, trait, value)


def get_name(component: str, *, values: Mapping | None = None) -> str:
    """Kubernetes name of a chart resource (``"hub"``, ``"broker"``, ``"proxy-api"``…).

    The chart exports every name it generates under ``Names`` in the values
    file (from ``_helpers-names.tpl``), so Python never rebuilds a name.
    """
    name = get_config(f"Names.{component}", None, values=values)
    if not name:
        raise ValuesError(f"the chart exported no name for component {component!r}")
    return str(name)


def get_secret_value(key: str, default: Any = _MISSING, *, secret_dir: str | os.PathLike | None = None) -> str:
    """Content of the generated secret ``key`` (a file in the mounted secret directory).

    Raises ``ValuesError`` naming the key (never the value) when it is missing
    and no ``default`` is given. Surrounding whitespace is stripped.
    """
    if "/" in key or key in ("", ".", ".."):
        raise ValueError(f"invalid secret key {key!r}")
    path = Path(secret_dir or secret_dir_path()) / key
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if default is _MISSING:
            raise ValuesError(f"secret key {key!r} is not mounted in {path.parent}") from None
        return default


def check_config_sections(config_sections: Mapping) -> list[str]:
    """Names of pass-through ``hub.config`` sections that cannot be a traitlets class.

    A configurable class name starts with an uppercase letter; a lowercase
    section (``kubeSpawner``) is almost always a typo that traitlets would
    silently ignore, so the hub config refuses to start on any of these.
    """
    return sorted(name for name in config_sections if not name[:1].isupper())


class Values:
    """Lookups in a values mapping; every default used is recorded in ``defaults``.

    The recorded defaults are what the configurer assumes when a key is absent;
    a test compares them with the chart's ``values.yaml``.
    """

    def __init__(self, values: Mapping):
        if not isinstance(values, Mapping):
            raise ValuesError(f"values must be a mapping, not {type(values).__name__}")
        self.values = values
        self.defaults: dict[str, Any] = {}

    def __call__(self, key: str, default: Any = None) -> Any:
        self.defaults.setdefault(key, default)
        return copy.deepcopy(lookup(self.values, key, default))
