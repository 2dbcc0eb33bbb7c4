"""One person, one server: login → server ready → first cell, labdeck vs vanilla JupyterHub.

Both systems run at the same time; each repetition uses a fresh user on each
and alternates which system goes first. Where the time goes:

- ``login``: login form + API token (client side);
- ``spawn``: POST server → "ready" on the progress stream (what the spawn page waits for);
- ``hook``: labdeck's own start steps (hub log "labdeck start steps for … took N ms":
  profile, home, files, credential issuance running concurrently with the process start);
- ``proc→ready``: hub log, from "Spawning <cmd>" (the process launch) to "User … took" (ready seen);
- ``listening→seen``: hub log, from the server's own URL line (it serves) to "User … took":
  the hub's readiness polling alone (JupyterHub's back-off), without the CPU noise of the start;
- ``kernel``: POST /api/kernels; ``cell``: the first cell's result (includes kernel start-up):
  on labdeck an S3 call with the person's own credentials (``list_objects_v2`` on
  ``LABDECK_S3_HOME``: boto3 import, credential_process → broker, the emulator), on vanilla
  ``1 + 1`` (it has no S3 wiring) - so labdeck's ``total`` carries more work than vanilla's;
- ``total``: login start → first cell result; ``cpu``: CPU seconds of the server process at ready;
- ``warm``: the server was claimed from the warm pool (hub log "Claimed warm server").

Systems (``--systems``): ``vanilla`` (a clean JupyterHub 6.1.1 + JupyterLab 4.6.6 venv, see
``vanilla_venv.py``), ``labdeck`` (everything on) and ``labdeck-<variant>`` with one
optimisation after another turned off (``common.VARIANTS``), all running at the same time;
each repetition rotates the order, and spawns are ``--gap`` seconds apart.

Usage: ``python bench/spawn.py [--reps 7] [--warmup 1] [--systems ...] [--out bench/results]``
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, install_cleanup, make_system  # noqa: E402
from people import SpawnError, User, person  # noqa: E402
from report import fmt, machine, med, table, write_json  # noqa: E402

S3_CELL = (
    "import boto3, os\n"
    "b, p = os.environ['LABDECK_S3_HOME'][5:].split('/', 1)\n"
    "'ok %d' % boto3.client('s3').list_objects_v2(Bucket=b, Prefix=p).get('KeyCount', 0)"
)


_TS = r"\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) "


def proc_to_ready_s(system, username: str) -> float | None:
    """Hub log: the last "Spawning <cmd>" (the Popen) before "User <name> took …" (ready seen)."""
    from datetime import datetime

    spawning = None
    for line in system.hub_log().splitlines():
        m = re.match(_TS, line)
        if not m:
            continue
        if "] Spawning " in line or "Claimed warm server" in line:
            spawning = m.group(1)
        elif f"User {username} took " in line and spawning:
            t = [datetime.strptime(x, "%Y-%m-%d %H:%M:%S.%f") for x in (spawning, m.group(1))]
            return (t[1] - t[0]).total_seconds()
    return None


def notice_lag_s(log: str, username: str) -> float | None:
    """Hub log: from the server's own "http://…/user/<name>/… " line (it listens and serves) to the hub's
    "User <name> took …" (ready seen) - the readiness polling alone, without the CPU noise of the start."""
    from datetime import datetime

    listening = None
    for line in log.splitlines():
        m = re.match(_TS, line)
        if not m:
            continue
        if "ServerApp] http://" in line and f"/user/{username}/" in line:
            listening = m.group(1)
        elif f"User {username} took " in line and listening:
            t = [datetime.strptime(x, "%Y-%m-%d %H:%M:%S.%f") for x in (listening, m.group(1))]
            return (t[1] - t[0]).total_seconds()
    return None


def hub_took_s(system, username: str) -> float | None:
    found = re.findall(rf"User {re.escape(username)} took ([0-9.]+) seconds to start", system.hub_log())
    return float(found[-1]) if found else None


def one(system, username: str, timeout: float = 180) -> dict:
    u = User(system.url, username)
    row: dict = {"user": username}
    t0 = time.monotonic()
    u.login(system.password)
    t1 = time.monotonic()
    row["login_s"] = t1 - t0
    u.request_spawn()
    events = u.follow_progress(t1 + timeout)
    t2 = time.monotonic()
    row["spawn_s"] = t2 - t1
    row["progress_events"] = len(events)
    proc = system.server_process(username)
    if proc is not None:
        ct = proc.cpu_times()
        row["server_cpu_s"] = ct.user + ct.system + ct.children_user + ct.children_system
    system.remember()
    kid = u.start_kernel()
    t3 = time.monotonic()
    row["kernel_s"] = t3 - t2
    labdeck = system.name.startswith("labdeck")
    result = u.execute(S3_CELL if labdeck else "1 + 1", kid)
    t4 = time.monotonic()
    if not (result.strip("'\"").startswith("ok") if labdeck else result.strip() == "2"):
        raise SpawnError(f"unexpected cell result {result!r}")
    row["cell_s"] = t4 - t3
    row["total_s"] = t4 - t0
    row["hub_took_s"] = hub_took_s(system, username)
    row["proc_to_ready_s"] = proc_to_ready_s(system, username)
    row["notice_lag_s"] = notice_lag_s(system.hub_log(), username)
    row["warm"] = f"Claimed warm server" in system.hub_log() and bool(
        re.search(rf"Claimed warm server \d+ for {re.escape(username)}\b", system.hub_log()))
    hook = system.hook_ms(username)
    row["hook_s"] = hook / 1000 if hook is not None else None
    u.stop_server()
    return row


def summarize(rows: list[dict]) -> dict:
    keys = ["login_s", "spawn_s", "hook_s", "proc_to_ready_s", "notice_lag_s", "kernel_s", "cell_s", "total_s", "server_cpu_s", "hub_took_s"]
    out = {k: med([r.get(k) for r in rows]) for k in keys}
    out["spawn_s_all"] = [round(r["spawn_s"], 3) for r in rows]
    out["warm_claims"] = sum(1 for r in rows if r.get("warm"))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1, help="uncounted spawns per system first")
    ap.add_argument("--gap", type=float, default=3.0, help="seconds between two spawns")
    ap.add_argument("--systems", default="vanilla,labdeck-before,labdeck-ready,labdeck-cold,labdeck")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="spawn.json")
    ap.add_argument("--keep-logs", action="store_true", help="copy each system's logs to <out>/logs/<system>/")
    args = ap.parse_args(argv)
    install_cleanup()

    info = machine()
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    systems = {}
    loads = []
    try:
        for name in names:
            systems[name] = make_system(name)
            if args.keep_logs:
                systems[name].keep_logs = args.out / "logs" / name
            systems[name].start()
        time.sleep(5)  # let the warm pool's zygote import (it would be up long before the first login)
        rows: dict[str, list[dict]] = {n: [] for n in systems}
        errors: dict[str, list[str]] = {n: [] for n in systems}
        for rep in range(-args.warmup, args.reps):
            k = rep % len(names)
            order = names[k:] + names[:k]
            for name in order:
                user = person(f"{'w' if rep < 0 else 's'}{abs(rep)}-{name.replace('labdeck', 'ld')[:9]}")
                time.sleep(args.gap)
                load = os.getloadavg()[0]
                try:
                    row = one(systems[name], user)
                except (SpawnError, OSError, ValueError) as e:
                    errors[name].append(f"{user}: {e}")
                    print(f"  {name} {user}: FAILED {e}", flush=True)
                    continue
                row["loadavg_1m"] = load
                if rep >= 0:
                    row["order"] = order.index(name)
                    rows[name].append(row)
                    loads.append(load)
                print(f"  {name:15} {user:14} spawn {row['spawn_s']:.2f}s total {row['total_s']:.2f}s"
                      f" {'warm' if row.get('warm') else 'cold'} load {load:.2f}", flush=True)
        info["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        info["loadavg_1m_during"] = {"min": min(loads), "median": med(loads), "max": max(loads)} if loads else None
    except KeyboardInterrupt:
        print("bench: interrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        for s in systems.values():
            s.stop()

    summary = {n: summarize(rows[n]) for n in rows}
    van = summary.get("vanilla", {})

    def ratio(n, k):
        a, b = summary[n].get(k), van.get(k)
        return a / b if a and b else None

    ratios = {n: {k: ratio(n, k) for k in ("spawn_s", "total_s", "server_cpu_s")} for n in summary if n != "vanilla"}
    data = {"machine": info, "reps": args.reps, "gap_s": args.gap, "systems": names, "rows": rows, "errors": errors,
            "median": summary, "ratio_to_vanilla": ratios}
    path = write_json(args.out, args.name, data)

    cols = [("login", "login_s"), ("spawn", "spawn_s"), ("hook", "hook_s"), ("proc→ready", "proc_to_ready_s"),
            ("listening→seen", "notice_lag_s"),
            ("kernel", "kernel_s"), ("first cell", "cell_s"), ("total", "total_s"), ("server CPU", "server_cpu_s")]
    print()
    print(f"single spawn, median of {args.reps} (s); {info['nproc']} CPUs, {info['cpu_model']}, load {info['loadavg']} → {info['loadavg_after']}")
    print(table([[n, *[fmt(summary[n][k]) for _, k in cols], fmt(ratio(n, "spawn_s"), "x"), fmt(ratio(n, "total_s"), "x"),
                  summary[n]["warm_claims"], len(errors[n])] for n in summary],
                ["system", *[c for c, _ in cols], "spawn/van", "total/van", "warm", "failed"]))
    print(f"wrote {path}")
    return 0 if not any(errors.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
