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
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import vanilla_venv  # noqa: E402
from common import CHP, RESULTS  # noqa: E402
from people import SpawnError, User  # noqa: E402
from procs import free_port  # noqa: E402
from report import fmt, machine, med, table, write_json  # noqa: E402

VANILLA_NS = "vanilla-bench"
VANILLA_IMAGE = "vanilla/singleuser:bench"


# ------------------------------------------------------------------ pod timeline


class PodWatch:
    """A watch on one namespace's pods: when each was first seen, bound, started, ready, claimed, and its address."""

    def __init__(self, cluster, namespace: str):
        self.cluster, self.namespace = cluster, namespace
        self.pods: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        token = self.cluster.admin_token_file.read_text().strip()
        url = f"{self.cluster.url}/api/v1/namespaces/{self.namespace}/pods"
        rv = ""
        while not self.stopped.is_set():
            try:
                params = {"watch": "1", "timeoutSeconds": "60", "allowWatchBookmarks": "false"}
                if rv:
                    params["resourceVersion"] = rv
                with requests.get(url, params=params, headers={"Authorization": f"Bearer {token}"}, stream=True,
                                  verify=str(self.cluster.ca_file), timeout=(10, 90)) as r:  # fmt: skip
                    for line in r.iter_lines():
                        if self.stopped.is_set():
                            return
                        if not line:
                            continue
                        ev = json.loads(line)
                        if ev.get("type") == "ERROR":
                            rv = ""
                            break
                        self._seen(ev["object"])
                        rv = ev["object"]["metadata"].get("resourceVersion", rv)
            except (requests.RequestException, ValueError):
                time.sleep(0.2)

    def _seen(self, pod: dict) -> None:
        now = time.monotonic()
        meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        with self.lock:
            rec = self.pods.setdefault(meta["uid"], {"name": meta["name"], "added": now})
            user = (meta.get("annotations") or {}).get("hub.jupyter.org/username")
            if user and "user" not in rec:
                rec["user"], rec["claimed"] = user, now
            if spec.get("nodeName"):
                rec.setdefault("scheduled", now)
            if status.get("podIP"):
                rec["ip"] = status["podIP"]
            for cs in status.get("containerStatuses") or []:
                if "running" in (cs.get("state") or {}):
                    rec.setdefault("started", now)
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
                rec.setdefault("ready", now)
            if (meta.get("labels") or {}).get("labdeck.dev/warm") == "ready":
                rec["warm_free"] = True

    def of(self, user: str, after: float) -> dict | None:
        """The pod of ``user`` claimed or created after ``after``."""
        with self.lock:
            found = [dict(r) for r in self.pods.values() if r.get("user") == user and r.get("claimed", 0) >= after - 0.5]
        return found[-1] if found else None

    def stop(self) -> None:
        self.stopped.set()


def wait_listening(watch: PodWatch, user: str, after: float, port: int, deadline: float) -> float | None:
    """When the user's server first accepts a connection (a connect every 10 ms once its pod has an address)."""
    while time.monotonic() < deadline:
        rec = watch.of(user, after)
        if rec and rec.get("ip"):
            try:
                with socket.create_connection((rec["ip"], port), timeout=0.2):
                    return time.monotonic()
            except OSError:
                pass
        time.sleep(0.01)
    return None


# ------------------------------------------------------------------ systems


