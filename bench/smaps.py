"""Memory of processes as the kernel accounts it: ``/proc/<pid>/smaps_rollup`` read, summed and sorted by kind.

PSS (proportional set size) charges each resident page to the processes that map it in equal
shares, so the PSS of every process adds up to the memory the machine really uses for them: a
page a zygote and twenty forked servers still share counts 1/21 to each, a page a server wrote
after the fork (copy-on-write) counts fully to that server. Reading another user's
``smaps_rollup`` needs root (or the same user).

Pure parts (:func:`parse_rollup`, :func:`classify`, :func:`summarise`) take text and plain
values, so ``tests/test_bench_memory.py`` checks them without a running system.
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from dataclasses import dataclass, field

#: the fields of smaps_rollup we keep (kB in the file)
FIELDS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty", "Swap")

#: process kinds, in the order reports list them
KINDS = ("hub", "proxy", "services", "zygote", "pool member", "server", "kernel", "other")


def parse_rollup(text: str) -> dict[str, int]:
    """``smaps_rollup`` text → ``{field: bytes}`` for :data:`FIELDS` (missing fields: 0).

    Lines look like ``Pss:                1234 kB``; the first line (the address range) and
    fields we do not keep are ignored; a line that does not parse is skipped.
    """
    out = {k: 0 for k in FIELDS}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep or key not in out:
            continue
        parts = rest.split()
        if len(parts) != 2 or parts[1] != "kB" or not parts[0].isdigit():
            continue
        out[key] = int(parts[0]) * 1024
    return out


def read_rollup(pid: int) -> dict[str, int] | None:
    """The rollup of one process now; None when it is gone or unreadable (kernel threads read as all zero)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return parse_rollup(f.read())
    except (OSError, ValueError):
        return None


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def system_pss(exclude: set[int] = frozenset()) -> int:
    """Sum of ``Pss`` over every process on the machine except ``exclude`` (bytes)."""
    total = 0
    for pid in all_pids():
        if pid in exclude:
            continue
        r = read_rollup(pid)
        if r:
            total += r["Pss"]
    return total


@dataclass(frozen=True)
class Proc:
    """What :func:`classify` needs to know about one process (plain values)."""

    pid: int
    ppid: int
    cmdline: tuple[str, ...]


def classify(p: Proc, roles: dict) -> str:
    """The kind (:data:`KINDS`) of one process of a hub's tree.

    ``roles`` holds what only the system knows: ``hub`` (pid), ``servers`` (pids of the people's
    servers, from the hub's database), ``zygotes`` (pids of warm-pool zygotes). Kernels are
    ``ipykernel_launcher``/``ipykernel`` processes; a zygote's child that is no one's server is a
    waiting pool member; the proxy is configurable-http-proxy (a node process).
    """
    args = " ".join(p.cmdline)
    if p.pid == roles.get("hub"):
        return "hub"
    if p.pid in roles.get("servers", ()):
        return "server"
    if p.pid in roles.get("zygotes", ()):
        return "zygote"
    if p.ppid in roles.get("zygotes", ()):
        return "pool member"
    if "ipykernel" in args or "irkernel" in args.lower():
        return "kernel"
    if "configurable-http-proxy" in args:
        return "proxy"
    if roles.get("services_parent") is not None and p.ppid == roles["services_parent"]:
        return "services"
    if "jupyterhub_idle_culler" in args:
        return "services"  # a hub-managed service
    return "other"


@dataclass
class Snapshot:
    """PSS of a set of processes at one moment: per process and per kind (bytes)."""

    procs: list[dict] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(p["Pss"] for p in self.procs)

    def by_kind(self) -> dict[str, dict]:
        return summarise(self.procs)


def summarise(procs: list[dict]) -> dict[str, dict]:
    """Per kind: process count and the sums of ``Pss``, ``Pss_Anon``, ``Private_Dirty`` (bytes); kinds without processes are left out."""
    out: dict[str, dict] = defaultdict(lambda: {"count": 0, "Pss": 0, "Pss_Anon": 0, "Private_Dirty": 0})
    for p in procs:
        k = out[p["kind"]]
        k["count"] += 1
        for f in ("Pss", "Pss_Anon", "Private_Dirty"):
            k[f] += p.get(f, 0)
    return {kind: dict(out[kind]) for kind in KINDS if kind in out} | {k: dict(v) for k, v in out.items() if k not in KINDS}


def per_person(before: int, after: int, people: int) -> float:
    """Bytes one person costs: the growth from ``before`` to ``after`` shared by ``people``."""
    if people <= 0:
        raise ValueError("people must be positive")
    return (after - before) / people


def settled(samples: list[int], window: int = 3, tolerance: int = 1 << 20) -> bool:
    """True when the last ``window`` samples lie within ``tolerance`` bytes of each other."""
    if len(samples) < window:
        return False
    tail = samples[-window:]
    return max(tail) - min(tail) <= tolerance


MIB = float(1 << 20)


def mib(x: float | None) -> float | None:
    return None if x is None else x / MIB


# ----------------------------------------------------------------- KSM (same-page merging)

KSM_DIR = "/sys/kernel/mm/ksm"
KSM_COUNTERS = ("run", "full_scans", "pages_shared", "pages_sharing", "pages_to_scan", "sleep_millisecs")


@functools.lru_cache(maxsize=1)
def ksmd_pid() -> int | None:
    """The kernel's KSM daemon thread (``comm`` ksmd; found once, it lives as long as the kernel)."""
    for pid in all_pids():
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "ksmd":
                    return pid
        except OSError:
            continue
    return None


def ksm_state() -> dict | None:
    """The KSM counters now (pages, scans) and the daemon's CPU seconds so far; None without KSM."""
    out: dict = {}
    try:
        for name in KSM_COUNTERS:
            with open(f"{KSM_DIR}/{name}") as f:
                out[name] = int(f.read().strip())
    except (OSError, ValueError):
        return None
    pid = ksmd_pid()
    if pid:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out["ksmd_cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return out


def scans_since(before: dict | None, now: dict | None) -> int:
    """Full scans the KSM daemon finished between two :func:`ksm_state` readings (0 when it is off)."""
    if not before or not now or now["run"] != 1:
        return 0
    return now["full_scans"] - before["full_scans"]
