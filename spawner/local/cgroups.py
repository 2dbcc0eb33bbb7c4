"""A server's size as a limit on one machine: a cgroup per user server (the local backend, as root).

Where systemd is PID 1, each server gets a transient *scope* (what
``systemd-run --scope`` makes, and how the Littlest JupyterHub limits its
users), created for the server's pid with ``MemoryMax``/``CPUQuota``.
Elsewhere labdeck writes the cgroup itself: cgroup v1 (one hierarchy per
controller, ``memory`` and ``cpu``) or v2 (one unified hierarchy), below the
cgroup the hub itself runs in, in a group of the ``labdeck up`` instance::

    <hub's cgroup>/labdeck-<instance>/<server>/

The server joins it before it runs anything (a cold start in its
``preexec_fn``, a warm-pool member before it drops to the person's uid), so
its kernels, terminals and their children are in it too. The memory limit
makes the kernel's OOM killer pick inside that cgroup only: the process that
allocated past the limit (in practice the kernel) is stopped, and the hub,
the broker and other people's servers keep running.

Values mean what they mean on Kubernetes (``Spawner.mem_limit``,
``cpu_limit``, ``mem_guarantee``, ``cpu_guarantee``, from the size a person
picked): memory limit → ``memory.limit_in_bytes`` / ``memory.max`` with no
swap beyond it; CPU limit → a CFS quota of that many CPUs per period;
guarantees → soft limit / ``memory.low`` and CPU shares / weight, as the
kubelet maps requests.

Pure parts: :func:`limit_files`, :func:`scope_properties`, :func:`server_key`,
:func:`parse_oom_kills`. I/O: :func:`detect`, :class:`Cgroups`.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from dataclasses import dataclass, field

CGROUP_ROOT = "/sys/fs/cgroup"
#: CFS period (µs): the kubelet's
CPU_PERIOD_US = 100_000
V1_CONTROLLERS = ("memory", "cpu")


class CgroupError(RuntimeError):
    """A cgroup cannot be created or used; the message is for an admin."""


# ---------------------------------------------------------------- pure


def limit_files(version: str, mem_limit=None, cpu_limit=None, mem_guarantee=None, cpu_guarantee=None) -> dict[str, list[tuple[str, str]]]:
    """Controller → ``[(file, value), ...]`` in write order (``""``: the one v2 hierarchy).

    ``None`` or 0 leaves a value unlimited.
    """
    if version == "v1":
        memory, cpu = [], []
        if mem_guarantee:
            memory.append(("memory.soft_limit_in_bytes", str(int(mem_guarantee))))
        if mem_limit:
            # memsw (memory + swap) after the plain limit: the kernel requires memsw >= limit
            memory += [("memory.limit_in_bytes", str(int(mem_limit))), ("memory.memsw.limit_in_bytes", str(int(mem_limit)))]
        if cpu_guarantee:
            cpu.append(("cpu.shares", str(max(2, int(1024 * cpu_guarantee)))))
        if cpu_limit:
            cpu += [("cpu.cfs_period_us", str(CPU_PERIOD_US)), ("cpu.cfs_quota_us", str(max(1000, int(cpu_limit * CPU_PERIOD_US))))]
        return {"memory": memory, "cpu": cpu}
    if version == "v2":
        files = []
        if mem_guarantee:
            files.append(("memory.low", str(int(mem_guarantee))))
        if mem_limit:
            files += [("memory.max", str(int(mem_limit))), ("memory.swap.max", "0")]
        if cpu_guarantee:
            files.append(("cpu.weight", str(min(10000, max(1, int(100 * cpu_guarantee))))))
        if cpu_limit:
            files.append(("cpu.max", f"{max(1000, int(cpu_limit * CPU_PERIOD_US))} {CPU_PERIOD_US}"))
        return {"": files}
    raise ValueError(f"unknown cgroup version {version!r}")


def scope_properties(mem_limit=None, cpu_limit=None, mem_guarantee=None, cpu_guarantee=None) -> list[tuple[str, str, object]]:
    """systemd unit properties ``(name, D-Bus signature, value)`` of a server's scope (the same mapping)."""
    props: list[tuple[str, str, object]] = []
    if mem_limit:
        props += [("MemoryMax", "t", int(mem_limit)), ("MemorySwapMax", "t", 0)]
    if mem_guarantee:
        props.append(("MemoryLow", "t", int(mem_guarantee)))
    if cpu_limit:
        props.append(("CPUQuotaPerSecUSec", "t", int(cpu_limit * 1_000_000)))
    if cpu_guarantee:
        props.append(("CPUWeight", "t", min(10000, max(1, int(100 * cpu_guarantee)))))
    return props


