"""jupyter-scheduler on labdeck's runs service: "Create Notebook Job" runs where stopping your server cannot stop it.

A jupyter_server extension for user servers (enabled in place of
jupyter-scheduler's own server extension by the single-user image's
``jupyter_server_config.d/labdeck.json``, which ``make deps`` installs into
the venv as well). It keeps jupyter-scheduler's routes and UI and swaps what
is behind them:

- :class:`LabdeckScheduler` (a ``BaseScheduler``) keeps *no* job database:
  jobs are the person's labdeck runs and job definitions their schedules,
  read from the runs service on every request with the server's own token
  (``LABDECK_RUNS_URL``); creating one stages the input notebook into the
  person's S3 home and submits a run whose ``staged_input`` is that snapshot;
- the environments, execution and job-files managers it plugs in
  (:mod:`.jupyter_scheduler_managers`): the person's allowed profiles, no
  local execution, "Download" from the immutable output in S3;
- :class:`LabdeckSchedulerApp`: jupyter-scheduler's handlers, with errors
  labdeck knows the status of (404 for another person's job, 400 for bad
  input, 409, 429, 503) answered as that status with a clear message instead
  of jupyter-scheduler's blanket 500.

The mapping of shapes is pure: :mod:`.job_mapping`.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote

from jupyter_scheduler.extension import SchedulerApp
from jupyter_scheduler.models import DescribeJob, DescribeJobDefinition, ListJobDefinitionsResponse, ListJobsResponse
from jupyter_scheduler.scheduler import BaseScheduler
from jupyter_server.extension.application import ExtensionApp
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Unicode, default

from labdeck.hub import contract
from . import job_mapping as jm
from .jupyter_scheduler_managers import (
    LabdeckEnvironmentManager,
    LabdeckExecutionManager,
    LabdeckJobError,
    LabdeckJobFilesManager,
    _refuse,
    download_outputs,
)
from .paths import home_prefix


class LabdeckScheduler(BaseScheduler):
    """jupyter-scheduler's scheduler API, answered by labdeck's runs service (see the module docstring)."""

    task_runner = None  # schedules fire in the runs service, not in this server

    runs_url = Unicode(
        config=True,
        help="""Base URL of labdeck's runs service (ends in ``/services/runs/``).

        Defaults to ``LABDECK_RUNS_URL``, which the spawner sets for every user server.

        .. versionadded:: 0.2
        """,
    )

    @default("runs_url")
    def _runs_url_default(self):
        return os.environ.get(contract.ENV_RUNS_URL, "")

    bucket = Unicode(
        config=True,
        help="""Bucket of the person's S3 home, where inputs are staged and outputs live.

        Defaults to ``LABDECK_S3_BUCKET``.

        .. versionadded:: 0.2
        """,
    )

    @default("bucket")
    def _bucket_default(self):
        return os.environ.get(contract.ENV_S3_BUCKET, "")

    @default("execution_manager_class")
    def _execution_manager_class_default(self):
        return LabdeckExecutionManager

    def __init__(self, root_dir, environments_manager, db_url=None, config=None, **kwargs):
        super().__init__(root_dir=root_dir, environments_manager=environments_manager, config=config, **kwargs)
        self.user = os.environ.get("JUPYTERHUB_USER", "")
        self._s3 = None

    # --------------------------------------------------------------- plumbing

    async def _api(self, method: str, path: str, body=None) -> dict | None:
        if not self.runs_url:
            raise LabdeckJobError("This server has no LABDECK_RUNS_URL: the runs service is not configured", 503)
        req = HTTPRequest(
            self.runs_url.rstrip("/") + "/" + path, method=method,
            headers={"Authorization": f"token {os.environ.get('JUPYTERHUB_API_TOKEN', '')}", "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body), allow_nonstandard_methods=True, request_timeout=30,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except (OSError, HTTPClientError) as e:
            raise LabdeckJobError(f"The runs service is unreachable ({type(e).__name__}); try again shortly", 503) from None
        data = None
        if resp.body:
            try:
                data = json.loads(resp.body)
            except ValueError:
                data = None
        if resp.code >= 400 or resp.code == 599:
            message = (data or {}).get("error") or f"the runs service answered HTTP {resp.code}"
            status = resp.code if resp.code in (400, 403, 404, 409, 429) else 503
            raise LabdeckJobError(message, status)
        return data

    @property
    def s3(self):
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    async def _blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def environments(self) -> list[dict]:
        return [e.dict() for e in self.environments_manager.list_environments()]

    def _local_notebook(self, input_uri: str) -> tuple[str, bytes]:
        """(path relative to the home, bytes) of the notebook the UI names; nothing outside the home."""
        try:
            rel = jm.home_relative(input_uri)
        except jm.MappingError as e:
            raise _refuse(e) from None
        root = Path(self.root_dir).resolve()
        path = (root / rel).resolve()
        if root not in path.parents:
            raise LabdeckJobError(f"{input_uri} is outside your home", 400)
        if not path.is_file():
            raise LabdeckJobError(f"No notebook {input_uri} in your home", 400)
        return rel, path.read_bytes()

    async def _stage(self, rel: str, body: bytes) -> str:
        """Upload the input snapshot to the person's S3 home; return its key relative to the home."""
        if not self.bucket or not self.user:
            raise LabdeckJobError("This server has no S3 home (LABDECK_S3_BUCKET), so jobs cannot be staged", 503)
        staged = jm.staged_key(rel, time.time(), secrets.token_hex(4))

        def put():
            self.s3.put_object(
                Bucket=self.bucket, Key=home_prefix(self.user) + staged, Body=body,
                ContentType="application/x-ipynb+json", IfNoneMatch="*",
            )

        try:
            await self._blocking(put)
        except Exception as e:  # noqa: BLE001 - botocore errors: say which step failed, no secrets
            code = getattr(e, "response", {}).get("Error", {}).get("Code", type(e).__name__)
            raise LabdeckJobError(f"Could not stage the notebook in your S3 home ({code})", 503) from None
        return staged

    def _common(self, model) -> dict:
        try:
            envs = self.environments()
            profile = jm.profile_of(model.runtime_environment_name, envs)
            params = jm.parameters_in(model.parameters)
            formats = jm.output_formats_in(model.output_formats)
        except jm.MappingError as e:
            raise _refuse(e) from None
        if getattr(model, "package_input_folder", None):
            raise LabdeckJobError("labdeck runs the notebook on its own; 'Run job with input folder' is not supported", 400)
        return {"profile": profile, "parameters": params, "formats": formats}

    def _describe(self, run: dict, job_files: bool = True) -> DescribeJob:
        job = DescribeJob(**jm.describe_job(run, self._viewer_prefix()))
        if job_files:
            self.add_job_files(job)
        return job

    def _viewer_prefix(self) -> str:
        return os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + contract.service_prefix(contract.VIEWER) + contract.VIEWER_VIEW_ROUTE + "/"

    # -------------------------------------------------------------------- jobs

    async def create_job(self, model) -> str:
        common = self._common(model)
        rel, body = self._local_notebook(model.input_uri)
        staged = await self._stage(rel, body)
        meta = jm.job_meta(
            name=model.name, input_filename=model.input_filename or os.path.basename(rel),
            environment=model.runtime_environment_name, output_formats=common["formats"], tags=model.tags,
        )
        run = await self._api("POST", contract.RUNS_API_ROUTE, {
            "notebook": rel, "parameters": common["parameters"], "profile": common["profile"],
            "staged_input": staged, "meta": meta,
        })
        self.log.info("labdeck: job %s submitted as run %s", model.name, run["id"])
        return jm.job_id(run["id"])

    async def fetch_run(self, job_id: str) -> dict:
        try:
            run_id = jm.run_id_of(job_id)
        except jm.MappingError as e:
            raise _refuse(e) from None
        return await self._api("GET", f"{contract.RUNS_API_ROUTE}/{run_id}")

    async def get_job(self, job_id: str, job_files=True) -> DescribeJob:
        return self._describe(await self.fetch_run(job_id), bool(job_files))

    async def _jobs(self, job_definition_id=None) -> list[dict]:
        path = contract.RUNS_API_ROUTE + "?limit=500"
        if job_definition_id:
            try:
                path += "&schedule=" + quote(jm.schedule_id_of(job_definition_id))
            except jm.MappingError as e:
                raise _refuse(e) from None
        data = await self._api("GET", path)
        return [jm.describe_job(r, self._viewer_prefix()) for r in data["runs"]]

    async def list_jobs(self, query) -> ListJobsResponse:
        jobs = [
            j for j in await self._jobs(query.job_definition_id)
            if jm.matches(j, status=query.status, name=query.name, tags=query.tags, start_time=query.start_time)
        ]
        try:
            page, token = jm.sort_and_page(jobs, query.sort_by, query.max_items, query.next_token)
        except jm.MappingError as e:
            raise _refuse(e) from None
        models = []
        for j in page:
            model = DescribeJob(**j)
            self.add_job_files(model)
            models.append(model)
        return ListJobsResponse(jobs=models, total_count=len(jobs), next_token=token)

    async def count_jobs(self, query) -> int:
        return sum(1 for j in await self._jobs() if jm.matches(j, status=query.status))

    async def delete_job(self, job_id: str):
        run = await self.fetch_run(job_id)
        await self._api("DELETE", f"{contract.RUNS_API_ROUTE}/{run['id']}")

    async def stop_job(self, job_id: str):
        await self.fetch_run(job_id)  # another person's job is a 404, not a refusal
        raise LabdeckJobError("labdeck cannot stop a job yet: it ends by itself, at the latest at its timeout", 400)

    async def update_job(self, job_id: str, model):
        await self.fetch_run(job_id)
        raise LabdeckJobError("labdeck jobs are immutable records; they cannot be renamed or changed", 400)

    # --------------------------------------------------------- job definitions

    async def create_job_definition(self, model) -> str:
        common = self._common(model)
        if not model.schedule:
            raise LabdeckJobError("A labdeck job definition needs a schedule (cron); use 'Run now' for a one-off job", 400)
        try:
            jm.check_timezone(model.timezone)
        except jm.MappingError as e:
            raise _refuse(e) from None
        rel, body = self._local_notebook(model.input_uri)
        staged = await self._stage(rel, body)
        meta = jm.job_meta(
            name=model.name, input_filename=model.input_filename or os.path.basename(rel),
            environment=model.runtime_environment_name, output_formats=common["formats"], tags=model.tags,
        )
        sched = await self._api("POST", contract.SCHEDULES_API_ROUTE, {
            "notebook": rel, "parameters": common["parameters"], "profile": common["profile"],
            "cron": model.schedule, "staged_input": staged, "meta": meta,
        })
        return jm.definition_id(sched["id"])

    async def _schedule(self, job_definition_id: str) -> dict:
        try:
            sched_id = jm.schedule_id_of(job_definition_id)
        except jm.MappingError as e:
            raise _refuse(e) from None
        return await self._api("GET", f"{contract.SCHEDULES_API_ROUTE}/{sched_id}")

    async def get_job_definition(self, job_definition_id: str) -> DescribeJobDefinition:
        return DescribeJobDefinition(**jm.describe_definition(await self._schedule(job_definition_id)))

    async def list_job_definitions(self, query) -> ListJobDefinitionsResponse:
        data = await self._api("GET", contract.SCHEDULES_API_ROUTE)
        items = [jm.describe_definition(s) for s in data["schedules"]]
        items = [d for d in items if (not query.name or d["name"].startswith(query.name))
                 and (not query.create_time or (d["create_time"] or 0) >= int(query.create_time))]
        try:
            page, token = jm.sort_and_page(items, query.sort_by, query.max_items, query.next_token)
        except jm.MappingError as e:
            raise _refuse(e) from None
        return ListJobDefinitionsResponse(
            job_definitions=[DescribeJobDefinition(**d) for d in page], total_count=len(items), next_token=token
        )

    async def update_job_definition(self, job_definition_id: str, model):
        sched = await self._schedule(job_definition_id)
        given = model.dict(exclude_unset=True)
        patch: dict = {}
        meta = dict(sched.get("meta") or {})
        try:
            if given.get("timezone") is not None:
                jm.check_timezone(given["timezone"])
            if given.get("active") is not None:
                patch["enabled"] = bool(given["active"])
            if given.get("schedule"):
                patch["cron"] = given["schedule"]
            if "parameters" in given:
                patch["parameters"] = jm.parameters_in(given["parameters"])
            if given.get("runtime_environment_name"):
                patch["profile"] = jm.profile_of(given["runtime_environment_name"], self.environments())
                meta["environment"] = given["runtime_environment_name"]
            if given.get("output_formats") is not None:
                meta["output_formats"] = jm.output_formats_in(given["output_formats"])
        except jm.MappingError as e:
            raise _refuse(e) from None
        if given.get("name"):
            meta["name"] = given["name"]
        if given.get("tags") is not None:
            meta["tags"] = given["tags"]
        if given.get("input_uri"):
            rel, body = self._local_notebook(given["input_uri"])
            patch["notebook"], patch["staged_input"] = rel, await self._stage(rel, body)
            meta["input_filename"] = os.path.basename(rel)
        if meta != (sched.get("meta") or {}):
            patch["meta"] = meta
        if patch:
            await self._api("PATCH", f"{contract.SCHEDULES_API_ROUTE}/{sched['id']}", patch)

    async def delete_job_definition(self, job_definition_id: str):
        """Delete the schedule; the runs it made stay (immutable records and outputs)."""
        sched = await self._schedule(job_definition_id)
        await self._api("DELETE", f"{contract.SCHEDULES_API_ROUTE}/{sched['id']}")

    async def create_job_from_definition(self, job_definition_id: str, model) -> str:
        sched = await self._schedule(job_definition_id)
        try:
            params = jm.parameters_in(getattr(model, "parameters", None))
        except jm.MappingError as e:
            raise _refuse(e) from None
        run = await self._api("POST", f"{contract.SCHEDULES_API_ROUTE}/{sched['id']}/runs", {"parameters": params})
        return jm.job_id(run["id"])

    # --------------------------------------------------------------- files

    def get_staging_paths(self, model) -> dict:
        """Not used by labdeck's files manager (it asks the runs service for the output's key)."""
        return {}

    def download_outputs(self, run: dict, redownload: bool = False) -> list[str]:
        """Copy a finished run's immutable output into ``jobs/`` (:func:`.jupyter_scheduler_managers.download_outputs`)."""
        return download_outputs(self, run, redownload)


