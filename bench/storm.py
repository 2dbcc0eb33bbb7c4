"""N people log in and start their servers at the same moment: labdeck vs vanilla JupyterHub.

For each N (``--users 10,20,40``) and each system (one system at a time, order
alternating per N, a fresh hub for each round), one thread per person: login
form → API token → POST server → follow the progress stream (what the spawn
page shows) until "ready" or "failed". Reported per system:

- ``ready_s``: per person, seconds from the common start to ready (``None``: failed);
- ``failures``: count, with HTTP codes / messages in ``errors``;
- ``progress_events``: how many progress events each person saw;
- ``hub_cpu_s``: CPU seconds of the hub process during the storm (psutil);
- ``floor_s``: the machine's physical floor, N × (CPU seconds of one server
  start, measured on this system in this run: the jupyterhub-singleuser process
  from launch to ready, median of ``--calibrate`` starts) ÷ logical CPUs;
- ``last_ready_over_floor``: last ready time ÷ floor; ``…_with_foreign``: the same with the
  CPU other programs used during the storm added to the floor (shared machines);
- labdeck only: ``upstream_sts_calls``: upstream calls per person per provider during the
  storm (broker health; the target is 1);
- ``foreign_cpu_s``: CPU the machine spent on neither this system nor the benchmark.

Writes ``<out>/storm.json`` (``{"machine":…, "rounds": [{"users": N, "labdeck": {…}, "vanilla": {…}}]}``
plus top-level ``labdeck``/``vanilla`` for the largest N) and prints a table.

Usage: ``python bench/storm.py [--users 10,20,40] [--timeout 300] [--out bench/results]``
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, install_cleanup, make_system  # noqa: E402
from people import SpawnError, User, person  # noqa: E402
from report import fmt, machine, med, table, write_json  # noqa: E402
from stormlog import marks, shares, steps  # noqa: E402


def server_cpu(system, name: str) -> float | None:
    p = system.server_process(name)
    if p is None:
        return None
    t = p.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def calibrate(system, n: int, tag: str) -> list[float]:
    """CPU seconds of single, unloaded server starts (launch → ready) on this system."""
    out = []
    for i in range(n):
        u = User(system.url, person(f"cal{i}-{tag}"))
        u.login(system.password)
        u.request_spawn()
        u.follow_progress(time.monotonic() + 120)
        cpu = server_cpu(system, u.name)
        if cpu is not None:
            out.append(cpu)
        system.remember()
        u.stop_server()
    return out


def storm(system, n: int, timeout: float, tag: str) -> dict:
    users = [User(system.url, person(f"u{i:03d}-{tag}")) for i in range(n)]
    res = [dict(user=u.name, ready_s=None, error=None, code=None, progress_events=0, server_cpu_s=None) for u in users]
    barrier = threading.Barrier(n + 1, timeout=60)
    t0_box = {}

    def one_person(i: int, u: User) -> None:
        r = res[i]
        try:
            barrier.wait()
            t0 = t0_box["t0"]
            deadline = t0 + timeout
            u.login(system.password, timeout=timeout)
            r["login_s"] = time.monotonic() - t0
            r["post_code"] = u.request_spawn(timeout=timeout)
            events = u.follow_progress(deadline)
            r["ready_s"] = events[-1]["t"] - t0
            r["progress_events"] = len(events)
            r["first_progress_s"] = events[0]["t"] - t0 if events else None
            r["saw_queue"] = any("free slot" in (e.get("message") or "") for e in events)
            r["server_cpu_s"] = server_cpu(system, u.name)
        except SpawnError as e:
            r["error"], r["code"] = str(e), e.code
            r["failed_at_s"] = time.monotonic() - t0_box["t0"]
        except Exception as e:  # a person's view: anything else is a failure too
            r["error"] = f"{type(e).__name__}: {e}"

    threads = [threading.Thread(target=one_person, args=(i, u), daemon=True) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    hub_cpu0 = system.hub_cpu()
    health0 = system.broker_health() if system.name.startswith("labdeck") else None
    busy0, ours0 = machine_busy(), system.tree_cpu() + _self_cpu()
    t0_box["t0"], t0_wall = time.monotonic(), time.time()
    barrier.wait()
    for t in threads:
        t.join(timeout=max(1.0, t0_box["t0"] + timeout + 30 - time.monotonic()))
    hub_cpu = system.hub_cpu() - hub_cpu0
    system.remember()
    busy, ours = machine_busy() - busy0, system.tree_cpu() + _self_cpu() - ours0
    out = {
        "users": n,
        "t0_wall": t0_wall,
        "ready_wall": {r["user"]: t0_wall + r["ready_s"] for r in res if r["ready_s"] is not None},
        "ready_s": [r["ready_s"] for r in res],
        "failures": sum(1 for r in res if r["ready_s"] is None),
        "errors": [
            {"user": r["user"], "code": r["code"], "error": r["error"], "at_s": r.get("failed_at_s")} for r in res if r["ready_s"] is None
        ],
        "http_500s": sum(1 for r in res if r["code"] and r["code"] >= 500),
        "progress_events": [r["progress_events"] for r in res],
        "first_progress_s": [r.get("first_progress_s") for r in res],
        "saw_queue_position": sum(1 for r in res if r.get("saw_queue")),
        "login_s": [r.get("login_s") for r in res],
        "server_cpu_s": [r["server_cpu_s"] for r in res],
        "hub_cpu_s": hub_cpu,
        # CPU the whole machine spent during the storm, and how much of it was
        # neither this system nor this benchmark (other people's work on a shared box)
        "machine_busy_cpu_s": busy,
        "foreign_cpu_s": max(0.0, busy - ours),
    }
    if health0 is not None:
        health = system.broker_health()
        providers = max(1, len(health.get("providers") or []))
        out["broker_providers"] = health.get("providers")
        out["upstream_calls"] = health["upstream_calls"] - health0["upstream_calls"]
        # the broker counts one upstream call per provider (aws STS, gcp) per issuance
        out["upstream_sts_calls"] = out["upstream_calls"] / providers / n
    # stop everyone (bounded), so the next round starts from an idle machine
    stoppers = [threading.Thread(target=lambda u=u: _quiet(u.stop_server, 120), daemon=True) for u in users if u.token]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join(timeout=150)
    return out


def machine_busy() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _quiet(fn, *a):
    try:
        fn(*a)
    except Exception:
        pass


def run_round(name: str, n: int, args) -> dict:
    system = make_system(name)
    if args.keep_logs:
        system.keep_logs = args.out / "logs" / f"{name}-{n}"
    if name.startswith("labdeck"):
        system.experiments = args.experiment
    try:
        system.start()
        tag = name.replace("labdeck", "ld").replace("vanilla", "va") + str(n)
        cal = calibrate(system, args.calibrate, tag)
        out = storm(system, n, args.timeout, tag)
        if name.startswith("labdeck"):  # where each person's time went, from the hub's log (bench/stormlog.py)
            found = marks(system.hub_log())
            per_person = [steps(found.get(u, {}), out["t0_wall"], t) for u, t in out["ready_wall"].items()]
            out["steps"] = shares([p for p in per_person if p])
            out["steps_people"] = sum(1 for p in per_person if p)
    finally:
        system.stop()
    cores = os.cpu_count() or 1
    one = med(cal)
    ready = [x for x in out["ready_s"] if x is not None]
    out["last_ready_s"] = max(ready) if ready else None
    out["median_ready_s"] = med(ready)
    out["calibration_cpu_s"] = cal
    out["one_start_cpu_s"] = one
    out["cores"] = cores
    out["floor_s"] = n * one / cores if one else None
    out["last_ready_over_floor"] = out["last_ready_s"] / out["floor_s"] if out["last_ready_s"] and out["floor_s"] else None
    # On a shared machine other people's work takes CPU too: the floor this system
    # could reach is N server starts *plus* that foreign CPU, on the same cores.
    out["floor_with_foreign_s"] = out["floor_s"] + out["foreign_cpu_s"] / cores if out["floor_s"] else None
    out["last_ready_over_floor_with_foreign"] = (
        out["last_ready_s"] / out["floor_with_foreign_s"] if out["last_ready_s"] and out["floor_with_foreign_s"] else None
    )
    out["mean_server_cpu_in_storm_s"] = (
        sum(x for x in out["server_cpu_s"] if x) / max(1, sum(1 for x in out["server_cpu_s"] if x))
    )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", default="10,20,40", help="comma-separated storm sizes")
    ap.add_argument("--systems", default="labdeck,labdeck-cold,vanilla",
                    help="vanilla, labdeck, labdeck-<variant> (common.VARIANTS); labdeck-before = no queue, no pool")
    ap.add_argument("--timeout", type=float, default=300, help="per person, seconds (bounded)")
    ap.add_argument("--calibrate", type=int, default=3, help="single starts to measure one start's CPU")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--keep-logs", action="store_true", help="copy each system's logs to <out>/logs/")
    ap.add_argument("--experiment", action="append", default=[], help="measure a proposed fix on labdeck (see common.EXPERIMENTS)")
    args = ap.parse_args(argv)
    install_cleanup()
    sizes = [int(x) for x in args.users.split(",") if x.strip()]
    names = [x.strip() for x in args.systems.split(",") if x.strip()]
    info = machine()
    rounds = []
    try:
        for k, n in enumerate(sizes):
            order = names if k % 2 == 0 else names[::-1]
            rnd = {"users": n, "order": order}
            for name in order:
                print(f"storm of {n}: {name} (load {os.getloadavg()[0]:.2f})", flush=True)
                rnd[name] = run_round(name, n, args)
                r = rnd[name]
                print(f"  last ready {fmt(r['last_ready_s'])}s, failures {r['failures']}, floor {fmt(r['floor_s'])}s", flush=True)
            rounds.append(rnd)
    except KeyboardInterrupt:
        print("bench: interrupted; stopping everything", file=sys.stderr)
        return 130
    info["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    data = {"machine": info, "experiments": args.experiment, "rounds": rounds}
    if rounds:
        for name in names:
            data[name] = rounds[-1][name]
    path = write_json(args.out, "storm.json", data)

    rows = []
    for rnd in rounds:
        for name in names:
            r = rnd[name]
            codes = sorted({e["code"] for e in r["errors"] if e["code"]})
            rows.append([
                rnd["users"], name, r["failures"], ",".join(map(str, codes)) or "-", r["http_500s"],
                fmt(r["median_ready_s"]), fmt(r["last_ready_s"]), fmt(r["one_start_cpu_s"]), fmt(r["floor_s"]),
                fmt(r["last_ready_over_floor"], "x"), fmt(r.get("last_ready_over_floor_with_foreign"), "x"),
                fmt(r["hub_cpu_s"]), fmt(r["foreign_cpu_s"], nd=0),
                fmt(r.get("upstream_sts_calls"), nd=1),
            ])
    print()
    print(f"storm: {info['nproc']} CPUs, {info['cpu_model']}, load {info['loadavg']} → {info['loadavg_after']}")
    print(table(rows, ["N", "system", "failed", "codes", "500s", "median ready", "last ready", "1 start CPU", "floor",
                       "last/floor", "last/(floor+others)", "hub CPU", "others' CPU", "STS/user"]))
    for rnd in rounds:
        for name in names:
            if rnd[name].get("steps"):
                parts = ", ".join(f"{k} {v['median_s']:.2f} s ({v['share']:.0%})" for k, v in rnd[name]["steps"].items())
                print(f"  N={rnd['users']} {name}, median per step ({rnd[name]['steps_people']} people): {parts}")
            for e in rnd[name]["errors"][:3]:
                print(f"  N={rnd['users']} {name} {e['user']}: {e['code'] or ''} {e['error'][:160]}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
