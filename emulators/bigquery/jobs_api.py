"""Handlers of the jobs API: ``jobs.insert/get/list/cancel``, ``jobs.query``, results and load uploads."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from . import access
from .errors import ApiError
from .jobs import (
    DONE,
    PENDING,
    RUNNING,
    Job,
    JobStore,
    check_ids,
    check_job_id,
    finished_job,
    now_ms,
    prepare_query,
    table_ref,
)
from .jobrunner import JobRunner
from .translate import TableRef
from .base import BaseHandler
from .uploads import ResumableUploads, parse_content_range, parse_multipart, spool

#: how long jobs.query and getQueryResults wait for a job by default (BigQuery: 10 s)
DEFAULT_WAIT_MS = 10_000
#: and at most (a client asking for more gets jobComplete: false and polls again)
MAX_WAIT_MS = 60_000
STATES = {"done": DONE, "pending": PENDING, "running": RUNNING}


class JobsHandler(BaseHandler):
    """``jobs.insert`` (query jobs, run asynchronously) and ``jobs.list``."""

    @property
    def runner(self) -> JobRunner:
        return self.settings["bq_runner"]

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
            query = await self.run(prepare_query, self.claims, project, configuration.get("query") or {})
        except ApiError as err:
            job = finished_job(project, job_id, self.claims["sub"], "QUERY", configuration, created, error=err)
            self.jobs.add(job)
            self.reply(job.resource())
            return
        job = Job(project, job_id, self.claims["sub"], "QUERY", configuration, created)
        self.jobs.add(job)
        self.runner.start(job, query)
        self.reply(job.resource())

    async def get(self, project: str) -> None:
        check_ids(project)
        wanted = self.get_query_arguments("stateFilter")
        bad = [s for s in wanted if s.lower() not in STATES]
        if bad:
            raise ApiError("invalid", f"Invalid stateFilter {bad[0]!r}: use done, pending or running")
        all_users = self.get_query_argument("allUsers", "false").lower() == "true"
        jobs = self.jobs.list(project, self.claims, {STATES[s.lower()] for s in wanted}, all_users)
        token = self.get_query_argument("pageToken", "") or ""
        start = int(token) if token.isdigit() else 0
        size = self.int_arg("maxResults", 1000) or 1000
        body = {"kind": "bigquery#jobList", "jobs": [j.list_entry() for j in jobs[start:start + size]]}
        if start + size < len(jobs):
            body["nextPageToken"] = str(start + size)
        self.reply(body)


class JobHandler(BaseHandler):
    """``jobs.get`` and ``jobs.cancel``."""

    async def get(self, project: str, job_id: str) -> None:
        check_ids(project)
        check_job_id(job_id)
        self.reply(self.jobs.get(project, job_id, self.claims).resource())

    async def post(self, project: str, job_id: str) -> None:
        check_ids(project)
        check_job_id(job_id)
        job = self.jobs.get(project, job_id, self.claims)
        self.settings["bq_runner"].cancel(job)
        self.reply({"kind": "bigquery#jobCancelResponse", "job": job.resource()})


class QueriesHandler(BaseHandler):
    """``jobs.query``: start a query, wait up to ``timeoutMs`` and return the first page (or jobComplete: false)."""

    async def post(self, project: str) -> None:
        check_ids(project)
        access.require_job_project(self.claims, project)
        body = self.body_json()
        if body.get("dryRun"):
            raise ApiError("invalid", "Dry runs are not supported by the local BigQuery endpoint")
        max_results = body.get("maxResults")
        if max_results is not None and not str(max_results).isdigit():
            raise ApiError("invalid", "Invalid value for maxResults: expected an integer")
        timeout_ms = body.get("timeoutMs", DEFAULT_WAIT_MS)
        if not str(timeout_ms).isdigit():
            raise ApiError("invalid", "Invalid value for timeoutMs: expected an integer")
        query = await self.run(prepare_query, self.claims, project, body)
        config = {"query": {k: v for k, v in body.items()
                            if k in ("query", "defaultDataset", "useLegacySql", "queryParameters")}}
        job = Job(project, JobStore.new_id(), self.claims["sub"], "QUERY", config, now_ms())
        self.jobs.add(job)
        self.settings["bq_runner"].start(job, query)
        await job.wait(min(int(timeout_ms), MAX_WAIT_MS) / 1000)
        self.reply(job.query_results(0, int(max_results) if max_results is not None else None,
                                     kind="bigquery#queryResponse"))


class QueryResultsHandler(BaseHandler):
    """``jobs.getQueryResults``: waits up to ``timeoutMs`` for the job, then a page of its rows."""

    async def get(self, project: str, job_id: str) -> None:
        check_ids(project)
        check_job_id(job_id)
        job = self.jobs.get(project, job_id, self.claims)
        await job.wait(min(self.int_arg("timeoutMs", DEFAULT_WAIT_MS), MAX_WAIT_MS) / 1000)
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
