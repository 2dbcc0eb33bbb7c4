"""The BigQuery panel's server side: ``<base>/labdeck/bigquery/…`` in the person's server.

Everything goes through google-cloud-bigquery with the server's own
credentials (Application Default Credentials pointing at the broker), so
BigQuery decides what the person may read, see and cancel:

- ``GET datasets``: the datasets the broker grants (own dataset first, then the
  demo data and group grants), each with its tables (``tables.list``);
- ``GET table?id=p.d.t``: schema (``tables.get``) and the first rows (``tabledata.list``);
- ``GET jobs``: the person's recent and running query jobs (``jobs.list``):
  state, elapsed time, bytes processed, the first line of SQL;
- ``POST jobs/<id>/cancel``: ``jobs.cancel``; the kernel waiting on that job gets
  BigQuery's cancellation error.

BigQuery's refusals keep their status (403, 404, 400) and message.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
import time

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import IOLoop

PREVIEW_ROWS = 20
RECENT_JOBS = 50
_TABLE_ID = re.compile(r"^[a-z0-9][a-z0-9\-]{0,62}\.[A-Za-z0-9_]{1,1024}\.[\w\-]{1,1024}$")
_JOB_ID = re.compile(r"^[A-Za-z0-9_\-]{1,1024}$")


def jsonable(value):
    """A row value as JSON: dates and times in ISO format, decimals and bytes as strings."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, bytes)):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def job_summary(job, now: float) -> dict:
    """One row of the Queries view (pure: a ``QueryJob``-like object in, a dict out)."""
    started, ended, created = job.started, job.ended, job.created
    begin = started or created
    if begin is None:
        elapsed = None
    else:
        end = ended.timestamp() if ended else now
        elapsed = max(0, round((end - begin.timestamp()) * 1000))
    sql = getattr(job, "query", None) or ""
    first = next((line.strip() for line in sql.splitlines() if line.strip()), "")
    error = job.error_result or None
    return {
        "id": job.job_id,
        "location": job.location,
        "state": job.state,
        "created": created.isoformat() if created else None,
        "elapsed_ms": elapsed,
        "bytes_processed": getattr(job, "total_bytes_processed", None),
        "sql": first[:200],
        "error": (error or {}).get("message") if error else None,
        "cancelled": bool(error and error.get("reason") == "stopped"),
    }


class BigQueryHandler(APIHandler):
    """Shared parts: the client, blocking calls off the event loop, BigQuery errors as HTTP errors."""

    auth_resource = "contents"

    @property
    def client(self):
        holder = self.settings["labdeck_bigquery"]
        if holder.get("client") is None:
            from google.cloud import bigquery

            holder["client"] = bigquery.Client()
        return holder["client"]

    async def call(self, fn, *args, **kwargs):
        from google.api_core import exceptions
        from google.auth import exceptions as auth_exceptions

        try:
            return await IOLoop.current().run_in_executor(None, lambda: fn(*args, **kwargs))
        except exceptions.GoogleAPICallError as e:
            code = e.code if isinstance(e.code, int) and 400 <= e.code < 500 else 502
            raise web.HTTPError(code, f"BigQuery: {e.message}") from None
        except auth_exceptions.GoogleAuthError as e:
            raise web.HTTPError(503, f"No BigQuery credentials: {e}") from None

    def reply(self, body):
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body, default=str))


class DatasetsHandler(BigQueryHandler):
    @web.authenticated
    @authorized
    async def get(self):
        view = (await self.settings["labdeck_grants"]()).get("bigquery") or {}
        out = []
        for d in view.get("datasets") or []:
            entry = {"id": d["dataset"], "access": d["access"], "tables": [], "error": None}
            try:
                tables = await self.call(lambda ds=d["dataset"]: list(self.client.list_tables(ds)))
                entry["tables"] = [{"id": t.table_id, "type": t.table_type} for t in tables]
            except web.HTTPError as e:
                entry["error"] = e.log_message
            out.append(entry)
        self.reply({"project": view.get("project"), "datasets": out})


class TableHandler(BigQueryHandler):
    @web.authenticated
    @authorized
    async def get(self):
        table_id = self.get_query_argument("id", "")
        if not _TABLE_ID.match(table_id):
            raise web.HTTPError(400, "id must be project.dataset.table")
        table = await self.call(self.client.get_table, table_id)
        fields = [{"name": f.name, "type": f.field_type, "mode": f.mode, "description": f.description}
                  for f in table.schema]
        rows = await self.call(lambda: list(self.client.list_rows(table, max_results=PREVIEW_ROWS)))
        self.reply({
            "id": table_id, "type": table.table_type, "num_rows": table.num_rows, "schema": fields,
            "preview": {"columns": [f["name"] for f in fields], "rows": [jsonable(list(r.values())) for r in rows]},
        })


class JobsHandler(BigQueryHandler):
    @web.authenticated
    @authorized
    async def get(self):
        from google.cloud.bigquery import QueryJob

        jobs = await self.call(lambda: list(self.client.list_jobs(max_results=RECENT_JOBS)))
        now = time.time()
        self.reply({"jobs": [job_summary(j, now) for j in jobs if isinstance(j, QueryJob)]})


class CancelHandler(BigQueryHandler):
    @web.authenticated
    @authorized
    async def post(self, job_id):
        if not _JOB_ID.match(job_id):
            raise web.HTTPError(400, "Invalid job id")
        location = self.get_query_argument("location", None) or None
        job = await self.call(self.client.cancel_job, job_id, location=location)
        self.reply(job_summary(job, time.time()))


def bigquery_handlers(base: str) -> list:
    root = url_path_join(base, "labdeck/bigquery")
    return [
        (root + "/datasets", DatasetsHandler),
        (root + "/table", TableHandler),
        (root + "/jobs", JobsHandler),
        (root + r"/jobs/([^/]+)/cancel", CancelHandler),
    ]
