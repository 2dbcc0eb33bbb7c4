"""The clean vanilla install the benchmarks compare against: its own venv, nothing but PyPI's pins.

``~/.cache/labdeck/bench/vanilla-venv`` (``LABDECK_CACHE`` moves ``~/.cache/labdeck``)
holds JupyterHub and JupyterLab installed from the package index by pip with the
pins below and *nothing else* — no labdeck, no extensions, none of labdeck's
requirement files or overrides. It is created when missing and rebuilt when its
stamp (the pins and the base interpreter) differs, so ``bench/`` always measures a
fresh ``pip install jupyterhub jupyterlab`` as a team would have it. A venv cannot be
built elsewhere and renamed (its scripts name its path), so two benchmarks at once take
a lock (``vanilla-venv.lock``, flock) and the second finds the first's venv ready.

``python bench/vanilla_venv.py`` (or ``make bench-vanilla``) builds it and prints its path.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: what a team would install instead of labdeck (the versions labdeck itself runs)
PINS = ["jupyterhub==6.1.1", "jupyterlab==4.6.6"]


def cache_dir() -> Path:
    return Path(os.environ.get("LABDECK_CACHE", Path.home() / ".cache" / "labdeck"))


def venv_dir() -> Path:
    return cache_dir() / "bench" / "vanilla-venv"


def _base_python() -> str:
    # the interpreter labdeck's venv was made from (same CPython for both sides)
    return getattr(sys, "_base_executable", None) or sys.executable


def _stamp_data() -> dict:
    return {"pins": PINS, "python": _base_python(), "version": sys.version.split()[0]}


def python() -> Path:
    return venv_dir() / "bin" / "python"


def ensure(quiet: bool = True) -> Path:
    """Create (or rebuild) the vanilla venv if needed; return its ``bin`` directory."""
    venv_dir().parent.mkdir(parents=True, exist_ok=True)
    with open(venv_dir().with_name("vanilla-venv.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_locked(quiet)


def _ensure_locked(quiet: bool) -> Path:
    d = venv_dir()
    stamp = d / ".labdeck-bench-stamp"
    want = _stamp_data()
    try:
        if json.loads(stamp.read_text()) == want and python().exists():
            return d / "bin"
    except (OSError, ValueError):
        pass
    if d.exists():
        shutil.rmtree(d)
    d.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([want["python"], "-m", "venv", str(d)], check=True)
    q = ["--quiet"] if quiet else []
    # no constraints, no labdeck files: only what the pins pull in from the index
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_CONSTRAINT", "PYTHONPATH")}
    subprocess.run([str(python()), "-m", "pip", "install", *q, "--upgrade", "pip>=24"], check=True, env=env)
    subprocess.run([str(python()), "-m", "pip", "install", *q, "--isolated", *PINS], check=True, env=env)
    stamp.write_text(json.dumps(want))
    return d / "bin"


if __name__ == "__main__":
    print(ensure(quiet=False))
