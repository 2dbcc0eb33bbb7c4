"""Prometheus metrics of the runs and viewer services (rules in :mod:`labdeck.hub.metrics`).

Runs service:

- ``labdeck_runs_total{status}``: finished runs, ``status`` = succeeded | failed | timed_out;
- ``labdeck_runs_duration_seconds``: queued-to-finished time of each finished run;
- ``labdeck_runs_running`` / ``labdeck_runs_queued``: executing and waiting runs now;
- ``labdeck_schedules{state}``: schedules, ``state`` = enabled | disabled;
- ``labdeck_schedules_overdue``: enabled schedules whose next cron time after
  their last fire passed more than ``overdue_after`` seconds ago — non-zero means the
  scheduler is not ticking (read from the store at scrape time, so a stuck
  scheduler loop still shows it).

Viewer:

- ``labdeck_viewer_views_total{kind,result}``: page views, ``kind`` = own | share,
  ``result`` = ok | login | denied | not_found | bad_request | error;
- ``labdeck_shares{kind}``: shares not revoked, ``kind`` = user | group | everyone.

Gauges are computed from the service's state when scraped (custom collectors).
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from labdeck.hub.metrics import RUN_BUCKETS

from . import cron as cronlib
from .records import FINISHED

VIEW_KINDS = ("own", "share")
VIEW_RESULTS = ("ok", "login", "denied", "not_found", "bad_request", "error")
SHARE_KINDS = ("user", "group", "everyone")


class RunsMetrics:
    """The runs service's metrics in ``registry``; :class:`~.scheduler.Scheduler` calls :meth:`run_finished`."""

    def __init__(self, registry, scheduler, overdue_after: float = 120):
        self.runs = Counter("labdeck_runs", "Finished runs by status", ["status"], registry=registry)
        for status in FINISHED:
            self.runs.labels(status)
        self.duration = Histogram(
            "labdeck_runs_duration_seconds", "Queued-to-finished time of finished runs", buckets=RUN_BUCKETS, registry=registry
        )
        registry.register(RunsStateCollector(scheduler, overdue_after))

    def run_finished(self, status: str, seconds: float | None) -> None:
        self.runs.labels(status if status in FINISHED else "failed").inc()
        if seconds is not None and seconds >= 0:
            self.duration.observe(seconds)


class RunsStateCollector(Collector):
    """Gauges read from the scheduler and its store at scrape time."""

    def __init__(self, scheduler, overdue_after: float, clock=time.time):
        self.scheduler = scheduler
        self.overdue_after = overdue_after
        self.clock = clock

    def collect(self):
        sched = self.scheduler
        yield GaugeMetricFamily("labdeck_runs_running", "Runs executing now", value=len(sched.tasks))
        yield GaugeMetricFamily("labdeck_runs_queued", "Runs waiting to start", value=len(sched.store.queued()))
        now = self.clock()
        counts = {"enabled": 0, "disabled": 0}
        overdue = 0
        for s in sched.store.list_schedules():
            counts["enabled" if s.enabled else "disabled"] += 1
            if s.enabled:
                since = s.last_fired if s.last_fired is not None else s.created
                # the first cron time after the last fire: the scheduler fires it within a tick
                due = cronlib.next_fire(s.cron, since)
                if now - due > self.overdue_after:
                    overdue += 1
        g = GaugeMetricFamily("labdeck_schedules", "Schedules by state", labels=["state"])
        for state, n in counts.items():
            g.add_metric([state], n)
        yield g
        yield GaugeMetricFamily(
            "labdeck_schedules_overdue", "Enabled schedules whose latest cron time passed without firing", value=overdue
        )


class ViewerMetrics:
    """The viewer's metrics in ``registry``; its view handlers call :meth:`viewed`."""

    def __init__(self, registry, shares):
        self.views = Counter("labdeck_viewer_views", "Viewer page views by kind and result", ["kind", "result"], registry=registry)
        for kind in VIEW_KINDS:
            for result in VIEW_RESULTS:
                self.views.labels(kind, result)
        registry.register(SharesCollector(shares))

    @staticmethod
    def result(status: int) -> str:
        if status < 300:
            return "ok"
        if status < 400:
            return "login"  # redirected to the hub's OAuth
        return {401: "denied", 403: "denied", 404: "not_found"}.get(status, "error" if status >= 500 else "bad_request")

    def viewed(self, kind: str, status: int) -> None:
        self.views.labels(kind, self.result(status)).inc()


class SharesCollector(Collector):
    def __init__(self, shares):
        self.shares = shares

    def collect(self):
        counts = {kind: 0 for kind in SHARE_KINDS}
        counts.update(self.shares.count_active())
        g = GaugeMetricFamily("labdeck_shares", "Shares not revoked, by kind", labels=["kind"])
        for kind, n in sorted(counts.items()):
            g.add_metric([kind], n)
        yield g
