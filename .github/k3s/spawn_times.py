"""Spawn times of the chart on a real k3s cluster: cold pods, or warm pods (singleuser.warmPool).

Run by .github/workflows/k3s-e2e.yaml twice on the same cluster, first with the chart as
installed (every spawn creates a pod) and then after ``helm upgrade --set
singleuser.warmPool.enabled=true`` (spawns claim pods started ahead of demand). Each run logs
in fresh people with the dev login and measures, per person, REST spawn request → ready
(``--reps`` one at a time, then ``--storm`` at once), and writes ``--out`` (JSON) for the
workflow's artifact. Reported, never asserted: timings are benchmarks (bench/), and
``bench/kube.py`` compares both with vanilla KubeSpawner in the local harness.
"""

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.helpers.hubclient import HubClient  # noqa: E402


def spawn(hub: str, name: str, password: str, timeout: float, t0: float | None = None) -> float:
    c = HubClient(hub).login(name, password)
    start = time.monotonic()
    r = c.api("POST", c.server_path(), json={})
    assert r.status_code in (201, 202), (r.status_code, r.text[:300])
    c.wait_ready(timeout=timeout)
    end = time.monotonic()
    c.stop_server(timeout=timeout)
    return end - (t0 if t0 is not None else start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hub", default="http://127.0.0.1:8080")
    ap.add_argument("--password", required=True)
    ap.add_argument("--label", required=True, help="cold or warm: names the people and the result")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--storm", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    single = []
    for i in range(args.reps):
        single.append(spawn(args.hub, f"{args.label}-one-{i}", args.password, args.timeout))
        print(f"{args.label} spawn {i}: {single[-1]:.2f}s", flush=True)
        time.sleep(3)  # a warm pool refills between spawns
    ready: list = [None] * args.storm
    t0 = time.monotonic()

    def one(i):
        try:
            ready[i] = spawn(args.hub, f"{args.label}-storm-{i}", args.password, args.timeout, t0)
        except Exception as e:  # noqa: BLE001 - a failed spawn is a result
            print(f"storm {i}: {type(e).__name__}: {e}", flush=True)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.storm)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.timeout + 120)
    ok = sorted(x for x in ready if x is not None)
    result = {
        "label": args.label, "single_s": single, "single_median_s": statistics.median(single),
        "storm": args.storm, "storm_failures": args.storm - len(ok),
        "storm_median_s": statistics.median(ok) if ok else None, "storm_last_s": ok[-1] if ok else None,
    }  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
