"""Start and stop: ``labdeck up`` → banner → every route answering, and Ctrl-C → nothing left; vs vanilla JupyterHub.

Per repetition, for labdeck (``labdeck up``, as the machine's user: as root
that is a team VM with OS users and cgroups) and vanilla (``jupyterhub -f
bench/vanilla_config.py``, its own venv, same proxy):

- ``ready``: start → the hub's health answers through the public port (vanilla: its whole platform);
- ``banner``: start → labdeck prints "labdeck is running" (it does so only once everything answers);
- ``routes``: start → every route a person uses answers through the public port: the hub, and
  labdeck's runs and viewer services (jobs and shares);
- ``stop``: Ctrl-C (SIGINT to the process group, as a terminal sends it) with one person's server and
  kernel running → the last process of the platform gone and every port it listened on closed.

labdeck runs twice per repetition on one state directory: ``first`` (a fresh directory: secrets,
the OS users' server environment) and ``again`` (the usual start). The machine's load average is
recorded before and after each run; other work on the machine counts, so read the ratios.

Usage: ``python bench/startstop.py [--reps 3] [--out bench/results]``
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, Labdeck, Vanilla, install_cleanup  # noqa: E402
from people import User, person, remove_os_users  # noqa: E402
from report import fmt, machine, med, table, write_json  # noqa: E402

ROUTES = ("/hub/health", "/services/runs/health", "/services/viewer/health")
DEADLINE_S = 120


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2, allow_redirects=False).status_code < 500
    except requests.RequestException:
        return False


def start_timed(system, routes) -> dict:
    """Start ``system`` without its own wait; the times of ready / banner / routes."""
    t0 = time.monotonic()
    if isinstance(system, Labdeck):
        system.wait_health = lambda timeout=0: None  # measured here instead
    system.start()
    marks: dict[str, float] = {}
    pending = {r: True for r in routes}
    while time.monotonic() - t0 < DEADLINE_S:
        if system.proc.poll() is not None:
            raise RuntimeError(f"{system.name} exited: {system.log_path}")
        now = time.monotonic() - t0
        for r in list(pending):
            if answers(system.url + r):
                del pending[r]
                if r == "/hub/health":
                    marks["ready"] = now
        if not pending:
            marks["routes"] = now
        if isinstance(system, Labdeck) and "banner" not in marks and "labdeck is running" in system.log_path.read_text(errors="replace"):
            marks["banner"] = now
        if "routes" in marks and (not isinstance(system, Labdeck) or "banner" in marks):
            break
        time.sleep(0.02)
    system.remember()
    return marks


def stop_timed(system) -> dict:
    """Ctrl-C with a server running → everything gone, ports closed."""
    user = User(system.url, person("stopper"))
    user.login(system.password)
    user.request_spawn()
    user.follow_progress(time.monotonic() + DEADLINE_S)
    user.start_kernel()
    system.remember()
    procs = [p for p in system._known.values() if p.is_running()]
    ports = set()
    for p in procs:
        try:
            ports |= {c.laddr.port for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            pass
    t0 = time.monotonic()
    os.killpg(system.proc.pid, signal.SIGINT)
    while time.monotonic() - t0 < DEADLINE_S:
        alive = [p for p in procs if _alive(p)]
        listening = [port for port in ports if _listening(port)]
        if not alive and not listening:
            return {"stop": time.monotonic() - t0, "processes": len(procs)}
        time.sleep(0.02)
    return {"stop": None, "left": [p.pid for p in procs if _alive(p)]}


def _alive(p) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    install_cleanup()
    import vanilla_venv

    vanilla_venv.ensure()  # built once, outside the timings
    rows = {"vanilla": [], "labdeck first": [], "labdeck again": []}
    try:
        for rep in range(args.reps):
            load = os.getloadavg()[0]
            v = Vanilla()
            marks = start_timed(v, ("/hub/health",))
            marks.update(stop_timed(v))
            rows["vanilla"].append({**marks, "load": load})
            v.stop()

            lab = Labdeck()
            for label in ("labdeck first", "labdeck again"):
                load = os.getloadavg()[0]
                if label == "labdeck again":
                    lab._stopped = False
                    lab._known = {}
                marks = start_timed(lab, ROUTES)
                marks.update(stop_timed(lab))
                rows[label].append({**marks, "load": load})
            lab.stop()
            print(f"rep {rep + 1}/{args.reps}: " + ", ".join(f"{k} {fmt(r[-1].get('routes'), 's', 1)}/{fmt(r[-1].get('stop'), 's', 1)}" for k, r in rows.items()), flush=True)
    finally:
        remove_os_users()

    def m(label, key):
        return med([r[key] for r in rows[label] if r.get(key) is not None])

    summary = []
    for label in rows:
        summary.append([
            label, fmt(m(label, "ready"), "s", 1), fmt(m(label, "banner"), "s", 1) if "labdeck" in label else "-",
            fmt(m(label, "routes"), "s", 1), fmt(m(label, "routes") / m("vanilla", "ready"), "x", 2),
            fmt(m(label, "stop"), "s", 1), fmt(m(label, "stop") / m("vanilla", "stop"), "x", 2), fmt(m(label, "load"), "", 1),
        ])  # fmt: skip
    header = ["system", "ready", "banner", "routes", "routes/vanilla ready", "Ctrl-C → all gone", "stop/vanilla", "load (1 min)"]
    print(table(summary, header))
    path = write_json(args.out, "startstop.json", {"machine": machine(), "reps": args.reps, "runs": rows, "summary": [dict(zip(header, r)) for r in summary]})
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
