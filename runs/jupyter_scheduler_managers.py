"""The parts jupyter-scheduler plugs in around labdeck's scheduler: environments, execution, job files.

- :class:`LabdeckEnvironmentManager`: runtime environments are the profiles the person may
  use (``LABDECK_RUN_PROFILES``, set by the spawner from the spawn form's group rules);
- :class:`LabdeckExecutionManager`: never executes here (the runs service does), only tells
  the UI what labdeck supports;
- :class:`LabdeckJobFilesManager` and :func:`download_outputs`: "Download" copies the
  immutable output notebook from S3 into ``jobs/<job>/`` of the home (HTML made from it);
- :class:`LabdeckJobError`: a refusal with an HTTP status the handlers answer as that status.
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_scheduler.environments import EnvironmentManager
from jupyter_scheduler.exceptions import SchedulerError
from jupyter_scheduler.executors import ExecutionManager
from jupyter_scheduler.job_files_manager import JobFilesManager
from jupyter_scheduler.models import DescribeJob, JobFeature, RuntimeEnvironment

from labdeck.hub import contract
from . import job_mapping as jm
from .paths import home_prefix


class LabdeckJobError(SchedulerError):
    """A refusal with an HTTP status and a message for the person (no secrets)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _refuse(e: jm.MappingError) -> LabdeckJobError:
    return LabdeckJobError(str(e), e.status)


class LabdeckEnvironmentManager(EnvironmentManager):
    """The person's allowed profiles as runtime environments (``LABDECK_RUN_PROFILES``)."""

    def list_environments(self):
        return [RuntimeEnvironment(**e) for e in jm.environments(os.environ.get(contract.ENV_RUN_PROFILES))]

    def manage_environments_command(self) -> str:
        return ""

    def output_formats_mapping(self):
        return dict(jm.OUTPUT_FORMATS)


class LabdeckExecutionManager(ExecutionManager):
    """Never executes anything here (the runs service does); it only tells the UI what labdeck supports."""

    def execute(self):
        raise SchedulerError("labdeck jobs run in the runs service, not in this server")

    def supported_features(cls):  # called as cls.supported_features(cls), like DefaultExecutionManager
        return {
            JobFeature.job_name: True,
            JobFeature.parameters: True,
            JobFeature.output_formats: True,
            JobFeature.job_definition: True,
            JobFeature.idempotency_token: False,
            JobFeature.tags: False,
            JobFeature.email_notifications: False,
            JobFeature.timeout_seconds: False,
            JobFeature.retry_on_timeout: False,
            JobFeature.max_retries: False,
            JobFeature.min_retry_interval_millis: False,
            JobFeature.output_filename_template: False,
            JobFeature.stop_job: False,
            JobFeature.delete_job: True,
        }


class LabdeckJobFilesManager(JobFilesManager):
    """jupyter-scheduler's "Download job files", from the run's immutable output in S3 (awaited, not a subprocess)."""

    async def copy_from_staging(self, job_id: str, redownload=False):
        run = await self.scheduler.fetch_run(job_id)
        if run["status"] in ("queued", "starting", "running"):
            raise LabdeckJobError("This job has not finished yet; its output can be downloaded once it has", 409)
        redo = str(redownload).lower() in ("1", "true", "yes")
        try:
            await self.scheduler._blocking(self.scheduler.download_outputs, run, redo)
        except LabdeckJobError:
            raise
        except Exception as e:  # noqa: BLE001 - botocore and file errors: readable, no secrets
            code = getattr(e, "response", {}).get("Error", {}).get("Code", type(e).__name__)
            raise LabdeckJobError(f"Could not download this job's output from your S3 home ({code})", 503) from None


def download_outputs(scheduler, run: dict, redownload: bool = False) -> list[str]:
    """Copy a finished run's immutable output (and HTML made from it, and the input) into ``jobs/``; blocking."""
    job = DescribeJob(**jm.describe_job(run))
    names = scheduler.get_job_filenames(job)
    out_dir = Path(scheduler.get_local_output_path(job))
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"s3://{scheduler.bucket}/"
    key = run["output"][len(prefix):] if run["output"].startswith(prefix) else None
    if key is None or not key.startswith(home_prefix(scheduler.user)):
        raise LabdeckJobError("This job's output is not in your S3 home", 404)
    written = []

    def fetch(k):
        return scheduler.s3.get_object(Bucket=scheduler.bucket, Key=k)["Body"].read()

    wanted = {"ipynb": key}
    if run.get("staged_input"):
        wanted["input"] = home_prefix(scheduler.user) + run["staged_input"]
    body = None
    for fmt in job.output_formats + ["input"]:
        target = out_dir / names[fmt]
        if target.exists() and not redownload:
            continue
        if fmt == "html":
            from .render import render_html

            body = body or fetch(key)
            target.write_text(render_html(body, names["ipynb"]), encoding="utf-8")
        elif fmt in wanted:
            data = fetch(wanted[fmt])
            if fmt == "ipynb":
                body = data
            target.write_bytes(data)
        else:
            continue
        written.append(str(target))
    return written
