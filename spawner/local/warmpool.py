"""The local spawner's warm pool: user servers forked ready-imported, given a person only when claimed.

One pool per *recipe* - the interpreter and the environment variables that
modules read at import time (:data:`IMPORT_TIME_ENV`). labdeck's local
profiles differ only in what a claim carries (default URL, environment), so
they share one pool; a profile with its own ``cmd`` or import-time
environment gets its own pool or, when the pool cannot reproduce what a cold
start would run (a wrapper command, ``shell_cmd``, ``popen_kwargs``), a cold
start. A pool is:

- a **zygote** (:mod:`labdeck.spawner.userserver.zygote`), started with an environment
  holding nothing personal, that has imported jupyter-server, JupyterLab and
  jupyterhub-singleuser once;
- up to ``size`` **members**: children forked from it ahead of demand, each
  blocked on its own socket, knowing nobody.

:meth:`WarmPool.claim` hands one member to exactly one spawn (taken from the
deque before any ``await``), sends it the person's identity (argv, env, cwd,
uid) over that member's socket and waits for its ``OK``. With no member left
it forks one on demand; with no zygote ready (not started yet, or it died) it
returns ``None`` at once and the spawner starts cold, as without a pool.
Refills run in the background after each claim.

Requirements: a claimed server is indistinguishable from a cold one (same
argv, env, cwd, uid; fds, signals and session as after ``Popen``); never two
people on one member; never a delay when the pool is empty.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections import deque
from dataclasses import dataclass

from labdeck.spawner.local import pagemerge
from labdeck.spawner.userserver import zygote

#: environment variables read at *import* time by what the zygote imports
#: (found by grepping module-level ``os.environ``/``os.getenv`` in jupyterhub,
#: jupyter_server, jupyterlab, jupyter_core, tornado, traitlets, jupyter_lsp);
#: every ``PYTHON*`` variable counts too. A claim whose values differ from the
#: zygote's starts cold.
IMPORT_TIME_ENV = frozenset({
    "JUPYTERHUB_SINGLEUSER_APP",
    "JUPYTERHUB_SINGLEUSER_EXTENSION",
    "JUPYTERHUB_SINGLEUSER_LOAD_OTHER_EXTENSIONS",
    "GATEWAY_WS_PING_INTERVAL_SECS",
    "JUPYTERLAB_DIR",  # jupyterlab.labapp computes its app version (an _AppHandler scan) at import
    "JUPYTER_ALLOW_INSECURE_WRITES",
    "JUPYTER_LSP_BUILDING_DOCS",
    "TORNADO_EXTENSION",
    "TORNADO_NO_EXTENSION",
    "TRAITLETS_APPLICATION_RAISE_CONFIG_FILE_ERROR",
    "VIRTUAL_ENV",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    # read at import by what the zygote imports since issue 27 item 3 (IPython.paths, psutil)
    "IPYTHON_SUPPRESS_CONFIG_ERRORS",
    "IPYTHON_TESTING_TIMEOUT_SCALE",
    "IN_SPHINX_RUN",
    "PSUTIL_DEBUG",
    "TZ",  # babel.localtime (singleuser.prewarm loads babel's data, which imports it)
})

#: the server commands a pool can run in-process (scripts of this environment)
SERVER_SCRIPTS = ("labdeck-server", "jupyterhub-singleuser")

log = logging.getLogger("labdeck.warmpool")

#: seconds before a zygote that failed (or died) is started again
RETRY_SECONDS = 30


def import_time_env(env: dict) -> dict:
    """The part of ``env`` that modules read at import (the zygote must have the same)."""
    return {k: v for k, v in env.items() if k in IMPORT_TIME_ENV or k.startswith("PYTHON")}


@dataclass(frozen=True)
class Recipe:
    """What a pool's zygote runs: one interpreter, one import-time environment."""

    python: str
    import_env: tuple

    @property
    def env(self) -> dict:
        return dict(self.import_env)


