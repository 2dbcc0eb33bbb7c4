"""jupyter-scheduler's job shapes ↔ labdeck runs and schedules, as pure functions.

The runs service is the one source of truth: a jupyter-scheduler *job* is a
labdeck run, a *job definition* is a labdeck schedule. What jupyter-scheduler
shows but labdeck's scheduler does not need (the job's name, tags, output
formats, the runtime environment's name) travels in the run's or schedule's
``meta`` and comes back from the service, so nothing is kept next to it.

- ids: run ``0123456789ab`` ↔ job ``run-0123456789ab``, schedule ↔
  ``schedule-<id>`` (jupyter-scheduler's routes want a ``-`` in ids);
- statuses: queued → QUEUED, starting/running → IN_PROGRESS, succeeded →
  COMPLETED, failed/timed_out → FAILED;
- times: ISO 8601 (service) ↔ epoch milliseconds (jupyter-scheduler);
- parameters: jupyter-scheduler sends strings; they are read like
  ``labdeck run -p`` values (``3`` → 3, ``true`` → True) and validated;
- environments: the profiles a person may use (the spawn form's group rules),
  from ``LABDECK_RUN_PROFILES``.
"""

from __future__ import annotations

import datetime
import json
import posixpath
import re

from .params import InvalidParameters, parse_value, validate_parameters
from .paths import InvalidPath, utc_stamp, validate_notebook_path

STATUS = {
    "queued": "QUEUED",
    "starting": "IN_PROGRESS",
    "running": "IN_PROGRESS",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
    "timed_out": "FAILED",
}
OUTPUT_FORMATS = {"ipynb": "Notebook", "html": "HTML"}
DEFAULT_ENVIRONMENT = "default"
UTC_NAMES = {None, "", "UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z", "Universal", "Etc/Universal", "Zulu"}
_JOB = re.compile(r"^run-([a-f0-9]{12})$")
_DEFINITION = re.compile(r"^schedule-([a-f0-9]{12})$")
#: staged inputs live under this folder of the person's S3 home
STAGING_DIR = "job-inputs"


class MappingError(ValueError):
    """A request jupyter-scheduler sent that labdeck cannot accept; ``status`` is the HTTP code."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def job_id(run_id: str) -> str:
    return f"run-{run_id}"


def definition_id(schedule_id: str) -> str:
    return f"schedule-{schedule_id}"


def run_id_of(job: str) -> str:
    m = _JOB.match(job or "")
    if not m:
        raise MappingError(f"No such job: {job}", 404)
    return m[1]


def schedule_id_of(definition: str) -> str:
    m = _DEFINITION.match(definition or "")
    if not m:
        raise MappingError(f"No such job definition: {definition}", 404)
    return m[1]


def millis(iso: str | None) -> int | None:
    if not iso:
        return None
    return int(datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def parameters_in(params) -> dict:
    """jupyter-scheduler's ``{name: str}`` → labdeck run parameters (typed like ``labdeck run -p``)."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise MappingError("parameters must be an object of name → value")
    typed = {}
    for key, value in params.items():
        if isinstance(value, str):
            typed[key] = parse_value(value)
        elif value is None or isinstance(value, (bool, int, float)):
            typed[key] = value
        else:
            raise MappingError(f"parameter {key}: only strings, numbers and booleans can be parameters (got {type(value).__name__})")
    try:
        return validate_parameters(typed)
    except InvalidParameters as e:
        raise MappingError(str(e)) from None


