"""The idle culler under ``labdeck up``: a hub-managed service (jupyterhub-idle-culler) configured by the one configurer.

Same values and defaults as the chart (``culler.*``); here a values file makes it
quick (5 s of inactivity, checked every 2 s) so an idle local server is culled.
"""

import time

import pytest

from tests.helpers.hubclient import HubClient
from tests.helpers.platform import start_platform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def quick_culler(tmp_path_factory):
    root = tmp_path_factory.mktemp("culler")
    values = root / "values.yaml"
    values.write_text("culler:\n  timeout: 5\n  every: 2\n")
    plat = start_platform(root / "state", extra_env={"LABDECK_VALUES_FILE": str(values)})
    try:
        yield plat
    finally:
        plat.stop()


def test_culler_runs_as_a_hub_service_and_culls_an_idle_server(quick_culler):
    plat = quick_culler
    alice = HubClient(plat.url).login("alice", plat.password)
    alice.start_server()
    assert alice.api("GET", "/users/alice").json()["servers"][""]["ready"]
    deadline = time.monotonic() + 120
    servers = {"": {}}
    while time.monotonic() < deadline and servers:
        servers = alice.api("GET", "/users/alice").json().get("servers") or {}
        time.sleep(1)
    assert servers == {}, "the idle server was not culled"
    hub_log = (plat.state_dir / "logs" / "hub.log").read_text()
    assert "Starting managed service idle-culler" in hub_log
    assert "--timeout=5" in hub_log and "--cull-every=2" in hub_log
    assert "Culling server alice" in hub_log or "culling server alice" in hub_log.lower()
