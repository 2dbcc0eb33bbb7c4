"""A warm pod's agent: imports a user server ahead of demand, then becomes one person's server, once.

Runs as the first process of a warm pod (:func:`labdeck.spawner.kube.warmpods.make_pool_pod`),
as uid 0 holding only ``CAP_SETUID`` and ``CAP_SETGID`` under ``no_new_privs``: it can
change its uid, and nothing else root can do (no ``DAC_OVERRIDE``: it cannot read
a home that is not its own; no ``CHOWN``/``FOWNER``: it cannot take one over).

1. At start it checks the homes volume's root (owned by root, mode 1733: anyone may
   create a directory, nobody may list or remove another's; it sets that mode when
   the root is its own and refuses to serve otherwise), that the pod was never
   claimed (labdeck's files directory is empty), reads its claim key (a file
   only uid 0 may read) and imports what ``jupyterhub-singleuser`` imports
   (:data:`labdeck.spawner.userserver.singleuser.PREIMPORTS`).
2. It serves ``GET /ready`` and ``POST /claim`` on the claim port, **one request at
   a time** (each with a 5 s socket timeout). A claim must carry the key of *this*
   pod (``Authorization: Bearer``, compared in constant time) and a well-formed
   message (:func:`labdeck.spawner.kube.warmpods.check_claim`); a wrong key (403) or a
   bad message (400) changes nothing and the pod stays free.
3. The first good claim closes the listener (a second claim finds nothing to talk
   to), sets ``no_new_privs`` itself, drops to the person's gid with no
   supplementary groups, writes labdeck's files (the token file among them: owned by
   root and the person's group, 0440, in a directory only root changes - as a cold
   pod's Secret mount), drops to the person's uid (the kernel then clears every
   capability), creates or
   checks the home (a directory owned by that uid, nobody else's bits set, not a
   symlink; anything else - a squatted name - refuses the claim), enters it with
   umask 077, takes the pod's environment plus the person's, answers ``OK`` and
   runs the server in this process (``labdeck-singleuser``: onboarding, then the
   server) or execs the command (any other ``cmd``).

A failure after the drop answers ``ER <reason>`` (never the message's content) and
exits: the pod is no one's any more, and the hub deletes it.
"""

from __future__ import annotations

import argparse
import gc
import hmac
import json
import os
import stat
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlsplit, urlunsplit

from labdeck.spawner.kube import warmpods

MAX_BODY = 1 << 20
#: commands the agent runs in its own process (what it imported); others are exec'd
IN_PROCESS = ("labdeck-singleuser",)
PR_SET_NO_NEW_PRIVS = 38


