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

#: how the hub names labdeck's own welcome directory to a pod: the pod's labdeck
#: may be installed elsewhere than the hub's (another image, another Python)
DEFAULT_DIR_MARKER = "@labdeck-welcome"


def default_onboarding_dir() -> str:
    return str(Path(__file__).resolve().parent / "welcome")


def dirs_env_value(dirs: list[str], default_dir: str | None = None) -> str:
    """``LABDECK_ONBOARDING_DIRS`` for a pod: ``dirs`` in order, the hub's default as :data:`DEFAULT_DIR_MARKER`.

    The admin's directories are paths inside the user image; the hub's own
    welcome directory is replaced by the marker, which the pod resolves to its
    own copy (:func:`dirs_from_env`).
    """
    default_dir = default_dir or default_onboarding_dir()
    out = []
    for d in dirs:
        if os.pathsep in d:
            raise ValueError(f"onboarding directory {d!r} contains {os.pathsep!r}, which separates directories")
        out.append(DEFAULT_DIR_MARKER if os.path.normpath(d) == os.path.normpath(default_dir) else d)
    return os.pathsep.join(out)


def dirs_from_env(value: str | None) -> list[str]:
    """The directories a pod copies from: ``value`` split, the marker resolved; unset means labdeck's default only."""
    if value is None:
        return [default_onboarding_dir()]
    return [default_onboarding_dir() if d == DEFAULT_DIR_MARKER else d for d in value.split(os.pathsep) if d]


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
    sources = argv or dirs_from_env(os.environ.get(contract.ENV_ONBOARDING_DIRS))
    copied = copy_missing(sources, os.environ.get("HOME", os.getcwd()))
    for rel in copied:
        print(f"labdeck: added {rel} to your home")
    return 0


def singleuser_main(argv=None) -> None:
    """``labdeck-singleuser``: onboarding and the home's SDK files, then ``exec labdeck-server`` (``jupyterhub-singleuser`` without
    the wasted imports; ``jupyterhub-singleuser`` itself where it is missing) with the same arguments."""
    argv = sys.argv[1:] if argv is None else argv
    prepare_home()
    # labdeck-server: jupyterhub-singleuser without the wasted imports (labdeck.spawner.userserver.singleuser)
    exe = next((e for e in (shutil.which(n) for n in ("labdeck-server", "jupyterhub-singleuser")) if e), None)
    exe = exe or os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")
    os.execv(exe, [exe, *argv])


def prepare_home() -> None:
    """What a pod does in the home before its server starts: onboarding files, then the SDK files at their
    default paths (``labdeck-singleuser``, and a warm pod's agent after its claim: :mod:`labdeck.spawner.kube.podagent`)."""
    try:
        main([])
    except OSError as e:  # a read-only or full home must not keep the server from starting
        print(f"labdeck: onboarding skipped: {e}", file=sys.stderr)
    files_dir = os.environ.get(contract.ENV_FILES_DIR, "")
    if files_dir:
        # the SDK wiring at its default paths (~/.aws/config, Google's ADC, ~/.Renviron), for RStudio and clean-env processes
        from labdeck.spawner import homefiles

        try:
            homefiles.install_from_dir(files_dir, os.environ.get("HOME", os.getcwd()))
        except (OSError, ValueError) as e:
            print(f"labdeck: SDK files in the home skipped: {e}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
