"""The chart's images on this machine: this checkout's venv, where every pod and every uid can run it.

A real image keeps its interpreter at ``/usr/local/bin/python`` whatever a pod mounts and
whatever uid it runs as. The harness's stand-in for the hub image (hub, broker, runs, viewer)
and the user image is this venv, and a venv is neither:

- **where**: a checkout under ``/tmp`` (a CI clone) disappears inside a pod that mounts an
  emptyDir at ``/tmp`` (the chart's runs and viewer do): ``exec: python: not found``;
- **who**: the venv's ``python`` is a symlink to the Python that made it, typically pyenv's
  under ``/root`` (mode 0700), which uid 1000 cannot execute; an editable install points into
  the checkout, which another uid may not be able to read either.

:func:`ensure_image` builds an image root that has neither problem, in a cache outside
``/root`` and ``/tmp`` (``/var/cache/labdeck/harness-image`` as root; ``$LABDECK_IMAGE_CACHE``
overrides): ``venv/`` is this venv with its interpreter re-pointed at the Python that made it,
where every user can run it (itself where reachable, else a copy of its installation in
``python/``: :func:`labdeck.hub.local.serverenv.portable_python`, as OS users' servers get),
its console scripts re-pointed, and its editable labdeck re-pointed at ``src/``,
a copy of labdeck's packages made at every build; ``node_modules/`` is the proxy image's.
Files are hard links where the file system allows and the file is readable by everyone
(copies otherwise), so a build takes seconds and little space. The heavy part is rebuilt when
the venv's install stamp changes; ``src/`` on every call. Nothing outside the cache changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from labdeck.hub.local.serverenv import link_file, link_tree, portable_python, repoint_scripts

ROOT = Path(__file__).resolve().parents[2]
def _package_folders() -> tuple[str, ...]:
    """The top-level folders labdeck's import packages live in (pyproject's package-dir)."""
    import tomllib

    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values()
    return tuple(sorted({d.split("/")[0] for d in dirs}))


#: labdeck's import packages' folders, copied into every image
PACKAGES = _package_folders()
STAMP = "labdeck-harness-image.json"
#: bumped when the image's layout changes (older images are rebuilt)
LAYOUT = "4"


def cache_dir() -> Path:
    """Where images are kept: outside ``/root`` (other uids) and ``/tmp`` (pods mount over it)."""
    if os.environ.get("LABDECK_IMAGE_CACHE"):
        return Path(os.environ["LABDECK_IMAGE_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/labdeck/harness-image")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labdeck" / "harness-image"


def _key(prefix: str) -> str:
    stamp = Path(prefix, ".labdeck-installed")
    parts = [LAYOUT, prefix, os.path.realpath(sys._base_executable), str(stamp.stat().st_mtime_ns) if stamp.exists() else "", Path(prefix, "pyvenv.cfg").read_text()]
    node = ROOT / "node_modules" / ".package-lock.json"
    parts.append(str(node.stat().st_mtime_ns) if node.exists() else "")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


class Image:
    """An image root built by :func:`ensure_image`: ``bin`` (the venv's), ``node_bin`` (the proxy's)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = str(root / "venv" / "bin")
        self.python = str(root / "venv" / "bin" / "python")
        self.node_bin = str(root / "node_modules" / ".bin")

    def env(self, *bins: str) -> dict[str, str]:
        """The image's ``ENV``: ``PATH`` with ``bins`` first."""
        return {"PATH": ":".join([*bins, "/usr/local/bin", "/usr/bin", "/bin"])}


def ensure_image(prefix: str = sys.prefix) -> Image:
    """Build (or reuse) the image root for this venv and refresh its copy of labdeck's source."""
    base = cache_dir()
    old = os.umask(0o022)
    try:
        base.mkdir(parents=True, exist_ok=True)
        root = base / _key(os.path.realpath(prefix))
        with open(base / ".lock", "a+") as lock:  # two harnesses of one checkout at once: one builds
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (root / STAMP).exists():
                _build(root, os.path.realpath(prefix))
                _prune(root)
            _refresh_source(root)
        return Image(root)
    finally:
        os.umask(old)


def _build(root: Path, prefix: str) -> None:
    tmp = root.with_name(root.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    os.chmod(tmp, 0o755)
    python = portable_python(tmp / "python")  # the very Python that made the venv, where every uid runs it
    if python.startswith(str(tmp) + os.sep):
        python = str(root / os.path.relpath(python, tmp))
    link_tree(Path(prefix), tmp / "venv", skip=("bin",))
    venv_bin = tmp / "venv" / "bin"
    venv_bin.mkdir()
    os.chmod(venv_bin, 0o755)
    for name in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        os.symlink(python, venv_bin / name)
    cfg = tmp / "venv" / "pyvenv.cfg"
    text = cfg.read_text()
    cfg.unlink()  # a hard link: never write through it into the checkout's venv
    cfg.write_text("".join(f"home = {os.path.dirname(python)}\n" if ln.startswith("home =") else ln + "\n" for ln in text.splitlines()))
    repoint_scripts(Path(prefix, "bin"), venv_bin, os.path.join(prefix, "bin", "python"), str(root / "venv" / "bin" / "python"), place=link_file)
    site = Path(sysconfig.get_paths(vars={"base": str(tmp / "venv"), "platbase": str(tmp / "venv")})["purelib"])
    for f in site.glob("__pycache__/__editable__*labdeck*"):
        f.unlink()
    for f in site.glob("__editable__*labdeck*"):  # labdeck from src/, not the checkout
        text = f.read_text()
        f.unlink()
        f.write_text(text.replace(repr(str(ROOT) + "/")[1:-1], str(root / "src") + "/"))
    node = ROOT / "node_modules"
    if node.is_dir():
        link_tree(node, tmp / "node_modules")
    (tmp / STAMP).write_text(json.dumps({"prefix": prefix, "python": python}))
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)


def _refresh_source(root: Path) -> None:
    """labdeck's packages as they are in the checkout now (every harness start)."""
    src = root / "src"
    new = root / "src.new"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    os.chmod(new, 0o755)
    for name in PACKAGES:
        shutil.copytree(ROOT / name, new / name, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    subprocess.run(["chmod", "-R", "a+rX", str(new)], check=True)
    shutil.rmtree(src, ignore_errors=True)
    new.rename(src)


def _prune(keep: Path) -> None:
    """Remove this venv's earlier images (another checkout's stay until its own next build)."""
    prefix = json.loads((keep / STAMP).read_text())["prefix"]
    for p in keep.parent.iterdir():
        if p != keep and (p / STAMP).exists():
            try:
                if json.loads((p / STAMP).read_text()).get("prefix") == prefix:
                    shutil.rmtree(p, ignore_errors=True)
            except (OSError, ValueError):
                continue
