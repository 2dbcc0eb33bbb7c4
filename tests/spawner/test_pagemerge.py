"""Same-page merging (KSM) of warm-pool servers: what the hub decides, and what a real zygote marks.

Whether the kernel then merges is the kernel's work; ``bench/memory.py`` measures it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from traitlets import TraitError
from traitlets.config import Config

from labdeck.spawner.local import pagemerge, warmpool
from labdeck.spawner.local.process import FastLocalProcessSpawner

from .test_warmpool import CMD, _gone, _kill, _port, _server_env, hub_api  # noqa: F401 (a fixture)

HAS_KSM_STAT = os.path.exists("/proc/self/ksm_stat")


# ------------------------------------------------------------------ pure


@pytest.mark.parametrize(
    "setting, run, root, start, says",
    [
        ("start", "0", True, True, "started the kernel's KSM daemon"),
        ("start", "1", True, False, "on (the kernel's KSM daemon runs)"),
        ("start", "0", False, False, "only root can start it"),
        ("start", "2", True, False, "unmerging everything"),
        ("start", None, True, False, "this kernel has no KSM"),
        ("marked", "0", True, False, "leaves it to the admin"),
        ("marked", "1", False, False, "on (the kernel's KSM daemon runs)"),
        ("off", "0", True, False, "off"),
        ("off", "1", True, False, "off"),
    ],
)
def test_the_daemon_is_started_only_by_root_only_when_stopped_and_only_with_start(setting, run, root, start, says):
    got, message = pagemerge.daemon_action(setting, run, root)
    assert got is start
    assert says in message


def test_an_unknown_setting_is_refused_by_the_decision_and_by_the_trait():
    with pytest.raises(ValueError, match="page_merging must be one of"):
        pagemerge.daemon_action("yes", "0", True)
    with pytest.raises(TraitError):
        FastLocalProcessSpawner(config=Config({"FastLocalProcessSpawner": {"page_merging": "yes", "warm_pool_size": 0}}))
    assert FastLocalProcessSpawner(config=Config({"FastLocalProcessSpawner": {"warm_pool_size": 0}})).page_merging == "start"


def test_only_marked_and_start_mark_the_servers():
    assert [s for s in pagemerge.SETTINGS if pagemerge.marks_servers(s)] == ["marked", "start"]


# ------------------------------------------------- the daemon's switch (a directory standing for sysfs)


def _ksm(tmp_path: Path, run: str) -> Path:
    (tmp_path / "run").write_text(run + "\n")
    return tmp_path


def test_root_with_start_switches_a_stopped_daemon_on_and_says_so(tmp_path, caplog):
    ksm = _ksm(tmp_path, "0")
    with caplog.at_level(logging.INFO):
        assert pagemerge.ensure_daemon("start", ksm_dir=ksm, euid=0) is True
    assert (ksm / "run").read_text().strip() == "1"
    assert "0 -> 1" in caplog.text


@pytest.mark.parametrize("setting, euid", [("start", 1000), ("marked", 0), ("off", 0)])
def test_nothing_else_touches_the_machines_setting(tmp_path, setting, euid):
    ksm = _ksm(tmp_path, "0")
    assert pagemerge.ensure_daemon(setting, ksm_dir=ksm, euid=euid) is False
    assert (ksm / "run").read_text().strip() == "0"


def test_a_running_daemon_is_left_as_it_is_and_a_missing_one_is_reported(tmp_path, caplog):
    ksm = _ksm(tmp_path, "1")
    before = (ksm / "run").stat().st_mtime_ns
    assert pagemerge.ensure_daemon("marked", ksm_dir=ksm, euid=1000) is True
    assert (ksm / "run").stat().st_mtime_ns == before
    with caplog.at_level(logging.INFO):
        assert pagemerge.ensure_daemon("start", ksm_dir=tmp_path / "absent", euid=0) is False
    assert "no KSM" in caplog.text


def test_a_daemon_that_cannot_be_started_is_a_warning_not_a_failure(tmp_path, caplog):
    (tmp_path / "run").symlink_to("/proc/version")  # readable, and not writable even by root
    with caplog.at_level(logging.INFO):
        assert pagemerge.ensure_daemon("start", ksm_dir=tmp_path, euid=0) is False
    assert "could not start the KSM daemon" in caplog.text


# ------------------------------------------------------------ a real zygote


def test_this_process_is_not_marked():
    marked = pagemerge.process_marked(os.getpid())
    assert marked is (False if HAS_KSM_STAT else None)


def test_marking_reaches_what_a_server_execs():
    """A marked process's children and what they exec (a kernel, a terminal) are marked too."""
    if not HAS_KSM_STAT:
        pytest.skip("this kernel has no /proc/<pid>/ksm_stat")
    code = (
        "import subprocess, sys\n"
        "from labdeck.spawner.userserver.zygote import mark_mergeable\n"
        "assert mark_mergeable() == ''\n"
        "sys.stdout.write(subprocess.run(['cat', '/proc/self/ksm_stat'], capture_output=True, text=True).stdout)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "ksm_merge_any: yes" in out


async def _pool(size: int, merge_pages: bool) -> warmpool.WarmPool:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    recipe, _ = warmpool.recipe_for(CMD, base)
    pool = warmpool.WarmPool(recipe, size, base, merge_pages=merge_pages)
    pool.ensure_started()
    deadline = time.monotonic() + 120
    while (not pool.ready or len(pool.members) < size) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert pool.ready and len(pool.members) == size, "the zygote did not get ready"
    return pool


@pytest.mark.parametrize("merge_pages", [True, False])
async def test_the_zygote_its_members_and_a_claimed_server_are_marked_only_when_asked(tmp_path, hub_api, merge_pages):  # noqa: F811
    if not HAS_KSM_STAT:
        pytest.skip("this kernel has no /proc/<pid>/ksm_stat")
    pool = await _pool(2, merge_pages)
    pid = None
    try:
        assert pagemerge.process_marked(pool.proc.pid) is merge_pages
        assert all(pagemerge.process_marked(m.pid) is merge_pages for m in pool.members)
        port = _port()
        args = ["--allow-root"] if os.geteuid() == 0 else []
        pid = await pool.claim(warmpool.identity_for(CMD, args, _server_env("km", str(tmp_path), port, hub_api), str(tmp_path)))
        assert pid
        assert pagemerge.process_marked(pid) is merge_pages
        assert pagemerge.process_marked(os.getpid()) is False  # the hub's side never is
    finally:
        if pid:
            _kill(pid)
            assert _gone(pid)
        pool.close()
