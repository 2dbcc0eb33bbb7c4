"""Same-page merging of warm-pool servers: the kernel's KSM, for the copies every server makes alike.

A server forked from the warm pool's zygote shares the zygote's imported heap copy-on-write.
CPython 3.11 then writes to much of what a server merely uses - reference counts, bytecode
specialisation - so each idle server holds ~31 MiB of private copies of zygote pages
(``bench/memory.py``). Those copies are alike from server to server: every server does the
same things to the same objects. The kernel's same-page merging (KSM) finds identical
anonymous pages and maps one read-only copy of them; a write copies the page again.

- **Which processes.** The zygote marks itself after its imports
  (``prctl(PR_SET_MEMORY_MERGE)``, Linux 6.4+; :func:`labdeck.spawner.userserver.zygote.mark_mergeable`)
  and its children - pool members, then servers, and what they exec - inherit the mark. KSM
  scans and merges only the pages of marked processes, so only user servers' pages are merged,
  and only with each other: the hub, the broker and every other process are never scanned.
- **What it can tell.** A merged page is one whose bytes are the same in two servers. Merging
  gives no process another's data (each maps the page read-only and copies it on its first
  write). What it can give is timing: a write to a merged page takes a page fault. A person
  who fills a page with a guess of all 4096 bytes of a page of another person's server and waits
  for the daemon's scan can tell whether the guess was right. The guess must be right byte for
  byte, so a secret (a token, a key) in a page is out of reach; a whole page of content another
  person's server is known to hold (a public dataset, a well-known file) is not. Where that
  matters, ``page_merging = "off"``.
- **The daemon.** The kernel merges only while its KSM daemon runs (``/sys/kernel/mm/ksm/run``
  is 1), a setting of the machine. With ``"start"`` (the default) a hub running as root (a team
  VM) starts it when it is stopped and logs that it did; it is left running when the hub
  exits, because it sleeps while no process is marked and another hub's servers may be. Its
  scan rate is the kernel's (``pages_to_scan``, ``sleep_millisecs``): the admin's to tune.
  Without root (a laptop) servers are marked and merged only if the daemon already runs.

Kubernetes has no equivalent: a pod is not forked from a shared zygote, and KSM is a node's
setting (``labdeck.hub.modes.MODE_TABLE``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: the kernel's KSM controls
KSM_DIR = Path("/sys/kernel/mm/ksm")
#: ``FastLocalProcessSpawner.page_merging``'s values
SETTINGS = ("off", "marked", "start")


def marks_servers(setting: str) -> bool:
    """The zygote marks itself (and so every server it forks) mergeable."""
    return setting in ("marked", "start")


def daemon_action(setting: str, run: str | None, is_root: bool) -> tuple[bool, str]:
    """Pure: whether to start the KSM daemon, and what to log.

    ``run`` is the content of ``/sys/kernel/mm/ksm/run`` (None: no KSM in this kernel).
    """
    if setting not in SETTINGS:
        raise ValueError(f"page_merging must be one of {SETTINGS}, not {setting!r}")
    if setting == "off":
        return False, "same-page merging: off"
    if run is None:
        return False, "same-page merging: this kernel has no KSM (/sys/kernel/mm/ksm); servers are not merged"
    if run == "1":
        return False, "same-page merging: on (the kernel's KSM daemon runs)"
    if run == "2":
        return False, "same-page merging: the KSM daemon is unmerging everything (run = 2, an admin's choice); servers are not merged"
    if setting == "marked":
        return False, "same-page merging: servers are marked, but the KSM daemon is stopped (page_merging = 'marked' leaves it to the admin)"
    if not is_root:
        return False, "same-page merging: servers are marked, but the KSM daemon is stopped and only root can start it (echo 1 > /sys/kernel/mm/ksm/run)"
    return True, "same-page merging: started the kernel's KSM daemon (/sys/kernel/mm/ksm/run 0 -> 1); it stays on, idle while no process is marked"


def read_run(ksm_dir: Path = KSM_DIR) -> str | None:
    try:
        return (ksm_dir / "run").read_text().strip()
    except OSError:
        return None


def ensure_daemon(setting: str, ksm_dir: Path = KSM_DIR, euid: int | None = None, logger=None) -> bool:
    """Log what ``setting`` gives on this machine, starting the KSM daemon if it says so; True when merging is on."""
    logger = logger or log
    run = read_run(ksm_dir)
    start, message = daemon_action(setting, run, (os.geteuid() if euid is None else euid) == 0)
    if start:
        try:
            (ksm_dir / "run").write_text("1\n")
        except OSError as e:
            logger.warning("same-page merging: could not start the KSM daemon (%s); servers are not merged", e.strerror or e)
            return False
    logger.info("%s", message)
    return start or (marks_servers(setting) and run == "1")


def process_marked(pid: int) -> bool | None:
    """Whether ``pid`` is marked for merging (``/proc/<pid>/ksm_stat``); None when the kernel does not say."""
    try:
        text = Path(f"/proc/{pid}/ksm_stat").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "ksm_merge_any":
            return value.strip() == "yes"
    return None
