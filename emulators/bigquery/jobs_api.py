"""Handlers of the jobs API: ``jobs.insert/get/list/cancel``, ``jobs.query``, results and load uploads."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from . import access
from .errors import ApiError
from .jobs import (
    JobStore,
    check_ids,
    check_job_id,
    finished_job,
    now_ms,
    run_query,
    table_ref,
)
from .translate import TableRef
from .base import BaseHandler
from .uploads import ResumableUploads, parse_content_range, parse_multipart, spool

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
