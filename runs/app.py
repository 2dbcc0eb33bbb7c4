"""The ``runs`` service: queue, schedule and execute notebook runs for hub users.

Run as ``python -m labdeck.runs.app --config FILE``. Like any JupyterHub
service it reads its token and the hub API URL from ``JUPYTERHUB_API_TOKEN``
and ``JUPYTERHUB_API_URL``. Scopes it needs: ``admin:servers`` and
``access:servers`` (start, use and stop the users' ``run-<id>`` servers) and
``read:users``. Users need ``access:services!service=runs`` to call it.
"""

from __future__ import annotations

import asyncio
import os

from tornado import web
from traitlets import Float, Integer, Unicode, default

from labdeck.hub import contract
from labdeck.hub.service import LabdeckServiceApp

from .handlers import RunHandler, RunsHandler, ScheduleHandler, ScheduleRunsHandler, SchedulesHandler
from .launcher import HubLauncher
from .metrics import RunsMetrics
from .scheduler import Scheduler
from .store import RunStore


class RunsApp(LabdeckServiceApp):
    """Parameterized, scheduled notebook runs with immutable outputs."""

    name = "labdeck-runs"
    description = __doc__

    default_port = contract.SERVICE_PORTS[contract.RUNS]
    default_prefix = contract.service_prefix(contract.RUNS)

    db_path = Unicode(
        config=True,
        help="""sqlite file holding runs and schedules (created 0600).

        Defaults to ``$LABDECK_STATE_DIR/runs/runs.sqlite``. Schedules and their
        last fire times survive restarts through it.

        .. versionadded:: 0.1
        """,
    )

    @default("db_path")
    def _db_path_default(self):
        return os.path.join(os.environ.get(contract.ENV_STATE_DIR, ".labdeck"), "runs", "runs.sqlite")

    bucket = Unicode(
        contract.DEFAULT_BUCKET,
        config=True,
        help="""Bucket of the users' homes; outputs go to ``home/<user>/runs/...`` in it.

        .. versionadded:: 0.1
        """,
    )

    proxy_url = Unicode(
        config=True,
        help="""URL of the proxy through which the service reaches user servers (``/user/<name>/<server>/``).

        Defaults to ``LABDECK_PROXY_URL``. On Kubernetes, the proxy's in-cluster
        service (``http://proxy-public``).

        .. versionadded:: 0.1
        """,
    )

    @default("proxy_url")
    def _proxy_url_default(self):
        return os.environ.get(contract.ENV_PROXY_URL, f"http://127.0.0.1:{contract.PROXY_HTTP_PORT}")

    per_user_limit = Integer(
        2,
        config=True,
        help="""How many runs of one user execute at the same time; more wait in the queue.

        Each executing run is a named server of the user, so this must stay below
        ``JupyterHub.named_server_limit_per_user``.

        .. versionadded:: 0.1
        """,
    )

    max_queued_per_user = Integer(
        20, config=True, help="Queued runs one user may have; more are refused (HTTP 429).\n\n.. versionadded:: 0.1"
    )

    max_schedules_per_user = Integer(
        50, config=True, help="Schedules one user may own; more are refused (HTTP 429).\n\n.. versionadded:: 0.1"
    )

    default_timeout = Integer(
        3600, config=True, help="Timeout of a run, in seconds, when the request gives none.\n\n.. versionadded:: 0.1"
    )

    max_timeout = Integer(
        24 * 3600,
        config=True,
        help="""Largest timeout a run may ask for, in seconds.

        A run past its timeout is stopped (its server too) and recorded ``timed_out``.

        .. versionadded:: 0.1
        """,
    )

    spawn_timeout = Float(300, config=True, help="Seconds to wait for a run's server to be ready.\n\n.. versionadded:: 0.1")

    timeout_grace = Float(
        60,
        config=True,
        help="""Extra seconds the service waits past a run's timeout before stopping its server.

        The driver in the server enforces the timeout itself and stores the
        partial output; this grace covers that, then the service stops the
        server regardless.

        .. versionadded:: 0.1
        """,
    )

    misfire_grace = Float(
        3600,
        config=True,
        help="""A missed schedule time older than this (seconds) is skipped instead of caught up.

        After downtime each schedule fires at most once for its latest missed
        time, and only if that time is within this grace; set 0 to never catch up.

        .. versionadded:: 0.1
        """,
    )

    tick_seconds = Float(5, config=True, help="How often schedules and the queue are checked.\n\n.. versionadded:: 0.1")

    def initialize(self, argv=None):
        super().initialize(argv)
        self.store = RunStore(self.db_path)
        # the hub API as every labdeck service reaches it (JUPYTERHUB_API_URL / JUPYTERHUB_API_TOKEN)
        launcher = HubLauncher(self.hub_auth.api_url, self.proxy_url, self.hub_auth.api_token, self.log)
        self.scheduler = Scheduler(
            self.store, launcher, bucket=self.bucket, per_user_limit=self.per_user_limit,
            max_queued_per_user=self.max_queued_per_user, spawn_timeout=self.spawn_timeout,
            timeout_grace=self.timeout_grace, misfire_grace=self.misfire_grace, log=self.log,
        )
        # a schedule is overdue once a few ticks have passed its cron time
        self.scheduler.metrics = RunsMetrics(self.registry, self.scheduler, overdue_after=max(120, 4 * self.tick_seconds))

    def make_app(self) -> web.Application:
        p = self.base_url
        return web.Application(
            [
                (p + contract.RUNS_API_ROUTE, RunsHandler),
                (p + contract.RUNS_API_ROUTE + r"/([^/]+)", RunHandler),
                (p + contract.SCHEDULES_API_ROUTE, SchedulesHandler),
                (p + contract.SCHEDULES_API_ROUTE + r"/([^/]+)", ScheduleHandler),
                *self.base_handlers(),
                (p + contract.SCHEDULES_API_ROUTE + r"/([^/]+)/runs", ScheduleRunsHandler),
            ],
            runs_app=self,
            log_function=self.log_request,
        )

    def health(self) -> dict:
        return {**super().health(), "executing": len(self.scheduler.tasks)}

    async def serve(self, stop: asyncio.Event) -> None:
        server = self.listen()
        await self.scheduler.recover()
        while not stop.is_set():
            try:
                await self.scheduler.tick()
            except Exception:  # noqa: BLE001
                self.log.exception("Scheduler tick failed")
            try:
                await asyncio.wait_for(stop.wait(), self.tick_seconds)
            except asyncio.TimeoutError:
                pass
        server.stop()
        self.log.info("labdeck runs service stopped")


def main(argv=None):
    RunsApp.launch_instance(argv)


if __name__ == "__main__":
    main()
