"""Load-job uploads: ``multipart/related`` bodies and resumable upload sessions.

``google-cloud-bigquery`` sends small files (``load_table_from_dataframe``,
``load_table_from_file`` with a known size under 5 MiB) as one multipart
request - JSON job metadata, then the data - and larger ones as a resumable
session: a POST with the metadata that answers with a ``Location``, then PUTs
with ``Content-Range`` answered by ``308`` + ``Range`` until the last chunk.
Data is spooled to files (0600) in a private directory, never kept in memory.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pa_parquet

from .errors import ApiError

_BOUNDARY_RE = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_RANGE_RE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a ``multipart/related`` upload into (job metadata, data).

    Raises
    ------
    ApiError
        400 ``invalid`` when the body is not metadata + data.
    """
    match = _BOUNDARY_RE.search(content_type or "")
    if not content_type.lower().startswith("multipart/") or not match:
        raise ApiError("invalid", "Expected a multipart/related upload with a boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    parts = body.split(delimiter)
    # parts: preamble, part1, part2, ..., "--" epilogue
    payloads = []
    for part in parts[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            raise ApiError("invalid", "Malformed multipart upload part")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        payloads.append(content)
    if len(payloads) != 2:
        raise ApiError("invalid", "A multipart upload needs exactly two parts: metadata and data")
    try:
        metadata = json.loads(payloads[0])
    except ValueError:
        raise ApiError("invalid", "Upload metadata is not valid JSON") from None
    if not isinstance(metadata, dict):
        raise ApiError("invalid", "Upload metadata must be a JSON object")
    return metadata, payloads[1]


def parse_content_range(header: str | None) -> tuple[int | None, int | None, int | None]:
    """``Content-Range: bytes a-b/total`` -> ``(a, b, total)``; ``*`` parts are None."""
    match = _RANGE_RE.match((header or "").strip())
    if not match:
        raise ApiError("invalid", "Missing or malformed Content-Range header")
    first, last, total = match.groups()
    return (
        int(first) if first is not None else None,
        int(last) if last is not None else None,
        None if total == "*" else int(total),
    )


def spool(directory: str, data: bytes) -> str:
    """Write ``data`` to a new private file in ``directory`` and return its path."""
    fd, path = tempfile.mkstemp(dir=directory, prefix="load-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


@dataclass
class Session:
    """A resumable upload in progress."""

    upload_id: str
    owner: str
    project: str
    metadata: dict[str, Any]
    path: str
    received: int = 0


class ResumableUploads:
    """Resumable upload sessions, each bound to the principal that started it.

    Parameters
    ----------
    directory : str
        Where partial uploads are spooled.
    max_sessions : int
        Sessions kept at most; the oldest is dropped (and its file removed).
    """

    def __init__(self, directory: str, max_sessions: int = 64) -> None:
        self.directory = directory
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def start(self, owner: str, project: str, metadata: dict[str, Any]) -> Session:
        """Open a session; returns it (its ``upload_id`` goes into the Location URL)."""
        fd, path = tempfile.mkstemp(dir=self.directory, prefix="resumable-")
        os.close(fd)
        session = Session(secrets.token_urlsafe(18), owner, project, metadata, path)
        with self._lock:
            self._sessions[session.upload_id] = session
            while len(self._sessions) > self.max_sessions:
                oldest = next(iter(self._sessions))
                self._discard(self._sessions.pop(oldest))
        return session

    def get(self, upload_id: str, owner: str, project: str) -> Session:
        """The session, if it exists and belongs to ``owner``; else 404."""
        with self._lock:
            session = self._sessions.get(upload_id or "")
        if session is None or session.owner != owner or session.project != project:
            raise ApiError("notFound", "Not found: upload session")
        return session

    def append(self, session: Session, first: int | None, chunk: bytes) -> None:
        """Append a chunk that must start where the upload stands."""
        if first is not None and first != session.received:
            raise ApiError("invalid", f"Chunk starts at byte {first}, expected {session.received}")
        with open(session.path, "ab") as fh:
            fh.write(chunk)
        session.received += len(chunk)

    def finish(self, session: Session) -> None:
        """Forget a session (its file is removed by the caller after the load)."""
        with self._lock:
            self._sessions.pop(session.upload_id, None)

    @staticmethod
    def _discard(session: Session) -> None:
        try:
            os.unlink(session.path)
        except FileNotFoundError:
            pass


def read_upload(fmt: str, path: str, load: dict[str, Any], columns: list[str]) -> pa.Table:
    """Read uploaded load-job data with pyarrow (DuckDB itself has no file access).

    Parameters
    ----------
    fmt : str
        ``PARQUET``, ``CSV`` or ``NEWLINE_DELIMITED_JSON``.
    path : str
        The spooled upload.
    load : dict
        ``configuration.load`` (``skipLeadingRows``, ``fieldDelimiter``).
    columns : list of str
        Column names from the job's schema; CSV cells are then read as text
        and cast by DuckDB on insert. Empty: names come from the data.
    """
    try:
        if fmt == "PARQUET":
            return pa_parquet.read_table(path)
        if fmt == "NEWLINE_DELIMITED_JSON":
            return pa_json.read_json(path)
        if fmt == "CSV":
            skip = int(load.get("skipLeadingRows") or 0)
            parse = pa_csv.ParseOptions(delimiter=str(load.get("fieldDelimiter") or ","))
            if columns:
                read = pa_csv.ReadOptions(skip_rows=skip, column_names=columns)
                convert = pa_csv.ConvertOptions(
                    column_types={c: pa.string() for c in columns}, strings_can_be_null=True
                )
            else:
                read = pa_csv.ReadOptions(skip_rows=max(skip - 1, 0), autogenerate_column_names=not skip)
                convert = pa_csv.ConvertOptions(strings_can_be_null=True)
            return pa_csv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowException, ValueError, OSError) as err:
        raise ApiError("invalid", f"Error while reading data: {err}") from None
    raise ApiError("invalid", f"Source format {fmt} is not supported by the local BigQuery endpoint")
