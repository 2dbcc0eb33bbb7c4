"""``labdeck status``'s pure part (labdeck.hub.status.figures / render) on real metric registries."""

import math

from prometheus_client import Counter, Gauge, Histogram, generate_latest

from labdeck.credentials.metrics import BrokerMetrics
from labdeck.hub import status
from labdeck.hub.metrics import new_registry
from labdeck.runs.metrics import ViewerMetrics
from labdeck.runs.store import ShareStore


def hub_text():
    reg = new_registry()
    spawn = Histogram("jupyterhub_server_spawn_duration_seconds", "spawns", ["status", "reason"], buckets=(1, 5, 10), registry=reg)
    spawn.labels("success", "").observe(2)
    spawn.labels("success", "").observe(4)
    spawn.labels("failure", "error").observe(7)
    Gauge("jupyterhub_running_servers", "running", registry=reg).set(3)
    return generate_latest(reg).decode()


def test_figures_and_render(tmp_path):
    broker = new_registry()
    m = BrokerMetrics(broker, ["aws", "gcp"])
    for seconds in (0.02, 0.03, 0.2):
        m.issuance("aws", seconds)
    m.issuance("gcp", 31, "timeout")
    for _ in range(6):
        m.cache_hit("aws")
    runs = new_registry()
    c = Counter("labdeck_runs", "runs", ["status"], registry=runs)
    c.labels("succeeded").inc(4)
    c.labels("failed").inc()
    Gauge("labdeck_runs_running", "r", registry=runs).set(1)
    Gauge("labdeck_runs_queued", "q", registry=runs).set(2)
    Gauge("labdeck_schedules", "s", ["state"], registry=runs).labels("enabled").set(3)
    Gauge("labdeck_schedules_overdue", "o", registry=runs).set(0)
    viewer = new_registry()
    v = ViewerMetrics(viewer, ShareStore(tmp_path / "shares.sqlite"))
    v.viewed("share", 200)
    v.viewed("share", 403)
    texts = {"hub": hub_text(), "broker": generate_latest(broker).decode(), "runs": generate_latest(runs).decode(), "viewer": generate_latest(viewer).decode()}
    f = status.figures(texts)
    assert f["running_servers"] == 3 and f["spawns_ok"] == 2 and f["spawns_failed"] == 1 and f["spawn_mean_s"] == 3
    assert f["issued"] == 3 and f["issue_errors"] == 1 and f["cache_hits"] == 6
    assert f["cache_hit_ratio"] == 0.6
    assert math.isclose(f["issue_mean_s"], (0.25 + 31) / 4)
    assert f["issue_p95_le_s"] == math.inf  # the 31 s timeout is past the last bucket
    assert f["upstream_errors"] == {"gcp timeout": 1}
    assert f["runs"] == {"succeeded": 4, "failed": 1, **({"timed_out": 0} if "timed_out" in f["runs"] else {})}
    assert (f["runs_running"], f["runs_queued"], f["schedules"], f["schedules_overdue"]) == (1, 2, {"enabled": 3}, 0)
    assert f["shares"] == {"everyone": 0, "group": 0, "user": 0} and f["share_views"] == {"ok": 1, "denied": 1}

    st = status.Status("/s", "http://127.0.0.1:8000", [status.Component("hub", 12, True, "ok"), status.Component("runs", None, False, "down")], ["alice", "bob/run-1"], f, {"viewer": "HTTP 403"})
    text = status.render(st)
    assert "hub        pid 12           ok" in text and "runs       not running      down" in text
    assert "Servers: 2 running (alice, bob/run-1)" in text
    assert "Credentials: 3 issued, 1 failed; latency mean 7.8 s, p95 > 30 s; cache hits 6 (hit ratio 60%)" in text
    assert "Upstream errors: 1 gcp timeout" in text
    assert "Runs: 4 succeeded, 1 failed; 1 executing, 2 queued" in text
    assert "share views: 1 ok, 1 denied" in text and "(viewer metrics unavailable: HTTP 403)" in text


def test_quantile_bounds():
    assert status.quantile({}, 0.95) is None
    assert status.quantile({0.1: 5, 1.0: 9, math.inf: 10}, 0.95) == math.inf
    assert status.quantile({0.1: 5, 1.0: 10, math.inf: 10}, 0.5) == 0.1


def test_no_state_dir_is_a_clear_message(tmp_path, capsys):
    assert status.main({"LABDECK_STATE_DIR": str(tmp_path / "nothing")}) == 1
    assert "no embedded default in" in capsys.readouterr().err
