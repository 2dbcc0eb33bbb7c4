"""Query and load jobs: authorize them and keep a bounded record of them.

A query job is authorized and translated when it is inserted (a bad or
forbidden query is a job that is ``DONE`` with an ``errorResult`` at once, as
on BigQuery), then runs asynchronously (:mod:`.jobrunner`): ``PENDING`` ->
``RUNNING`` -> ``DONE`` - with results, or with an ``errorResult`` the client
turns into the matching exception (``invalidQuery`` -> ``BadRequest``,
``accessDenied`` -> ``Forbidden``, ``notFound`` -> ``NotFound``, ``stopped``
after ``jobs.cancel``). Load jobs are done when their upload ends. A job is
visible only to the principal that created it (and admins).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import access
from .engine import DML_TYPES, Engine, QueryResult
from .errors import ApiError, access_denied, invalid_query, not_found
from .execute import Interrupt
from .translate import TableRef, Translation, translate

LOCATION = "US"
DEFAULT_PAGE_ROWS = 10_000

_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9\-]{0,62}$")
_DATASET_RE = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_TABLE_RE = re.compile(r"^[\w\-]{1,1024}$")
_JOB_RE = re.compile(r"^[A-Za-z0-9_\-]{1,1024}$")


def _now_ms() -> int:
    return int(time.time() * 1000)


def check_ids(project: str, dataset: str | None = None, table: str | None = None) -> None:
    """Raise 400 ``invalid`` for ids BigQuery would not accept (and that could confuse naming)."""
    if not _PROJECT_RE.match(project or ""):
        raise ApiError("invalid", f"Invalid project ID {project!r}")
    if dataset is not None and not _DATASET_RE.match(dataset):
        raise ApiError("invalid", f"Invalid dataset ID {dataset!r}: use letters, digits and _")
    if table is not None and not _TABLE_RE.match(table):
        raise ApiError("invalid", f"Invalid table ID {table!r}")


def check_job_id(job_id: str) -> None:
    """Raise 400 ``invalid`` for a malformed job id."""
    if not _JOB_RE.match(job_id or ""):
        raise ApiError("invalid", "Invalid job ID: use letters, digits, _ and -")


def table_ref(resource: dict[str, Any] | None, project: str) -> TableRef | None:
    """A ``TableReference`` API resource as a checked :class:`TableRef`."""
    if not resource:
        return None
    ref = TableRef(
        str(resource.get("projectId") or project),
        str(resource.get("datasetId") or ""),
        str(resource.get("tableId") or ""),
    )
    check_ids(*ref)
    return ref


#: BigQuery's job states
PENDING, RUNNING, DONE = "PENDING", "RUNNING", "DONE"


@dataclass(eq=False)
class Job:
    """A job, as recorded for ``jobs.get``, ``jobs.list`` and ``getQueryResults``."""

    project: str
    job_id: str
    owner: str
    job_type: str
    configuration: dict[str, Any]
    created_ms: int
    ended_ms: int | None = None
    result: QueryResult | None = None
    error: ApiError | None = None
    output_rows: int | None = None
    state: str = DONE
    started_ms: int | None = None
    bytes_processed: int = 0
    interrupt: Interrupt = field(default_factory=Interrupt, repr=False)
    finished: asyncio.Event | None = field(default=None, repr=False)

    def reference(self) -> dict[str, str]:
        """The ``jobReference`` resource."""
        return {"projectId": self.project, "jobId": self.job_id, "location": LOCATION}

    def resource(self) -> dict[str, Any]:
        """The ``Job`` resource returned by ``jobs.insert`` / ``jobs.get`` / ``jobs.list``."""
        status: dict[str, Any] = {"state": self.state}
        if self.state == DONE and self.error is not None:
            status["errorResult"] = self.error.error_proto()
            status["errors"] = [self.error.error_proto()]
        stats: dict[str, Any] = {"creationTime": str(self.created_ms)}
        if self.started_ms is not None or self.state == DONE:
            stats["startTime"] = str(self.started_ms or self.created_ms)
        if self.state == DONE:
            stats["endTime"] = str(self.ended_ms or self.created_ms)
        stats["totalBytesProcessed"] = str(self.bytes_processed)
        if self.job_type == "QUERY":
            stats["query"] = _query_statistics(self.result if self.state == DONE else None, self.bytes_processed)
        elif self.job_type == "LOAD" and self.output_rows is not None:
            stats["load"] = {"outputRows": str(self.output_rows), "inputFiles": "1"}
        return {
            "kind": "bigquery#job",
            "id": f"{self.project}:{LOCATION}.{self.job_id}",
            "jobReference": self.reference(),
            "configuration": {**self.configuration, "jobType": self.job_type},
            "status": status,
            "statistics": stats,
            "user_email": self.owner,
        }

    def list_entry(self) -> dict[str, Any]:
        """The job as ``jobs.list`` shows it: the resource with ``state`` (and ``errorResult``) on top."""
        body = {**self.resource(), "state": self.state}
        if "errorResult" in body["status"]:
            body["errorResult"] = body["status"]["errorResult"]
        return body

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the job to end; True if it is DONE."""
        if self.state != DONE and self.finished is not None and timeout > 0:
            try:
                await asyncio.wait_for(self.finished.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        return self.state == DONE

    def query_results(
        self, start: int, max_results: int | None, kind: str = "bigquery#getQueryResultsResponse"
    ) -> dict[str, Any]:
        """A ``getQueryResults`` (or ``jobs.query``) response page.

        Raises
        ------
        ApiError
            The job's own error, as the real API does for a failed job.
        """
        if self.state != DONE:
            return {"kind": kind, "jobReference": self.reference(), "jobComplete": False}
        if self.error is not None:
            raise self.error
        if self.job_type != "QUERY" or self.result is None:
            raise invalid_query(f"Job {self.job_id} is not a query job")
        result = self.result
        body: dict[str, Any] = {
            "kind": kind,
            "jobReference": self.reference(),
            "jobComplete": True,
            "cacheHit": False,
            "totalBytesProcessed": str(self.bytes_processed),
            "queryId": self.job_id,
            "creationTime": str(self.created_ms),
            "startTime": str(self.started_ms or self.created_ms),
            "endTime": str(self.ended_ms or self.created_ms),
        }
        if result.num_dml_affected_rows is not None:
            body["numDmlAffectedRows"] = str(result.num_dml_affected_rows)
        if result.total_rows is None:
            return body
        body["schema"] = {"fields": result.fields}
        body["totalRows"] = str(result.total_rows)
        size = DEFAULT_PAGE_ROWS if max_results is None else max(0, min(max_results, DEFAULT_PAGE_ROWS))
        rows = result.page(start, size)
        if rows:
            body["rows"] = rows
            if start + len(rows) < result.total_rows:
                body["pageToken"] = str(start + len(rows))
        return body


def _query_statistics(result: QueryResult | None, bytes_processed: int = 0) -> dict[str, Any]:
    stats: dict[str, Any] = {"totalBytesProcessed": str(bytes_processed), "cacheHit": False}
    if result is None:
        return stats
    stats["statementType"] = result.statement_type
    if result.num_dml_affected_rows is not None:
        stats["numDmlAffectedRows"] = str(result.num_dml_affected_rows)
    if result.statement_type not in DML_TYPES | {"SELECT"} and result.ddl_target is not None:
        stats["ddlOperationPerformed"] = result.statement_type.split("_")[0]
        ref = result.ddl_target
        stats["ddlTargetTable"] = {
            "projectId": ref.project, "datasetId": ref.dataset, "tableId": ref.table,
        }
    if result.total_rows is not None:
        stats["schema"] = {"fields": result.fields}
    return stats


class PreparedQuery(NamedTuple):
    """A translated, authorized query, ready to run (:meth:`run`)."""

    translation: Translation
    destination: TableRef | None
    write_disposition: str | None
    create_disposition: str | None

    def run(self, engine: Engine, interrupt: Interrupt | None = None) -> QueryResult:
        return engine.run_query(self.translation, self.destination, self.write_disposition,
                                self.create_disposition, interrupt)


def prepare_query(claims: dict[str, Any], project: str, config: dict[str, Any]) -> PreparedQuery:
    """Translate and authorize ``configuration.query`` (or a ``QueryRequest``); nothing runs yet.

    Parameters
    ----------
    claims : dict
        The caller's verified token claims.
    project : str
        The project the job runs in (already checked against ``projects``).
    config : dict
        ``query``, ``defaultDataset``, ``destinationTable``, ``writeDisposition``,
        ``createDisposition``, ``queryParameters``, ``useLegacySql``.

    Returns
    -------
    PreparedQuery

    Raises
    ------
    ApiError
        400 for bad or unsupported SQL, 403 for a dataset the token does not
        grant (checked before anything runs).
    """
    if config.get("useLegacySql") is True:
        raise invalid_query("Legacy SQL is not supported by the local BigQuery endpoint; "
                            "use standard SQL (useLegacySql=false)")
    default = config.get("defaultDataset") or None
    default_dataset = None
    if default:
        default_dataset = (str(default.get("projectId") or project), str(default.get("datasetId") or ""))
        check_ids(*default_dataset)
    translation = translate(
        str(config.get("query") or ""), project, default_dataset, config.get("queryParameters")
    )
    for ref in translation.reads | translation.writes:
        check_ids(*ref)
    destination = table_ref(config.get("destinationTable"), project)
    writes = set(translation.writes)
    if destination is not None:
        if translation.statement_type != "SELECT":
            raise invalid_query("A destination table can only be set for a SELECT query")
        writes.add(destination)
    access.require_tables(claims, translation.reads, writes)
    if translation.dataset_target is not None:
        check_ids(*translation.dataset_target)
        access.require_write(claims, *translation.dataset_target)
    return PreparedQuery(translation, destination, config.get("writeDisposition"), config.get("createDisposition"))


class JobStore:
    """Jobs by ``(project, job_id)``; past ``max_jobs``, the oldest finished ones are forgotten."""

    def __init__(self, max_jobs: int = 200) -> None:
        self.max_jobs = max_jobs
        self._jobs: OrderedDict[tuple[str, str], Job] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def new_id() -> str:
        """A fresh job id."""
        return "job_" + uuid.uuid4().hex

    def reserve(self, project: str, job_id: str) -> None:
        """Raise ``duplicate`` if the job id is taken."""
        with self._lock:
            if (project, job_id) in self._jobs:
                raise ApiError("duplicate", f"Already Exists: Job {project}:{LOCATION}.{job_id}")

    def add(self, job: Job) -> None:
        """Record a job (finished, or about to run)."""
        with self._lock:
            key = (job.project, job.job_id)
            if key in self._jobs:
                raise ApiError("duplicate", f"Already Exists: Job {job.project}:{LOCATION}.{job.job_id}")
            self._jobs[key] = job
            excess = len(self._jobs) - self.max_jobs
            for old in [k for k, j in self._jobs.items() if j.state == DONE][: max(0, excess)]:
                del self._jobs[old]

    def get(self, project: str, job_id: str, claims: dict[str, Any]) -> Job:
        """The job, if it exists and the caller created it (or is admin); else 404."""
        with self._lock:
            job = self._jobs.get((project, job_id))
        if job is None or (job.owner != claims.get("sub") and not access.is_admin(claims)):
            raise not_found(f"Job {project}:{LOCATION}.{job_id}")
        return job

    def list(
        self, project: str, claims: dict[str, Any], states: set[str] | None = None, all_users: bool = False
    ) -> list[Job]:
        """The caller's jobs in a project (everyone's with ``all_users``, admins only), newest first.

        Parameters
        ----------
        states : set of str, optional
            Only jobs in these states (``jobs.list``'s ``stateFilter``, upper case).
        """
        if all_users and not access.is_admin(claims):
            raise access_denied(
                f"Project {project}: User {claims.get('sub')} does not have bigquery.jobs.listAll permission"
            )
        with self._lock:
            jobs = list(self._jobs.values())
        return [
            j for j in reversed(jobs)
            if j.project == project and (all_users or j.owner == claims.get("sub"))
            and (not states or j.state in states)
        ]


def finished_job(
    project: str, job_id: str, owner: str, job_type: str, configuration: dict[str, Any],
    created_ms: int, **outcome: Any,
) -> Job:
    """A :class:`Job` that ends now, with ``result``/``error``/``output_rows``."""
    now = _now_ms()
    return Job(project, job_id, owner, job_type, configuration, created_ms, now, started_ms=created_ms, **outcome)


now_ms = _now_ms
