"""Credential broker latency and single-flight, on loopback against the real embedded default.

Usage: ``python bench/broker.py [--requests 1000] [--fresh-users 200] [--storm 40] [--concurrent 50] [--out bench/results]``

- cached: p50/p99 of N sequential ``aws/credentials`` calls by one user (cache hits);
- fresh: p50/p99 of first calls by distinct users, one after another (each a cache
  miss: one STS AssumeRole with the person's session policy in moto), for aws and gcp;
- storm: S new people's first ``aws/credentials`` calls all at once (what a storm of
  first logins asks of the broker): p50 and last, and the wall time until all are issued;
- single-flight: C concurrent first requests for one new user → upstream calls (goal: 1).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.hubclient import HubClient  # noqa: E402
from tests.helpers.platform import start_platform  # noqa: E402


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--fresh-users", type=int, default=200)
    ap.add_argument("--storm", type=int, default=40)
    ap.add_argument("--concurrent", type=int, default=50)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="labdeck-bench-") as tmp:
        plat = start_platform(Path(tmp) / "state")
        try:
            s = plat.settings()
            broker = f"http://127.0.0.1:{s['broker_port']}/services/broker/"

            def user_token(name):
                # log in through the real form, as a person would, and get an API token
                return HubClient(plat.url).login(name, plat.password).token

            http = requests.Session()

            def call(token, provider="aws"):
                t = time.perf_counter()
                r = http.get(f"{broker}{provider}/credentials", headers={"Authorization": f"token {token}"}, timeout=30)
                dt = (time.perf_counter() - t) * 1000
                r.raise_for_status()
                return dt

            def call_new_session(token):
                # a session per thread (requests.Session is not thread-safe)
                t = time.perf_counter()
                r = requests.get(f"{broker}aws/credentials", headers={"Authorization": f"token {token}"}, timeout=60)
                r.raise_for_status()
                return (time.perf_counter() - t) * 1000

            tok = user_token("bench-cached")
            call(tok)
            cached = [call(tok) for _ in range(args.requests)]
            tokens = [user_token(f"bench-fresh-{i}") for i in range(args.fresh_users)]
            fresh_aws = [call(t, "aws") for t in tokens]
            fresh_gcp = [call(t, "gcp") for t in tokens]

            storm_tokens = [user_token(f"bench-storm-{i}") for i in range(args.storm)]
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.storm) as pool:
                storm = list(pool.map(lambda t: call_new_session(t), storm_tokens))
            storm_wall = (time.perf_counter() - t0) * 1000

            before = http.get(broker + "health", timeout=10).json()["upstream_calls"]
            tok = user_token("bench-flight")
            with concurrent.futures.ThreadPoolExecutor(args.concurrent) as pool:
                list(pool.map(lambda _: requests.get(f"{broker}aws/credentials", headers={"Authorization": f"token {tok}"}, timeout=30).status_code, range(args.concurrent)))
            after = http.get(broker + "health", timeout=10).json()["upstream_calls"]
        finally:
            plat.stop()

    result = {
        "cached_ms": {"n": len(cached), "p50": round(pct(cached, 50), 2), "p99": round(pct(cached, 99), 2), "mean": round(statistics.mean(cached), 2)},
        "fresh_aws_ms": {"n": len(fresh_aws), "p50": round(pct(fresh_aws, 50), 2), "p99": round(pct(fresh_aws, 99), 2)},
        "fresh_gcp_ms": {"n": len(fresh_gcp), "p50": round(pct(fresh_gcp, 50), 2), "p99": round(pct(fresh_gcp, 99), 2)},
        "storm_aws_ms": {"n": len(storm), "p50": round(pct(storm, 50), 2), "max": round(max(storm), 2), "wall": round(storm_wall, 2)},
        "single_flight": {"concurrent_first_requests": args.concurrent, "upstream_calls": after - before},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "broker.json").write_text(json.dumps(result, indent=2))
    print(f"{'':22}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}")
    for key in ("cached_ms", "fresh_aws_ms", "fresh_gcp_ms"):
        r = result[key]
        print(f"{key:22}{r['n']:>6}{r['p50']:>10}{r['p99']:>10}")
    st = result["storm_aws_ms"]
    print(f"storm: {st['n']} new people at once -> p50 {st['p50']} ms, last {st['max']} ms, all issued in {st['wall']} ms")
    sf = result["single_flight"]
    print(f"{sf['concurrent_first_requests']} concurrent first requests -> {sf['upstream_calls']} upstream call(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