class Refused(Exception):
    """A claim this agent refuses before anything changed (the pod stays free)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def prepare_homes_root(homes: str) -> None:
    """Make the homes root 1733 and owned by root, or refuse to serve (a volume prepared otherwise is unsafe)."""
    st = os.lstat(homes)
    if not stat.S_ISDIR(st.st_mode):
        raise SystemExit(f"podagent: {homes} is not a directory")
    if stat.S_IMODE(st.st_mode) != warmpods.HOMES_MODE:
        if st.st_uid != os.geteuid():
            raise SystemExit(f"podagent: {homes} has mode {stat.S_IMODE(st.st_mode):o}, not 1733, and is not ours to change")
        os.chmod(homes, warmpods.HOMES_MODE)
    if os.stat(homes).st_uid != 0:
        raise SystemExit(f"podagent: {homes} must be owned by root (a person owning it could list or remove every home)")


def check_unused(files_dir: str) -> None:
    """Serve only in a pod nobody used: labdeck's files are written at a claim, so any file here means one
    happened (an agent started again in a claimed pod) - never offer that pod to anyone."""
    if os.listdir(files_dir):
        raise SystemExit(f"podagent: {files_dir} is not empty: this pod was claimed before; not serving")


def bind_url(url: str, bind: str) -> str:
    """``JUPYTERHUB_SERVICE_URL`` with the pod's own listen address where the hub wrote the wildcard."""
    parts = urlsplit(url)
    if parts.hostname not in ("0.0.0.0", "", None) or bind == "0.0.0.0":
        return url
    netloc = bind + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def write_files(files_dir: str, files: dict) -> None:
    """labdeck's files (the API token file among them), as a cold pod's Secret mount has them: owned by root
    and the person's group (the process's gid by now), mode 0440, in a directory only root may change."""
    os.chmod(files_dir, 0o755)
    for name, content in files.items():
        path = os.path.join(files_dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.chmod(path, 0o440)


def no_new_privs() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def drop_group(gid: int) -> None:
    """To the person's gid, no supplementary groups (still uid 0: files written now are root's, in their group)."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)


def drop(uid: int, gid: int) -> None:
    """To the person's uid; every capability goes with uid 0."""
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise PermissionError("could not drop to the person's uid")
    from labdeck.spawner.userserver.zygote import _set_dumpable

    _set_dumpable()  # what an exec as the person would leave: their own process is theirs to inspect


def enter_home(home: str, uid: int) -> None:
    """Create the home (0700, as the person) or check it is theirs alone; never follow a link."""
    try:
        os.mkdir(home, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(home)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise PermissionError("the home exists and is not this person's alone")
    os.chdir(home)
    if os.stat(".").st_ino != st.st_ino:
        raise PermissionError("the home changed while entering it")


def become(msg: dict, *, files_dir: str, bind: str) -> None:
    """Everything personal, in order: files (as root), no_new_privs, uid drop, home, environment."""
    no_new_privs()
    drop_group(msg["gid"])
    write_files(files_dir, msg["files"])
    drop(msg["uid"], msg["gid"])
    os.umask(msg["umask"])
    enter_home(msg["home"], msg["uid"])
    from labdeck.spawner.userserver.zygote import IMPORT_ENV_CHANGES

    env = {**os.environ, **msg["env"], "HOME": msg["home"]}
    for key, value in IMPORT_ENV_CHANGES.items():  # what the imports did to a cold server's environment
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    if "JUPYTERHUB_SERVICE_URL" in env:
        env["JUPYTERHUB_SERVICE_URL"] = bind_url(env["JUPYTERHUB_SERVICE_URL"], bind)
    os.environ.clear()
    os.environ.update(env)
    import tempfile

    tempfile.tempdir = None


class Agent:
    """The claim endpoint of one warm pod (:meth:`serve` returns the claim it accepted)."""

    def __init__(self, key: str, *, bind: str, port: int, homes: str, files_dir: str, min_uid: int):
        if len(key) < 32:
            raise SystemExit("podagent: the claim key is missing or too short")
        self.key = key.encode()
        self.bind, self.homes, self.files_dir, self.min_uid = bind, homes, files_dir, min_uid
        self.claimed: dict | None = None
        agent = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # a client that never finishes its request cannot hold the pod

            def log_message(self, fmt, *args):  # no request lines (no header, no body) in the pod's log
                pass

            def do_GET(self):
                self._answer(200 if self.path == "/ready" else 404, b"ready" if self.path == "/ready" else b"")

            def do_POST(self):
                if self.path != "/claim":
                    return self._answer(404, b"")
                try:
                    msg = agent.check(self.headers.get("Authorization", ""), self._body())
                except Refused as e:
                    return self._answer(e.status, f"ER {e}".encode())
                agent.claimed = msg  # from here on, no other claim is heard
                agent.server.socket.close()
                try:
                    become(msg, files_dir=agent.files_dir, bind=agent.bind)
                except Exception as e:  # the pod is nobody's now: say why (never the message), exit
                    self._answer(500, f"ER {type(e).__name__}".encode())
                    self.wfile.flush()
                    os._exit(1)
                self._answer(200, b"OK")

            def _body(self) -> bytes:
                try:
                    n = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    raise Refused(411, "length required") from None
                if not 0 < n <= MAX_BODY:
                    raise Refused(413, "claim too large")
                return self.rfile.read(n)

            def _answer(self, status: int, body: bytes):
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

        self.server = HTTPServer((bind, port), Handler, bind_and_activate=True)

    def check(self, authorization: str, body: bytes) -> dict:
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(token.strip().encode(), self.key):
            raise Refused(403, "not this pod's key")
        try:
            msg = json.loads(body)
        except ValueError:
            raise Refused(400, "not JSON") from None
        try:
            warmpods.check_claim(msg, self.homes, self.min_uid)
        except warmpods.ClaimError as e:
            raise Refused(400, str(e)) from None
        return msg

    def serve(self) -> dict:
        """Answer requests, one at a time, until one claim is accepted and applied."""
        while self.claimed is None:
            self.server.handle_request()
        return self.claimed


def run_claimed(msg: dict) -> int:
    """The person's server: in this process for labdeck's command (what was imported), else exec."""
    argv = msg["argv"]
    if os.path.basename(argv[0]) in IN_PROCESS:
        from labdeck.spawner import onboarding
        from labdeck.spawner.userserver import singleuser

        onboarding.prepare_home()  # what labdeck-singleuser does before it execs the server
        return singleuser.run(argv[1:])
    os.execvp(argv[0], argv)
    return 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="labdeck warm pod agent (started by the hub's warm pool)")
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--claim-port", type=int, required=True)
    ap.add_argument("--homes", required=True)
    ap.add_argument("--files-dir", required=True)
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--min-uid", type=int, default=warmpods.MIN_UID)
    args = ap.parse_args(argv)
    prepare_homes_root(args.homes)
    check_unused(args.files_dir)
    with open(args.key_file) as f:
        key = f.read().strip()
    from labdeck.spawner.userserver import lazyimports, singleuser
    from labdeck.spawner.userserver.zygote import record_import_env_changes

    lazyimports.install()
    before = dict(os.environ)
    singleuser.preimport()
    record_import_env_changes(before)
    os.environ.clear()
    os.environ.update(before)  # the imports' changes are applied to the person's environment at claim
    gc.collect()
    # listening means imported: GET /ready answers only now
    agent = Agent(key, bind=args.bind, port=args.claim_port, homes=args.homes, files_dir=args.files_dir, min_uid=args.min_uid)
    del key
    print("podagent: ready for a claim", flush=True)
    msg = agent.serve()
    agent.key = b""
    return run_claimed(msg)


if __name__ == "__main__":
    sys.exit(main())
