"""The Python environment user servers run in when they run as OS users.

A person's server (uid ``labdeck-alice``) must be able to execute the
interpreter and read labdeck's packages. When this virtualenv's interpreter
is reachable by every user (``/usr/bin/python3.11``, ``/opt/...``), servers
use it as it is. When it is not — typically ``make up`` as root with a Python
under ``/root`` (mode 0700) — :func:`ensure_server_env` builds a small
environment in the state directory (``server-env/``): a virtualenv of a
reachable interpreter of the same version (same ABI) whose ``.pth`` adds this
virtualenv's ``site-packages``, with this virtualenv's ``share``/``etc``
(JupyterLab, kernelspecs, server extensions) linked and its console scripts
re-pointed at the new interpreter. Rebuilt when its inputs change.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

STAMP = "labdeck-server-env.json"


def reachable_by_others(path: str) -> bool:
    """True if a user with no relation to the owner can reach ``path`` (x on every directory, r or x on the file)."""
    real = os.path.realpath(path)
    parts = Path(real).parents
    for d in parts:
        try:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IROTH | stat.S_IXOTH))


def candidates(version: tuple[int, int]) -> list[str]:
    v = f"{version[0]}.{version[1]}"
    return [os.path.realpath(sys.executable), f"/usr/local/bin/python{v}", f"/usr/bin/python{v}"]


def _python_version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"], capture_output=True, text=True, timeout=30)
        major, minor = out.stdout.split()
        return int(major), int(minor)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def reachable_python(version: tuple[int, int]) -> str | None:
    """A Python of ``version`` every user can run: this one, or the system's (same ABI), or None."""
    return next((c for c in candidates(version) if os.path.exists(c) and reachable_by_others(c) and _python_version(c) == version), None)


def ensure_server_env(target: Path, prefix: str = sys.prefix, error=RuntimeError) -> str:
    """The ``bin`` directory user servers run from (see the module docstring)."""
    site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    here_bin = os.path.join(prefix, "bin")
    if reachable_by_others(sys.executable) and all(reachable_by_others(p) for p in (*site, here_bin)):
        return here_bin
    for p in (*site, here_bin):
        if not reachable_by_others(p):
            raise error(
                f"OS users cannot read {p}: install labdeck where every user can read it (e.g. under /opt), "
                "or set LABDECK_OS_USERS=0 (servers then run as root, not isolated)"
            )
    version = sys.version_info[:2]
    base = reachable_python(version)
    if base is None:
        raise error(
            f"OS users cannot run this Python ({os.path.realpath(sys.executable)}: a directory above it is private) and no "
            f"Python {version[0]}.{version[1]} they can run was found in /usr/local/bin or /usr/bin. Install one "
            "(e.g. apt-get install python3), or set LABDECK_OS_USERS=0 (servers then run as root, not isolated)"
        )
    # rebuilt when the interpreter, the packages' location or the set of scripts changes (an upgrade adds commands)
    scripts = sorted(p.name for p in Path(prefix, "bin").iterdir())
    wanted = {"base": base, "prefix": prefix, "site": site, "version": list(version), "scripts": scripts}
    stamp = target / STAMP
    try:
        if json.loads(stamp.read_text()) == wanted and (target / "bin" / "python").exists():
            return str(target / "bin")
    except (OSError, ValueError):
        pass
    build(target, base, prefix, site)
    stamp.write_text(json.dumps(wanted))
    return str(target / "bin")


def build(target: Path, base: str, prefix: str, site: list[str]) -> None:
    old = os.umask(0o022)  # readable and executable by every user
    try:
        _build(target, base, prefix, site)
    finally:
        os.umask(old)


def _build(target: Path, base: str, prefix: str, site: list[str]) -> None:
    if target.exists():
        shutil.rmtree(target)
    subprocess.run([base, "-m", "venv", "--without-pip", str(target)], check=True, capture_output=True, timeout=120)
    os.chmod(target, 0o755)
    purelib = subprocess.run(
        [str(target / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in dict.fromkeys(site))
    Path(purelib, "labdeck-server-env.pth").write_text(lines)
    for name in ("share", "etc"):
        src = Path(prefix, name)
        if src.exists() and not (target / name).exists():
            (target / name).symlink_to(src)
    repoint_scripts(Path(prefix, "bin"), target / "bin", os.path.join(prefix, "bin", "python"), str(target / "bin" / "python"))


def repoint_scripts(src_bin: Path, dst_bin: Path, old_python: str, new_python: str, place=None) -> None:
    """Fill ``dst_bin`` with ``src_bin``'s commands: scripts whose ``#!`` names ``old_python`` are
    rewritten to ``new_python``; other files are placed by ``place(src, dst)`` (default: a symlink).
    The interpreter, pip and activation scripts are left out (``dst_bin`` has its own)."""
    for entry in sorted(src_bin.iterdir()):
        if entry.name.startswith(("python", "activate", "Activate", "pip")) or (dst_bin / entry.name).exists():
            continue
        dest = dst_bin / entry.name
        try:
            head = entry.read_bytes()[:200_000] if entry.is_file() and entry.stat().st_size < 200_000 else b""
        except OSError:
            continue
        if head.startswith(b"#!") and old_python.encode() in head[:1000]:
            dest.write_bytes(head.replace(old_python.encode(), new_python.encode()))
            os.chmod(dest, 0o755)
        elif entry.is_file():
            if place is None:
                dest.symlink_to(entry.resolve())
            else:
                place(str(entry.resolve()), dest)