class Vanilla:
    name = "vanilla"

    def __init__(self, cluster, workdir: Path, allow_root: Path):
        from tests.kube.kubelet import KubeletThread, ProcessKubelet

        self.tmp = Path(tempfile.mkdtemp(prefix="bench-kube-vanilla-", dir=workdir))
        self.password = secrets.token_urlsafe(12)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        vbin = vanilla_venv.ensure(kube=True)
        import asyncio

        from tests.kube.chart_harness import _create_namespace

        asyncio.run(_create_namespace(str(cluster.kubeconfig), VANILLA_NS))
        self.kubelet_thread = KubeletThread(ProcessKubelet(
            str(cluster.kubeconfig), VANILLA_NS, node_name="vanilla-bench-node", workdir=self.tmp / "kubelet",
            # the image's CMD: KubeSpawner's default cmd (None) runs what the image says, as docker-stacks' images do
            default_commands={VANILLA_IMAGE: ["jupyterhub-singleuser"]}, ip_prefix="127.0.6.",  # 127.0.5. is test_harness.py's
            image_env={VANILLA_IMAGE: {"PATH": f"{vbin}:/usr/bin:/bin", "JUPYTER_CONFIG_PATH": str(allow_root), "PYTHONUNBUFFERED": "1"}},
        ))  # fmt: skip
        self.kubelet = self.kubelet_thread.start()
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")},
            "VIRTUAL_ENV": str(vbin.parent), "KUBECONFIG": str(cluster.kubeconfig),
            "BENCH_VANILLA_DIR": str(self.tmp), "BENCH_VANILLA_PORT": str(self.port),
            "BENCH_VANILLA_HUB_PORT": str(free_port()), "BENCH_VANILLA_API_PORT": str(free_port()),
            "BENCH_VANILLA_PASSWORD": self.password, "BENCH_CHP": str(CHP),
            "BENCH_VANILLA_NAMESPACE": VANILLA_NS, "BENCH_VANILLA_IMAGE": VANILLA_IMAGE,
            "PATH": f"{vbin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        }  # fmt: skip
        self.log_path = self.tmp / "jupyterhub.log"
        with open(self.log_path, "wb") as f:
            self.proc = subprocess.Popen([str(vbin / "python"), "-m", "jupyterhub", "-f", str(Path(__file__).parent / "vanilla_kube_config.py")],
                                         env=env, cwd=str(self.tmp), stdout=f, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.watch = PodWatch(cluster, VANILLA_NS)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vanilla hub exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/hub/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise RuntimeError("vanilla hub not healthy")

    def login(self, name: str) -> User:
        from tests.helpers.hubclient import HubClient

        c = HubClient(self.url).login(name, self.password)
        return User(self.url, name, token=c.token)

    def hub_log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def hook_s(self, user: str) -> float | None:
        return None

    def stop(self) -> None:
        self.watch.stop()
        if self.proc.poll() is None:
            self.proc.terminate()  # cleanup_servers: the hub deletes its pods
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        self.kubelet_thread.stop()


class Labdeck:
    def __init__(self, release, cluster, name: str):
        from tests.helpers import oidc
        from tests.kube import chart_harness as ch

        self.release, self.name, self.url = release, name, release.url
        self._login = oidc.journey_login(release.url)
        self.watch = PodWatch(cluster, ch.NAMESPACE)

    def login(self, name: str) -> User:
        c = self._login(name)
        return User(self.url, name, token=c.token)

    def hub_log(self) -> str:
        return self.release.log("hub")

    def hook_s(self, user: str) -> float | None:
        import re

        found = re.findall(rf"labdeck start steps for {re.escape(user)} took (\d+) ms", self.hub_log())
        return float(found[-1]) / 1000 if found else None

    def stop(self) -> None:
        self.watch.stop()


# ------------------------------------------------------------------ one spawn


def spawn(system, user: User, timeout: float = 240, t0: float | None = None) -> dict:
    """POST → ready, with the pod's timeline; ``t0`` is the common start of a storm."""
    row: dict = {"user": user.name}
    start = time.monotonic()
    listening: dict = {}
    probe = threading.Thread(target=lambda: listening.update(t=wait_listening(system.watch, user.name, start, 8888, start + timeout)), daemon=True)
    user.request_spawn()
    probe.start()
    events = user.follow_progress(start + timeout)
    ready = events[-1]["t"]
    probe.join(max(0.1, start + timeout - time.monotonic()))
    row["spawn_s"] = ready - start
    if t0 is not None:
        row["ready_from_start_s"] = ready - t0
    row["progress_events"] = len(events)
    rec = system.watch.of(user.name, start) or {}
    row["pod"] = rec.get("name")
    warm = bool(rec.get("warm_free")) and rec.get("added", start) < start
    row["warm"] = warm
    t_listen = listening.get("t")
    if warm:
        row["claim_s"] = rec["claimed"] - start
        if t_listen:
            row["server_s"] = t_listen - rec["claimed"]
    else:
        for key, a, b in (("hub_s", None, "added"), ("schedule_s", "added", "scheduled"), ("kubelet_s", "scheduled", "started")):
            if b in rec and (a is None or a in rec):
                row[key] = rec[b] - (start if a is None else rec[a])
        if t_listen and "started" in rec:
            row["server_s"] = t_listen - rec["started"]
    if t_listen:
        row["notice_s"] = ready - t_listen
    row["hook_s"] = system.hook_s(user.name)
    return row


def stop_all(users: list[User]) -> None:
    threads = [threading.Thread(target=u.stop_server, kwargs={"timeout": 120}) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)


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


def wait_pool(release, n: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        free = [p for p in release.pods("labdeck.dev%2Fwarm%3Dready") if p["status"].get("phase") == "Running"]
        ready = 0
        for p in free:
            try:
                ready += requests.get(f"http://{p['status']['podIP']}:8889/ready", timeout=1).status_code == 200
            except requests.RequestException:
                pass
        if ready >= n:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the warm pool did not fill to {n} in {timeout}s")


if __name__ == "__main__":
    sys.exit(main())
