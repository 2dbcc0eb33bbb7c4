"""DuckDB storage and execution for the local BigQuery endpoint.

One DuckDB database file holds every dataset as a schema named
``{project}__{dataset}`` (see :func:`.translate.schema_name`). All access goes
through one :class:`Engine`, which serializes use of its connection with a
lock; callers run its methods in a thread pool so the event loop stays free.
Queries run on a cursor of their own (:mod:`.execute`), so a running query
can be interrupted and a long ``SELECT`` does not hold the lock.

The engine does **no authorization**: the HTTP layer checks grants before it
calls in. It does check existence, so that a missing table is a 404
``notFound`` rather than a DuckDB error, and it runs every multi-step write in
a transaction so a failed statement or load changes nothing.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.json as pa_json

from .errors import ApiError, invalid_query, not_found
from .schema import column_defs, duck_type, encode_rows, quote_ident, schema_from_duck
from .translate import TableRef, Translation, schema_name, split_schema_name
from .uploads import read_upload

if TYPE_CHECKING:
    from .execute import Interrupt

DML_TYPES = {"INSERT", "UPDATE", "DELETE", "MERGE"}


@dataclass
class QueryResult:
    """What a query job produced.

    Attributes
    ----------
    fields : list of dict
        BigQuery schema of the result (empty for DDL/DML).
    table : pyarrow.Table, optional
        The rows (for SELECT); encoded page by page with :meth:`page`.
    num_dml_affected_rows : int, optional
        For INSERT/UPDATE/DELETE/MERGE.
    ddl_target : TableRef, optional
        For CREATE/DROP statements.
    """

    statement_type: str
    fields: list[dict[str, Any]] = field(default_factory=list)
    table: pa.Table | None = None
    num_dml_affected_rows: int | None = None
    ddl_target: TableRef | None = None

    @property
    def total_rows(self) -> int | None:
        """Rows in the result, or ``None`` when the statement returns none."""
        return None if self.table is None else self.table.num_rows

    def page(self, start: int, size: int) -> list[dict[str, Any]]:
        """Rows ``[start, start + size)`` encoded as BigQuery ``rows``."""
        if self.table is None or size <= 0:
            return []
        return encode_rows(self.table.slice(start, size), self.fields)


def _qualified(ref: TableRef) -> str:
    return f"{quote_ident(schema_name(ref.project, ref.dataset))}.{quote_ident(ref.table)}"


def _db_error(err: duckdb.Error, what: str = "") -> ApiError:
    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, duckdb.CatalogException) and "already exists" in message:
        return ApiError("duplicate", f"Already Exists: {what or message}")
    return invalid_query(message)


class Engine:
    """The DuckDB-backed store of datasets and tables.

    Parameters
    ----------
    path : str, optional
        The DuckDB database file; ``None`` for an in-memory database.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._conn = duckdb.connect(path or ":memory:")
        # GLOBAL: every job's own cursor (:mod:`.execute`) runs in UTC too
        self._conn.execute("SET GLOBAL TimeZone = 'UTC'")
        # SQL from users can never reach files or the network: uploads are read
        # with pyarrow and handed to DuckDB as registered Arrow tables
        self._conn.execute("SET enable_external_access = false")
        self._conn.execute("SET lock_configuration = true")
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    # -- datasets ---------------------------------------------------------

    def _schemas(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database()"
        ).fetchall()
        return [r[0] for r in rows]

    def dataset_exists(self, project: str, dataset: str) -> bool:
        """True if ``project.dataset`` exists."""
        with self._lock:
            return schema_name(project, dataset) in self._schemas()

    def list_datasets(self, project: str) -> list[str]:
        """Dataset ids of ``project``, sorted."""
        with self._lock:
            pairs = [split_schema_name(s) for s in self._schemas()]
        return sorted(pair[1] for pair in pairs if pair and pair[0] == project)

    def create_dataset(self, project: str, dataset: str) -> None:
        """Create a dataset; ``duplicate`` if it exists."""
        with self._lock:
            if schema_name(project, dataset) in self._schemas():
                raise ApiError("duplicate", f"Already Exists: Dataset {project}:{dataset}")
            self._conn.execute(f"CREATE SCHEMA {quote_ident(schema_name(project, dataset))}")

    def delete_dataset(self, project: str, dataset: str, delete_contents: bool) -> None:
        """Drop a dataset; ``resourceInUse`` if it has tables and not ``delete_contents``."""
        with self._lock:
            if schema_name(project, dataset) not in self._schemas():
                raise not_found(f"Dataset {project}:{dataset}")
            if self.list_tables(project, dataset) and not delete_contents:
                raise ApiError("resourceInUse", f"Dataset {project}:{dataset} is still in use")
            self._conn.execute(
                f"DROP SCHEMA {quote_ident(schema_name(project, dataset))} CASCADE"
            )

    def require_dataset(self, project: str, dataset: str) -> None:
        """Raise ``notFound`` unless the dataset exists."""
        if not self.dataset_exists(project, dataset):
            raise not_found(f"Dataset {project}:{dataset}")

    # -- tables -----------------------------------------------------------

    def list_tables(self, project: str, dataset: str) -> list[tuple[str, str]]:
        """``(table_id, "TABLE" | "VIEW")`` pairs of a dataset, sorted by id."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT table_name, table_type FROM information_schema.tables "
                "WHERE table_catalog = current_database() AND table_schema = ? ORDER BY 1",
                [schema_name(project, dataset)],
            ).fetchall()
        return [(name, "VIEW" if kind == "VIEW" else "TABLE") for name, kind in rows]

    def table_type(self, ref: TableRef) -> str | None:
        """``"TABLE"``, ``"VIEW"`` or ``None`` if the table does not exist."""
        for name, kind in self.list_tables(ref.project, ref.dataset):
            if name == ref.table:
                return kind
        return None

    def require_table(self, ref: TableRef) -> str:
        """The table's type; ``notFound`` if the table (or its dataset) is missing."""
        kind = self.table_type(ref)
        if kind is None:
            raise not_found(f"Table {ref} was not found in location US")
        return kind

    def table_fields(self, ref: TableRef) -> list[dict[str, Any]]:
        """BigQuery schema of an existing table (NOT NULL columns are REQUIRED)."""
        with self._lock:
            rel = self._conn.sql(f"SELECT * FROM {_qualified(ref)} LIMIT 0")
            fields = schema_from_duck(rel.columns, rel.types)
            required = {
                r[0]
                for r in self._conn.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE database_name = "
                    "current_database() AND schema_name = ? AND table_name = ? AND NOT is_nullable",
                    [schema_name(ref.project, ref.dataset), ref.table],
                ).fetchall()
            }
        for f in fields:
            if f["name"] in required and f["mode"] == "NULLABLE":
                f["mode"] = "REQUIRED"
        return fields

    def _duck_columns(self, ref: TableRef) -> dict[str, str]:
        rows = self._conn.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = "
            "current_database() AND schema_name = ? AND table_name = ? ORDER BY column_index",
            [schema_name(ref.project, ref.dataset), ref.table],
        ).fetchall()
        return dict(rows)

    def num_rows(self, ref: TableRef) -> int:
        """Row count of a table."""
        with self._lock:
            return self._conn.execute(f"SELECT count(*) FROM {_qualified(ref)}").fetchone()[0]

    def create_table(self, ref: TableRef, fields: list[dict[str, Any]]) -> None:
        """Create an empty table from a BigQuery schema."""
        try:
            columns = column_defs(fields)
        except ValueError as err:
            raise ApiError("invalid", f"Invalid schema: {err}") from None
        with self._lock:
            self.require_dataset(ref.project, ref.dataset)
            if self.table_type(ref) is not None:
                raise ApiError("duplicate", f"Already Exists: Table {ref}")
            try:
                self._conn.execute(f"CREATE TABLE {_qualified(ref)} ({columns})")
            except duckdb.Error as err:
                raise _db_error(err, f"Table {ref}") from None

    def delete_table(self, ref: TableRef) -> None:
        """Drop a table or view; ``notFound`` if missing."""
        with self._lock:
            kind = self.require_table(ref)
            self._conn.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} {_qualified(ref)}")

    def read_rows(
        self, ref: TableRef, start: int, size: int, selected: list[str] | None = None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        """A page of a table: ``(fields, encoded rows, total rows)``."""
        with self._lock:
            self.require_table(ref)
            columns = "*"
            if selected:
                columns = ", ".join(quote_ident(c) for c in selected)
            try:
                rel = self._conn.sql(
                    f"SELECT {columns} FROM {_qualified(ref)} LIMIT {int(size)} OFFSET {int(start)}"
                )
                fields = schema_from_duck(rel.columns, rel.types)
                table = rel.to_arrow_table()
            except duckdb.Error as err:
                raise _db_error(err) from None
            total = self._conn.execute(f"SELECT count(*) FROM {_qualified(ref)}").fetchone()[0]
        return fields, encode_rows(table, fields), total

    # -- writes from files ---------------------------------------------------

    def _transaction(self) -> "Tx":
        return Tx(self._conn)

    def insert_json_rows(self, ref: TableRef, rows: list[dict[str, Any]]) -> None:
        """Append JSON rows (``insertAll``) to an existing table, all or nothing."""
        payload = "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")
        try:
            data = pa_json.read_json(io.BytesIO(payload))
        except (pa.ArrowException, ValueError) as err:
            raise ApiError("invalid", f"Could not parse rows: {err}") from None
        with self._lock:
            self.require_table(ref)
            try:
                with self._transaction():
                    self._insert_arrow(_qualified(ref), data)
            except duckdb.Error as err:
                raise ApiError("invalid", f"Could not insert rows: {_db_error(err).message}") from None

    def _insert_arrow(self, target: str, data: pa.Table) -> int:
        self._conn.register("_labdeck_upload", data)
        try:
            return int(self._conn.execute(
                f"INSERT INTO {target} BY NAME SELECT * FROM _labdeck_upload"
            ).fetchone()[0])
        finally:
            self._conn.unregister("_labdeck_upload")

    def load_file(
        self,
        ref: TableRef,
        path: str,
        load: dict[str, Any],
    ) -> int:
        """Run a load job from a local file; returns the number of rows loaded.

        Parameters
        ----------
        ref : TableRef
            The destination table.
        path : str
            The uploaded data.
        load : dict
            ``configuration.load`` of the job: ``sourceFormat`` (PARQUET, CSV,
            NEWLINE_DELIMITED_JSON), ``schema``, ``writeDisposition``
            (default WRITE_APPEND), ``createDisposition``, ``skipLeadingRows``,
            ``fieldDelimiter``, ``autodetect``.
        """
        fmt = str(load.get("sourceFormat") or "CSV").upper()
        fields = (load.get("schema") or {}).get("fields") or []
        write = str(load.get("writeDisposition") or "WRITE_APPEND").upper()
        create = str(load.get("createDisposition") or "CREATE_IF_NEEDED").upper()
        try:
            wanted = {f["name"]: duck_type(f) for f in fields} if fields else {}
        except (ValueError, KeyError, TypeError) as err:
            raise ApiError("invalid", f"Invalid schema: {err}") from None
        names = list(wanted)
        if not names and fmt == "CSV" and self.table_type(ref) is not None:
            with self._lock:
                names = list(self._duck_columns(ref))
        data = read_upload(fmt, path, load, names)
        with self._lock:
            self.require_dataset(ref.project, ref.dataset)
            exists = self.table_type(ref) is not None
            if not exists and create == "CREATE_NEVER":
                raise not_found(f"Table {ref}")
            target = _qualified(ref)
            try:
                with self._transaction():
                    if exists and write == "WRITE_EMPTY" and self._has_rows(target):
                        raise ApiError("duplicate", f"Already Exists: Table {ref} is not empty")
                    if exists and write == "WRITE_TRUNCATE":
                        self._conn.execute(f"DROP TABLE {target}")
                        exists = False
                    if not exists:
                        if fields:
                            self._conn.execute(f"CREATE TABLE {target} ({column_defs(fields)})")
                        else:
                            self._conn.register("_labdeck_upload", data)
                            try:
                                self._conn.execute(
                                    f"CREATE TABLE {target} AS SELECT * FROM _labdeck_upload LIMIT 0"
                                )
                            finally:
                                self._conn.unregister("_labdeck_upload")
                    count = self._insert_arrow(target, data)
            except duckdb.Error as err:
                raise ApiError("invalid", f"Error while reading data: {_db_error(err).message}") from None
        return count

    def _has_rows(self, target: str) -> bool:
        return self._conn.execute(f"SELECT count(*) > 0 FROM (SELECT 1 FROM {target} LIMIT 1)").fetchone()[0]

    # -- queries ----------------------------------------------------------

    def run_query(
        self,
        translation: Translation,
        destination: TableRef | None = None,
        write_disposition: str | None = None,
        create_disposition: str | None = None,
        interrupt: "Interrupt | None" = None,
    ) -> QueryResult:
        """Execute a translated, authorized statement (:func:`.execute.run_query`)."""
        from .execute import run_query

        return run_query(self, translation, destination, write_disposition, create_disposition, interrupt)

    def replace_table(self, ref: TableRef, fields: list[dict[str, Any]], data: pa.Table) -> None:
        """Create or replace a table with a schema and rows (used by the seed), atomically."""
        with self._lock, self._transaction():
            if not self.dataset_exists(ref.project, ref.dataset):
                self._conn.execute(
                    f"CREATE SCHEMA {quote_ident(schema_name(ref.project, ref.dataset))}"
                )
            self._conn.execute(f"CREATE OR REPLACE TABLE {_qualified(ref)} ({column_defs(fields)})")
            self._conn.register("_labdeck_seed", data)
            try:
                self._conn.execute(f"INSERT INTO {_qualified(ref)} BY NAME SELECT * FROM _labdeck_seed")
            finally:
                self._conn.unregister("_labdeck_seed")


class Tx:
    """``BEGIN`` ... ``COMMIT``, or ``ROLLBACK`` on any exception (on one connection or cursor)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._conn = conn

    def __enter__(self) -> "Tx":
        self._conn.execute("BEGIN TRANSACTION")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")
