"""Notebook paths and output locations, as pure functions.

Requirements:

- a notebook path is a *relative* path inside the user's home, made of plain
  segments (no ``..``, ``.``, empty or hidden segments, no backslashes or
  control characters) and ending in ``.ipynb``; anything else is refused with
  a message, never "fixed";
- every run gets its own output key, so outputs are never overwritten:
  ``home/<user>/runs/<notebook path without .ipynb>/<UTC timestamp>-<run id>.ipynb``
  with the run record next to it (same key, ``.json``).
"""

from __future__ import annotations

import datetime
import re

from labdeck.hub import contract

MAX_PATH = 512
_RUN_ID = re.compile(r"^[a-f0-9]{12}$")


class InvalidPath(ValueError):
    """A notebook path a person (or an attacker) sent is not acceptable."""


def validate_notebook_path(path) -> str:
    """Return ``path`` if it is a safe notebook path relative to a home; raise :class:`InvalidPath`."""
    if not isinstance(path, str) or not path:
        raise InvalidPath("notebook must be a non-empty string (a path relative to your home)")
    if len(path) > MAX_PATH:
        raise InvalidPath(f"notebook path is longer than {MAX_PATH} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise InvalidPath("notebook path contains control characters")
    if "\\" in path:
        raise InvalidPath("notebook path must use '/' separators")
    if path.startswith("/") or path.startswith("~"):
        raise InvalidPath("notebook path must be relative to your home (no leading '/' or '~')")
    segments = path.split("/")
    for seg in segments:
        if seg in ("", ".", ".."):
            raise InvalidPath("notebook path must not contain empty, '.' or '..' segments")
        if seg.startswith("."):
            raise InvalidPath("notebook path must not go through hidden files or folders")
    if not path.endswith(".ipynb") or segments[-1] == ".ipynb":
        raise InvalidPath("notebook path must end with .ipynb")
    return path


def notebook_stem(path: str) -> str:
    """``reports/daily.ipynb`` → ``reports/daily`` (the folder of its runs)."""
    return validate_notebook_path(path)[: -len(".ipynb")]


def home_prefix(user: str) -> str:
    """The S3 key prefix of a user's home (:func:`labdeck.hub.contract.home_prefix`), refusing with :class:`InvalidPath`."""
    try:
        return contract.home_prefix(user)
    except ValueError as e:
        raise InvalidPath(str(e)) from None


def utc_stamp(ts: float) -> str:
    """``20261123T101500Z``: sortable, no ``:`` (safe in keys and file names)."""
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def output_keys(user: str, notebook: str, created: float, run_id: str) -> tuple[str, str]:
    """The S3 keys of a run's output notebook and its JSON record.

    Parameters
    ----------
    user : str
        The run's owner.
    notebook : str
        The input notebook, relative to the home (validated here).
    created : float
        When the run was created (epoch seconds, UTC).
    run_id : str
        12 lowercase hex characters.
    """
    if not _RUN_ID.match(run_id or ""):
        raise InvalidPath("invalid run id")
    base = f"{home_prefix(user)}runs/{notebook_stem(notebook)}/{utc_stamp(created)}-{run_id}"
    return base + ".ipynb", base + ".json"


def is_run_id(value: str) -> bool:
    return bool(_RUN_ID.match(value or ""))




def validate_home_key(path) -> str:
    """A key relative to a home (a notebook or a run output), for the viewer: same rules as notebooks."""
    return validate_notebook_path(path)
