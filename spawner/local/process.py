"""``FastLocalProcessSpawner``: JupyterHub's local process spawner with three things taken out of the wait.

1. a **bounded start queue** (:mod:`labdeck.spawner.local.startqueue`): at most
   ``start_concurrency`` servers start at once, the others wait in order and
   see "Waiting for a free slot: N ahead";
2. a **warm pool** (:mod:`labdeck.spawner.local.warmpool`): the server is a member
   forked from a zygote that imported everything already, given the person's
   identity only now; a cold ``Popen`` (exactly as LocalProcessSpawner) when
   the pool is off, empty of a zygote, or cannot reproduce the command;
3. **readiness seen at once** (:mod:`labdeck.spawner.readiness`): ``start()``
   returns when the server answers, so the hub's first check succeeds.

Everything personal stays what ``LocalProcessSpawner`` computes: ``get_env()``,
``get_args()``, ``cmd``, ``home_dir``; a claim carries exactly those. Pool
members are children of the zygote, not of the hub: ``proc`` stays ``None`` and
``poll``/``stop`` use the pid, as LocalProcessSpawner does after a hub restart.
"""

from __future__ import annotations

import asyncio
import os
import time

from jupyterhub.spawner import SimpleLocalProcessSpawner
from jupyterhub.utils import random_port
from traitlets import Bool, Enum, Integer, default

from labdeck.spawner import readiness
from labdeck.spawner.local import pagemerge, warmpool
from labdeck.spawner.local.startqueue import StartQueue

_QUEUES: dict[int, StartQueue] = {}


def start_queue(slots: int) -> StartQueue:
    """The hub-wide queue for ``slots`` (one per distinct setting; normally one)."""
    q = _QUEUES.get(slots)
    if q is None:
        q = _QUEUES[slots] = StartQueue(slots)
    return q


