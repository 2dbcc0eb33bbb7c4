"""Where a path of the S3 drive lies in a person's grants (pure; no I/O).

The drive's root is the data bucket, but a person sees only what the broker
grants them (``GET <broker>/grants``): their home ``home/<name>/``
read-write and each granted prefix read-only or read-write. Folders above a
granted prefix (``home``, ``shared`` for ``shared/demo/``) are *virtual*:
they list only the way down to the grants, never another person's home.
Restricted prefixes (``denied``: a group's prefix under an everyone-readable
one) are hidden and refused. Anything else is refused before S3 is asked.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

VIRTUAL, S3 = "virtual", "s3"


class Refused(Exception):
    """A path outside the person's grants, or malformed; the message is for a person."""


@dataclass(frozen=True)
class Place:
    """What a drive path is: a virtual folder above the grants, or an S3 key inside one."""

    path: str
    kind: str  # VIRTUAL | S3
    access: str = ""  # "ro" | "rw" for S3
    grant: str = ""  # the granted prefix the key lies in
    is_grant_root: bool = False

    @property
    def key(self) -> str:
        """The S3 key (no trailing slash)."""
        return self.path

    @property
    def writable(self) -> bool:
        return self.kind == S3 and self.access == "rw"


def normalize(path: str) -> str:
    """``a/b`` from ``/a/b/``; refuses ``..``, ``.``, empty parts and backslashes."""
    path = (path or "").strip("/")
    if not path:
        return ""
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\\" in path or "\x00" in path:
        raise Refused(f"{path!r} is not a valid S3 drive path")
    return path


def locate(path: str, prefixes: list[dict], denied: list[str]) -> Place:
    """Where ``path`` lies, for grants ``prefixes`` (``[{"prefix", "access"}]``) and ``denied`` prefixes.

    Raises
    ------
    Refused
        The path is neither inside a grant nor above one, or lies in a denied prefix.
    """
    path = normalize(path)
    slashed = path + "/" if path else ""
    if any(slashed.startswith(d) for d in denied):
        raise Refused(f"s3 path {path}/ is not shared with you")
    inside = [g for g in prefixes if slashed.startswith(g["prefix"])]
    if inside:
        best = max(inside, key=lambda g: len(g["prefix"]))
        # the most specific grant decides (shared/ read-only, shared/analysts/ read-write)
        return Place(path, S3, best["access"], best["prefix"], slashed == best["prefix"])
    if not path or any(g["prefix"].startswith(slashed) for g in prefixes):
        return Place(path, VIRTUAL)
    granted = ", ".join(g["prefix"] for g in prefixes) or "nothing"
    raise Refused(f"{path}/ is not shared with you (your S3 grants: {granted})")


def grant_children(path: str, prefixes: list[dict]) -> list[str]:
    """Names of the folders directly under ``path`` on the way to a granted prefix."""
    slashed = normalize(path) + "/" if normalize(path) else ""
    names = set()
    for g in prefixes:
        p = g["prefix"]
        if p.startswith(slashed) and p != slashed:
            names.add(p[len(slashed):].split("/", 1)[0])
    return sorted(names)


def hidden_children(path: str, denied: list[str]) -> set[str]:
    """Names directly under ``path`` that are restricted prefixes (left out of listings)."""
    slashed = normalize(path) + "/" if normalize(path) else ""
    return {d[len(slashed):].split("/", 1)[0] for d in denied
            if d.startswith(slashed) and d[len(slashed):].count("/") == 1}


def join(directory: str, name: str) -> str:
    """``directory/name`` as a drive path."""
    return normalize(posixpath.join(normalize(directory), name))
