"""A real Prometheus scraping ``labdeck up``: every metric the chart's dashboard and alerts use exists.

Prometheus (Debian's, on 127.0.0.1, data in a temporary directory) scrapes the
hub's ``/hub/metrics`` and the broker's, runs service's and viewer's
``<prefix>metrics`` with an admin's API token (admins have ``read:metrics``).
After a login, a spawn, a run and a share view, every metric name in
``files/metrics/dashboard.json`` and ``templates/metrics/prometheusrule.yaml``
must be in Prometheus, and every dashboard query must return series — so no
panel or alert refers to a metric that does not exist. The endpoints' access
rules and the absence of user data in label values are checked on the same
platform.
"""

import json
import re
import time
from pathlib import Path

import pytest
import requests

from labdeck.hub.service import URL_TOKEN_REFUSED
from tests.helpers.hubclient import HubClient
from tests.helpers.prometheus import start_prometheus

from .conftest import write_notebook
from .test_runs import runs_api, wait_run

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "helm" / "labdeck"
DASHBOARD = CHART / "files/metrics/dashboard.json"
RULES = CHART / "templates/metrics/prometheusrule.yaml"
METRIC = re.compile(r"\b((?:jupyterhub|labdeck|process)_[a-z0-9_]+)")


def endpoints(platform) -> dict:
    s = platform.settings()
    return {
        "hub": (f"127.0.0.1:{s['hub_port']}", "/hub/metrics"),
        "broker": (f"127.0.0.1:{s['broker_port']}", "/services/broker/metrics"),
        "runs": (f"127.0.0.1:{s['runs_port']}", "/services/runs/metrics"),
        "viewer": (f"127.0.0.1:{s['viewer_port']}", "/services/viewer/metrics"),
    }


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def referenced_metrics() -> set[str]:
    text = "\n".join(dashboard_queries()) + "\n" + RULES.read_text()
    return set(METRIC.findall(text))


@pytest.mark.parametrize("service", ["broker", "runs", "viewer"])
def test_metrics_need_read_metrics(platform, admin, alice, service):
    host, path = endpoints(platform)[service]
    url = f"http://{host}{path}"
    assert requests.get(url, timeout=30).status_code == 401
    r = requests.get(url, headers=alice.headers(), timeout=30)
    assert r.status_code == 403 and "read:metrics" in r.json()["error"]
    r = requests.get(url, params={"token": admin.token}, timeout=30)
    assert r.status_code == 400 and r.json()["error"] == URL_TOKEN_REFUSED
    r = requests.get(url, headers=admin.headers(), timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert "process_resident_memory_bytes" in r.text and "labdeck_" in r.text
    # also through the proxy, like any hub service
    assert requests.get(f"{platform.url}{path}", headers=admin.headers(), timeout=30).status_code == 200


def test_prometheus_finds_every_metric_of_the_dashboard_and_alerts(platform, admin, alice, tmp_path):
    jobs = [{"name": n, "target": t, "path": p, "token": admin.token} for n, (t, p) in endpoints(platform).items()]
    prom = start_prometheus(tmp_path / "prometheus", jobs)
    try:
        # a login, a spawn (credentials are issued for it), a run and a share view
        mona = HubClient(platform.url).login("mona", platform.password)
        mona.start_server()
        mona.stop_server()
        write_notebook(platform, "mona", "metrics_run.ipynb", ["print('hello metrics')"])
        run = wait_run(mona, runs_api(mona, "POST", "/runs", json={"notebook": "metrics_run.ipynb"}).json()["id"])
        assert run["status"] == "succeeded", run
        output = run["output"].split("/home/mona/", 1)[1]
        r = requests.post(f"{platform.url}/services/viewer/api/shares", headers=mona.headers(), json={"path": output, "user": "alice"}, timeout=30)
        assert r.status_code == 201, r.text
        view = alice.http.get(f"{platform.url}/services/viewer/s/{r.json()['id']}", timeout=60)
        assert view.status_code == 200 and "hello metrics" in view.text

        wanted = {
            'sum(jupyterhub_server_spawn_duration_seconds_count{status="success"})': 1,
            'sum(labdeck_broker_credentials_issued_total{result="success"})': 1,
            'sum(labdeck_runs_total{status="succeeded"})': 1,
            'sum(labdeck_viewer_views_total{kind="share", result="ok"})': 1,
            "sum(labdeck_shares)": 1,
        }
        deadline = time.monotonic() + 60
        missing = dict(wanted)
        while missing and time.monotonic() < deadline:
            for expr, least in list(missing.items()):
                result = prom.query(expr)
                if result and float(result[0]["value"][1]) >= least:
                    del missing[expr]
            time.sleep(0.5)
        assert not missing, f"not seen by Prometheus within 60 s: {missing}"

        targets = {t["labels"]["job"]: t["health"] for t in prom.targets()}
        assert targets == {"hub": "up", "broker": "up", "runs": "up", "viewer": "up"}, prom.targets()
        names = prom.metric_names()
        absent = sorted(referenced_metrics() - names)
        assert not absent, f"dashboard/alerts use metrics nobody exports: {absent}"
        # a rate() needs two scrapes of a series: a series that appeared in the last scrape has one
        for expr in dashboard_queries():
            query = expr.replace("$namespace", ".*")
            deadline = time.monotonic() + 30
            while not prom.query(query) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert prom.query(query), f"dashboard query returns nothing within 30 s: {expr}"
        # process metrics of every service
        assert {r["metric"]["job"] for r in prom.query("process_resident_memory_bytes")} == set(targets)
        # no user, path, token or key in any labdeck label value
        series = prom.api("series", **{"match[]": '{__name__=~"labdeck_.*"}'})
        values = {v for s in series for k, v in s.items() if k != "__name__"}
        for secret in ("mona", "alice", "metrics_run", output, admin.token, mona.token, r.json()["id"], "home/"):
            assert not [v for v in values if secret in v], secret
    finally:
        prom.stop()


def test_labdeck_status_and_banner(platform):
    import os
    import subprocess

    from tests.helpers.platform import LABDECK

    stella = HubClient(platform.url).login("stella", platform.password)
    stella.start_server()
    try:
        proc = subprocess.run([LABDECK, "status"], env={**os.environ, "LABDECK_STATE_DIR": str(platform.state_dir)}, capture_output=True, text=True, timeout=60)
    finally:
        stella.stop_server()
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for name in ("aws", "bigquery", "broker", "proxy", "hub", "runs", "viewer"):
        assert re.search(rf"^  {name} +pid \d+ +ok$", out, re.M), (name, out)
    assert re.search(r"^  Servers: \d+ running \(.*stella.*\)$", out, re.M), out
    for line in ("  Spawns: ", "  Credentials: ", "  Upstream errors: ", "  Runs: ", "  Schedules: ", "  Shares: "):
        assert line in out, (line, out)
    assert "metrics unavailable" not in out
    secrets = platform.state_dir / "secrets"
    for name in ("supervisor_token", "broker_token", "runs_token", "viewer_token"):
        assert (secrets / name).read_text().strip() not in out + proc.stderr
    banner = platform.log_path.read_text()
    for path in ("/hub/metrics", "/services/broker/metrics", "/services/runs/metrics", "/services/viewer/metrics"):
        assert f"{platform.url}{path}" in banner
    assert "labdeck status" in banner
