"""bench/smaps.py: reading smaps_rollup, sorting a hub's processes by kind, per-person arithmetic."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import smaps  # noqa: E402

ROLLUP = """\
55d0c0a00000-7ffd3e5f9000 ---p 00000000 00:00 0                          [rollup]
Rss:               56012 kB
Pss:               41234 kB
Pss_Dirty:         39000 kB
Pss_Anon:          38000 kB
Pss_File:           3234 kB
Pss_Shmem:             0 kB
Shared_Clean:      14000 kB
Shared_Dirty:        900 kB
Private_Clean:       112 kB
Private_Dirty:     41000 kB
Referenced:        56012 kB
Anonymous:         40000 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
"""


def test_parse_rollup_reads_kilobytes_as_bytes_and_ignores_other_lines():
    r = smaps.parse_rollup(ROLLUP)
    assert r["Pss"] == 41234 * 1024
    assert r["Private_Dirty"] == 41000 * 1024
    assert r["Pss_Anon"] == 38000 * 1024
    assert r["Shared_Clean"] == 14000 * 1024
    assert set(r) == set(smaps.FIELDS)  # Pss_Dirty, Referenced... are not kept


@pytest.mark.parametrize("text", ["", "garbage\n", "Pss: lots kB\n", "Pss: 12 MB\n", "Pss 12 kB\n"])
def test_parse_rollup_skips_what_does_not_parse(text):
    assert smaps.parse_rollup(text) == {k: 0 for k in smaps.FIELDS}


def test_read_rollup_of_this_process_and_of_a_missing_one():
    me = smaps.read_rollup(os.getpid())
    assert me is not None and me["Pss"] > 0 and me["Rss"] >= me["Pss"]
    assert smaps.read_rollup(2**22 + 12345) is None  # above pid_max's limit: never a process


ROLES = {"hub": 10, "servers": {30, 31}, "zygotes": {20}, "services_parent": 1}


@pytest.mark.parametrize(
    "pid, ppid, cmd, kind",
    [
        (10, 1, "python -m labdeck.hub.local.hubprocess -f x", "hub"),
        (11, 1, "node node_modules/.bin/configurable-http-proxy --ip 127.0.0.1", "proxy"),
        (12, 1, "python -m labdeck.hub.cli broker --config c", "services"),
        (13, 10, "python -m jupyterhub_idle_culler --timeout=3600", "services"),
        (20, 10, "python -P -m labdeck.spawner.userserver.zygote --control-fd 5", "zygote"),
        # a claimed member runs the zygote's command line too: the hub's database says whose server it is
        (30, 20, "python -P -m labdeck.spawner.userserver.zygote --control-fd 5", "server"),
        (21, 20, "python -P -m labdeck.spawner.userserver.zygote --control-fd 5", "pool member"),
        (31, 10, "python labdeck-server --port=1234", "server"),  # a cold start
        (40, 30, "python -m ipykernel_launcher -f /run/kernel-1.json", "kernel"),
        (41, 31, "python -m nothing_we_know", "other"),
    ],
)
def test_classify(pid, ppid, cmd, kind):
    assert smaps.classify(smaps.Proc(pid, ppid, tuple(cmd.split())), ROLES) == kind


def test_classify_without_services_parent_leaves_unknown_children_as_other():
    p = smaps.Proc(12, 1, ("python", "-m", "something"))
    assert smaps.classify(p, {"hub": 10}) == "other"


def test_summarise_sums_per_kind_in_report_order():
    procs = [
        {"kind": "server", "Pss": 5, "Pss_Anon": 4, "Private_Dirty": 3},
        {"kind": "hub", "Pss": 10, "Pss_Anon": 9, "Private_Dirty": 8},
        {"kind": "server", "Pss": 7, "Pss_Anon": 6, "Private_Dirty": 5},
    ]
    s = smaps.summarise(procs)
    assert list(s) == ["hub", "server"]
    assert s["server"] == {"count": 2, "Pss": 12, "Pss_Anon": 10, "Private_Dirty": 8}
    assert smaps.Snapshot(procs).total == 22


def test_per_person_and_settled():
    assert smaps.per_person(100, 340, 20) == 12
    with pytest.raises(ValueError):
        smaps.per_person(0, 1, 0)
    mib = 1 << 20
    assert not smaps.settled([1 * mib, 1 * mib])  # not enough samples yet
    assert smaps.settled([9 * mib, 5 * mib, 5 * mib + 10, 5 * mib])
    assert not smaps.settled([5 * mib, 7 * mib, 5 * mib])


def test_ksm_scans_count_only_while_the_daemon_runs():
    before = {"run": 1, "full_scans": 10}
    assert smaps.scans_since(before, {"run": 1, "full_scans": 13}) == 3
    assert smaps.scans_since(before, {"run": 0, "full_scans": 13}) == 0
    assert smaps.scans_since(None, {"run": 1, "full_scans": 13}) == 0


def test_ksm_state_of_this_machine():
    state = smaps.ksm_state()
    if not os.path.isdir(smaps.KSM_DIR):
        assert state is None
        return
    assert set(smaps.KSM_COUNTERS) <= set(state)
    assert state["run"] in (0, 1, 2) and state["full_scans"] >= 0
    if os.path.exists(f"/proc/{smaps.ksmd_pid()}/stat"):
        assert state["ksmd_cpu_s"] >= 0
