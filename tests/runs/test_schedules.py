"""A schedule fires on a driven clock with the *real* launcher (hub API, named server, kernel,
papermill, S3), survives a scheduler restart without double-firing, on the real platform.

The test runs its own Scheduler (own sqlite file, the runs service's token) so that it can
drive the clock; the platform's runs service keeps running beside it on another database.
"""

import datetime
import logging

import pytest

from labdeck.runs.launcher import HubLauncher
from labdeck.runs.scheduler import Scheduler
from labdeck.runs.store import RunStore

from .conftest import read_s3_json, write_notebook

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def ts(s):
    return datetime.datetime.fromisoformat(s).replace(tzinfo=datetime.timezone.utc).timestamp()


def make(platform, db, clock):
    s = platform.settings()
    token = (platform.state_dir / "secrets" / "runs_token").read_text().strip()
    launcher = HubLauncher(f"http://127.0.0.1:{s['hub_port']}/hub/api", platform.url, token, logging.getLogger("test"))
    return Scheduler(RunStore(db), launcher, bucket=s["bucket"], clock=clock, per_user_limit=1)


async def test_schedule_fires_on_time_and_not_twice_after_restart(platform, alice, tmp_path, reader):
    write_notebook(platform, "alice", "sched.ipynb", ["print('scheduled', n)"], parameters="n = 0")
    clock = Clock(ts("2026-11-23T06:59:30"))
    sched = make(platform, tmp_path / "runs.sqlite", clock)
    sc = sched.add_schedule("alice", "sched.ipynb", {"n": 7}, None, "0 7 * * *", 120)
    await sched.tick()
    assert sched.store.list_runs() == []
    clock.t = ts("2026-11-23T07:00:00")
    await sched.tick()
    await sched.wait_idle(240)
    runs = sched.store.list_runs()
    assert len(runs) == 1 and runs[0].status == "succeeded", runs[0].error
    nb = read_s3_json(reader, runs[0].output_url)
    assert nb["metadata"]["labdeck"]["schedule_id"] == sc.id
    assert "scheduled 7" in str(nb["cells"])

    sched.store.close()
    clock.t = ts("2026-11-23T07:00:40")
    again = make(platform, tmp_path / "runs.sqlite", clock)
    await again.recover()
    await again.tick()
    await again.wait_idle(10)
    assert len(again.store.list_runs()) == 1