def parameters_out(params: dict | None) -> dict:
    """labdeck parameters → jupyter-scheduler's strings (what the form shows)."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in (params or {}).items()}


def home_relative(input_uri: str) -> str:
    """The notebook the UI names, as a path relative to the home (the server's root); refused outside it."""
    if not isinstance(input_uri, str) or not input_uri:
        raise MappingError("input_uri must name a notebook in your home")
    path = input_uri
    if path.startswith("file://"):
        raise MappingError("input_uri must be a path relative to your home, not a URL")
    try:
        return validate_notebook_path(path)
    except InvalidPath as e:
        raise MappingError(f"{e} (input_uri must be a notebook inside your home)") from None


def staged_key(notebook: str, now: float, token: str) -> str:
    """Where the input snapshot goes, relative to the S3 home: ``job-inputs/<stamp>-<token>/<name>.ipynb``."""
    return f"{STAGING_DIR}/{utc_stamp(now)}-{token}/{posixpath.basename(notebook)}"


def environments(profiles_json: str | None) -> list[dict]:
    """The RuntimeEnvironment fields for each profile the person may run (``LABDECK_RUN_PROFILES``)."""
    try:
        profiles = json.loads(profiles_json) if profiles_json else []
    except ValueError:
        profiles = []
    out = []
    for p in profiles if isinstance(profiles, list) else []:
        if not isinstance(p, dict) or not isinstance(p.get("slug"), str):
            continue
        out.append(_environment(p["slug"], p.get("display_name") or p["slug"], p.get("description") or ""))
    if not out:
        out.append(_environment(DEFAULT_ENVIRONMENT, "Default profile", "The hub's default server profile"))
    return out


def _environment(name: str, label: str, description: str) -> dict:
    return {
        "name": name,
        "label": label,
        "description": f"{description} Runs in a fresh labdeck server of its own: it keeps going when you stop this one.".strip(),
        "file_extensions": ["ipynb"],
        "output_formats": list(OUTPUT_FORMATS),
        "metadata": {"labdeck_profile": name},
        "compute_types": None,
        "default_compute_type": None,
        "utc_only": True,
    }


def profile_of(environment: str, allowed: list[dict]) -> str | None:
    names = [e["name"] for e in allowed]
    if environment not in names:
        raise MappingError(f"Unknown runtime environment {environment!r}; yours are: {', '.join(names)}")
    return None if environment == DEFAULT_ENVIRONMENT else environment


def output_formats_in(formats) -> list[str]:
    formats = list(formats or ["ipynb"])
    bad = [f for f in formats if f not in OUTPUT_FORMATS]
    if bad:
        raise MappingError(f"Unsupported output format(s) {', '.join(map(str, bad))}; labdeck offers {', '.join(OUTPUT_FORMATS)}")
    if "ipynb" not in formats:
        formats.insert(0, "ipynb")  # the run's output is always the notebook; HTML is made from it
    return formats


def check_timezone(tz) -> None:
    if tz not in UTC_NAMES:
        raise MappingError(f"labdeck schedules run in UTC; give the schedule in UTC instead of {tz}")


def job_meta(*, name, input_filename, environment, output_formats, tags, definition=None) -> dict:
    meta = {"name": name, "input_filename": input_filename, "environment": environment, "output_formats": output_formats, "tags": tags or []}
    if definition:
        meta["job_definition_id"] = definition
    return meta


def describe_job(run: dict, output_prefix: str = "") -> dict:
    """A run from the service → DescribeJob fields (``job_files`` are added by the scheduler)."""
    meta = run.get("meta") or {}
    created = millis(run.get("created"))
    finished = millis(run.get("finished"))
    status = STATUS.get(run.get("status"), "FAILED")
    message = run.get("error")
    if status == "QUEUED":
        message = "Queued: waits for a free slot (labdeck runs a few of your jobs at a time)"
    return {
        "job_id": job_id(run["id"]),
        "name": meta.get("name") or posixpath.basename(run["notebook"])[: -len(".ipynb")],
        "input_filename": meta.get("input_filename") or posixpath.basename(run["notebook"]),
        "runtime_environment_name": meta.get("environment") or run.get("profile") or DEFAULT_ENVIRONMENT,
        "runtime_environment_parameters": None,
        "output_formats": meta.get("output_formats") or ["ipynb"],
        "parameters": parameters_out(run.get("parameters")) or None,
        "tags": meta.get("tags") or [],
        "job_definition_id": definition_id(run["schedule_id"]) if run.get("schedule_id") else None,
        "url": f"{output_prefix}{run['output']}",
        "create_time": created,
        "update_time": finished or millis(run.get("started")) or created,
        "start_time": millis(run.get("started")),
        "end_time": finished,
        "status": status,
        "status_message": message,
        "idempotency_token": None,
        "package_input_folder": False,
        "packaged_files": [],
    }


def describe_definition(sched: dict) -> dict:
    meta = sched.get("meta") or {}
    created = millis(sched.get("created"))
    return {
        "job_definition_id": definition_id(sched["id"]),
        "name": meta.get("name") or posixpath.basename(sched["notebook"])[: -len(".ipynb")],
        "input_filename": meta.get("input_filename") or posixpath.basename(sched["notebook"]),
        "runtime_environment_name": meta.get("environment") or sched.get("profile") or DEFAULT_ENVIRONMENT,
        "runtime_environment_parameters": None,
        "output_formats": meta.get("output_formats") or ["ipynb"],
        "parameters": parameters_out(sched.get("parameters")) or None,
        "tags": meta.get("tags") or [],
        "schedule": sched["cron"],
        "timezone": "UTC",
        "create_time": created,
        "update_time": millis(sched.get("last_fired")) or created,
        "active": bool(sched.get("enabled")),
        "package_input_folder": False,
        "packaged_files": [],
    }


def matches(job: dict, *, status=None, name=None, tags=None, start_time=None, job_definition_id=None) -> bool:
    """jupyter-scheduler's list filters (``name`` is a prefix, like its ORM's ``LIKE 'x%'``)."""
    if status and job["status"] != str(status):
        return False
    if name and not job["name"].startswith(name):
        return False
    if tags and not set(tags) <= set(job.get("tags") or []):
        return False
    if start_time and (job.get("start_time") or 0) < int(start_time):
        return False
    if job_definition_id and job.get("job_definition_id") != job_definition_id:
        return False
    return True


def sort_and_page(items: list[dict], sort_by, max_items, next_token) -> tuple[list[dict], str | None]:
    """Sort by jupyter-scheduler's ``SortField``s and cut one page; the token is the next offset."""
    for field in reversed(list(sort_by or [])):
        name = getattr(field, "name", None) or field["name"]
        direction = getattr(getattr(field, "direction", None), "value", None) or field.get("direction", "asc")
        items = sorted(items, key=lambda j: (j.get(name) is None, j.get(name) if j.get(name) is not None else 0), reverse=direction == "desc")
    try:
        start = int(next_token or 0)
        size = max(1, min(1000, int(max_items or 1000)))
    except (TypeError, ValueError):
        raise MappingError("next_token and max_items must be integers") from None
    page = items[start : start + size]
    return page, (str(start + size) if start + size < len(items) else None)
