"""``LimitsMixin``: a local server's size is a limit - its cgroup (see :mod:`labdeck.spawner.local.cgroups`).

Off unless ``enforce_limits`` (``labdeck up`` turns it on when it runs as
root and the machine has cgroups; otherwise its banner and every page say
sizes are not enforced). On: before the server starts, its cgroup is made
with ``Spawner.mem_limit``/``cpu_limit``/``mem_guarantee``/``cpu_guarantee``
(the size the person picked, the same traits KubeSpawner turns into pod
limits), the server's first process joins it (cold start: ``preexec_fn``;
warm pool: the claim's identity), and it is removed when the server stops.
Where systemd runs, a transient scope holds the server instead.
"""

from __future__ import annotations

import asyncio
import os
import subprocess

from traitlets import Bool, Unicode
from traitlets.config import Configurable

from labdeck.spawner.local import cgroups


class LimitsMixin(Configurable):
    """Per-server cgroups for a local-process spawner (comes before the backend in the MRO)."""

    enforce_limits = Bool(
        False,
        config=True,
        help="""Enforce each server's size (``mem_limit``, ``cpu_limit`` and the guarantees) with a cgroup per server.

        Needs root. Where systemd is PID 1, each server runs in a transient
        scope (``MemoryMax``, ``CPUQuota``, as ``systemd-run --scope``);
        otherwise labdeck creates cgroups (v1 ``memory`` and ``cpu``, or v2)
        under the hub's own cgroup, in ``cgroup_group``. A process that
        allocates past the memory limit - in practice a kernel - is stopped by
        the kernel's OOM killer inside that cgroup only; the server logs why.
        ``labdeck up`` turns this on when it runs as root (``LABDECK_LIMITS=0``
        turns it off).

        .. versionadded:: 0.3
        """,
    )

    cgroup_group = Unicode(
        "labdeck",
        config=True,
        help="""Name of the cgroup (under the hub's own) that holds every server's cgroup, or the prefix of systemd scope names.

        ``labdeck up`` names it after its state directory, so two instances on
        one machine never share one, and removes it when it stops.

        .. versionadded:: 0.3
        """,
    )

    _limits_key = ""
    _limits_procs: list[str] | None = None

    def limits_key(self) -> str:
        return cgroups.server_key(self.user.name, self.name or "")

    def _limit_values(self) -> dict:
        return {
            "mem_limit": self.mem_limit or None,
            "cpu_limit": self.cpu_limit or None,
            "mem_guarantee": self.mem_guarantee or None,
            "cpu_guarantee": self.cpu_guarantee or None,
        }

    def _limits_cgroups(self) -> cgroups.Cgroups | None:
        avail = cgroups.detect()
        if avail.backend == "systemd":
            return None
        return cgroups.Cgroups(avail, self.cgroup_group)

    def _limits_create(self) -> None:
        cg = self._limits_cgroups()
        if cg is None:
            self._limits_procs = None
            return
        self._limits_procs = cg.create(self.limits_key(), cgroups.limit_files(cg.version, **self._limit_values()))

    def _limits_scope(self, pid: int) -> None:
        unit = f"{self.cgroup_group}-{self.limits_key()}.scope"
        argv = cgroups.busctl_start_scope(unit, pid, cgroups.scope_properties(**self._limit_values()), f"labdeck server {self._log_name}")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise cgroups.CgroupError(f"systemd did not start scope {unit}: {proc.stderr.strip()[:300]}")

    def _limits_remove(self) -> None:
        if cgroups.detect().backend == "systemd":
            subprocess.run(["systemctl", "stop", f"{self.cgroup_group}-{self.limits_key()}.scope"], capture_output=True, timeout=30)
            return
        cg = self._limits_cgroups()
        if cg is not None:
            cg.remove(self.limits_key())

    # ------------------------------------------------------------ hooks

    def make_preexec_fn(self, name):
        inner = super().make_preexec_fn(name)
        procs = list(self._limits_procs or []) if self.enforce_limits else []
        if not procs:
            return inner

        def preexec():
            # join the server's cgroups first, as root: everything it starts is in them
            pid = str(os.getpid())
            for path in procs:
                with open(path, "w") as f:
                    f.write(pid)
            if inner is not None:
                inner()

        return preexec

    def warm_cgroup_procs(self) -> list[str] | None:
        """``cgroup.procs`` files a warm-pool member joins before it becomes the person's."""
        return list(self._limits_procs) if self.enforce_limits and self._limits_procs else None

    async def start(self):
        if not self.enforce_limits:
            return await super().start()
        try:
            await asyncio.to_thread(self._limits_create)
        except (cgroups.CgroupError, OSError) as e:
            self.log.error("Cannot enforce %s's size: %s", self._log_name, e)
            raise RuntimeError("The server's size could not be enforced on this machine; ask your admin (see the hub's log).") from None
        try:
            result = await super().start()
        except BaseException:
            await asyncio.to_thread(self._limits_remove)
            raise
        if self._limits_procs is None:  # systemd: the scope takes the running server
            try:
                await asyncio.to_thread(self._limits_scope, self.pid)
            except (cgroups.CgroupError, OSError, subprocess.SubprocessError) as e:
                self.log.error("Cannot enforce %s's size: %s", self._log_name, e)
                await self.stop(now=True)
                raise RuntimeError("The server's size could not be enforced on this machine; ask your admin (see the hub's log).") from None
        self.log.info("Limits of %s: %s", self._log_name, {k: v for k, v in self._limit_values().items() if v})
        return result

    async def stop(self, now=False):
        await super().stop(now=now)
        if self.enforce_limits:
            # kernels or terminals the server left behind go with its cgroup
            await asyncio.to_thread(self._limits_remove)
