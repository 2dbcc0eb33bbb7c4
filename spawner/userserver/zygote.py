"""The warm pool's zygote: a process that has imported a user server but belongs to nobody.

Started by :mod:`labdeck.spawner.local.warmpool` as ``python -P -s -m
labdeck.spawner.userserver.zygote --control-fd N`` with an environment that holds nothing
personal. It imports what ``jupyterhub-singleuser`` imports
(:data:`labdeck.spawner.userserver.singleuser.PREIMPORTS`), loads the data every server loads
the same way (:func:`~labdeck.spawner.userserver.singleuser.prewarm`), freezes the heap for cheap
copy-on-write forks and then serves the hub over the control socket:

- the hub sends ``F`` with one end of a fresh socket pair (``SCM_RIGHTS``);
  the zygote forks and answers ``P <pid>``. The zygote never sees a person's
  data: the identity goes from the hub to the child over that socket only,
  so nothing personal is ever in the memory that later children copy.
- the child waits on its socket for one identity message
  (:func:`encode_identity`): argv, environment, working directory, and for
  OS users uid/gid/groups, for limits the cgroups to join. It joins them, drops to the uid, enters the directory, replaces
  its whole environment, answers ``OK`` and runs the server
  (:func:`labdeck.spawner.userserver.singleuser.run`) in the same process - the same code a
  cold start execs. If the hub goes away first (EOF) it exits.
- the zygote reaps its children (``SIGCHLD``), so the hub's ``kill(pid, 0)``
  poll sees a stopped server as gone; it exits when the control socket closes.

Pure parts (message framing, identity checks) are plain functions, tested in
``tests/spawner/test_warmpool.py``.
"""

from __future__ import annotations

import argparse
import errno
import gc
import json
import os
import signal
import socket
import struct
import sys

#: identity keys a claim may carry
IDENTITY_KEYS = {"argv", "env", "cwd", "uid", "gid", "groups", "umask", "sys_path0", "cgroup_procs"}
#: where a claim may ask a member to join its cgroups (labdeck.spawner.local.cgroups)
CGROUP_ROOT = "/sys/fs/cgroup/"
MAX_MESSAGE = 1 << 20
#: linux/prctl.h (Linux 6.4+): mark every anonymous page of this process, and of its children, for KSM
PR_SET_MEMORY_MERGE = 67


class IdentityError(ValueError):
    """A malformed identity message (the child refuses it and exits)."""


def encode_identity(identity: dict) -> bytes:
    """Frame one identity message: 4-byte big-endian length + JSON."""
    check_identity(identity)
    body = json.dumps(identity, separators=(",", ":")).encode()
    return struct.pack(">I", len(body)) + body


def decode_frame(data: bytes) -> dict:
    """The inverse of :func:`encode_identity` for one complete frame."""
    if len(data) < 4:
        raise IdentityError("truncated identity message")
    (n,) = struct.unpack(">I", data[:4])
    if n > MAX_MESSAGE or len(data) != 4 + n:
        raise IdentityError("identity message has the wrong length")
    try:
        identity = json.loads(data[4:])
    except ValueError:
        raise IdentityError("identity message is not JSON") from None
    check_identity(identity)
    return identity