def busctl_start_scope(unit: str, pid: int, props: list[tuple[str, str, object]], description: str) -> list[str]:
    """``busctl`` argv that starts transient scope ``unit`` holding ``pid`` (what ``systemd-run --scope`` asks)."""
    all_props = [("Description", "s", description), ("PIDs", "au", [pid]), ("CollectMode", "s", "inactive-or-failed"), *props]
    argv = [
        "busctl", "call", "--system", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager", "StartTransientUnit", "ssa(sv)a(sa(sv))", unit, "fail", str(len(all_props)),
    ]  # fmt: skip
    for name, sig, value in all_props:
        argv += [name, sig]
        if sig == "au":
            argv += [str(len(value)), *map(str, value)]
        else:
            argv.append(str(value))
    return argv + ["0"]


def server_key(user: str, server: str = "") -> str:
    """The cgroup (and scope) name of a user's server: distinct for every (user, server name)."""
    from jupyterhub.slugs import safe_slug

    # safe_slug never yields "--", so the separator keeps ("a", "b-c") and ("a-b", "c") apart
    return safe_slug(user, max_length=40) + (f"--{safe_slug(server, max_length=40)}" if server else "")


def parse_oom_kills(text: str) -> int:
    """The ``oom_kill`` count in v1 ``memory.oom_control`` or v2 ``memory.events`` (0 if absent)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "oom_kill":
            return int(parts[1])
    return 0


def own_cgroups(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` → controller (``""`` for v2) → path."""
    out = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


# ---------------------------------------------------------------- I/O


@dataclass
class Availability:
    #: "systemd", "v1", "v2", or "" (not available)
    backend: str
    reason: str = ""
    #: controller → directory under which servers' cgroups are made (direct backends)
    bases: dict[str, str] = field(default_factory=dict)


def _writable_dir(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK)


def detect(root: str = CGROUP_ROOT, proc_self: str = "/proc/self/cgroup") -> Availability:
    """Which mechanism this machine offers to this (root) process, and where; why not, if none."""
    if os.geteuid() != 0:
        return Availability("", "labdeck up is not running as root")
    try:
        pid1 = open("/proc/1/comm").read().strip()
    except OSError:
        pid1 = ""
    if pid1 == "systemd" and os.path.isdir("/run/systemd/system") and shutil.which("busctl"):
        return Availability("systemd")
    try:
        mine = own_cgroups(open(proc_self).read())
    except (OSError, ValueError):
        mine = {}
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        controllers = open(os.path.join(root, "cgroup.controllers")).read().split()
        if not {"memory", "cpu"} <= set(controllers):
            return Availability("", f"cgroup v2 at {root} does not offer the memory and cpu controllers")
        base = os.path.join(root, mine.get("", "/").lstrip("/"))
        return Availability("v2", bases={"": base})
    bases = {}
    for c in V1_CONTROLLERS:
        mount = os.path.join(root, c)
        if not _writable_dir(mount):
            return Availability("", f"the cgroup v1 {c} controller is not mounted writable at {mount}")
        bases[c] = os.path.join(mount, mine.get(c, "/").lstrip("/"))
    return Availability("v1", bases=bases)