def recipe_for(cmd, env: dict, shell_cmd=(), popen_kwargs=None, python: str = sys.executable) -> tuple[Recipe | None, str]:
    """Pure: the pool recipe that reproduces a cold start of ``cmd`` with ``env``, or ``(None, why not)``.

    ``cmd`` must be one of :data:`SERVER_SCRIPTS` of an environment whose
    ``python`` is next to it (a relative name is looked up on ``env``'s PATH);
    the zygote runs that interpreter, so it imports what the script would.
    """
    if shell_cmd:
        return None, "Spawner.shell_cmd is set"
    if popen_kwargs:
        return None, "LocalProcessSpawner.popen_kwargs is set"
    if not cmd:
        return None, "no command"
    exe = cmd[0]
    if not os.path.isabs(exe):  # what Popen would run: the first match on the server's PATH
        exe = shutil.which(exe, path=env.get("PATH")) or os.path.join(os.path.dirname(python), exe)
    if os.path.basename(exe) not in SERVER_SCRIPTS:
        return None, f"{os.path.basename(cmd[0])!r} is not one of labdeck's server commands"
    interpreter = os.path.join(os.path.dirname(exe), "python")
    if not os.path.exists(interpreter):
        return None, f"no python next to {os.path.basename(cmd[0])!r}"
    return Recipe(python=interpreter, import_env=tuple(sorted(import_time_env(env).items()))), ""


def identity_for(cmd, args, env: dict, cwd: str, ids=None, umask=None, cgroup_procs=None) -> dict:
    """Pure: the claim message - what a cold ``Popen(cmd + args, env=env, cwd=cwd)`` would get.

    ``ids`` is ``(uid, gid, groups)`` when the server runs as the person's OS
    user (the cold start's ``preexec_fn`` drops to the same), ``umask`` what
    that ``preexec_fn`` sets, ``cgroup_procs`` the ``cgroup.procs`` files it
    joins (the server's size as a limit, :mod:`labdeck.spawner.local.limits`).
    """
    identity = {"argv": [*cmd[1:], *args], "env": dict(env), "cwd": cwd, "sys_path0": os.path.dirname(cmd[0])}
    if ids is not None:
        uid, gid, groups = ids
        identity.update(uid=uid, gid=gid, groups=list(groups))
    if umask is not None:
        identity["umask"] = umask
    if cgroup_procs:
        identity["cgroup_procs"] = list(cgroup_procs)
    zygote.check_identity(identity)
    return identity


@dataclass
class Member:
    pid: int
    channel: socket.socket

    def discard(self) -> None:
        try:
            self.channel.close()  # EOF: an unclaimed member exits
        except OSError:
            pass


class ZygoteGone(Exception):
    pass


