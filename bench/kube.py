"""Spawn on Kubernetes: labdeck through its chart (cold pods, then warm pods) vs vanilla KubeSpawner, same run.

Everything runs in the kube harness of ``tests/kube`` (a real kube-apiserver + etcd +
kube-controller-manager on 127.0.0.1, process kubelets that run pods as local processes):

- ``labdeck`` (cold): ``helm install`` of helm/labdeck as ``tests/kube/chart_harness.started_release``
  installs it (hub, proxy, broker, runs, viewer in pods; OIDC login at a real provider; moto
  as S3); every spawn creates a pod, its Secret and (first time) its PVC;
- ``labdeck-warm``: the same release after ``helm upgrade --set singleuser.warmPool.enabled=true``
  (``singleuser.warmPool.size``, default 2): spawns claim warm pods; the storm runs once with
  that pool and once with a pool as large as the storm (``labdeck-warm-<N>``);
- ``vanilla``: JupyterHub + KubeSpawner from a clean venv (``bench/vanilla_venv.py --kube``,
  ``bench/vanilla_kube_config.py``), its hub a local process talking to the same API server,
  its pods in a namespace of their own with their own process kubelet, the image a clean
  ``jupyterhub-singleuser``.

One at a time (``--reps``, each rep a fresh person on each system, order rotated), then a storm
(``--storm`` people at once, per system). Timeline of each spawn, from the client and a watch
on the pods (monotonic clock of this process):

- ``spawn_s``: REST spawn request → ``ready`` on the progress stream (what the spawn page waits for);
- cold pods: ``hub_s`` request → pod created (the hub's work: options, credentials, Secret,
  PVC), ``schedule_s`` created → bound to the node, ``kubelet_s`` bound → container started
  (volumes, Secrets, process start), ``server_s`` started → the server accepts connections
  (its imports and start-up), ``notice_s`` listening → ready on the stream (the hub's
  readiness check, proxy route);
- warm pods: ``claim_s`` request → pod relabelled for the person (options, credentials, the
  claim), ``server_s`` claimed → listening, ``notice_s`` as above;
- labdeck only: ``hook_s``, labdeck's own start steps (hub log).

Writes ``<out>/kube.json`` and prints the tables. The harness's pods are processes of this
machine, so these are the platforms' own costs (API calls, hub work, server start-up) without
image pulls, CNI or volume attach: real clusters add those to every cold pod, and nothing to a
warm one.

Usage: ``python bench/kube.py [--reps 5] [--storm 20] [--pool 2] [--out bench/results]`` (as root)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import RESULTS  # noqa: E402
from kube_systems import Labdeck, Vanilla, spawn, stop_all, wait_pool  # noqa: E402
from people import SpawnError  # noqa: E402
from report import fmt, machine, med, table, write_json  # noqa: E402

KEYS = ["spawn_s", "hub_s", "claim_s", "schedule_s", "kubelet_s", "server_s", "notice_s", "hook_s"]


def summarize(rows: list[dict]) -> dict:
    out = {k: med([r.get(k) for r in rows]) for k in KEYS}
    out["spawn_s_all"] = [round(r["spawn_s"], 3) for r in rows]
    out["warm"] = sum(1 for r in rows if r.get("warm"))
    return out


def one_at_a_time(systems: dict, reps: int, gap: float, tag: str, names) -> tuple[dict, dict]:
    rows: dict[str, list] = {n: [] for n in systems}
    errors: dict[str, list] = {n: [] for n in systems}
    order = list(systems)
    for rep in range(reps):
        k = rep % len(order)
        for name in order[k:] + order[:k]:
            system = systems[name]
            user = system.login(next(names))
            time.sleep(gap)
            try:
                row = spawn(system, user)
                rows[name].append(row)
                print(f"  {name:13} {user.name:10} spawn {row['spawn_s']:.2f}s {'warm' if row['warm'] else 'cold'}", flush=True)
            except (SpawnError, OSError, ValueError) as e:
                errors[name].append(f"{user.name}: {e}")
                print(f"  {name:13} {user.name:10} FAILED {e}", flush=True)
            user.stop_server(timeout=120)
    return rows, errors


def storm(system, n: int, timeout: float, names) -> dict:
    users = [system.login(next(names)) for _ in range(n)]
    barrier = threading.Barrier(n + 1, timeout=120)
    box: dict = {}
    res: list = [None] * n

    def go(i):
        barrier.wait()
        try:
            res[i] = spawn(system, users[i], timeout=timeout, t0=box["t0"])
        except Exception as e:  # a person's view: any error is a failure
            res[i] = {"user": users[i].name, "error": f"{type(e).__name__}: {e}"}

    threads = [threading.Thread(target=go, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    box["t0"] = time.monotonic()
    barrier.wait()
    for t in threads:
        t.join(timeout + 60)
    ok = [r for r in res if r and "error" not in r]
    ready = sorted(r["ready_from_start_s"] for r in ok)
    stop_all(users)
    return {
        "users": n, "failures": n - len(ok), "errors": [r["error"] for r in res if r and "error" in r][:5],
        "ready_s": ready, "median_ready_s": med(ready), "last_ready_s": ready[-1] if ready else None,
        "first_ready_s": ready[0] if ready else None, "warm": sum(1 for r in ok if r.get("warm")),
        "progress_events_min": min((r["progress_events"] for r in ok), default=0),
        "median": summarize(ok),
    }  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--storm", type=int, default=20)
    ap.add_argument("--pool", type=int, default=2, help="singleuser.warmPool.size of labdeck-warm")
    ap.add_argument("--gap", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="kube.json")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench/kube.py runs the chart harness: run it as root (private mount namespaces per pod)")
    from tests.kube import chart_harness as ch
    from tests.kube.cluster import LocalCluster, ensure_apiserver

    ensure_apiserver()
    deadline = time.monotonic() + 1800
    while ch.ports_in_use() and time.monotonic() < deadline:  # another chart harness on this machine: wait for it
        print(f"waiting for ports {ch.ports_in_use()} (another chart harness is running)", flush=True)
        time.sleep(15)
    info = machine()
    people = (f"k{i:03d}" for i in range(10_000))
    identities = {f"k{i:03d}": ["data-team"] for i in range(args.reps * 6 + args.storm * 5 + 20)}  # every login below is a new person
    work = Path(tempfile.mkdtemp(prefix="bench-kube-", dir="/tmp"))
    os.chmod(work, 0o755)
    results: dict = {"machine": info, "reps": args.reps, "storm_size": args.storm, "pool": args.pool}
    # the chart's default hub.concurrentSpawnLimit (64; the harness's test values lower it to 10)
    chart_args = ["--set", "hub.concurrentSpawnLimit=64"]
    with LocalCluster() as cluster, ch.started_release(cluster, work / "release", identities, extra_args=chart_args, run_as_user=ch.warm_pods) as release:
        allow_root = work / "release" / "jupyter-config"
        vanilla = Vanilla(cluster, work, allow_root)
        labdeck = Labdeck(release, cluster, "labdeck")
        try:
            systems = {"vanilla": vanilla, "labdeck": labdeck}
            print(f"helm install: {release.install_seconds:.1f}s; one at a time, labdeck (cold pods) vs vanilla", flush=True)
            rows, errors = one_at_a_time(systems, args.reps, args.gap, "a", people)
            print(f"storm of {args.storm}: vanilla", flush=True)
            storms = {"vanilla": storm(vanilla, args.storm, args.timeout, people)}
            print(f"storm of {args.storm}: labdeck (cold pods)", flush=True)
            storms["labdeck"] = storm(labdeck, args.storm, args.timeout, people)
            # warm pods: the same release, upgraded
            release.helm("upgrade", ch.RELEASE, str(release.chart), "-n", ch.NAMESPACE, *release.args,
                         "--set", "singleuser.warmPool.enabled=true", "--set", f"singleuser.warmPool.size={args.pool}", "--timeout", "120s")  # fmt: skip
            time.sleep(2)
            release.wait_available()
            release.wait_routes()
            warm = Labdeck(release, cluster, "labdeck-warm")
            first = warm.login(next(people))  # the first login makes the hub's spawner object, which starts the pool
            wait_pool(release, args.pool)
            systems = {"vanilla": vanilla, "labdeck-warm": warm}
            print("one at a time, labdeck (warm pods) vs vanilla", flush=True)
            w_rows, w_errors = one_at_a_time(systems, args.reps, max(args.gap, 3.0), "b", people)
            rows["labdeck-warm"], errors["labdeck-warm"] = w_rows["labdeck-warm"], w_errors["labdeck-warm"]
            rows["vanilla"] += w_rows["vanilla"]
            errors["vanilla"] += w_errors["vanilla"]
            wait_pool(release, args.pool)
            print(f"storm of {args.storm}: labdeck (warm pods, {args.pool} waiting)", flush=True)
            storms["labdeck-warm"] = storm(warm, args.storm, args.timeout, people)
            # a pool as large as the storm: every person of it claims a waiting pod
            release.helm("upgrade", ch.RELEASE, str(release.chart), "-n", ch.NAMESPACE, *release.args,
                         "--set", "singleuser.warmPool.enabled=true", "--set", f"singleuser.warmPool.size={args.storm}", "--timeout", "120s")  # fmt: skip
            time.sleep(2)
            release.wait_available()
            release.wait_routes()
            first = warm.login(next(people))
            wait_pool(release, args.storm, timeout=600)
            print(f"storm of {args.storm}: labdeck (warm pods, {args.storm} waiting)", flush=True)
            storms[f"labdeck-warm-{args.storm}"] = storm(warm, args.storm, args.timeout, people)
            del first
            warm.stop()
        finally:
            labdeck.stop()
            vanilla.stop()
    summary = {n: summarize(r) for n, r in rows.items()}
    van = summary["vanilla"]["spawn_s"]
    results.update(rows=rows, errors=errors, median=summary, storms=storms,
                   ratio_to_vanilla={n: (s["spawn_s"] / van if s["spawn_s"] and van else None) for n, s in summary.items()},
                   storm_ratio_to_vanilla={n: {k: (s[k] / storms["vanilla"][k] if s[k] and storms["vanilla"][k] else None)
                                               for k in ("median_ready_s", "last_ready_s")} for n, s in storms.items()})  # fmt: skip
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    path = write_json(args.out, args.name, results)
    print()
    print(f"one at a time, median of {args.reps} ({2 * args.reps} for vanilla) (s); {info['nproc']} CPUs")
    cols = [("spawn", "spawn_s"), ("hub→pod", "hub_s"), ("claim", "claim_s"), ("schedule", "schedule_s"), ("kubelet", "kubelet_s"),
            ("server start", "server_s"), ("hub notices", "notice_s"), ("labdeck steps", "hook_s")]  # fmt: skip
    print(table([[n, *[fmt(s[k]) for _, k in cols], fmt(results["ratio_to_vanilla"][n], "x"), s["warm"], len(errors[n])] for n, s in summary.items()],
                ["system", *[c for c, _ in cols], "spawn/van", "warm", "failed"]))  # fmt: skip
    print()
    print(f"storm of {args.storm} (s from the common start of the spawn requests)")
    print(table([[n, s["failures"], fmt(s["median_ready_s"]), fmt(s["last_ready_s"]), fmt(s["first_ready_s"]), s["warm"],
                  fmt(results["storm_ratio_to_vanilla"][n]["median_ready_s"], "x"), fmt(results["storm_ratio_to_vanilla"][n]["last_ready_s"], "x")]
                 for n, s in storms.items()],
                ["system", "failed", "median ready", "last ready", "first ready", "warm", "median/van", "last/van"]))  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
