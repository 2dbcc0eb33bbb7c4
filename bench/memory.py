"""Memory per person: N people each open JupyterLab once; what does one more idle person cost (PSS)?

For each system (``--systems labdeck,vanilla``; one at a time, a fresh hub each), after the hub
is up and its memory has settled:

1. measure PSS (below);
2. N people (``--users``, default 20), one after another: log in through the form, start their
   server through the REST API, follow the progress stream until ready, and open
   ``/user/<name>/lab`` once in headless Chromium (the hub's login cookies copied into a fresh
   browser context) until the JupyterLab shell (``#jp-main-dock-panel``) is shown; then the page
   and its context are closed;
3. wait until memory stops moving (the total of the last 3 samples, 3 s apart, within 1 MiB;
   at most ``--settle`` s) and measure again.

What is summed. **The system's processes**: every process of the hub's tree - for labdeck the
``labdeck up`` supervisor and what it runs (hub, proxy, broker, runs, viewer, the local clouds),
the warm pool's zygote and members, the servers and their kernels; for vanilla the hub, its proxy,
the servers and their kernels - the sum of ``Pss`` from ``/proc/<pid>/smaps_rollup`` (root reads
every user's). PSS shares each page among the processes that map it, so this sum is the part of
system-wide memory these processes account for, pages shared with anything else included at
their share. The headline is this sum, because the machine is shared: other engineers' tests
move the system-wide total by hundreds of MiB in a minute. **System-wide** (what the issue
names) is recorded too: ``Pss`` of every process on the machine except this benchmark and its
browser (this script, the Playwright driver and Chromium), with that caveat.

Reported per system: per person = (after - before) / N in MiB (the system's processes and
system-wide); marginal per person = the same from a third measurement once the first N/2 people
are there (after - middle) / (N - N/2), which leaves out what the first person starts for
everyone (labdeck's warm pool, caches of the hub); a breakdown per process kind (hub, proxy, services, zygote, pool member, server,
kernel, other; see ``smaps.classify``) before and after, the median server's PSS and
Private_Dirty, the 1-minute load average at each measurement; and the ratio labdeck / vanilla.
Writes ``<out>/memory.json`` and prints a table. As root, labdeck runs each server as the
person's own OS user; those accounts are removed at the end (``common.install_cleanup``).

Usage: ``flock /work/bench.lock python bench/memory.py [--users 20] [--systems labdeck,vanilla] [--settle 120] [--out bench/results]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, install_cleanup, make_system  # noqa: E402
from people import User, person  # noqa: E402
from procs import _tree  # noqa: E402
from report import fmt, machine, table, write_json  # noqa: E402
import smaps  # noqa: E402
from labdeck.spawner.local import pagemerge  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
ZYGOTE_MODULE = "labdeck.spawner.userserver.zygote"


def snapshot(system, names: list[str]) -> smaps.Snapshot:
    """PSS of every process of ``system``'s tree now, each with its kind."""
    tree = _tree(system.proc.pid)
    infos = []
    for p in tree:
        try:
            infos.append(smaps.Proc(p.pid, p.ppid(), tuple(p.cmdline())))
        except psutil.Error:
            continue
    # a zygote is started by the hub; its children run the same command line (members, claimed servers)
    zygotes = {i.pid for i in infos if ZYGOTE_MODULE in " ".join(i.cmdline) and i.ppid == system.hub_pid()}
    roles = {
        "hub": system.hub_pid(),
        "servers": {pid for pid in (system.server_pid(n) for n in names) if pid},
        "zygotes": zygotes,
        "services_parent": system.proc.pid if system.name.startswith("labdeck") else None,
    }
    snap = smaps.Snapshot()
    for i in infos:
        r = smaps.read_rollup(i.pid)
        if r is None:
            continue
        kind = "services" if i.pid == roles["services_parent"] else smaps.classify(i, roles)
        snap.procs.append({"pid": i.pid, "ppid": i.ppid, "kind": kind, "cmd": " ".join(i.cmdline)[:160],
                           "ksm_merge_any": pagemerge.process_marked(i.pid), **r})  # fmt: skip
    return snap


def excluded_pids(system) -> set[int]:
    """This benchmark and everything it runs that is not the system (the Playwright driver, Chromium)."""
    ours = {p.pid for p in _tree(os.getpid())}
    return ours - {p.pid for p in _tree(system.proc.pid)}