class WarmPool:
    """A zygote and its pre-forked members for one :class:`Recipe`."""

    def __init__(self, recipe: Recipe, size: int, base_env: dict, ready_timeout: float = 120, logger=None, merge_pages: bool = False):
        self.log = logger or log
        self.recipe = recipe
        self.size = size
        self.merge_pages = merge_pages  # the zygote marks itself for KSM (labdeck.spawner.local.pagemerge)
        self.base_env = dict(base_env)
        self.ready_timeout = ready_timeout
        self.members: deque[Member] = deque()
        self.proc: subprocess.Popen | None = None
        self.control: socket.socket | None = None
        self.ready = False
        self.claims = 0
        self._starting: asyncio.Task | None = None
        self._refilling: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._buf = b""
        self._failed_at = None

    @property
    def warm(self) -> bool:
        """The zygote is ready and every member is forked."""
        return self.ready and len(self.members) >= self.size

    @property
    def settled(self) -> bool:
        """Warm, or its zygote failed (servers start cold): nothing left to wait for."""
        return self.warm or (not self.ready and (self._starting is None or self._starting.done()))

    # -------------------------------------------------------------- zygote

    def ensure_started(self) -> None:
        """Start the zygote in the background if it is not running (never waits)."""
        if self.ready or (self._starting and not self._starting.done()):
            return
        loop = asyncio.get_running_loop()
        if self._failed_at is not None and loop.time() - self._failed_at < RETRY_SECONDS:
            return  # a zygote that failed is not retried at every spawn
        self._failed_at = loop.time()  # cleared once it is ready
        self._starting = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        self.close()
        hub_end, zyg_end = socket.socketpair()
        env = {**self.base_env, **self.recipe.env}
        argv = [self.recipe.python, "-P"]
        if sys.prefix == sys.base_prefix:
            argv.append("-s")  # no hub user's site-packages in other people's servers
        argv += ["-m", "labdeck.spawner.userserver.zygote", "--control-fd", str(zyg_end.fileno())]
        if self.merge_pages:
            argv.append("--merge-pages")
        try:
            self.proc = subprocess.Popen(
                argv, env=env, cwd="/", stdin=subprocess.DEVNULL, pass_fds=[zyg_end.fileno()], start_new_session=True,
            )
        finally:
            zyg_end.close()
        hub_end.setblocking(False)
        self.control = hub_end
        try:
            async with asyncio.timeout(self.ready_timeout):  # not wait_for: it can swallow a cancellation (3.11)
                line = await self._readline()
        except (asyncio.TimeoutError, ZygoteGone, OSError) as e:
            self.log.warning("warm pool: the zygote did not get ready (%s); servers start cold", type(e).__name__)
            self.close()
            return
        if line != "R":
            self.log.warning("warm pool: unexpected zygote greeting; servers start cold")
            self.close()
            return
        self.ready = True
        self._failed_at = None
        merging = ""
        if self.merge_pages:
            merging = ", servers marked for same-page merging" if pagemerge.process_marked(self.proc.pid) else ", servers not marked for same-page merging"
        self.log.info("warm pool: zygote %s ready (%d members%s)", self.proc.pid, self.size, merging)
        self.refill()

    async def _readline(self) -> str:
        loop = asyncio.get_running_loop()
        while b"\n" not in self._buf:
            chunk = await loop.sock_recv(self.control, 256)
            if not chunk:
                raise ZygoteGone()
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    async def _fork(self) -> Member:
        async with self._lock:
            if not self.ready or self.control is None:
                raise ZygoteGone()
            hub_end, child_end = socket.socketpair()
            try:
                socket.send_fds(self.control, [b"F"], [child_end.fileno()])
            except OSError:
                hub_end.close()
                self._lost()
                raise ZygoteGone() from None
            finally:
                child_end.close()
            try:
                async with asyncio.timeout(10):
                    line = await self._readline()
            except (asyncio.TimeoutError, ZygoteGone, OSError):
                hub_end.close()
                self._lost()
                raise ZygoteGone() from None
        hub_end.setblocking(False)
        return Member(pid=int(line.split()[1]), channel=hub_end)

    def _lost(self) -> None:
        self.log.warning("warm pool: lost the zygote; servers start cold until it is back")
        self.close()

    def refill(self) -> None:
        if self.ready and (self._refilling is None or self._refilling.done()):
            self._refilling = asyncio.ensure_future(self._refill())

    async def _refill(self) -> None:
        # after the claim that triggered us: the claimed server's start goes first
        await asyncio.sleep(0.5)
        while self.ready and len(self.members) < self.size:
            try:
                self.members.append(await self._fork())
            except ZygoteGone:
                return

    # --------------------------------------------------------------- claim

    async def claim(self, identity: dict, timeout: float = 10) -> int | None:
        """Give one member ``identity``; its pid, or None (start cold) - never two claims per member."""
        if not self.ready:
            self.ensure_started()
            return None
        frame = zygote.encode_identity(identity)
        loop = asyncio.get_running_loop()
        for _ in range(len(self.members) + 1):
            if self.members:
                member = self.members.popleft()  # taken before any await: nobody else gets it
            else:
                try:
                    member = await self._fork()
                except ZygoteGone:
                    return None
            self.refill()
            try:
                async with asyncio.timeout(timeout):  # a stop during the claim stops it (wait_for could swallow that)
                    await loop.sock_sendall(member.channel, frame)
                async with asyncio.timeout(timeout):
                    answer = await loop.sock_recv(member.channel, 64)
            except (OSError, asyncio.TimeoutError):
                answer = b""
            except BaseException:  # cancelled (a stop during the start): the member may hold the identity
                member.discard()
                _kill(member.pid)
                raise
            member.discard()
            if answer == b"OK":
                self.claims += 1
                return member.pid
            if answer.startswith(b"ER"):
                self.log.warning("warm pool: member %s refused the claim (%s); starting cold", member.pid, answer[3:].decode(errors="replace"))
                _kill(member.pid)
                return None
            _kill(member.pid)  # died or hung before answering: try the next one
        return None

    def close(self) -> None:
        self.ready = False
        while self.members:
            self.members.popleft().discard()
        if self.control is not None:
            try:
                self.control.close()
            except OSError:
                pass
            self.control = None
        self._buf = b""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


_POOLS: dict[Recipe, WarmPool] = {}


def pool_for(recipe: Recipe, size: int, base_env: dict, logger=None, merge_pages: bool = False) -> WarmPool:
    """The process-wide pool of ``recipe`` (created on first use, started in the background)."""
    pool = _POOLS.get(recipe)
    if pool is None:
        pool = _POOLS[recipe] = WarmPool(recipe, size, base_env, logger=logger, merge_pages=merge_pages)
    pool.size = size
    pool.ensure_started()
    return pool


@atexit.register
def close_all() -> None:
    for pool in list(_POOLS.values()):
        pool.close()
