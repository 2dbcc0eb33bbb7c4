"""Overhead of a labdeck run over executing the same notebook directly with papermill.

Starts the real embedded default, then for the same small parameterized notebook
measures, N times each:

- **direct**: in alice's already-running server, a kernel runs
  ``python -m papermill in.ipynb out.ipynb -p n ...`` (the bare execution);
- **run**: ``POST /services/runs/api/runs`` until the run is ``succeeded`` (fresh
  named server with the user's credentials, driver, papermill, output + record to
  S3, server stopped).

Prints medians in ms and the ratio run/direct. Usage:
``.venv/bin/python bench/runs.py [-n 5]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.hubclient import HubClient  # noqa: E402
from tests.helpers.platform import start_platform  # noqa: E402
from tests.runs.conftest import write_notebook  # noqa: E402
from tests.runs.test_runs import runs_api, wait_run  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="labdeck-bench-runs-") as tmp:
        plat = start_platform(Path(tmp) / "state")
        try:
            alice = HubClient(plat.url).login("alice", plat.password)
            write_notebook(plat, "alice", "bench.ipynb", ["print(n * 2)"], parameters="n = 1")
            alice.start_server()
            kernel = alice.start_kernel()
            code = (
                "import subprocess, sys, time, os\n"
                "t = time.perf_counter()\n"
                "subprocess.run([sys.executable, '-m', 'papermill', 'bench.ipynb', '/tmp/labdeck-bench-out.ipynb', '-p', 'n', '3',"
                " '--no-progress-bar', '--log-level', 'ERROR'], check=True, cwd=os.environ['HOME'])\n"
                "print((time.perf_counter() - t) * 1000)"
            )
            direct, run = [], []
            alice.execute(code, kernel).check()  # warm-up
            for _ in range(args.n):
                direct.append(float(alice.execute(code, kernel).check().stdout.strip()))
            for i in range(args.n):
                t = time.perf_counter()
                r = runs_api(alice, "POST", "/runs", json={"notebook": "bench.ipynb", "parameters": {"n": i}})
                assert r.status_code == 201, r.text
                rec = wait_run(alice, r.json()["id"])
                assert rec["status"] == "succeeded", rec
                run.append((time.perf_counter() - t) * 1000)
            d, r_ = statistics.median(direct), statistics.median(run)
            print(f"direct papermill in a running server: median {d:.0f} ms  (n={args.n}: {', '.join(f'{x:.0f}' for x in direct)})")
            print(f"labdeck run (fresh server, S3 output): median {r_:.0f} ms  (n={args.n}: {', '.join(f'{x:.0f}' for x in run)})")
            print(f"overhead: {r_ - d:.0f} ms, ratio run/direct = {r_ / d:.2f}")
        finally:
            plat.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
