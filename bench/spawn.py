"""One person, one server: login → server ready → first cell, labdeck vs vanilla JupyterHub.

Both systems run at the same time; each repetition uses a fresh user on each
and alternates which system goes first. Where the time goes:

- ``login``: login form + API token (client side);
- ``spawn``: POST server → "ready" on the progress stream (what the spawn page waits for);
- ``hook``: labdeck's own start steps (hub log "labdeck start steps for … took N ms":
  profile, home, files, credential issuance running concurrently with the process start);
- ``proc→ready``: hub log, from "Spawning <cmd>" (the process launch) to "User … took" (ready seen);
- ``kernel``: POST /api/kernels; ``cell``: first ``1 + 1`` result (includes kernel start-up);
- ``total``: login start → first cell result; ``cpu``: CPU seconds of the server process at ready.

Usage: ``python bench/spawn.py [--reps 5] [--warmup 1] [--out bench/results]``
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    RESULTS, SYSTEMS, SpawnError, User, fmt, install_cleanup, machine, med, table, write_json,
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
        if "] Spawning " in line:
            spawning = m.group(1)
        elif f"User {username} took " in line and spawning:
            t = [datetime.strptime(x, "%Y-%m-%d %H:%M:%S.%f") for x in (spawning, m.group(1))]
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
    result = u.execute("1 + 1", kid)
    t4 = time.monotonic()
    if result.strip() != "2":
        raise SpawnError(f"unexpected cell result {result!r}")
    row["cell_s"] = t4 - t3
    row["total_s"] = t4 - t0
    row["hub_took_s"] = hub_took_s(system, username)
    row["proc_to_ready_s"] = proc_to_ready_s(system, username)
    hook = system.hook_ms(username)
    row["hook_s"] = hook / 1000 if hook is not None else None
    if system.name == "labdeck":
        code = (
            "import boto3, os, time\nt = time.monotonic()\n"
            "b, p = os.environ['LABDECK_S3_HOME'][5:].split('/', 1)\n"
            "boto3.client('s3').list_objects_v2(Bucket=b, Prefix=p)\nround(time.monotonic() - t, 3)"
        )
        row["first_s3_call_s"] = float(u.execute(code, kid))
    u.stop_server()
    return row


def summarize(rows: list[dict]) -> dict:
    keys = ["login_s", "spawn_s", "hook_s", "proc_to_ready_s", "kernel_s", "cell_s", "total_s", "server_cpu_s", "hub_took_s", "first_s3_call_s"]
    return {k: med([r.get(k) for r in rows]) for k in keys}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="uncounted spawns per system first")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    install_cleanup()

    info = machine()
    systems = {}
    try:
        for name, cls in SYSTEMS.items():
            systems[name] = cls().start()
        rows: dict[str, list[dict]] = {n: [] for n in systems}
        errors: dict[str, list[str]] = {n: [] for n in systems}
        names = list(systems)
        for rep in range(-args.warmup, args.reps):
            order = names if rep % 2 == 0 else names[::-1]
            for name in order:
                user = f"{'w' if rep < 0 else 's'}{abs(rep)}-{name[:3]}"
                try:
                    row = one(systems[name], user)
                except (SpawnError, OSError, ValueError) as e:
                    errors[name].append(f"{user}: {e}")
                    print(f"  {name} {user}: FAILED {e}", flush=True)
                    continue
                if rep >= 0:
                    row["order"] = order.index(name)
                    rows[name].append(row)
                print(f"  {name:8} {user:10} spawn {row['spawn_s']:.2f}s total {row['total_s']:.2f}s", flush=True)
        info["loadavg_after"] = [round(x, 2) for x in __import__("os").getloadavg()]
    except KeyboardInterrupt:
        print("bench: interrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        for s in systems.values():
            s.stop()

    summary = {n: summarize(rows[n]) for n in rows}
    lab, van = summary["labdeck"], summary["vanilla"]

    def ratio(k):
        return lab[k] / van[k] if lab.get(k) and van.get(k) else None

    overhead = {
        k: {"labdeck_s": lab[k], "vanilla_s": van[k], "ratio": ratio(k), "delta_ms": (lab[k] - van[k]) * 1000 if lab[k] and van[k] else None}
        for k in ("spawn_s", "total_s", "server_cpu_s")
    }
    data = {"machine": info, "reps": args.reps, "rows": rows, "errors": errors, "median": summary, "overhead": overhead}
    path = write_json(args.out, "spawn.json", data)

    cols = [("login", "login_s"), ("spawn", "spawn_s"), ("hook", "hook_s"), ("proc→ready", "proc_to_ready_s"),
            ("kernel", "kernel_s"), ("cell", "cell_s"), ("total", "total_s"), ("server CPU", "server_cpu_s")]
    print()
    print(f"single spawn, median of {args.reps} (s); {info['nproc']} CPUs, {info['cpu_model']}, load {info['loadavg']} → {info['loadavg_after']}")
    print(table([[n, *[fmt(summary[n][k]) for _, k in cols], len(errors[n])] for n in summary], ["system", *[c for c, _ in cols], "failed"]))
    for k, o in overhead.items():
        print(f"labdeck/vanilla {k}: {fmt(o['ratio'], 'x', 3)} ({fmt(o['delta_ms'], ' ms', 0)})")
    if lab.get("first_s3_call_s") is not None:
        print(f"labdeck first S3 call in a kernel (credential_process → broker, cache warm): {lab['first_s3_call_s']:.3f}s")
    print(f"wrote {path}")
    return 0 if not any(errors.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