def check_identity(identity) -> None:
    """Refuse anything but a well-formed identity (types checked, unknown keys rejected)."""
    if not isinstance(identity, dict):
        raise IdentityError("identity must be an object")
    unknown = set(identity) - IDENTITY_KEYS
    if unknown:
        raise IdentityError(f"unknown identity keys: {sorted(unknown)}")
    argv, env, cwd = identity.get("argv"), identity.get("env"), identity.get("cwd")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise IdentityError("argv must be a list of strings")
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise IdentityError("env must map strings to strings")
    if any("=" in k or "\0" in k or "\0" in v or not k for k, v in env.items()):
        raise IdentityError("env has an invalid name or value")
    if not isinstance(cwd, str) or not os.path.isabs(cwd):
        raise IdentityError("cwd must be an absolute path")
    for key in ("uid", "gid"):
        val = identity.get(key)
        if val is not None and (not isinstance(val, int) or isinstance(val, bool) or val < 0):
            raise IdentityError(f"{key} must be a non-negative integer")
    umask = identity.get("umask")
    if umask is not None and (not isinstance(umask, int) or isinstance(umask, bool) or not 0 <= umask <= 0o777):
        raise IdentityError("umask must be an integer between 0 and 0o777")
    if (identity.get("uid") is None) != (identity.get("gid") is None):
        raise IdentityError("uid and gid go together")
    groups = identity.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in groups):
        raise IdentityError("groups must be a list of non-negative integers")
    procs = identity.get("cgroup_procs") or []
    if not isinstance(procs, list) or not all(
        isinstance(p, str) and p.startswith(CGROUP_ROOT) and p.endswith("/cgroup.procs") and "/../" not in p and "\0" not in p for p in procs
    ):
        raise IdentityError(f"cgroup_procs must be cgroup.procs files under {CGROUP_ROOT}")


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _set_dumpable() -> None:
    """After setuid the kernel marks a process non-dumpable (its /proc files owned by root);
    an exec would reset that, so do what the exec would have done."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
    except Exception:
        pass


#: what the zygote's imports did to its environment (``nbdime`` sets ``GIT_PYTHON_REFRESH``):
#: a cold server's imports do the same to *its* environment, so a claimed one gets it too
IMPORT_ENV_CHANGES: dict[str, str | None] = {}


def record_import_env_changes(before: dict) -> dict:
    """Variables the imports set (value) or removed (None), relative to ``before``."""
    changes: dict[str, str | None] = {k: v for k, v in os.environ.items() if before.get(k) != v}
    changes.update({k: None for k in before if k not in os.environ})
    IMPORT_ENV_CHANGES.clear()
    IMPORT_ENV_CHANGES.update(changes)
    return changes


def become(identity: dict) -> None:
    """Turn this (forked, nobody's) process into the person's: uid, directory, environment."""
    import tempfile

    for path in identity.get("cgroup_procs") or []:
        # join the server's cgroups while still the zygote's user: everything the server starts is in them
        with open(path, "w") as f:
            f.write(str(os.getpid()))
    if identity.get("uid") is not None:
        os.setgroups(list(identity.get("groups") or []))
        os.setgid(identity["gid"])
        os.setuid(identity["uid"])
        if os.getuid() != identity["uid"] or os.geteuid() != identity["uid"]:
            raise PermissionError("could not drop to the person's uid")
        _set_dumpable()
    if identity.get("umask") is not None:
        os.umask(identity["umask"])
    os.chdir(identity["cwd"])
    os.environ.clear()
    os.environ.update(identity["env"])
    for key, value in IMPORT_ENV_CHANGES.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    tempfile.tempdir = None
    if identity.get("sys_path0"):
        sys.path[0] = identity["sys_path0"]
    redo_identity_imports()


def redo_identity_imports() -> list[str]:
    """Redo, as the person, what modules computed at import from who imported them (home, uid).

    In the zygote that was nobody's: ``send2trash.plat_other`` keeps the trash folders of
    ``$XDG_DATA_HOME`` (or ``~/.local/share``) and the importing uid (jupyter-server's delete moves
    files there: as the zygote's, a person's delete failed or went to the zygote's trash), and
    ``fsspec.config`` reads ``~/.config/fsspec`` (or ``$FSSPEC_CONFIG_DIR``) and ``FSSPEC_*``.
    Returns the modules redone (those imported).
    """
    import importlib

    done = []
    trash = sys.modules.get("send2trash.plat_other")
    if trash is not None:
        # constants and functions only; reload keeps the module's dict, so the functions that
        # others imported by name (jupyter-server's ``send2trash``) read the new values
        importlib.reload(trash)
        done.append(trash.__name__)
    fsconf = sys.modules.get("fsspec.config")
    if fsconf is not None:
        # fsspec.config's own import-time lines, into the same dict (fsspec.core and .spec imported ``conf`` by name)
        fsconf.default_conf_dir = os.path.join(os.path.expanduser("~"), ".config/fsspec")
        fsconf.conf_dir = os.environ.get("FSSPEC_CONFIG_DIR", fsconf.default_conf_dir)
        fsconf.conf.clear()
        fsconf.set_conf_files(fsconf.conf_dir, fsconf.conf)
        fsconf.set_conf_env(fsconf.conf)
        done.append(fsconf.__name__)
    return done


def _child(channel: socket.socket) -> int:
    """Runs in the forked child: wait for the identity, become the person, run the server."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    gc.enable()  # the zygote imported with the collector off (see main)
    os.setsid()  # like Popen(start_new_session=True): the hub's signals are not ours
    os.closerange(3, channel.fileno())
    os.closerange(channel.fileno() + 1, 1 << 16)
    try:
        (n,) = struct.unpack(">I", recv_exact(channel, 4))
        if n > MAX_MESSAGE:
            raise IdentityError("identity message too large")
        identity = decode_frame(struct.pack(">I", n) + recv_exact(channel, n))
        become(identity)
    except EOFError:
        return 0  # the hub let this pool member go
    except Exception as e:  # refuse, say why (no identity content in the reason), exit
        try:
            channel.sendall(f"ER {type(e).__name__}".encode())
        except OSError:
            pass
        return 1
    channel.sendall(b"OK")
    channel.close()
    from labdeck.spawner.userserver.singleuser import run

    return run(identity["argv"])


def _reap(signum, frame) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(control: socket.socket) -> None:
    """The zygote's loop: one ``F`` (with a socket) → one child; EOF → exit."""
    signal.signal(signal.SIGCHLD, _reap)
    control.sendall(b"R\n")  # imported, ready to fork
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(control, 16, 1)
        except InterruptedError:
            continue
        if not msg:
            return
        if msg[:1] != b"F" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            continue
        channel = socket.socket(fileno=fds[0])
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                control.close()
                code = _child(channel)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                try:
                    import atexit

                    atexit._run_exitfuncs()  # what a normal exit of a cold server runs
                except BaseException:
                    pass
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code or 0)
        channel.close()
        control.sendall(f"P {pid}\n".encode())


def mark_mergeable() -> str:
    """Mark this process and the children it forks for the kernel's same-page merging; '' or why not.

    See :mod:`labdeck.spawner.local.pagemerge`: only marked processes' pages are scanned and
    merged, with each other.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) == 0:
        return ""
    err = ctypes.get_errno()
    return f"{os.strerror(err)} (Linux 6.4 or later with KSM is needed)" if err == errno.EINVAL else os.strerror(err)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="labdeck warm-pool zygote (started by the hub)")
    ap.add_argument("--control-fd", type=int, required=True)
    ap.add_argument("--merge-pages", action="store_true", help="mark the servers for same-page merging (KSM)")
    args = ap.parse_args(argv)
    control = socket.socket(fileno=args.control_fd)
    # Python's advice for fork without exec (gc.freeze): no collections in the parent - a collection
    # frees objects between the imported ones, and a child's first allocations would fill those
    # holes, copying the pages - then freeze before forking, and enable the collector in the child
    gc.disable()
    from labdeck.spawner.userserver import lazyimports, singleuser

    lazyimports.install()
    before = dict(os.environ)
    singleuser.preimport()
    singleuser.prewarm()
    record_import_env_changes(before)
    gc.freeze()  # keep the imported heap shared between children (copy-on-write): their collections skip it
    if args.merge_pages:
        why_not = mark_mergeable()
        if why_not:
            print(f"labdeck zygote: servers are not marked for same-page merging: {why_not}", file=sys.stderr, flush=True)
    serve(control)


if __name__ == "__main__":
    main()