def settle(system, names: list[str], limit: float, interval: float = 3.0, ksm_scans: int = 0) -> tuple[smaps.Snapshot, int, int]:
    """Sample until the system's PSS stops moving (bounded by ``limit`` s); the last snapshot,
    the system-wide PSS without the benchmark, and how many samples it took.

    With the kernel's same-page merging running and the system's servers marked for it, memory
    also waits for ``ksm_scans`` full scans of the KSM daemon: it merges a page only once the page
    has stayed the same from one scan to the next, so memory can look still between its scans."""
    samples: list[int] = []
    deadline = time.monotonic() + limit
    ksm0 = smaps.ksm_state()
    while True:
        snap = snapshot(system, names)
        samples.append(snap.total)
        merging = ksm_scans and any(p.get("ksm_merge_any") for p in snap.procs)
        scanned = not merging or smaps.scans_since(ksm0, smaps.ksm_state()) >= ksm_scans
        if (smaps.settled(samples) and scanned) or time.monotonic() > deadline:
            return snap, smaps.system_pss(excluded_pids(system)), len(samples)
        time.sleep(interval)


def open_lab(browser, user: User, timeout: float) -> float:
    """Open the person's JupyterLab once in a fresh context (the hub's cookies); seconds until the shell shows."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        ctx.add_cookies([
            {"name": c.name, "value": c.value, "domain": "127.0.0.1", "path": c.path or "/"}
            for c in user.http.cookies
        ])  # fmt: skip
        page = ctx.new_page()
        t0 = time.monotonic()
        page.goto(user.server_url() + "lab", timeout=timeout * 1000)
        page.locator("#jp-main-dock-panel").wait_for(state="visible", timeout=timeout * 1000)
        took = time.monotonic() - t0
        page.close()
        return took
    finally:
        ctx.close()


PROC_KEYS = ("pid", "ppid", "kind", "cmd", "Pss", "Pss_Anon", "Private_Dirty", "Shared_Clean", "ksm_merge_any")


def ksm_cpu_percent(before: dict | None, after: dict | None, seconds: float) -> float | None:
    """The KSM daemon's CPU use between two readings, in % of one core."""
    if not before or not after or "ksmd_cpu_s" not in after or seconds <= 0:
        return None
    return round(100 * (after["ksmd_cpu_s"] - before["ksmd_cpu_s"]) / seconds, 2)


def kinds_mib(snap: smaps.Snapshot) -> dict:
    return {k: {"count": v["count"], "pss_mib": round(smaps.mib(v["Pss"]), 1), "private_dirty_mib": round(smaps.mib(v["Private_Dirty"]), 1)}
            for k, v in snap.by_kind().items()}  # fmt: skip


