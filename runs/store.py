"""sqlite storage of runs, schedules and shares (``<state>/runs/*.sqlite``).

One connection per store, used from one event loop; every write is one
transaction, so a schedule's ``last_fired`` and the run it fired are stored
together (a restart can never fire that time again).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .records import ACTIVE, QUEUED, Run, Schedule
from .shares import Share

_RUNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, owner TEXT NOT NULL, notebook TEXT NOT NULL, parameters TEXT NOT NULL,
  profile TEXT, created REAL NOT NULL, timeout INTEGER NOT NULL, output_key TEXT NOT NULL,
  record_key TEXT NOT NULL, bucket TEXT NOT NULL, status TEXT NOT NULL, schedule_id TEXT,
  started REAL, finished REAL, input_sha256 TEXT, error TEXT, fire_time REAL
);
CREATE INDEX IF NOT EXISTS runs_owner ON runs (owner, created);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, created);
CREATE TABLE IF NOT EXISTS schedules (
  id TEXT PRIMARY KEY, owner TEXT NOT NULL, notebook TEXT NOT NULL, parameters TEXT NOT NULL,
  profile TEXT, cron TEXT NOT NULL, timeout INTEGER NOT NULL, created REAL NOT NULL,
  enabled INTEGER NOT NULL, last_fired REAL
);
"""

_SHARES_SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
  id TEXT PRIMARY KEY, owner TEXT NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL,
  grantee TEXT NOT NULL, created REAL NOT NULL, revoked REAL
);
CREATE INDEX IF NOT EXISTS shares_owner ON shares (owner, created);
"""

#: columns added after a table's first release: (table, column, SQL type); added in place on open
_ADDED_COLUMNS = (
    ("runs", "staged_input", "TEXT"),
    ("runs", "meta", "TEXT"),
    ("runs", "deleted", "REAL"),
    ("schedules", "staged_input", "TEXT"),
    ("schedules", "meta", "TEXT"),
    ("shares", "expires", "REAL"),
)


def _connect(path: str | os.PathLike, schema: str) -> sqlite3.Connection:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fresh = not path.exists()
    conn = sqlite3.connect(str(path), isolation_level=None)
    if fresh:
        os.chmod(path, 0o600)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(schema)
    for table, column, kind in _ADDED_COLUMNS:
        cols = {r["name"] for r in conn.execute(f"PRAGMA table_info({table})")}
        if cols and column not in cols:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    return conn


def _insert(conn, table: str, row: dict) -> None:
    cols = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(row.values()))


class RunStore:
    """Runs and schedules."""

    def __init__(self, path):
        self.conn = _connect(path, _RUNS_SCHEMA)

    def close(self):
        self.conn.close()

    # runs
    def add_run(self, run: Run, schedule: Schedule | None = None) -> None:
        """Insert a run; with ``schedule``, store its new ``last_fired`` in the same transaction."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            _insert(self.conn, "runs", run.to_row())
            if schedule is not None:
                self.conn.execute("UPDATE schedules SET last_fired=? WHERE id=?", (schedule.last_fired, schedule.id))

    def update_run(self, run_id: str, **fields) -> None:
        sets = ", ".join(f"{k}=?" for k in fields)
        self.conn.execute(f"UPDATE runs SET {sets} WHERE id=?", (*fields.values(), run_id))

    def get_run(self, run_id: str) -> Run | None:
        row = self.conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return Run.from_row(row) if row else None

    def list_runs(self, owner: str | None = None, limit: int = 100, schedule_id: str | None = None) -> list[Run]:
        q, args = "SELECT * FROM runs WHERE deleted IS NULL", []
        if owner is not None:
            q += " AND owner=?"
            args.append(owner)
        if schedule_id is not None:
            q += " AND schedule_id=?"
            args.append(schedule_id)
        q += " ORDER BY created DESC, rowid DESC LIMIT ?"
        args.append(limit)
        return [Run.from_row(r) for r in self.conn.execute(q, args)]

    def runs_with_status(self, statuses) -> list[Run]:
        marks = ", ".join("?" for _ in statuses)
        rows = self.conn.execute(f"SELECT * FROM runs WHERE status IN ({marks}) ORDER BY created, rowid", tuple(statuses))
        return [Run.from_row(r) for r in rows]

    def queued(self) -> list[Run]:
        return self.runs_with_status((QUEUED,))

    def active_count(self, owner: str) -> int:
        marks = ", ".join("?" for _ in ACTIVE if _ != QUEUED)
        statuses = tuple(s for s in ACTIVE if s != QUEUED)
        return self.conn.execute(
            f"SELECT COUNT(*) FROM runs WHERE owner=? AND status IN ({marks})", (owner, *statuses)
        ).fetchone()[0]

    def delete_run(self, run_id: str, when: float) -> None:
        """Forget a finished run's record (its output in S3 stays: outputs are immutable)."""
        self.conn.execute("UPDATE runs SET deleted=? WHERE id=? AND deleted IS NULL", (when, run_id))

    # schedules
    def add_schedule(self, sched: Schedule) -> None:
        _insert(self.conn, "schedules", sched.to_row())

    def get_schedule(self, sched_id: str) -> Schedule | None:
        row = self.conn.execute("SELECT * FROM schedules WHERE id=?", (sched_id,)).fetchone()
        return Schedule.from_row(row) if row else None

    def list_schedules(self, owner: str | None = None) -> list[Schedule]:
        if owner is None:
            rows = self.conn.execute("SELECT * FROM schedules ORDER BY created, rowid")
        else:
            rows = self.conn.execute("SELECT * FROM schedules WHERE owner=? ORDER BY created, rowid", (owner,))
        return [Schedule.from_row(r) for r in rows]

    def update_schedule(self, sched_id: str, **fields) -> None:
        if "enabled" in fields:
            fields["enabled"] = int(fields["enabled"])
        for key in ("parameters", "meta"):
            if key in fields:
                import json

                fields[key] = json.dumps(fields[key], sort_keys=True)
        sets = ", ".join(f"{k}=?" for k in fields)
        self.conn.execute(f"UPDATE schedules SET {sets} WHERE id=?", (*fields.values(), sched_id))

    def delete_schedule(self, sched_id: str) -> None:
        self.conn.execute("DELETE FROM schedules WHERE id=?", (sched_id,))


