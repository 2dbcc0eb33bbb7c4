"""Query jobs run asynchronously, as on BigQuery: ``PENDING`` -> ``RUNNING`` -> ``DONE``, and cancellable.

:meth:`JobRunner.start` returns at once; the query runs on a thread pool of
its own (so long queries never starve the request handlers' pool) and the job
ends ``DONE`` with its result or error. :meth:`JobRunner.cancel` interrupts
the query (DuckDB ``interrupt`` on the job's own cursor); the job ends
``DONE`` with ``errorResult.reason == "stopped"``, which google-cloud-bigquery
raises in the kernel that waits for it. A job that finishes before the
cancellation reaches it keeps its result, as on BigQuery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from .engine import Engine
from .errors import ApiError
from .execute import scanned_bytes
from .jobs import DONE, PENDING, RUNNING, Job, PreparedQuery, now_ms

log = logging.getLogger("labdeck.bigquery")

#: how long a cancellation keeps interrupting a job that has not ended yet
CANCEL_PERSIST_SECONDS = 10.0
CANCEL_REPEAT_SECONDS = 0.1


class JobRunner:
    """Runs query jobs in the background on ``workers`` threads."""

    def __init__(self, engine: Engine, workers: int = 4) -> None:
        self.engine = engine
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="labdeck-bq-job")
        self._tasks: set[asyncio.Task] = set()
        self._live: set[Job] = set()

    def _keep(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self, job: Job, query: PreparedQuery) -> None:
        """Run ``job`` in the background; it is ``PENDING`` until a worker picks it up."""
        job.state = PENDING
        job.finished = asyncio.Event()
        self._live.add(job)
        self._keep(asyncio.ensure_future(self._run(job, query)))

    def _execute(self, job: Job, query: PreparedQuery):
        job.started_ms = now_ms()
        job.state = RUNNING
        job.bytes_processed = scanned_bytes(self.engine, query.translation.reads)
        return query.run(self.engine, job.interrupt)

    async def _run(self, job: Job, query: PreparedQuery) -> None:
        loop = asyncio.get_running_loop()
        try:
            job.result = await loop.run_in_executor(self.executor, self._execute, job, query)
        except ApiError as err:
            job.error = err
        except Exception:  # noqa: BLE001 - a job fails, the endpoint goes on
            log.exception("query job %s failed unexpectedly", job.job_id)
            job.error = ApiError("backendError", "Internal error in the local BigQuery endpoint")
        finally:
            job.ended_ms = now_ms()
            job.state = DONE
            job.finished.set()
            self._live.discard(job)

    def cancel(self, job: Job) -> None:
        """Ask a job to stop; it ends ``DONE`` with reason ``stopped`` (unless it finished first)."""
        if job.state == DONE:
            return
        job.interrupt.request()
        self._keep(asyncio.ensure_future(self._persist(job)))

    async def _persist(self, job: Job) -> None:
        # a DuckDB interrupt that lands between the query's start and its first
        # check is lost: repeat it until the job ends (bounded)
        deadline = time.monotonic() + CANCEL_PERSIST_SECONDS
        while job.state != DONE and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(job.finished.wait(), CANCEL_REPEAT_SECONDS)
            except asyncio.TimeoutError:
                job.interrupt.request()

    def shutdown(self) -> None:
        """Interrupt every job that has not ended and stop the workers (waits for them)."""
        for job in list(self._live):
            job.interrupt.request()
        self.executor.shutdown(wait=True, cancel_futures=True)
