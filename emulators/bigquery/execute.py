"""Running one query on the DuckDB store, interruptibly: what a query job does while it is RUNNING.

Each query runs on its own DuckDB cursor (a connection of its own to the same
database), so that :meth:`Interrupt.request` stops exactly that query
(``jobs.cancel``) and nothing else. A ``SELECT`` reads without the engine's
lock, so a long query never blocks ``tables.list`` or another person's
query; statements that write (DDL, DML, a destination table) keep the
lock, as every other write does, and run in a transaction, so an interrupted
or failed write changes nothing.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import duckdb

from .errors import ApiError, not_found, stopped
from .schema import quote_ident, schema_from_duck
from .translate import TableRef, Translation, schema_name

if TYPE_CHECKING:
    from .engine import Engine, QueryResult

#: the estimate of totalBytesProcessed: bytes per value of every table a query reads
BYTES_PER_VALUE = 8


class Interrupt:
    """A job's cancel switch: interrupts the cursor its query runs on, now or as soon as it starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self.requested = False

    def attach(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """The query is about to run on ``cursor``; ``stopped`` if the job was cancelled already."""
        with self._lock:
            if self.requested:
                raise stopped()
            self._cursor = cursor

    def detach(self) -> None:
        with self._lock:
            self._cursor = None

    def request(self) -> None:
        """Cancel: interrupt the running query (again, if called again: a DuckDB interrupt
        that arrives just before the query starts is lost, so the job runner repeats it)."""
        with self._lock:
            self.requested = True
            if self._cursor is not None:
                self._cursor.interrupt()


def _qualified(ref: TableRef) -> str:
    return f"{quote_ident(schema_name(ref.project, ref.dataset))}.{quote_ident(ref.table)}"


def _db_error(err: duckdb.Error, what: str = "") -> ApiError:
    if isinstance(err, duckdb.InterruptException):
        return stopped()
    from .engine import _db_error as plain

    return plain(err, what)


def scanned_bytes(engine: "Engine", reads: set[TableRef] | frozenset[TableRef]) -> int:
    """An estimate of the bytes a query reads: rows x columns x :data:`BYTES_PER_VALUE` of each table."""
    total = 0
    with engine._lock:
        for ref in sorted(reads):
            row = engine._conn.execute(
                "SELECT estimated_size, column_count FROM duckdb_tables() WHERE database_name = "
                "current_database() AND schema_name = ? AND table_name = ?",
                [schema_name(ref.project, ref.dataset), ref.table],
            ).fetchone()
            if row:
                total += int(row[0] or 0) * int(row[1] or 0) * BYTES_PER_VALUE
    return total


def run_query(
    engine: "Engine",
    translation: Translation,
    destination: TableRef | None = None,
    write_disposition: str | None = None,
    create_disposition: str | None = None,
    interrupt: Interrupt | None = None,
) -> "QueryResult":
    """Execute a translated, already authorized statement.

    Parameters
    ----------
    engine : Engine
        The store.
    translation : Translation
        From :func:`.translate.translate`.
    destination : TableRef, optional
        ``configuration.query.destinationTable`` (SELECT only).
    write_disposition, create_disposition : str, optional
        BigQuery dispositions for ``destination`` (defaults WRITE_EMPTY, CREATE_IF_NEEDED).
    interrupt : Interrupt, optional
        The job's cancel switch; a cancelled query raises ``stopped``.

    Returns
    -------
    QueryResult
    """
    from .engine import DML_TYPES, QueryResult, Tx

    stype = translation.statement_type
    interrupt = interrupt or Interrupt()
    with engine._lock:
        _check_exists(engine, translation)
        cursor = engine._conn.cursor()
    try:
        interrupt.attach(cursor)
        if stype == "SELECT" and destination is None:
            try:
                rel = cursor.sql(translation.sql)
                fields = schema_from_duck(rel.columns, rel.types)
                return QueryResult(stype, fields, rel.to_arrow_table())
            except duckdb.Error as err:
                raise _db_error(err) from None
        with engine._lock:
            try:
                if stype == "SELECT":
                    return _select_into(engine, cursor, translation, destination, write_disposition, create_disposition)
                with Tx(cursor):
                    cur = cursor.execute(translation.sql)
                    affected = int(cur.fetchone()[0]) if stype in DML_TYPES else None
                target = next(iter(translation.writes), None)
                return QueryResult(stype, num_dml_affected_rows=affected, ddl_target=target)
            except duckdb.Error as err:
                what = f"Table {next(iter(translation.writes))}" if translation.writes else ""
                raise _db_error(err, what) from None
    finally:
        interrupt.detach()
        cursor.close()


def _check_exists(engine: "Engine", translation: Translation) -> None:
    from .engine import DML_TYPES

    for ref in sorted(translation.reads):
        engine.require_table(ref)
    for ref in sorted(translation.writes):
        engine.require_dataset(ref.project, ref.dataset)
        if translation.statement_type in DML_TYPES | {"TRUNCATE_TABLE"}:
            engine.require_table(ref)
    if translation.statement_type == "DROP_SCHEMA" and translation.dataset_target:
        if "IF EXISTS" not in translation.sql:
            engine.require_dataset(*translation.dataset_target)


def _select_into(
    engine: "Engine",
    cursor: duckdb.DuckDBPyConnection,
    translation: Translation,
    dest: TableRef,
    write: str | None,
    create: str | None,
) -> "QueryResult":
    from .engine import QueryResult, Tx

    write = (write or "WRITE_EMPTY").upper()
    create = (create or "CREATE_IF_NEEDED").upper()
    engine.require_dataset(dest.project, dest.dataset)
    exists = engine.table_type(dest) is not None
    target = _qualified(dest)
    if not exists and create == "CREATE_NEVER":
        raise not_found(f"Table {dest}")
    with Tx(cursor):
        if exists and write == "WRITE_APPEND":
            cursor.execute(f"INSERT INTO {target} {translation.sql}")
        elif exists and write == "WRITE_EMPTY" and cursor.execute(
            f"SELECT count(*) > 0 FROM (SELECT 1 FROM {target} LIMIT 1)"
        ).fetchone()[0]:
            raise ApiError("duplicate", f"Already Exists: Table {dest}")
        else:
            cursor.execute(f"CREATE OR REPLACE TABLE {target} AS {translation.sql}")
    rel = cursor.sql(f"SELECT * FROM {target}")
    fields = schema_from_duck(rel.columns, rel.types)
    return QueryResult("SELECT", fields, rel.to_arrow_table())