class Cgroups:
    """The cgroups of one ``labdeck up`` instance (``group``) under the hub's own (direct backends)."""

    def __init__(self, availability: Availability, group: str):
        if availability.backend not in ("v1", "v2"):
            raise CgroupError(f"no writable cgroups here ({availability.reason or availability.backend})")
        self.version = availability.backend
        self.group = group
        self.parents = {c: os.path.join(base, group) for c, base in availability.bases.items()}

    def paths(self, key: str) -> dict[str, str]:
        return {c: os.path.join(parent, key) for c, parent in self.parents.items()}

    def procs_files(self, key: str) -> list[str]:
        """The ``cgroup.procs`` files a server's first process writes its pid to (joins its cgroups)."""
        return [os.path.join(p, "cgroup.procs") for p in self.paths(key).values()]

    def _ensure_parent(self, controller: str, parent: str) -> None:
        if os.path.isdir(parent):
            return
        os.makedirs(parent, exist_ok=True)
        if self.version == "v2":
            # children of the instance's group get the memory and cpu controllers
            _write(os.path.join(os.path.dirname(parent), "cgroup.subtree_control"), "+memory +cpu", required=False)
            _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +cpu")

    def create(self, key: str, limits: dict[str, list[tuple[str, str]]]) -> list[str]:
        """Make (or reset) the server's cgroups with ``limits`` (from :func:`limit_files`); its ``cgroup.procs`` files."""
        for controller, path in self.paths(key).items():
            self._ensure_parent(controller, self.parents[controller])
            if os.path.isdir(path) and not _procs(path):
                os.rmdir(path)  # a fresh group: limits are written from unlimited (v1 wants memsw >= limit at every step)
            os.makedirs(path, exist_ok=True)
            for name, value in limits.get(controller, []):
                # memsw exists only with swap accounting; everything else is required
                _write(os.path.join(path, name), value, required=not name.startswith("memory.memsw") and name != "memory.swap.max")
        return self.procs_files(key)

    def pids(self, key: str) -> set[int]:
        out = set()
        for path in self.paths(key).values():
            try:
                out |= {int(p) for p in open(os.path.join(path, "cgroup.procs")).read().split()}
            except OSError:
                pass
        return out

    def remove(self, key: str, grace: float = 5) -> None:
        """Stop whatever is still in the server's cgroups (TERM, then KILL after ``grace``) and remove them."""
        _empty_and_remove(list(self.paths(key).values()), grace)

    def remove_all(self, grace: float = 2) -> None:
        """Every server's cgroup of this instance, then the instance's group (``labdeck up``'s stop)."""
        dirs = []
        for parent in self.parents.values():
            if os.path.isdir(parent):
                dirs += [os.path.join(parent, d) for d in os.listdir(parent) if os.path.isdir(os.path.join(parent, d))]
        _empty_and_remove(dirs, grace)
        _empty_and_remove(list(self.parents.values()), grace)

    def oom_kills(self, key: str) -> int:
        path = self.paths(key)["memory" if self.version == "v1" else ""]
        name = "memory.oom_control" if self.version == "v1" else "memory.events"
        try:
            return parse_oom_kills(open(os.path.join(path, name)).read())
        except OSError:
            return 0


def _write(path: str, value: str, required: bool = True) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        if required:
            raise CgroupError(f"cannot write {value!r} to {path}: {e.strerror}") from None


def _procs(path: str) -> set[int]:
    try:
        return {int(p) for p in open(os.path.join(path, "cgroup.procs")).read().split()}
    except OSError:
        return set()


def _empty_and_remove(dirs: list[str], grace: float) -> None:
    dirs = [d for d in dirs if os.path.isdir(d)]
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2)):
        pids = set().union(*(_procs(d) for d in dirs)) if dirs else set()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_procs(d) for d in dirs):
            time.sleep(0.05)
    for d in dirs:
        # children first (a server's own nested groups, if a tool made any)
        for sub, _, _ in sorted(os.walk(d), key=lambda w: -w[0].count(os.sep)):
            try:
                os.rmdir(sub)
            except OSError:
                pass