class ShareStore:
    """Shares of the viewer service."""

    def __init__(self, path):
        self.conn = _connect(path, _SHARES_SCHEMA)

    def close(self):
        self.conn.close()

    def add(self, share: Share) -> None:
        from dataclasses import asdict

        _insert(self.conn, "shares", asdict(share))

    def get(self, share_id: str) -> Share | None:
        row = self.conn.execute("SELECT * FROM shares WHERE id=?", (share_id,)).fetchone()
        return Share(**dict(row)) if row else None

    def list(self, owner: str) -> list[Share]:
        rows = self.conn.execute("SELECT * FROM shares WHERE owner=? AND revoked IS NULL ORDER BY created, rowid", (owner,))
        return [Share(**dict(r)) for r in rows]

    def count_active(self) -> dict[str, int]:
        """Shares not revoked, by kind (``user``/``group``)."""
        rows = self.conn.execute("SELECT kind, COUNT(*) FROM shares WHERE revoked IS NULL GROUP BY kind")
        return {kind: n for kind, n in rows}

    def active(self, now: float) -> list[Share]:
        """Every share neither revoked nor expired (who each is for is decided by the caller)."""
        rows = self.conn.execute(
            "SELECT * FROM shares WHERE revoked IS NULL AND (expires IS NULL OR expires > ?) ORDER BY created DESC, rowid DESC", (now,)
        )
        return [Share(**dict(r)) for r in rows]

    def revoke(self, share_id: str, when: float) -> None:
        self.conn.execute("UPDATE shares SET revoked=? WHERE id=? AND revoked IS NULL", (when, share_id))
