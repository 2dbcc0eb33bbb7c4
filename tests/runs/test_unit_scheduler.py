"""The scheduler with a driven clock and named fake launchers (no hub, no sleeping for minutes).

The real launcher (hub API + kernels) is exercised in tests/runs/.
"""

import asyncio
import datetime
import json

import pytest

from labdeck.runs import driver
from labdeck.runs.launcher import ExecTimeout, LaunchError, Launcher
from labdeck.runs.scheduler import LimitExceeded, Scheduler
from labdeck.runs.store import RunStore


def ts(s):
    return datetime.datetime.fromisoformat(s).replace(tzinfo=datetime.timezone.utc).timestamp()


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


class RecordingLauncher(Launcher):
    """Succeeds; records calls and the most servers alive at once per user."""

    def __init__(self, hold: float = 0.0):
        self.hold = hold
        self.calls = []
        self.alive: dict[str, set] = {}
        self.peak: dict[str, int] = {}

    async def start_server(self, user, server, options, timeout):
        self.calls.append(("start", user, server, options))
        self.alive.setdefault(user, set()).add(server)
        self.peak[user] = max(self.peak.get(user, 0), len(self.alive[user]))

    async def execute(self, user, server, code, timeout):
        self.calls.append(("execute", user, server, code))
        await asyncio.sleep(self.hold)
        return driver.RESULT_MARKER + json.dumps({"status": "succeeded", "error": None, "input_sha256": "ab" * 32}) + "\n"

    async def stop_server(self, user, server, timeout):
        self.calls.append(("stop", user, server))
        self.alive.get(user, set()).discard(server)


class HangingLauncher(RecordingLauncher):
    """The kernel never answers: the scheduler's deadline must fire."""

    async def execute(self, user, server, code, timeout):
        raise ExecTimeout()


class RefusingLauncher(RecordingLauncher):
    """The hub refuses the spawn (e.g. a forged profile)."""

    async def start_server(self, user, server, options, timeout):
        raise LaunchError("the hub refused to start the run's server: profile 'gpu' is not available to you")


@pytest.fixture
def db(tmp_path):
    return tmp_path / "runs.sqlite"


def make(db, launcher, clock, **kw):
    return Scheduler(RunStore(db), launcher, bucket="labdeck-data", clock=clock, **kw)


async def test_run_lifecycle_and_server_options(db):
    clock = Clock(ts("2026-11-23T10:00:00"))
    launcher = RecordingLauncher()
    s = make(db, launcher, clock)
    run = s.submit("alice", "a.ipynb", {"n": 2}, "jupyterlab", 60)
    await s.wait_idle(10)
    got = s.store.get_run(run.id)
    assert got.status == "succeeded" and got.input_sha256 == "ab" * 32
    assert [c[0] for c in launcher.calls] == ["start", "execute", "stop"]
    assert launcher.calls[0] == ("start", "alice", f"run-{run.id}", {"profile": "jupyterlab"})
    code = launcher.calls[1][3]
    assert "run_and_report" in code and json.dumps({"n": 2})[1:-1] in code.replace('\\"', '"')
    assert got.output_key == f"home/alice/runs/a/20261123T100000Z-{run.id}.ipynb"


async def test_per_user_limit_queues_the_rest(db):
    launcher = RecordingLauncher(hold=0.05)
    s = make(db, launcher, Clock(ts("2026-11-23T10:00:00")), per_user_limit=1)
    ids = [s.submit("alice", "a.ipynb", {}, None, 60).id for _ in range(3)]
    ids.append(s.submit("bob", "a.ipynb", {}, None, 60).id)
    statuses = {r.id: r.status for r in s.store.list_runs()}
    assert sorted(statuses.values()) == ["queued", "queued", "starting", "starting"]
    await s.wait_idle(10)
    assert launcher.peak == {"alice": 1, "bob": 1}
    assert {s.store.get_run(i).status for i in ids} == {"succeeded"}


async def test_queue_limit(db):
    s = make(db, RecordingLauncher(hold=1), Clock(0.0), per_user_limit=1, max_queued_per_user=2)
    s.submit("alice", "a.ipynb", {}, None, 60)  # starts
    s.submit("alice", "a.ipynb", {}, None, 60)
    s.submit("alice", "a.ipynb", {}, None, 60)
    with pytest.raises(LimitExceeded):
        s.submit("alice", "a.ipynb", {}, None, 60)
    for t in s.tasks.values():
        t.cancel()


