"""The scheduler: a queue of runs with per-user limits and timeouts, and cron schedules.

State lives in :class:`~.store.RunStore`; the platform is reached through a
:class:`~.launcher.Launcher`; time comes from an injected ``clock`` (epoch
seconds), so tests drive schedules without sleeping.

Lifecycle of a run: ``queued`` → ``starting`` (named server ``run-<id>``
with the run's profile) → ``running`` (the driver executes the notebook in a
kernel of that server, as the user) → ``succeeded`` / ``failed`` /
``timed_out``; the server is stopped and removed in every case.

Schedules (see :mod:`.cron`): on each :meth:`Scheduler.tick` a schedule whose
latest due cron time is after its ``last_fired`` fires *once*, and that time
becomes ``last_fired`` in the same transaction that queues the run. After a
restart, missed times are therefore caught up at most once per schedule, and
not at all when older than ``misfire_grace`` seconds (then they are skipped
and logged). Runs found ``starting``/``running`` at startup belonged to the
previous process: they are marked ``failed`` and their servers stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from . import cron as cronlib
from . import driver, paths
from .launcher import ExecTimeout, LaunchError, Launcher
from .records import FAILED, FINISHED, RUNNING, STARTING, TIMED_OUT, Run, Schedule, new_run_id
from .store import RunStore


class LimitExceeded(Exception):
    """Too many queued runs for one user."""


class Scheduler:
    #: optional :class:`~.metrics.RunsMetrics` (``run_finished(status, seconds)``), set by the service
    metrics = None

    def __init__(
        self,
        store: RunStore,
        launcher: Launcher,
        *,
        bucket: str,
        clock: Callable[[], float] = time.time,
        per_user_limit: int = 2,
        max_queued_per_user: int = 20,
        spawn_timeout: float = 300,
        timeout_grace: float = 60,
        misfire_grace: float = 3600,
        log: logging.Logger | None = None,
    ):
        self.store = store
        self.launcher = launcher
        self.bucket = bucket
        self.clock = clock
        self.per_user_limit = per_user_limit
        self.max_queued_per_user = max_queued_per_user
        self.spawn_timeout = spawn_timeout
        self.timeout_grace = timeout_grace
        self.misfire_grace = misfire_grace
        self.log = log or logging.getLogger("labdeck.runs")
        self.tasks: dict[str, asyncio.Task] = {}

    # ------------------------------------------------------------- creating

    def new_run(
        self, owner, notebook, parameters, profile, timeout, schedule_id=None, fire_time=None, staged_input=None, meta=None
    ) -> Run:
        run_id = new_run_id()
        created = self.clock()
        out_key, rec_key = paths.output_keys(owner, notebook, created, run_id)
        return Run(
            id=run_id, owner=owner, notebook=notebook, parameters=parameters, profile=profile, created=created,
            timeout=int(timeout), output_key=out_key, record_key=rec_key, bucket=self.bucket,
            schedule_id=schedule_id, fire_time=fire_time, staged_input=staged_input, meta=dict(meta or {}),
        )

    def _check_queue(self, owner: str) -> None:
        queued = sum(1 for r in self.store.queued() if r.owner == owner)
        if queued >= self.max_queued_per_user:
            raise LimitExceeded(f"{owner} already has {queued} queued runs (limit {self.max_queued_per_user})")

    def submit(self, owner, notebook, parameters, profile, timeout, staged_input=None, meta=None) -> Run:
        """Queue a run now (inputs already validated by the caller)."""
        self._check_queue(owner)
        run = self.new_run(owner, notebook, parameters, profile, timeout, staged_input=staged_input, meta=meta)
        self.store.add_run(run)
        self.log.info("Run %s queued for %s: %s", run.id, owner, notebook)
        self.dispatch()
        return run

    def fire_due(self) -> list[Run]:
        """Queue one run for every schedule that is due (see the module docstring)."""
        now = self.clock()
        fired = []
        for sched in self.store.list_schedules():
            if not sched.enabled:
                continue
            since = sched.last_fired if sched.last_fired is not None else sched.created
            due = cronlib.due_fire(sched.cron, since, now)
            if due is None:
                continue
            sched.last_fired = due
            if now - due > self.misfire_grace:
                self.store.update_schedule(sched.id, last_fired=due)
                self.log.warning("Schedule %s of %s: skipping fire time %s (older than misfire grace)", sched.id, sched.owner, paths.iso(due))
                continue
            try:
                self._check_queue(sched.owner)
            except LimitExceeded as e:
                self.store.update_schedule(sched.id, last_fired=due)
                self.log.warning("Schedule %s not fired: %s", sched.id, e)
                continue
            run = self.new_run(
                sched.owner, sched.notebook, sched.parameters, sched.profile, sched.timeout, sched.id, due,
                staged_input=sched.staged_input, meta=sched.meta,
            )
            self.store.add_run(run, schedule=sched)
            self.log.info("Schedule %s fired for %s (cron time %s): run %s", sched.id, sched.owner, paths.iso(due), run.id)
            fired.append(run)
        return fired

    def fire_now(self, sched: Schedule, parameters: dict | None = None) -> Run:
        """Queue one run of ``sched`` now ("run now"; its cron times are untouched).

        ``parameters`` override the schedule's for this run only.
        """
        self._check_queue(sched.owner)
        params = {**sched.parameters, **(parameters or {})}
        run = self.new_run(
            sched.owner, sched.notebook, params, sched.profile, sched.timeout, sched.id, None,
            staged_input=sched.staged_input, meta=sched.meta,
        )
        self.store.add_run(run)
        self.log.info("Schedule %s run now for %s: run %s", sched.id, sched.owner, run.id)
        self.dispatch()
        return run

    # ------------------------------------------------------------ executing

    def dispatch(self) -> list[str]:
        """Start queued runs (oldest first) while each owner is under the per-user limit."""
        started = []
        active: dict[str, int] = {}
        for run in self.store.queued():
            if run.id in self.tasks:
                continue
            if run.owner not in active:
                active[run.owner] = self.store.active_count(run.owner)
            if active[run.owner] >= self.per_user_limit:
                continue
            active[run.owner] += 1
            self.store.update_run(run.id, status=STARTING)
            self.tasks[run.id] = asyncio.ensure_future(self._execute(run.id))
            started.append(run.id)
        return started

    async def tick(self) -> None:
        """One scheduler step: fire due schedules, start what may start."""
        self.fire_due()
        self.dispatch()

    async def wait_idle(self, timeout: float = 600) -> None:
        """Until no run is executing (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self.tasks and time.monotonic() < deadline:
            await asyncio.wait(list(self.tasks.values()), timeout=max(0.01, deadline - time.monotonic()))
            self.dispatch()

    def driver_spec(self, run: Run) -> dict:
        return {
            "run_id": run.id,
            "owner": run.owner,
            "notebook": run.notebook,
            "parameters": run.parameters,
            "profile": run.profile,
            "timeout": run.timeout,
            "bucket": run.bucket,
            "output_key": run.output_key,
            "record_key": run.record_key,
            "schedule_id": run.schedule_id,
            "staged_input": run.staged_input,
            "record": {"created": paths.iso(run.created), "fire_time": paths.iso(run.fire_time)},
        }

    def _finish(self, run_id: str, status: str, error: str | None = None, **fields) -> None:
        finished = fields.pop("finished", None) or self.clock()
        self.store.update_run(run_id, status=status, error=error, finished=finished, **fields)
        self.log.info("Run %s %s%s", run_id, status, f": {error}" if error else "")
        if self.metrics is not None:
            run = self.store.get_run(run_id)
            self.metrics.run_finished(status, finished - run.created if run else None)

    async def _execute(self, run_id: str) -> None:
        run = self.store.get_run(run_id)
        options = {"profile": run.profile} if run.profile else {}
        outcome: tuple = (FAILED, "internal error in the scheduler", {})
        try:
            outcome = await self._attempt(run, options)
        except Exception as e:  # noqa: BLE001 - a run never takes the scheduler down
            self.log.exception("Run %s crashed in the scheduler", run.id)
            outcome = (FAILED, f"internal error in the scheduler: {type(e).__name__}", {})
        finally:
            # the server goes first, so a finished run never has a server left
            try:
                await self.launcher.stop_server(run.owner, run.server_name, 60)
            except Exception:  # noqa: BLE001
                self.log.exception("Could not stop the server of run %s", run.id)
            status, error, fields = outcome
            self._finish(run.id, status, error, **fields)
            self.tasks.pop(run.id, None)
            self.dispatch()

    async def _attempt(self, run: Run, options: dict) -> tuple:
        """Start the server and execute the driver; return (status, error, extra fields)."""
        try:
            await self.launcher.start_server(run.owner, run.server_name, options, self.spawn_timeout)
        except LaunchError as e:
            return FAILED, str(e), {}
        self.store.update_run(run.id, status=RUNNING, started=self.clock())
        code = driver.kernel_code(self.driver_spec(run))
        try:
            stdout = await self.launcher.execute(run.owner, run.server_name, code, run.timeout + self.timeout_grace)
        except ExecTimeout:
            return TIMED_OUT, f"the run exceeded its timeout of {run.timeout}s and was stopped", {}
        except LaunchError as e:
            return FAILED, str(e), {}
        result = driver.parse_result(stdout) or {"status": FAILED, "error": "the run driver reported no result"}
        status = result.get("status") if result.get("status") in FINISHED else FAILED
        return status, result.get("error"), {"input_sha256": result.get("input_sha256")}

    async def recover(self) -> None:
        """At startup: runs left starting/running by a previous process are failed; their servers stopped."""
        for run in self.store.runs_with_status((STARTING, RUNNING)):
            self._finish(run.id, FAILED, "the scheduler restarted while this run was executing")
            try:
                await self.launcher.stop_server(run.owner, run.server_name, 30)
            except Exception:  # noqa: BLE001
                self.log.warning("Could not stop the server of interrupted run %s", run.id)

    # ------------------------------------------------------------ schedules

    def add_schedule(self, owner, notebook, parameters, profile, cron, timeout, staged_input=None, meta=None) -> Schedule:
        import secrets

        sched = Schedule(
            id=secrets.token_hex(6), owner=owner, notebook=notebook, parameters=parameters, profile=profile,
            cron=cron, timeout=int(timeout), created=self.clock(), staged_input=staged_input, meta=dict(meta or {}),
        )
        self.store.add_schedule(sched)
        return sched

    def next_fire(self, sched: Schedule) -> float | None:
        if not sched.enabled:
            return None
        return cronlib.next_fire(sched.cron, max(sched.last_fired or sched.created, self.clock()))

