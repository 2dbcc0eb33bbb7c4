"""The journey of tests/helpers/journey.py on a real k3s cluster (.github/workflows/k3s-e2e.yaml).

The same scenario module as ``make up`` (tests/integration/test_journey.py) and the chart in
the local harness (tests/kube/test_chart_journey.py): dev login, profile form, spawn, an S3
cell with broker credentials (moto in the cluster), a parameterized run and its output, a
read-only share opened by a second user through the viewer, Welcome.ipynb in the home.

Then ``helm upgrade`` with a changed value (``$HELM_UPGRADE``, a shell command the workflow
passes) must keep alice's running server: still ready, and a kernel still answers.
"""

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.helpers import journey  # noqa: E402

HUB = os.environ.get("HUB_URL", "http://127.0.0.1:8080")


def main() -> int:
    target = journey.Target(
        name="k3s",
        url=HUB,
        password=os.environ["LABDECK_DEV_PASSWORD"],
        # the chart's AWS provider scopes with session policies; moto does not evaluate them
        enforces_isolation=False,
        spawn_timeout=600,
        run_timeout=900,
    )
    facts = journey.run(target)
    print("journey on k3s:", facts["seconds"], flush=True)
    upgrade = os.environ.get("HELM_UPGRADE")
    if upgrade:
        alice = facts["alice"]
        subprocess.run(shlex.split(upgrade), check=True)
        deadline = time.monotonic() + 300
        while True:
            try:
                server = alice.api("GET", "/users/alice").json()["servers"].get("")
                if server and server.get("ready"):
                    out = alice.execute("print(6 * 7)", alice.start_kernel(), timeout=120).check().stdout
                    if "42" in out:
                        break
            except Exception as e:  # noqa: BLE001 - the hub restarts during the upgrade
                print("waiting for the hub after the upgrade:", type(e).__name__, flush=True)
            assert time.monotonic() < deadline, "alice's server did not survive the upgrade"
            time.sleep(3)
        print("helm upgrade kept alice's running server", flush=True)
        alice.stop_server("", timeout=300)
    return 0


if __name__ == "__main__":
    sys.exit(main())
