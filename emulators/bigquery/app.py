"""The tornado application: the BigQuery v2 REST subset ``google-cloud-bigquery`` 3.47 uses.

Every request needs ``Authorization: Bearer <labdeck local token>``
(:mod:`labdeck.emulators.bigquery.tokens`); missing, forged or expired -> 401.
Handlers parse the request, check grants (:mod:`.access`), and run storage work
in a thread pool (:class:`.engine.Engine` serializes DuckDB use). Errors are
always BigQuery-shaped JSON (:mod:`.errors`), never a traceback. One log line
per request: method, path (no query string), status, time, principal.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable
from urllib.parse import quote

import tornado.web
from tornado.ioloop import IOLoop

from .tokens import TokenError, verify
from . import access
from .engine import Engine
from .errors import ApiError, not_found
from .jobs import (
    LOCATION,
    JobStore,
    check_ids,
    check_job_id,
    finished_job,
    now_ms,
    run_query,
    table_ref,
)
from .translate import TableRef
from .uploads import ResumableUploads, parse_content_range, parse_multipart, spool

log = logging.getLogger("labdeck.bigquery")

API = r"/bigquery/v2/projects/([^/]+)"
UPLOAD = r"/upload/bigquery/v2/projects/([^/]+)/jobs"


def _log_request(handler: tornado.web.RequestHandler) -> None:
    request = handler.request
    sub = (getattr(handler, "claims", None) or {}).get("sub", "-")
    log.info(
        "%s %s %d %.1fms sub=%s",
        request.method,
        request.path,
        handler.get_status(),
        1000.0 * request.request_time(),
        sub,
    )


class BaseHandler(tornado.web.RequestHandler):
    """Authentication, JSON bodies, BigQuery-shaped errors, thread-pool execution."""

    claims: dict[str, Any]

    @property
    def engine(self) -> Engine:
        return self.settings["bq_engine"]

    @property
    def jobs(self) -> JobStore:
        return self.settings["bq_jobs"]

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")

    def compute_etag(self) -> None:
        return None

    def prepare(self) -> None:
        self.claims = {}
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError("unauthorized", "Request is missing required authentication credential. "
                           "Expected a labdeck bearer token.")
        try:
            self.claims = verify(self.settings["bq_key"], token.strip())
        except TokenError as err:
            raise ApiError("unauthorized", f"Request had invalid authentication credentials: {err}") from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            error = exc
        elif isinstance(exc, tornado.web.HTTPError) and exc.status_code < 500:
            reason = {401: "unauthorized", 403: "accessDenied", 404: "notFound", 409: "duplicate"}
            error = ApiError(reason.get(exc.status_code, "invalid"), exc.log_message or self._reason)
        else:
            error = ApiError("backendError", "Internal error in the local BigQuery endpoint")
        self.set_status(error.code)
        if error.code == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="labdeck-bigquery"')
        self.finish(json.dumps(error.body()))

    def log_exception(self, typ, value, tb) -> None:  # noqa: ANN001
        if isinstance(value, ApiError):
            return  # an expected, client-facing error; the access log line has the status
        if isinstance(value, tornado.web.HTTPError):
            return
        log.error("unexpected error handling %s %s: %s", self.request.method, self.request.path,
                  type(value).__name__, exc_info=(typ, value, tb))

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            status_code = exc.code
        super().send_error(status_code, **kwargs)

    def body_json(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except ValueError:
            raise ApiError("invalid", "Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError("invalid", "Request body must be a JSON object")
        return body

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.get_query_argument(name, None)
        if value is None or value == "":
            return default
        try:
            return max(0, int(value))
        except ValueError:
            raise ApiError("invalid", f"Invalid value for {name}: expected an integer") from None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await IOLoop.current().run_in_executor(self.settings["bq_executor"], fn, *args)

    def reply(self, body: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body))


def _dataset_resource(project: str, dataset: str) -> dict[str, Any]:
    return {
        "kind": "bigquery#dataset",
        "id": f"{project}:{dataset}",
        "datasetReference": {"projectId": project, "datasetId": dataset},
        "location": LOCATION,
        "type": "DEFAULT",
    }


def _table_resource(ref: TableRef, kind: str, fields: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    body = {
        "kind": "bigquery#table",
        "id": f"{ref.project}:{ref.dataset}.{ref.table}",
        "tableReference": {"projectId": ref.project, "datasetId": ref.dataset, "tableId": ref.table},
        "type": kind,
        "location": LOCATION,
        "schema": {"fields": fields},
    }
    if kind == "TABLE":
        body["numRows"] = str(rows)
        body["numBytes"] = "0"
    return body


class DatasetsHandler(BaseHandler):
    """``datasets.list`` and ``datasets.insert``."""

    async def get(self, project: str) -> None:
        check_ids(project)
        names = await self.run(self.engine.list_datasets, project)
        visible = access.visible_datasets(self.claims, project, names)
        self.reply({
            "kind": "bigquery#datasetList",
            "datasets": [
                {**_dataset_resource(project, d), "kind": "bigquery#dataset"} for d in visible
            ],
        })

    async def post(self, project: str) -> None:
        body = self.body_json()
        ref = body.get("datasetReference") or {}
        dataset = str(ref.get("datasetId") or "")
        target_project = str(ref.get("projectId") or project)
        check_ids(target_project, dataset)
        access.require_write(self.claims, target_project, dataset)
        await self.run(self.engine.create_dataset, target_project, dataset)
        self.reply(_dataset_resource(target_project, dataset))


class DatasetHandler(BaseHandler):
    """``datasets.get`` and ``datasets.delete``."""

    async def get(self, project: str, dataset: str) -> None:
        check_ids(project, dataset)
        access.require_read(self.claims, project, dataset)
        await self.run(self.engine.require_dataset, project, dataset)
        self.reply(_dataset_resource(project, dataset))

    async def delete(self, project: str, dataset: str) -> None:
        check_ids(project, dataset)
        access.require_write(self.claims, project, dataset)
        contents = self.get_query_argument("deleteContents", "false").lower() == "true"
        await self.run(self.engine.delete_dataset, project, dataset, contents)
        self.set_status(204)
        self.finish()

    async def patch(self, project: str, dataset: str) -> None:
        raise ApiError("invalid", "Updating datasets is not supported by the local BigQuery endpoint")

    put = patch


class TablesHandler(BaseHandler):
    """``tables.list`` and ``tables.insert``."""

    async def get(self, project: str, dataset: str) -> None:
        check_ids(project, dataset)
        access.require_read(self.claims, project, dataset)
        await self.run(self.engine.require_dataset, project, dataset)
        tables = await self.run(self.engine.list_tables, project, dataset)
        token = self.get_query_argument("pageToken", "") or ""
        start = int(token) if token.isdigit() else 0
        size = self.int_arg("maxResults") or 1000
        page = tables[start:start + size]
        body: dict[str, Any] = {
            "kind": "bigquery#tableList",
            "totalItems": len(tables),
            "tables": [
                {
                    "kind": "bigquery#table",
                    "id": f"{project}:{dataset}.{name}",
                    "tableReference": {"projectId": project, "datasetId": dataset, "tableId": name},
                    "type": kind,
                }
                for name, kind in page
            ],
        }
        if start + size < len(tables):
            body["nextPageToken"] = str(start + size)
        self.reply(body)

    async def post(self, project: str, dataset: str) -> None:
        body = self.body_json()
        ref = table_ref(
            {"projectId": project, "datasetId": dataset, **(body.get("tableReference") or {})}, project
        )
        if (ref.project, ref.dataset) != (project, dataset):
            raise ApiError("invalid", "tableReference does not match the dataset in the URL")
        access.require_write(self.claims, project, dataset, f"Table {ref}")
        if body.get("view"):
            raise ApiError("invalid", "Creating views through tables.insert is not supported; "
                           "use CREATE VIEW in a query")
        fields = (body.get("schema") or {}).get("fields") or []
        await self.run(self.engine.create_table, ref, fields)
        await self._reply_table(ref)

    async def _reply_table(self, ref: TableRef) -> None:
        kind = await self.run(self.engine.require_table, ref)
        fields = await self.run(self.engine.table_fields, ref)
        rows = await self.run(self.engine.num_rows, ref) if kind == "TABLE" else 0
        self.reply(_table_resource(ref, kind, fields, rows))


class TableHandler(TablesHandler):
    """``tables.get`` and ``tables.delete``."""

    async def get(self, project: str, dataset: str, table: str) -> None:  # type: ignore[override]
        check_ids(project, dataset, table)
        ref = TableRef(project, dataset, table)
        access.require_read(self.claims, project, dataset, f"Table {ref}")
        await self._reply_table(ref)

    async def delete(self, project: str, dataset: str, table: str) -> None:
        check_ids(project, dataset, table)
        ref = TableRef(project, dataset, table)
        access.require_write(self.claims, project, dataset, f"Table {ref}")
        await self.run(self.engine.delete_table, ref)
        self.set_status(204)
        self.finish()

    async def post(self, *args: str) -> None:  # type: ignore[override]
        raise ApiError("invalid", "Unsupported method")

    async def patch(self, project: str, dataset: str, table: str) -> None:
        raise ApiError("invalid", "Updating tables is not supported by the local BigQuery endpoint")

    put = patch


class TableDataHandler(BaseHandler):
    """``tabledata.list``: a page of rows."""

    async def get(self, project: str, dataset: str, table: str) -> None:
        check_ids(project, dataset, table)
        ref = TableRef(project, dataset, table)
        access.require_read(self.claims, project, dataset, f"Table {ref}")
        token = self.get_query_argument("pageToken", None)
        start = int(token) if token and token.isdigit() else (self.int_arg("startIndex") or 0)
        size = self.int_arg("maxResults")
        size = 10_000 if size is None else min(size, 10_000)
        selected = self.get_query_argument("selectedFields", None)
        columns = [c.strip() for c in selected.split(",") if c.strip()] if selected else None
        _fields, rows, total = await self.run(self.engine.read_rows, ref, start, size, columns)
        body: dict[str, Any] = {"kind": "bigquery#tableDataList", "totalRows": str(total)}
        if rows:
            body["rows"] = rows
            if start + len(rows) < total:
                body["pageToken"] = str(start + len(rows))
        self.reply(body)


class InsertAllHandler(BaseHandler):
    """``tabledata.insertAll`` (streaming inserts), all rows or none."""

    async def post(self, project: str, dataset: str, table: str) -> None:
        check_ids(project, dataset, table)
        ref = TableRef(project, dataset, table)
        access.require_write(self.claims, project, dataset, f"Table {ref}")
        body = self.body_json()
        rows = [r.get("json") for r in body.get("rows") or [] if isinstance(r, dict)]
        if not all(isinstance(r, dict) for r in rows):
            raise ApiError("invalid", "Every row needs a 'json' object")
        if rows:
            await self.run(self.engine.insert_json_rows, ref, rows)
        self.reply({"kind": "bigquery#tableDataInsertAllResponse"})


class JobsHandler(BaseHandler):
    """``jobs.insert`` (query jobs) and ``jobs.list``."""

    async def post(self, project: str) -> None:
        check_ids(project)
        access.require_job_project(self.claims, project)
        body = self.body_json()
        ref = body.get("jobReference") or {}
        job_id = str(ref.get("jobId") or JobStore.new_id())
        check_job_id(job_id)
        self.jobs.reserve(project, job_id)
        configuration = body.get("configuration") or {}
        if "query" not in configuration:
            raise ApiError("invalid", "Only query jobs can be inserted here; load jobs go through "
                           "the upload endpoint, copy and extract jobs are not supported")
        created = now_ms()
        try:
            result = await self.run(run_query, self.engine, self.claims, project,
                                    configuration.get("query") or {})
            job = finished_job(project, job_id, self.claims["sub"], "QUERY", configuration,
                               created, result=result)
        except ApiError as err:
            job = finished_job(project, job_id, self.claims["sub"], "QUERY", configuration,
                               created, error=err)
        self.jobs.add(job)
        self.reply(job.resource())

    async def get(self, project: str) -> None:
        check_ids(project)
        jobs = self.jobs.list(project, self.claims)
        self.reply({
            "kind": "bigquery#jobList",
            "jobs": [{**j.resource(), "state": "DONE"} for j in jobs[: self.int_arg("maxResults", 1000)]],
        })


class JobHandler(BaseHandler):
    """``jobs.get`` and ``jobs.cancel`` (jobs are always done already)."""

    async def get(self, project: str, job_id: str) -> None:
        check_ids(project)
        check_job_id(job_id)
        self.reply(self.jobs.get(project, job_id, self.claims).resource())

    async def post(self, project: str, job_id: str) -> None:
        check_ids(project)
        check_job_id(job_id)
        job = self.jobs.get(project, job_id, self.claims)
        self.reply({"kind": "bigquery#jobCancelResponse", "job": job.resource()})


class QueriesHandler(BaseHandler):
    """``jobs.query``: run a query and return the first page of rows."""

    async def post(self, project: str) -> None:
        check_ids(project)
        access.require_job_project(self.claims, project)
        body = self.body_json()
        if body.get("dryRun"):
            raise ApiError("invalid", "Dry runs are not supported by the local BigQuery endpoint")
        max_results = body.get("maxResults")
        if max_results is not None and not str(max_results).isdigit():
            raise ApiError("invalid", "Invalid value for maxResults: expected an integer")
        job_id = JobStore.new_id()
        created = now_ms()
        result = await self.run(run_query, self.engine, self.claims, project, body)
        config = {"query": {k: v for k, v in body.items()
                            if k in ("query", "defaultDataset", "useLegacySql", "queryParameters")}}
        job = finished_job(project, job_id, self.claims["sub"], "QUERY", config, created, result=result)
        self.jobs.add(job)
        self.reply(job.query_results(0, int(max_results) if max_results is not None else None,
                                     kind="bigquery#queryResponse"))


class QueryResultsHandler(BaseHandler):
    """``jobs.getQueryResults``: pages of a finished query job."""

    async def get(self, project: str, job_id: str) -> None:
        check_ids(project)
        check_job_id(job_id)
        job = self.jobs.get(project, job_id, self.claims)
        token = self.get_query_argument("pageToken", None)
        start = int(token) if token and token.isdigit() else (self.int_arg("startIndex") or 0)
        self.reply(job.query_results(start, self.int_arg("maxResults")))


class UploadHandler(BaseHandler):
    """Load jobs with data: ``uploadType=multipart`` and ``uploadType=resumable``."""

    @property
    def uploads(self) -> ResumableUploads:
        return self.settings["bq_uploads"]

    def _load_target(self, project: str, metadata: dict[str, Any]) -> tuple[str, dict[str, Any], TableRef]:
        access.require_job_project(self.claims, project)
        job_id = str((metadata.get("jobReference") or {}).get("jobId") or JobStore.new_id())
        check_job_id(job_id)
        self.jobs.reserve(project, job_id)
        load = (metadata.get("configuration") or {}).get("load")
        if not isinstance(load, dict):
            raise ApiError("invalid", "Upload metadata needs configuration.load")
        ref = table_ref(load.get("destinationTable"), project)
        if ref is None:
            raise ApiError("invalid", "configuration.load.destinationTable is required")
        access.require_write(self.claims, ref.project, ref.dataset, f"Table {ref}")
        return job_id, load, ref

    async def _load(self, project: str, metadata: dict[str, Any], path: str) -> None:
        job_id, load, ref = self._load_target(project, metadata)
        created = now_ms()
        configuration = metadata.get("configuration") or {}
        try:
            rows = await self.run(self.engine.load_file, ref, path, load)
            job = finished_job(project, job_id, self.claims["sub"], "LOAD", configuration,
                               created, output_rows=rows)
        except ApiError as err:
            job = finished_job(project, job_id, self.claims["sub"], "LOAD", configuration,
                               created, error=err)
        finally:
            os.unlink(path)
        self.jobs.add(job)
        self.reply(job.resource())

    async def post(self, project: str) -> None:
        check_ids(project)
        upload_type = self.get_query_argument("uploadType", "")
        if upload_type == "multipart":
            metadata, data = parse_multipart(self.request.headers.get("Content-Type", ""),
                                             self.request.body)
            self._load_target(project, metadata)  # authorize before spooling anything
            path = spool(self.settings["bq_scratch"], data)
            await self._load(project, metadata, path)
        elif upload_type == "resumable":
            metadata = self.body_json()
            self._load_target(project, metadata)
            session = self.uploads.start(self.claims["sub"], project, metadata)
            base = f"{self.request.protocol}://{self.request.host}"
            self.set_header(
                "Location",
                f"{base}/upload/bigquery/v2/projects/{quote(project)}/jobs?uploadType=resumable"
                f"&upload_id={session.upload_id}",
            )
            self.reply({})
        else:
            raise ApiError("invalid", "uploadType must be multipart or resumable")

    async def put(self, project: str) -> None:
        check_ids(project)
        session = self.uploads.get(self.get_query_argument("upload_id", ""), self.claims["sub"], project)
        first, _last, total = parse_content_range(self.request.headers.get("Content-Range"))
        chunk = self.request.body
        if chunk:
            await self.run(self.uploads.append, session, first, chunk)
        if total is not None and session.received >= total:
            self.uploads.finish(session)
            await self._load(project, session.metadata, session.path)
            return
        self.set_status(308)
        if session.received:
            self.set_header("Range", f"bytes=0-{session.received - 1}")
        self.finish()


class NotFoundHandler(BaseHandler):
    """Anything else: a BigQuery-shaped 404 (after authentication, so nothing leaks)."""

    def prepare(self) -> None:
        super().prepare()
        raise not_found(f"{self.request.method} {self.request.path}")


def make_app(
    engine: Engine,
    key: bytes,
    default_project: str,
    scratch_dir: str | None = None,
    executor: ThreadPoolExecutor | None = None,
) -> tornado.web.Application:
    """Build the emulator's tornado application.

    Parameters
    ----------
    engine : Engine
        The DuckDB store.
    key : bytes
        The HMAC key tokens are verified with (never logged).
    default_project : str
        The project the endpoint serves by default (reported in logs; any
        project a token grants works).
    scratch_dir : str, optional
        Private directory for uploads; defaults to a new temporary directory.
    executor : ThreadPoolExecutor, optional
        Where storage work runs; defaults to 4 worker threads.

    Returns
    -------
    tornado.web.Application
    """
    if scratch_dir is None:
        import tempfile

        scratch_dir = tempfile.mkdtemp(prefix="labdeck-bq-")
    os.makedirs(scratch_dir, mode=0o700, exist_ok=True)
    routes = [
        (API + r"/datasets", DatasetsHandler),
        (API + r"/datasets/([^/]+)", DatasetHandler),
        (API + r"/datasets/([^/]+)/tables", TablesHandler),
        (API + r"/datasets/([^/]+)/tables/([^/]+)", TableHandler),
        (API + r"/datasets/([^/]+)/tables/([^/]+)/data", TableDataHandler),
        (API + r"/datasets/([^/]+)/tables/([^/]+)/insertAll", InsertAllHandler),
        (API + r"/jobs", JobsHandler),
        (API + r"/jobs/([^/]+)", JobHandler),
        (API + r"/jobs/([^/]+)/cancel", JobHandler),
        (API + r"/queries", QueriesHandler),
        (API + r"/queries/([^/]+)", QueryResultsHandler),
        (UPLOAD, UploadHandler),
    ]
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        log_function=_log_request,
        bq_engine=engine,
        bq_key=bytes(key),
        bq_project=default_project,
        bq_jobs=JobStore(),
        bq_uploads=ResumableUploads(scratch_dir),
        bq_scratch=scratch_dir,
        bq_executor=executor or ThreadPoolExecutor(4, thread_name_prefix="labdeck-bq"),
        started=time.time(),
    )
