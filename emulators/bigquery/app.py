"""The tornado application: the BigQuery v2 REST subset ``google-cloud-bigquery`` 3.47 uses.

Every request needs ``Authorization: Bearer <labdeck local token>``
(:mod:`labdeck.emulators.bigquery.tokens`); missing, forged or expired -> 401.
Handlers parse the request, check grants (:mod:`.access`), and run storage work
in a thread pool (:class:`.engine.Engine` serializes DuckDB use). Errors are
always BigQuery-shaped JSON (:mod:`.errors`), never a traceback. One log line
per request: method, path (no query string), status, time, principal.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tornado.web

from . import access
from .engine import Engine
from .errors import ApiError, not_found
from .jobrunner import JobRunner
from .jobs import (
    LOCATION,
    JobStore,
    check_ids,
    table_ref,
)
from .translate import TableRef
from .uploads import ResumableUploads

from .base import API, UPLOAD, BaseHandler, _log_request
from .jobs_api import JobHandler, JobsHandler, QueriesHandler, QueryResultsHandler, UploadHandler

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
        bq_runner=JobRunner(engine),
        bq_uploads=ResumableUploads(scratch_dir),
        bq_scratch=scratch_dir,
        bq_executor=executor or ThreadPoolExecutor(4, thread_name_prefix="labdeck-bq"),
        started=time.time(),
    )
