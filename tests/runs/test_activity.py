"""A server that executes a run reports activity, so the idle culler never culls it mid-run.

Real hub, proxy and user server (``labdeck up``), the runs service's own token
and its real :class:`~labdeck.runs.launcher.HubLauncher`, and the real
``jupyterhub-idle-culler`` with a timeout far shorter than the run's silent
cell. Its own platform: the culler culls every idle server of the hub, which
would stop other tests' servers in the shared one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time

import pytest
import requests

from tests.helpers.hubclient import HubClient
from tests.helpers.platform import session_platform

from labdeck.runs.launcher import HubLauncher

pytestmark = pytest.mark.integration

SERVER = "run-activity"
CULL_TIMEOUT = 3  # seconds of inactivity the culler allows
SILENT_CELL = 12  # seconds the run sits in one cell without output


platform = session_platform("labdeck-activity", scope="module")  # a platform of its own


def hub_api(platform) -> str:
    return f"http://127.0.0.1:{platform.settings()['hub_port']}/hub/api"


def server_model(platform, token: str, user: str) -> dict | None:
    r = requests.get(f"{hub_api(platform)}/users/{user}", headers={"Authorization": f"token {token}"}, timeout=10)
    r.raise_for_status()
    return (r.json().get("servers") or {}).get(SERVER)


def test_executing_run_is_not_culled(platform):
    runs_token = (platform.state_dir / "secrets" / "runs_token").read_text().strip()
    admin = HubClient(platform.url).login("admin", platform.password)
    HubClient(platform.url).login("erin", platform.password)  # the run's owner exists
    launcher = HubLauncher(hub_api(platform), platform.url, runs_token, logging.getLogger("test-runs"), activity_interval=0.5)

    async def run() -> str:
        await launcher.start_server("erin", SERVER, {}, timeout=120)
        return await launcher.execute("erin", SERVER, f"import time\ntime.sleep({SILENT_CELL})\nprint('finished')", timeout=120)

    culler = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterhub_idle_culler",
            f"--url={hub_api(platform)}", f"--timeout={CULL_TIMEOUT}", "--cull-every=1", "--remove-named-servers=True",
        ],
        env={**os.environ, "JUPYTERHUB_API_TOKEN": admin.token},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        seen = []

        async def watch(task):
            while not task.done():
                model = await asyncio.to_thread(server_model, platform, runs_token, "erin")
                if model and model.get("ready"):
                    seen.append(model["last_activity"])
                await asyncio.sleep(0.5)

        async def both():
            task = asyncio.ensure_future(run())
            await watch(task)
            return await task

        # the run's cell is silent for 4x the culler's timeout, and the server is there at the end
        assert asyncio.run(both()).strip() == "finished"
        assert culler.poll() is None, culler.communicate()[0]  # the culler was running all along
        assert server_model(platform, runs_token, "erin") is not None, culler.stdout
        assert len(set(seen)) >= 3, seen  # activity kept moving while the cell ran
        assert seen == sorted(seen)

        # once the run no longer reports, the same culler stops the idle server: the test above meant something
        deadline = time.monotonic() + 60
        while server_model(platform, runs_token, "erin") is not None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert server_model(platform, runs_token, "erin") is None
    finally:
        culler.terminate()
        out, _ = culler.communicate(timeout=30)
        print(out[-3000:])
        if server_model(platform, runs_token, "erin") is not None:
            asyncio.run(launcher.stop_server("erin", SERVER, timeout=60))
    assert runs_token not in platform.logs()


def test_a_run_leaves_no_kernel_behind(platform):
    """The launcher shuts down the kernel it started, also when the run's server stays up."""
    runs_token = (platform.state_dir / "secrets" / "runs_token").read_text().strip()
    HubClient(platform.url).login("frank", platform.password)
    launcher = HubLauncher(hub_api(platform), platform.url, runs_token, logging.getLogger("test-runs"))
    kernels = f"{platform.url}/user/frank/{SERVER}/api/kernels"
    headers = {"Authorization": f"token {runs_token}"}

    async def run() -> str:
        await launcher.start_server("frank", SERVER, {}, timeout=120)
        return await launcher.execute("frank", SERVER, "print(6 * 7)", timeout=120)

    try:
        assert asyncio.run(run()).strip() == "42"
        r = requests.get(kernels, headers=headers, timeout=10)
        assert r.status_code == 200 and r.json() == [], r.text[:300]
    finally:
        asyncio.run(launcher.stop_server("frank", SERVER, timeout=60))
