"""Run a command as the child of a subreaper and report what it left behind.

``python -m tests.helpers.reaper REPORT.json -- COMMAND...`` makes itself a
child subreaper (``PR_SET_CHILD_SUBREAPER``), runs COMMAND in a new session
(its pid is its process group: a terminal's Ctrl-C goes to that group) and
forwards SIGTERM/SIGINT it receives to COMMAND. Any process COMMAND started
and did not stop is re-parented to this reaper when COMMAND exits - even one
that left its session or double-forked - so once COMMAND has exited, every
living descendant of the reaper is a leftover. The reaper writes
``{"returncode", "leftovers": [[pid, cmdline], ...]}`` to REPORT.json, kills
the leftovers (by pid), reaps them and exits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def main() -> int:
    report, sep, *cmd = sys.argv[1:]
    assert sep == "--" and cmd, __doc__
    from labdeck.hub.local import proctree

    if not proctree.become_subreaper():
        raise SystemExit("PR_SET_CHILD_SUBREAPER is not available here")
    child = subprocess.Popen(cmd, start_new_session=True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: child.send_signal(signum))
    code = child.wait()
    leftovers = []
    for pid in proctree.living_descendants():
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        leftovers.append([pid, cmdline[:200]])
    with open(report + ".tmp", "w") as f:
        json.dump({"returncode": code, "leftovers": leftovers}, f)
    os.replace(report + ".tmp", report)
    for _ in range(50):
        left = proctree.living_descendants()
        if not left:
            break
        proctree.signal_all(left, signal.SIGKILL)
        time.sleep(0.05)
        proctree.reap()
    proctree.reap()
    return 0


if __name__ == "__main__":
    sys.exit(main())