async def test_timeout_is_recorded_and_server_stopped(db):
    launcher = HangingLauncher()
    s = make(db, launcher, Clock(0.0))
    run = s.submit("alice", "a.ipynb", {}, None, 5)
    await s.wait_idle(10)
    got = s.store.get_run(run.id)
    assert got.status == "timed_out" and "timeout of 5s" in got.error
    assert launcher.calls[-1] == ("stop", "alice", f"run-{run.id}")


async def test_refused_spawn_fails_with_message(db):
    s = make(db, RefusingLauncher(), Clock(0.0))
    run = s.submit("alice", "a.ipynb", {}, "gpu", 5)
    await s.wait_idle(10)
    got = s.store.get_run(run.id)
    assert got.status == "failed" and "not available" in got.error


async def test_schedule_fires_on_time_once_and_survives_restart(db):
    clock = Clock(ts("2026-11-23T10:00:10"))
    launcher = RecordingLauncher()
    s = make(db, launcher, clock)
    sched = s.add_schedule("alice", "a.ipynb", {"n": 1}, None, "*/2 * * * *", 60)
    await s.tick()
    assert s.store.list_runs() == []
    clock.t = ts("2026-11-23T10:01:59")
    await s.tick()
    assert s.store.list_runs() == []
    clock.t = ts("2026-11-23T10:02:00")
    await s.tick()
    await s.wait_idle(10)
    runs = s.store.list_runs()
    assert len(runs) == 1 and runs[0].schedule_id == sched.id and runs[0].fire_time == ts("2026-11-23T10:02:00")
    await s.tick()
    assert len(s.store.list_runs()) == 1

    # restart: a new process on the same database at the same time does not fire again
    s.store.close()
    s2 = make(db, launcher, clock)
    await s2.recover()
    await s2.tick()
    assert len(s2.store.list_runs()) == 1
    # down through 10:04 and 10:06, back at 10:07: one catch-up (10:06), not two
    clock.t = ts("2026-11-23T10:07:30")
    await s2.tick()
    await s2.wait_idle(10)
    fires = sorted(r.fire_time for r in s2.store.list_runs())
    assert fires == [ts("2026-11-23T10:02:00"), ts("2026-11-23T10:06:00")]


async def test_misfire_older_than_grace_is_skipped(db):
    clock = Clock(ts("2026-11-23T10:00:10"))
    s = make(db, RecordingLauncher(), clock, misfire_grace=60)
    s.add_schedule("alice", "a.ipynb", {}, None, "0 * * * *", 60)
    clock.t = ts("2026-11-23T11:05:00")  # 11:00 was missed 5 minutes ago
    await s.tick()
    assert s.store.list_runs() == []
    clock.t = ts("2026-11-23T12:00:30")
    await s.tick()
    await s.wait_idle(10)
    assert len(s.store.list_runs()) == 1


async def test_scheduled_runs_respect_the_per_user_limit(db):
    clock = Clock(ts("2026-11-23T10:00:10"))
    launcher = RecordingLauncher(hold=0.05)
    s = make(db, launcher, clock, per_user_limit=1)
    for _ in range(3):
        s.add_schedule("alice", "a.ipynb", {}, None, "* * * * *", 60)
    clock.t = ts("2026-11-23T10:01:00")
    await s.tick()
    assert sorted(r.status for r in s.store.list_runs()) == ["queued", "queued", "starting"]
    await s.wait_idle(10)
    assert launcher.peak["alice"] == 1
    assert {r.status for r in s.store.list_runs()} == {"succeeded"}


async def test_disabled_schedule_does_not_fire(db):
    clock = Clock(ts("2026-11-23T10:00:10"))
    s = make(db, RecordingLauncher(), clock)
    sched = s.add_schedule("alice", "a.ipynb", {}, None, "* * * * *", 60)
    s.store.update_schedule(sched.id, enabled=False)
    clock.t = ts("2026-11-23T10:05:00")
    await s.tick()
    assert s.store.list_runs() == []


async def test_recover_fails_interrupted_runs(db):
    launcher = RecordingLauncher()
    s = make(db, launcher, Clock(0.0))
    run = s.new_run("alice", "a.ipynb", {}, None, 60)
    run.status = "running"
    s.store.add_run(run)
    await s.recover()
    got = s.store.get_run(run.id)
    assert got.status == "failed" and "restarted" in got.error
    assert ("stop", "alice", f"run-{run.id}") in launcher.calls


def test_store_file_is_private(db):
    RunStore(db)
    assert oct(db.stat().st_mode & 0o777) == "0o600"
