"""Run records: the one shape a run has in the store, the REST API, S3 and the output notebook."""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from dataclasses import dataclass, field

from labdeck.hub import contract

from .paths import iso

QUEUED, STARTING, RUNNING = "queued", "starting", "running"
SUCCEEDED, FAILED, TIMED_OUT = "succeeded", "failed", "timed_out"
ACTIVE = (QUEUED, STARTING, RUNNING)
FINISHED = (SUCCEEDED, FAILED, TIMED_OUT)
STATUSES = ACTIVE + FINISHED

_PROFILE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_META_BYTES = 4096


def new_run_id() -> str:
    """12 hex characters: unique per run (not a secret)."""
    return secrets.token_hex(6)


def validate_profile(value) -> str | None:
    """A profile slug, or None for the hub's default profile."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _PROFILE.match(value):
        raise ValueError("profile must be a profile slug (lowercase letters, digits, '-')")
    return value


def validate_meta(value) -> dict:
    """Opaque labels a client keeps with a run or schedule (e.g. a job name): a small JSON object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("meta must be a JSON object")
    try:
        size = len(json.dumps(value, sort_keys=True, allow_nan=False).encode())
    except (TypeError, ValueError):
        raise ValueError("meta must be JSON-serialisable") from None
    if size > MAX_META_BYTES:
        raise ValueError(f"meta is limited to {MAX_META_BYTES} bytes of JSON")
    return dict(value)


def _json_col(value) -> dict:
    return json.loads(value) if value else {}


@dataclass
class Run:
    id: str
    owner: str
    notebook: str
    parameters: dict
    profile: str | None
    created: float
    timeout: int
    output_key: str
    record_key: str
    bucket: str
    status: str = QUEUED
    schedule_id: str | None = None
    started: float | None = None
    finished: float | None = None
    input_sha256: str | None = None
    error: str | None = None
    fire_time: float | None = None
    #: a snapshot of the notebook in the owner's S3 home (key relative to ``home/<owner>/``) to run
    #: instead of the file in the server's home (jupyter-scheduler jobs stage their input there)
    staged_input: str | None = None
    meta: dict = field(default_factory=dict)
    deleted: float | None = None

    @property
    def server_name(self) -> str:
        return contract.run_server_name(self.id)

    @property
    def output_url(self) -> str:
        return f"s3://{self.bucket}/{self.output_key}"

    def to_row(self) -> dict:
        row = dataclasses.asdict(self)
        row["parameters"] = json.dumps(self.parameters, sort_keys=True)
        row["meta"] = json.dumps(self.meta or {}, sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row) -> "Run":
        data = dict(row)
        data["parameters"] = json.loads(data["parameters"] or "{}")
        data["meta"] = _json_col(data.get("meta"))
        return cls(**{f.name: data.get(f.name) for f in dataclasses.fields(cls)})

    def to_api(self) -> dict:
        """What the REST API and the JSON record in S3 say about a run."""
        return {
            "id": self.id,
            "owner": self.owner,
            "notebook": self.notebook,
            "parameters": self.parameters,
            "profile": self.profile,
            "status": self.status,
            "schedule_id": self.schedule_id,
            "created": iso(self.created),
            "started": iso(self.started),
            "finished": iso(self.finished),
            "duration_s": round(self.finished - self.started, 3) if self.started and self.finished else None,
            "timeout_s": self.timeout,
            "input_sha256": self.input_sha256,
            "output": self.output_url,
            "record": f"s3://{self.bucket}/{self.record_key}",
            "error": self.error,
            "staged_input": self.staged_input,
            "meta": self.meta or {},
        }


def labdeck_metadata(
    *, run_id, owner, notebook, parameters, profile, status, started, finished, input_sha256, schedule_id=None, error=None
) -> dict:
    """The ``metadata.labdeck`` block of an output notebook."""
    return {
        "run_id": run_id,
        "owner": owner,
        "notebook": notebook,
        "parameters": parameters,
        "profile": profile,
        "status": status,
        "started": iso(started),
        "finished": iso(finished),
        "input_sha256": input_sha256,
        "schedule_id": schedule_id,
        "error": error,
    }


@dataclass
class Schedule:
    id: str
    owner: str
    notebook: str
    parameters: dict
    profile: str | None
    cron: str
    timeout: int
    created: float
    enabled: bool = True
    last_fired: float | None = None
    staged_input: str | None = None
    meta: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_row(self) -> dict:
        row = dataclasses.asdict(self)
        row.pop("extra")
        row["parameters"] = json.dumps(self.parameters, sort_keys=True)
        row["meta"] = json.dumps(self.meta or {}, sort_keys=True)
        row["enabled"] = int(self.enabled)
        return row

    @classmethod
    def from_row(cls, row) -> "Schedule":
        data = dict(row)
        data["parameters"] = json.loads(data["parameters"] or "{}")
        data["meta"] = _json_col(data.get("meta"))
        data["enabled"] = bool(data["enabled"])
        return cls(**{f.name: data.get(f.name) for f in dataclasses.fields(cls) if f.name != "extra"})

    def to_api(self, next_fire: float | None = None) -> dict:
        return {
            "id": self.id,
            "owner": self.owner,
            "notebook": self.notebook,
            "parameters": self.parameters,
            "profile": self.profile,
            "cron": self.cron,
            "timeout_s": self.timeout,
            "enabled": self.enabled,
            "created": iso(self.created),
            "last_fired": iso(self.last_fired),
            "next_fire": iso(next_fire),
            "staged_input": self.staged_input,
            "meta": self.meta or {},
        }
