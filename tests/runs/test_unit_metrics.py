"""The runs, viewer and broker metric sets (labdeck.runs.metrics, labdeck.credentials.metrics) on real stores."""

from prometheus_client import generate_latest

from labdeck.credentials.metrics import BrokerMetrics
from labdeck.hub.metrics import new_registry
from labdeck.runs.metrics import RunsMetrics, RunsStateCollector, ViewerMetrics
from labdeck.runs.records import Schedule
from labdeck.runs.shares import Share
from labdeck.runs.store import RunStore, ShareStore


class FakeScheduler:
    def __init__(self, store):
        self.store = store
        self.tasks = {"r1": object()}


def sample(registry, name, labels=None):
    return registry.get_sample_value(name, labels or {})


def test_every_series_exists_at_zero_and_labels_are_bounded(tmp_path):
    reg = new_registry()
    BrokerMetrics(reg, ["aws", "gcp"])
    RunsMetrics(reg, FakeScheduler(RunStore(tmp_path / "runs.sqlite")))
    ViewerMetrics(reg, ShareStore(tmp_path / "shares.sqlite"))
    assert sample(reg, "labdeck_broker_credentials_issued_total", {"provider": "gcp", "result": "error"}) == 0
    assert sample(reg, "labdeck_broker_upstream_errors_total", {"provider": "aws", "kind": "timeout"}) == 0
    assert sample(reg, "labdeck_runs_total", {"status": "timed_out"}) == 0
    assert sample(reg, "labdeck_viewer_views_total", {"kind": "share", "result": "denied"}) == 0
    assert sample(reg, "labdeck_shares", {"kind": "group"}) == 0
    assert sample(reg, "labdeck_runs_running") == 1
    assert sample(reg, "process_cpu_seconds_total") is not None  # process metrics per service
    # a second service in the same process has a registry of its own
    other = new_registry()
    RunsMetrics(other, FakeScheduler(RunStore(tmp_path / "other.sqlite")))
    assert sample(other, "labdeck_broker_cache_hits_total", {"provider": "aws"}) is None


def test_broker_issuance_errors_and_hits(tmp_path):
    reg = new_registry()
    m = BrokerMetrics(reg, ["aws"])
    m.issuance("aws", 0.02)
    m.issuance("aws", 31.0, "timeout")
    m.issuance("aws", 0.5, "something-odd")  # unknown kinds never become label values
    m.cache_hit("aws")
    assert sample(reg, "labdeck_broker_credentials_issued_total", {"provider": "aws", "result": "success"}) == 1
    assert sample(reg, "labdeck_broker_credentials_issued_total", {"provider": "aws", "result": "error"}) == 2
    assert sample(reg, "labdeck_broker_upstream_errors_total", {"provider": "aws", "kind": "timeout"}) == 1
    assert sample(reg, "labdeck_broker_upstream_errors_total", {"provider": "aws", "kind": "refused"}) == 1
    assert sample(reg, "labdeck_broker_issue_duration_seconds_bucket", {"provider": "aws", "le": "0.025"}) == 1
    assert sample(reg, "labdeck_broker_issue_duration_seconds_bucket", {"provider": "aws", "le": "30.0"}) == 2
    assert sample(reg, "labdeck_broker_cache_hits_total", {"provider": "aws"}) == 1
    assert b"something-odd" not in generate_latest(reg)


def test_overdue_schedules_and_no_user_data_in_labels(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    now = 1_800_000_000.0
    # every minute, last fired 10 minutes ago: overdue; hourly fired at the last hour: not
    store.add_schedule(Schedule(id="a" * 12, owner="alice", notebook="secret/path.ipynb", parameters={}, profile=None,
                                cron="* * * * *", timeout=60, created=now - 3600, last_fired=now - 600))
    store.add_schedule(Schedule(id="b" * 12, owner="bob", notebook="b.ipynb", parameters={}, profile=None,
                                cron="0 * * * *", timeout=60, created=now - 3600, last_fired=now - (now % 3600)))
    store.add_schedule(Schedule(id="c" * 12, owner="carol", notebook="c.ipynb", parameters={}, profile=None,
                                cron="* * * * *", timeout=60, created=now - 3600, enabled=False))
    reg = new_registry()
    m = RunsMetrics(reg, FakeScheduler(store))
    reg.unregister(next(c for c in reg._collector_to_names if isinstance(c, RunsStateCollector)))
    reg.register(RunsStateCollector(FakeScheduler(store), overdue_after=120, clock=lambda: now))
    m.run_finished("succeeded", 42.0)
    m.run_finished("weird", None)
    assert sample(reg, "labdeck_schedules", {"state": "enabled"}) == 2
    assert sample(reg, "labdeck_schedules", {"state": "disabled"}) == 1
    assert sample(reg, "labdeck_schedules_overdue") == 1
    assert sample(reg, "labdeck_runs_total", {"status": "succeeded"}) == 1
    assert sample(reg, "labdeck_runs_total", {"status": "failed"}) == 1
    assert sample(reg, "labdeck_runs_duration_seconds_count") == 1
    text = generate_latest(reg).decode()
    for secret in ("alice", "bob", "carol", "secret/path", "a" * 12):
        assert secret not in text


def test_viewer_results_and_active_shares(tmp_path):
    shares = ShareStore(tmp_path / "shares.sqlite")
    reg = new_registry()
    m = ViewerMetrics(reg, shares)
    for status in (200, 302, 403, 404, 400, 500):
        m.viewed("share", status)
    assert {r: sample(reg, "labdeck_viewer_views_total", {"kind": "share", "result": r}) for r in ("ok", "login", "denied", "not_found", "bad_request", "error")} == {
        "ok": 1, "login": 1, "denied": 1, "not_found": 1, "bad_request": 1, "error": 1,
    }
    shares.add(Share(id="x" * 43, owner="alice", path="a.ipynb", kind="user", grantee="bob", created=1.0))
    shares.add(Share(id="y" * 43, owner="alice", path="a.ipynb", kind="group", grantee="team", created=1.0))
    shares.revoke("y" * 43, 2.0)
    assert sample(reg, "labdeck_shares", {"kind": "user"}) == 1
    assert sample(reg, "labdeck_shares", {"kind": "group"}) == 0
    assert "alice" not in generate_latest(reg).decode()
