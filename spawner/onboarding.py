"""Onboarding files: copied into a user's home on first start, never overwriting.

Used by the local spawner from the hub process, and by ``labdeck-onboard`` inside
a Kubernetes pod (its home is a volume only the pod sees). Admins replace or
extend the files with ``LabdeckSpawnerMixin.onboarding_dirs``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from labdeck.hub import contract

def default_onboarding_dir() -> str:
    return str(Path(__file__).resolve().parent / "welcome")


def plan(sources: list[str]) -> dict[str, Path]:
    """Relative path → source file, later directories overriding earlier ones; hidden files skipped."""
    files: dict[str, Path] = {}
    for src in sources:
        root = Path(src)
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and not any(part.startswith(".") for part in rel.parts):
                files[str(rel)] = path
    return files


def copy_missing(sources: list[str], home: str) -> list[str]:
    """Copy every planned file that does not exist in ``home`` yet; return what was copied."""
    home_path = Path(home).resolve()
    copied = []
    for rel, src in plan(sources).items():
        dest = (home_path / rel).resolve()
        if home_path not in dest.parents:
            continue  # never write outside the home
        if dest.exists() or dest.is_symlink():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)
        copied.append(rel)
    return copied


def main(argv=None) -> int:
    """``labdeck-onboard [DIR ...]``: copy onboarding files into $HOME (pods run this before the server)."""
    argv = sys.argv[1:] if argv is None else argv
    sources = argv or os.environ.get(contract.ENV_ONBOARDING_DIRS, default_onboarding_dir()).split(os.pathsep)
    copied = copy_missing(sources, os.environ.get("HOME", os.getcwd()))
    for rel in copied:
        print(f"labdeck: added {rel} to your home")
    return 0


def singleuser_main(argv=None) -> None:
    """``labdeck-singleuser``: onboarding, then ``exec jupyterhub-singleuser`` with the same arguments."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        main([])
    except OSError as e:  # a read-only or full home must not keep the server from starting
        print(f"labdeck: onboarding skipped: {e}", file=sys.stderr)
    exe = shutil.which("jupyterhub-singleuser") or os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")
    os.execv(exe, [exe, *argv])


if __name__ == "__main__":
    sys.exit(main())