class FastLocalProcessSpawner(SimpleLocalProcessSpawner):
    """Local process spawner with a start queue, a warm pool and immediate readiness."""

    warm_pool_size = Integer(
        2,
        config=True,
        help="""Servers kept forked and waiting (with nothing personal) per pool; 0 turns the warm pool off.

        A pool has one zygote process that has imported jupyter-server,
        JupyterLab and jupyterhub-singleuser (~150 MB, shared copy-on-write
        with its children) plus this many pre-forked members. A spawn claims a
        member and only then gives it the person's argv, environment, API
        token, home and (with OS users) uid. When the members are used up, the
        zygote forks one on demand; when the zygote is not ready, the spawn
        starts cold, exactly as LocalProcessSpawner does - never slower.
        Profiles whose command and import-time environment are the same share
        a pool. A ``cmd`` the pool cannot run in-process (``nice``, a wrapper
        script), ``shell_cmd`` or ``popen_kwargs`` always start cold.

        .. versionadded:: 0.2
        """,
    )

    page_merging = Enum(
        pagemerge.SETTINGS,
        default_value="start",
        config=True,
        help="""Let the kernel merge the pages that warm-pool servers hold alike (KSM, Linux 6.4+).

        Each server copies ~30 MiB of the zygote's pages by using them (CPython
        writes reference counts); those copies are the same in every server, and
        the kernel's same-page merging keeps one of each. Only servers' pages are
        merged, with each other; a write copies a page again.

        - ``"off"``: servers are not marked.
        - ``"marked"``: servers are marked; they are merged while the machine's
          KSM daemon runs (``/sys/kernel/mm/ksm/run``), which is the admin's to start.
        - ``"start"``: as ``"marked"``, and a hub running as root starts the KSM
          daemon if it is stopped (logged; left on: it sleeps while nothing is marked).

        What merging can reveal (timing of a write to a page whose full 4 KiB
        another person guessed) and why secrets stay out of reach:
        :mod:`labdeck.spawner.local.pagemerge`. Only with the warm pool.

        .. versionadded:: 0.5
        """,
    )

    start_concurrency = Integer(
        config=True,
        help="""How many servers may be starting at once (the CPU-heavy part); the others wait in line, in order.

        Default: the number of CPUs. 0 means no limit (every start runs at
        once, JupyterHub's behaviour). Waiting people see "Waiting for a free
        slot: N ahead" in the spawn progress. Credential issuance runs while
        waiting.

        .. versionadded:: 0.2
        """,
    )

    @default("start_concurrency")
    def _start_concurrency_default(self):
        return os.cpu_count() or 1

    wait_ready_in_start = Bool(
        True,
        config=True,
        help="""Return from ``start()`` only when the server answers on ``<prefix>api``.

        JupyterHub then sees the server ready at its first check instead of
        after its polling back-off (up to 5 s between checks). Bounded by
        ``http_timeout``; a server process that exits meanwhile fails the spawn
        at once with its exit status.

        .. versionadded:: 0.2
        """,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fast_events: list[dict] = []
        self._fast_done = True
        self.warm_claimed = False
        if self.warm_pool_size > 0:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return
            recipe = self._warm_recipe()[0]
            if recipe is not None:
                self._warm_pool(recipe)

    # -------------------------------------------------------------- pool

    @classmethod
    def start_warm_pools(cls, config, log) -> list[warmpool.WarmPool]:
        """Start the pool of the configured command now, at the hub's start, not at the first login.

        Only configuration is read (``cmd``, ``env_keep``, ``warm_pool_size``...):
        the spawner made here belongs to nobody and is dropped. Returns the pools
        started (none with the pool off or a command it cannot run).
        """
        probe = cls(config=config, log=log)
        recipe = probe._warm_recipe()[0] if probe.warm_pool_size > 0 else None
        if recipe is None:
            return []
        pagemerge.ensure_daemon(probe.page_merging, logger=log)
        return [probe._warm_pool(recipe)]

    def _warm_pool(self, recipe: warmpool.Recipe) -> warmpool.WarmPool:
        return warmpool.pool_for(
            recipe, self.warm_pool_size, self._warm_base_env(), logger=self.log, merge_pages=pagemerge.marks_servers(self.page_merging)
        )

    def _warm_base_env(self) -> dict:
        """The zygote's environment: what every server shares (``env_keep``), nothing personal."""
        return {k: os.environ[k] for k in self.env_keep if k in os.environ}

    def _warm_recipe(self, env=None):
        env = self._warm_base_env() if env is None else env
        return warmpool.recipe_for(list(self.cmd), env, shell_cmd=self.shell_cmd, popen_kwargs=self.popen_kwargs)

    def warm_ids(self):
        """``(uid, gid, groups)`` the server must run as, or None to stay the hub's user (override for OS users)."""
        return None

    def warm_umask(self):
        """The umask the cold start's ``preexec_fn`` sets, or None to keep the hub's (override with ``warm_ids``)."""
        return None

    def warm_cgroup_procs(self):
        """``cgroup.procs`` files the cold start's ``preexec_fn`` joins, or None (override for limits)."""
        return None

    async def _warm_claim(self, env: dict, args: list[str]) -> int | None:
        if self.warm_pool_size <= 0:
            return None
        recipe, why = self._warm_recipe(env)
        if recipe is None:
            self.log.debug("Warm pool not used for %s: %s", self._log_name, why)
            return None
        pool = self._warm_pool(recipe)
        identity = warmpool.identity_for(list(self.cmd), args, env, self.home_dir, self.warm_ids(), self.warm_umask(), self.warm_cgroup_procs())
        return await pool.claim(identity)

    # ------------------------------------------------------------ progress

    def run_pre_spawn_hook(self):
        self._fast_events = []
        self._fast_done = False
        return super().run_pre_spawn_hook()

    def _fast_progress(self, progress: int, message: str) -> None:
        self._fast_events.append({"progress": progress, "message": message})

    async def progress(self):
        sent = 0
        while True:
            while sent < len(self._fast_events):
                yield self._fast_events[sent]
                sent += 1
            if self._fast_done or not self._spawn_pending:
                return
            await asyncio.sleep(0.1)

    # --------------------------------------------------------------- start

    def _alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True

    async def start(self):
        queue = start_queue(self.start_concurrency)
        t0 = time.monotonic()

        def on_wait(ahead: int) -> None:
            self._fast_progress(30, f"Waiting for a free slot: {ahead} ahead" if ahead else "Waiting for a free slot: next")

        try:
            async with queue.slot(on_wait=on_wait):
                waited = time.monotonic() - t0
                self.log.info("Start slot for %s after %.2f s", self._log_name, waited)
                if waited > 0.5:
                    self._fast_progress(40, f"Got a slot after {waited:.0f} s")
                if self.port == 0:
                    self.port = random_port()
                env = self.get_env()
                args = self.get_args()
                pid = await self._warm_claim(env, args)
                if pid:
                    self.proc = None
                    self.pid = pid
                    self.warm_claimed = True
                    self.log.info("Claimed warm server %s for %s", pid, self._log_name)
                    self._fast_progress(50, "Server process started (warm)")
                    ip_port = (self.ip or "127.0.0.1", self.port)
                else:
                    self.warm_claimed = False
                    ip_port = await super().start()
                    self._fast_progress(50, "Server process started")
                if self.wait_ready_in_start:
                    await self._wait_ready(ip_port, env, t0)
            return ip_port
        finally:
            self._fast_done = True

    async def _wait_ready(self, ip_port, env, t0) -> None:
        ip, port = ip_port
        prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        url = f"http://{'127.0.0.1' if ip in ('', '0.0.0.0') else ip}:{port}{prefix}api"
        # within start_timeout (which bounds this call), leaving the hub time for its own steps
        budget = min(self.http_timeout, max(1.0, self.start_timeout - (time.monotonic() - t0) - 5))
        ok = await readiness.wait_http(url, budget, alive=self._alive)
        if ok or self._alive():
            return  # ready, or not yet: the hub's own check decides as usual
        status = self.proc.poll() if self.proc is not None else None
        raise RuntimeError(f"The server process exited before it was ready (status {status if status is not None else 'unknown'})")
