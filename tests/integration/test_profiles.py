"""Profiles on the local spawner: what this machine can run, enforced on the server."""

import pytest
import requests

from labdeck.spawner.local.spawner import local_capabilities
from tests.helpers.required import missing

pytestmark = pytest.mark.integration


def test_form_offers_what_this_machine_can_run(platform, alice):
    # a named server's form: the default server may already run in this session
    html = alice.http.get(platform.url + "/hub/spawn/alice/formcheck", timeout=10).text
    assert 'value="jupyterlab"' in html
    assert "RStudio needs the labdeck image" in html  # shown, disabled, with the reason
    assert 'value="rstudio" disabled' in html


def test_unavailable_or_unknown_profile_is_refused_and_nothing_starts(platform, alice):
    for options, code, text in [
        ({"profile": "rstudio"}, 400, "not available here"),
        ({"profile": "no-such"}, 400, "Unknown profile"),
        ({"profile": "jupyterlab", "cmd": "rm -rf /"}, 400, "Unknown server option(s): cmd"),
    ]:
        r = alice.api("POST", "/users/alice/servers/forged", json=options)
        assert r.status_code == code, r.text
        assert text in r.json()["message"]
    assert "forged" not in (alice.api("GET", "/users/alice").json().get("servers") or {})


def test_jupyterlab_with_r_runs_r_code(platform, alice):
    if "r" in local_capabilities():
        # make test installs R and IRkernel (make r-deps): in CI this is a failure, not a skip
        missing("R", local_capabilities()["r"])
    alice.start_server("rlab", options={"profile": "jupyterlab-r", "size": "small"})
    try:
        k = alice.start_kernel("rlab", name="ir")
        r = alice.execute("cat(sum(1:10), Sys.getenv('LABDECK_PROFILE'))", k, server="rlab").check()
        assert r.stdout.split() == ["55", "jupyterlab-r"]
    finally:
        alice.stop_server("rlab")


def test_lab_does_not_ask_new_hires_about_news(platform, alice):
    alice.start_server("settings")
    try:
        r = requests.get(
            alice.server_url("settings") + "lab/api/settings/@jupyterlab/apputils-extension:notification",
            headers=alice.headers(),
            timeout=30,
        )
        assert r.status_code == 200, r.text[:200]
        body = r.json()
        # overrides.json becomes the schema default that JupyterLab applies
        assert body["schema"]["properties"]["fetchNews"]["default"] == "false"
        assert body["schema"]["properties"]["checkForUpdates"]["default"] is False
    finally:
        alice.stop_server("settings")