from .jupyter_scheduler_handlers import labdeck_handlers  # noqa: E402 - needs the classes above


class LabdeckSchedulerApp(SchedulerApp):
    """jupyter-scheduler's server extension with labdeck's scheduler and error statuses (and no job database)."""

    name = "labdeck_scheduler"
    handlers = labdeck_handlers(SchedulerApp.handlers)

    @default("scheduler_class")
    def _scheduler_class_default(self):
        return LabdeckScheduler

    @default("environment_manager_class")
    def _environment_manager_class_default(self):
        return LabdeckEnvironmentManager

    @default("job_files_manager_class")
    def _job_files_manager_class_default(self):
        return LabdeckJobFilesManager

    def initialize_settings(self):
        # SchedulerApp's, minus create_tables: the runs service is the only job store
        ExtensionApp.initialize_settings(self)
        environments_manager = self.environment_manager_class()
        scheduler = self.scheduler_class(
            root_dir=self.serverapp.root_dir, environments_manager=environments_manager, config=self.config,
        )
        self.settings.update(
            environments_manager=environments_manager,
            scheduler=scheduler,
            job_files_manager=self.job_files_manager_class(scheduler=scheduler),
        )


def _jupyter_server_extension_points():
    return [{"module": "labdeck.runs.jupyter_scheduler", "app": LabdeckSchedulerApp}]
