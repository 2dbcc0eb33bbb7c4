"""bench/stormlog.py: a person's storm steps from the hub log's own lines."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import stormlog  # noqa: E402

LOG = """\
[I 2026-12-07 13:00:00.100 JupyterHub base:1033] User logged in: ana
[I 2026-12-07 13:00:00.150 JupyterHub base:1033] User logged in: bo
[I 2026-12-07 13:00:00.900 JupyterHub mixin:95] [ana] Checking profile: JupyterLab (Python)
[I 2026-12-07 13:00:01.000 JupyterHub process:201] Start slot for ana after 0.10 s
[I 2026-12-07 13:00:01.020 JupyterHub process:213] Claimed warm server 4242 for ana
[I 2026-12-07 13:00:01.400 JupyterHub mixin:95] [ana] Cloud credentials ready
[I 2026-12-07 13:00:01.500 JupyterHub base:1192] User ana took 0.600 seconds to start
not a log line: User logged in: eve
[I 2026-12-07 13:00:02.000 JupyterHub mixin:95] [bo] Checking profile: JupyterLab (Python)
"""


def at(clock: str) -> float:
    return datetime.strptime(f"2026-12-07 {clock}", "%Y-%m-%d %H:%M:%S.%f").timestamp()


def test_marks_are_read_per_person_from_the_hubs_lines_only():
    found = stormlog.marks(LOG)
    assert sorted(found) == ["ana", "bo"]
    assert sorted(found["ana"]) == ["claimed", "credentials", "logged_in", "requested", "slot", "started"]
    assert found["ana"]["started"] == pytest.approx(at("13:00:01.500"))
    assert sorted(found["bo"]) == ["logged_in", "requested"]


def test_steps_add_up_to_the_ready_time_and_a_missing_mark_gives_none():
    found = stormlog.marks(LOG)
    t0, ready = at("13:00:00.000"), at("13:00:01.750")
    ana = stormlog.steps(found["ana"], t0, ready)
    assert ana == {"login": 0.1, "to_request": 0.8, "queue": 0.1, "start": 0.5, "seen": 0.25}
    assert sum(ana.values()) == pytest.approx(ready - t0)
    assert stormlog.steps(found["bo"], t0, ready) is None


def test_shares_are_medians_and_their_part_of_the_whole():
    people = [dict(login=1, to_request=1, queue=0, start=2, seen=0), dict(login=3, to_request=1, queue=4, start=2, seen=0)]
    out = stormlog.shares(people)
    # medians 2, 1, 2, 2, 0: 7 s in all
    assert out["login"] == {"median_s": 2.0, "share": round(2 / 7, 3)}
    assert out["to_request"] == {"median_s": 1.0, "share": round(1 / 7, 3)}
    assert out["queue"] == out["start"] == out["login"]
    assert out["seen"] == {"median_s": 0.0, "share": 0.0}
    assert sum(v["share"] for v in out.values()) == pytest.approx(1.0, abs=0.01)
    assert stormlog.shares([]) == {}