def measure(name: str, n: int, browser, args) -> dict:
    system = make_system(name)
    if args.keep_logs:
        system.keep_logs = args.out / "logs" / f"memory-{name}"
    names: list[str] = []
    users: list[User] = []
    try:
        system.start()
        before, before_sys, k0 = settle(system, names, args.settle, ksm_scans=args.ksm_scans)
        ksm_before, t_before = smaps.ksm_state(), time.monotonic()
        load_before = os.getloadavg()[0]
        lab_s = []
        tag = name.replace("labdeck", "ld").replace("vanilla", "va")
        half = n // 2
        mid = None
        for i in range(n):
            if i == half and half > 0:
                mid, _, _ = settle(system, names, args.settle, ksm_scans=args.ksm_scans)
            u = User(system.url, person(f"m{i:02d}-{tag}"))
            u.login(system.password)
            u.request_spawn()
            u.follow_progress(time.monotonic() + args.timeout)
            users.append(u)
            names.append(u.name)
            lab_s.append(open_lab(browser, u, args.timeout))
            system.remember()
        after, after_sys, k1 = settle(system, names, args.settle, ksm_scans=args.ksm_scans)
        ksm_after, t_after = smaps.ksm_state(), time.monotonic()
        load_after = os.getloadavg()[0]
        servers = [p for p in after.procs if p["kind"] == "server"]
        out = {
            "users": n,
            "per_person_mib": smaps.mib(smaps.per_person(before.total, after.total, n)),
            "per_person_systemwide_mib": smaps.mib(smaps.per_person(before_sys, after_sys, n)),
            # one more person once the first half are there: no start-up costs (the pool, the hub's first user)
            "marginal_per_person_mib": smaps.mib(smaps.per_person(mid.total, after.total, n - half)) if mid else None,
            "mid_mib": smaps.mib(mid.total) if mid else None,
            "before_mib": smaps.mib(before.total),
            "after_mib": smaps.mib(after.total),
            "systemwide_before_mib": smaps.mib(before_sys),
            "systemwide_after_mib": smaps.mib(after_sys),
            "settle_samples": [k0, k1],
            "load_before": round(load_before, 2),
            "load_after": round(load_after, 2),
            "lab_shown_s": lab_s,
            # the kernel's same-page merging: its counters, and the CPU its daemon used from before to after
            "ksm_before": ksm_before,
            "ksm_after": ksm_after,
            "ksmd_cpu_percent": ksm_cpu_percent(ksm_before, ksm_after, t_after - t_before),
            "servers_marked_for_merging": sum(1 for p in servers if p.get("ksm_merge_any")),
            "kinds_before": kinds_mib(before),
            "kinds_after": kinds_mib(after),
            "server_pss_median_mib": smaps.mib(statistics.median(p["Pss"] for p in servers)) if servers else None,
            "server_private_dirty_median_mib": smaps.mib(statistics.median(p["Private_Dirty"] for p in servers)) if servers else None,
            "processes_before": [{k: p[k] for k in PROC_KEYS} for p in before.procs],
            "processes_after": [{k: p[k] for k in PROC_KEYS} for p in after.procs],
        }
        return out
    finally:
        for u in users:
            try:
                u.stop_server(timeout=60)
            except Exception:
                pass
        system.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20, help="people, each opening JupyterLab once")
    ap.add_argument("--systems", default="labdeck,vanilla", help="vanilla, labdeck, labdeck-<variant> (common.VARIANTS)")
    ap.add_argument("--settle", type=float, default=600, help="at most this long (s) waiting for memory to stop moving")
    ap.add_argument("--ksm-scans", type=int, default=2,
                    help="with same-page merging on, also wait for this many full scans of the kernel's KSM daemon")
    ap.add_argument("--timeout", type=float, default=180, help="per person: spawn, and JupyterLab shown (s)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--keep-logs", action="store_true", help="copy each system's logs to <out>/logs/")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/memory.py: run as root (PSS of other users' processes)", file=sys.stderr)
        return 2
    install_cleanup()
    names = [x.strip() for x in args.systems.split(",") if x.strip()]
    info = machine()
    from playwright.sync_api import sync_playwright

    results = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for name in names:
                print(f"memory: {name}, {args.users} people (load {os.getloadavg()[0]:.2f})", flush=True)
                results[name] = measure(name, args.users, browser, args)
                write_json(args.out, "memory.json", {"machine": info, "partial": True, **results})  # a later failure keeps this
                print(f"  {fmt(results[name]['per_person_mib'], nd=1)} MiB per person", flush=True)
        except KeyboardInterrupt:
            print("bench: interrupted; stopping everything", file=sys.stderr)
            return 130
        finally:
            browser.close()
    info["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    van = results.get("vanilla", {}).get("per_person_mib")
    for r in results.values():
        r["per_person_over_vanilla"] = r["per_person_mib"] / van if van else None
        vm = results.get("vanilla", {}).get("marginal_per_person_mib")
        r["marginal_over_vanilla"] = r["marginal_per_person_mib"] / vm if vm and r["marginal_per_person_mib"] else None
    path = write_json(args.out, "memory.json", {"machine": info, **results})

    rows = []
    for name, r in results.items():
        k = r["kinds_after"]
        rows.append([
            name, r["users"], fmt(r["per_person_mib"], nd=1), fmt(r["per_person_over_vanilla"], "x"),
            fmt(r["marginal_per_person_mib"], nd=1), fmt(r["marginal_over_vanilla"], "x"),
            fmt(r["per_person_systemwide_mib"], nd=1), fmt(r["server_pss_median_mib"], nd=1),
            fmt(r["server_private_dirty_median_mib"], nd=1), k.get("kernel", {}).get("count", 0),
            f"{r['load_before']:.1f}-{r['load_after']:.1f}",
        ])
    print()
    print(f"memory: {info['nproc']} CPUs, {info['cpu_model']}, load {info['loadavg']} → {info['loadavg_after']}")
    print(table(rows, ["system", "N", "per person MiB", "/ vanilla", "marginal MiB", "/ vanilla", "system-wide MiB", "server PSS", "server priv. dirty",
                       "kernels", "load"]))
    for name, r in results.items():
        print(f"{name}: " + ", ".join(f"{k} {v['count']}× {v['pss_mib']} MiB" for k, v in r["kinds_after"].items()))
        if r["servers_marked_for_merging"]:
            print(f"{name}: {r['servers_marked_for_merging']} servers marked for same-page merging; the KSM daemon used "
                  f"{fmt(r['ksmd_cpu_percent'], nd=2)}% of a core from before to after")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
