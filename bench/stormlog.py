"""Where a storm's time goes, per person, from the hub's own log.

Each person's spawn leaves these lines in the hub log (labdeck's local
backend; wall-clock times to the millisecond):

====================  =====================================================
mark                  line
====================  =====================================================
``logged_in``         ``User logged in: <name>`` (JupyterHub)
``requested``         ``[<name>] Checking profile: …`` (the spawn request reached labdeck)
``slot``              ``Start slot for <name> after N s`` (the start queue let it start)
``claimed``           ``Claimed warm server <pid> for <name>`` (warm only)
``credentials``       ``[<name>] Cloud credentials ready``
``started``           ``User <name> took N seconds to start`` (JupyterHub: start() returned, route added)
====================  =====================================================

:func:`steps` turns one person's marks, the storm's common start and the
moment the person's progress stream said "ready" into consecutive steps
whose sum is that person's ready time:

- ``login``: common start → logged in (login form, password check, user row);
- ``to_request``: logged in → the spawn request reached labdeck (the client's
  token request and POST, the hub's spawn bookkeeping);
- ``queue``: request → start slot (waiting behind other starts);
- ``start``: slot → started (claim or launch, the server's own start until it
  answers, credentials if they were not ready yet, the proxy route);
- ``seen``: started → the person's progress stream said ready.

:func:`shares` gives each step's median and its share of the summed
medians. Pure functions, tested in ``tests/test_stormlog.py``.

Usage: ``python bench/stormlog.py HUB_LOG`` prints the marks found per person (a check of a kept log).
"""

from __future__ import annotations

import argparse
import re
import statistics
from datetime import datetime
from pathlib import Path

STEPS = ("login", "to_request", "queue", "start", "seen")

_LINE = re.compile(r"^\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) [^\]]*\] (.*)$")
_MARKS = (
    ("logged_in", re.compile(r"^User logged in: (\S+)$")),
    ("requested", re.compile(r"^\[([^\]]+)\] Checking profile")),
    ("slot", re.compile(r"^Start slot for (\S+) after")),
    ("claimed", re.compile(r"^Claimed warm server \d+ for (\S+)$")),
    ("credentials", re.compile(r"^\[([^\]]+)\] Cloud credentials ready")),
    ("started", re.compile(r"^User (\S+) took [\d.]+ seconds to start")),
)


def marks(log_text: str) -> dict[str, dict[str, float]]:
    """``{person: {mark: unix time}}``; the last occurrence of a mark wins (a person's last spawn)."""
    out: dict[str, dict[str, float]] = {}
    for line in log_text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        stamp, text = m.groups()
        for mark, pattern in _MARKS:
            found = pattern.match(text)
            if found:
                t = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
                out.setdefault(found.group(1), {})[mark] = t
                break
    return out


def steps(person: dict[str, float], t0: float, ready: float) -> dict[str, float] | None:
    """Consecutive step durations (seconds) of one person, or None when a mark is missing."""
    order = [t0, *(person.get(m) for m in ("logged_in", "requested", "slot", "started")), ready]
    if any(t is None for t in order):
        return None
    return {name: round(b - a, 3) for name, a, b in zip(STEPS, order, order[1:])}


def shares(per_person: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per step: median seconds, and share of the sum of the medians."""
    if not per_person:
        return {}
    medians = {s: statistics.median(p[s] for p in per_person) for s in STEPS}
    total = sum(medians.values()) or 1.0
    return {s: {"median_s": round(medians[s], 3), "share": round(medians[s] / total, 3)} for s in STEPS}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("hub_log", type=Path)
    args = ap.parse_args(argv)
    for person, found in sorted(marks(args.hub_log.read_text(errors="replace")).items()):
        print(person, " ".join(sorted(found)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
