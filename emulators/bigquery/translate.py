"""BigQuery SQL -> DuckDB SQL with sqlglot, and the tables a statement reads and writes.

Pure functions, no database access. Requirements:

- every table reference is resolved to ``(project, dataset, table)`` using the
  job's project and default dataset, and rewritten to the DuckDB schema
  :func:`schema_name` (quoted), so nothing can address a DuckDB object that is
  not a BigQuery table;
- CTE names are not tables;
- the caller gets the **reads** and **writes** of a statement to authorize
  before anything runs; statements whose effect is not understood are refused
  (``invalidQuery``) rather than guessed at;
- anonymous output columns are named like BigQuery's (``f0_``, ``f1_``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from .errors import ApiError, invalid_query
from .schema import duck_type

#: separator between project and dataset in a DuckDB schema name; project ids
#: cannot contain "_", so splitting on the first "__" is unambiguous
SCHEMA_SEP = "__"


class TableRef(NamedTuple):
    """A fully-qualified BigQuery table."""

    project: str
    dataset: str
    table: str

    def __str__(self) -> str:
        return f"{self.project}:{self.dataset}.{self.table}"


@dataclass
class Translation:
    """The result of :func:`translate`.

    Attributes
    ----------
    sql : str
        DuckDB SQL to execute.
    statement_type : str
        BigQuery's ``statementType`` (``SELECT``, ``CREATE_TABLE_AS_SELECT``, ...).
    reads, writes : set of TableRef
        Tables read and written (a written table is not also listed as read).
    dataset_target : tuple of (project, dataset), optional
        For ``CREATE SCHEMA`` / ``DROP SCHEMA``: the dataset created or dropped.
    """

    sql: str
    statement_type: str
    reads: set[TableRef] = field(default_factory=set)
    writes: set[TableRef] = field(default_factory=set)
    dataset_target: tuple[str, str] | None = None

    @property
    def returns_rows(self) -> bool:
        """True for statements whose result is a row set."""
        return self.statement_type == "SELECT"


def schema_name(project: str, dataset: str) -> str:
    """The DuckDB schema holding BigQuery dataset ``project.dataset``."""
    return f"{project}{SCHEMA_SEP}{dataset}"


def split_schema_name(name: str) -> tuple[str, str] | None:
    """Inverse of :func:`schema_name`; ``None`` for schemas that are not datasets."""
    project, sep, dataset = name.partition(SCHEMA_SEP)
    if not sep or not project or not dataset:
        return None
    return project, dataset


def parse_statement(sql: str) -> exp.Expression:
    """Parse one BigQuery statement.

    Raises
    ------
    ApiError
        ``invalidQuery`` for a syntax error, an empty query or a multi-statement script.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise invalid_query("Syntax error: the query is empty")
    try:
        statements = [s for s in sqlglot.parse(sql, read="bigquery") if s is not None]
    except SqlglotError as err:
        raise invalid_query(f"Syntax error: {_first_line(err)}") from None
    if not statements:
        raise invalid_query("Syntax error: the query is empty")
    if len(statements) > 1:
        raise invalid_query(
            "Multi-statement scripts are not supported by the local BigQuery endpoint; "
            "send one statement per query"
        )
    return statements[0]


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _cte_names(tree: exp.Expression) -> set[str]:
    return {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}


def _resolve(
    table: exp.Table, project: str, default_dataset: tuple[str, str] | None
) -> TableRef:
    if not isinstance(table.this, exp.Identifier):
        raise invalid_query(
            f"Table-valued function {table.this.sql('bigquery')} is not supported "
            "by the local BigQuery endpoint"
        )
    name, dataset, catalog = table.name, table.db, table.catalog
    if "INFORMATION_SCHEMA" in (name.upper(), dataset.upper()) or name.upper().startswith(
        "INFORMATION_SCHEMA."
    ):
        raise invalid_query("INFORMATION_SCHEMA is not supported by the local BigQuery endpoint")
    if "*" in name:
        raise invalid_query(
            f"Wildcard table {name} is not supported by the local BigQuery endpoint"
        )
    if table.args.get("version") is not None:
        raise invalid_query("FOR SYSTEM_TIME AS OF is not supported by the local BigQuery endpoint")
    if not dataset:
        if default_dataset is None:
            raise invalid_query(
                f'Table "{name}" must be qualified with a dataset (e.g. dataset.table).'
            )
        return TableRef(default_dataset[0], default_dataset[1], name)
    return TableRef(catalog or project, dataset, name)


def _rewrite(table: exp.Table, ref: TableRef) -> None:
    table.set("catalog", None)
    table.set("db", exp.to_identifier(schema_name(ref.project, ref.dataset), quoted=True))
    table.set("this", exp.to_identifier(ref.table, quoted=True))


def table_references(
    tree: exp.Expression, project: str, default_dataset: tuple[str, str] | None = None
) -> list[tuple[exp.Table, TableRef]]:
    """Every real table in a parsed statement (CTE references excluded), resolved.

    Parameters
    ----------
    tree : sqlglot.exp.Expression
        A parsed BigQuery statement.
    project : str
        The job's project, for ``dataset.table`` references.
    default_dataset : tuple of (project, dataset), optional
        The job's default dataset, for bare ``table`` references.

    Returns
    -------
    list of (sqlglot.exp.Table, TableRef)
        The node and what it refers to, in query order.
    """
    ctes = _cte_names(tree)
    found = []
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier) and not table.db and (
            table.name.lower() in ctes
        ):
            continue
        if isinstance(table.parent, (exp.Create, exp.Drop)) and table.parent.args.get(
            "kind", ""
        ).upper() == "SCHEMA":
            continue
        found.append((table, _resolve(table, project, default_dataset)))
    return found


def _statement(tree: exp.Expression) -> tuple[str, exp.Table | None]:
    """BigQuery statement type and the node of the table it writes (if any)."""
    if isinstance(tree, exp.Query):
        return "SELECT", None
    if isinstance(tree, exp.Create):
        kind = (tree.args.get("kind") or "").upper()
        target = tree.this if isinstance(tree.this, exp.Table) else tree.find(exp.Table)
        if kind == "TABLE":
            if tree.expression is not None:
                return "CREATE_TABLE_AS_SELECT", target
            return "CREATE_TABLE", target
        if kind == "VIEW":
            return "CREATE_VIEW", target
        if kind == "SCHEMA":
            return "CREATE_SCHEMA", None
        raise invalid_query(f"CREATE {kind} is not supported by the local BigQuery endpoint")
    if isinstance(tree, exp.Drop):
        kind = (tree.args.get("kind") or "").upper()
        if kind in ("TABLE", "VIEW"):
            target = tree.this if isinstance(tree.this, exp.Table) else tree.find(exp.Table)
            return f"DROP_{kind}", target
        if kind == "SCHEMA":
            return "DROP_SCHEMA", None
        raise invalid_query(f"DROP {kind} is not supported by the local BigQuery endpoint")
    if isinstance(tree, exp.Insert):
        return "INSERT", tree.this.find(exp.Table) if not isinstance(
            tree.this, exp.Table
        ) else tree.this
    if isinstance(tree, (exp.Update, exp.Delete, exp.Merge)):
        name = type(tree).__name__.upper()
        target = tree.this if isinstance(tree.this, exp.Table) else tree.find(exp.Table)
        return name, target
    if isinstance(tree, exp.TruncateTable):
        tables = tree.expressions
        if len(tables) != 1:
            raise invalid_query("TRUNCATE TABLE takes exactly one table here")
        return "TRUNCATE_TABLE", tables[0]
    label = tree.key.upper() if tree.key else type(tree).__name__
    raise invalid_query(f"{label} statements are not supported by the local BigQuery endpoint")


def _schema_target(tree: exp.Create | exp.Drop, project: str) -> tuple[str, str]:
    target = tree.this if isinstance(tree.this, exp.Table) else tree.find(exp.Table)
    if target is None or not target.db:
        raise invalid_query("CREATE/DROP SCHEMA needs a dataset name")
    if not target.catalog and target.db.count(".") == 1:  # `project.dataset` in one quoted name
        proj, dataset = target.db.split(".")
        return (proj, dataset)
    return (target.catalog or project, target.db)


def _schema_sql(tree: exp.Create | exp.Drop, project: str, dataset: str) -> str:
    ident = exp.to_identifier(schema_name(project, dataset), quoted=True).sql("duckdb")
    if isinstance(tree, exp.Create):
        exists = " IF NOT EXISTS" if tree.args.get("exists") else ""
        return f"CREATE SCHEMA{exists} {ident}"
    exists = " IF EXISTS" if tree.args.get("exists") else ""
    cascade = " CASCADE" if tree.args.get("cascade") else ""
    return f"DROP SCHEMA{exists} {ident}{cascade}"


def _name_anonymous_columns(tree: exp.Expression) -> None:
    select = tree
    while isinstance(select, exp.SetOperation):
        select = select.this
    if not isinstance(select, exp.Select):
        return
    counter = 0
    for i, projection in enumerate(select.expressions):
        if isinstance(projection, (exp.Alias, exp.Column, exp.Star, exp.Dot)):
            continue
        select.expressions[i].replace(exp.alias_(projection.copy(), f"f{counter}_"))
        counter += 1


def _fix_decimals(tree: exp.Expression) -> None:
    # BigQuery NUMERIC is DECIMAL(38, 9); DuckDB's bare DECIMAL is (18, 3)
    for dtype in tree.find_all(exp.DataType):
        if dtype.this in (exp.DataType.Type.DECIMAL, exp.DataType.Type.BIGDECIMAL) and not (
            dtype.expressions
        ):
            dtype.replace(exp.DataType.build("DECIMAL(38, 9)"))
        elif dtype.this == exp.DataType.Type.BIGDECIMAL:
            dtype.replace(exp.DataType.build("DECIMAL(38, 9)"))


def _keep_date_results(tree: exp.Expression) -> None:
    # BigQuery DATE_TRUNC/DATE_ADD/DATE_SUB on a DATE return a DATE; DuckDB returns a TIMESTAMP
    for node in list(tree.find_all(exp.DateTrunc, exp.DateAdd, exp.DateSub)):
        node.replace(exp.cast(node.copy(), exp.DataType.build("DATE")))


def _fill_gaps(tree: exp.Expression) -> None:
    # BigQuery functions sqlglot does not render for DuckDB (the session time zone is UTC)
    for node in list(tree.find_all(exp.CurrentDatetime)):
        node.replace(exp.cast(exp.CurrentTimestamp(), exp.DataType.build("TIMESTAMP")))


def _param_value(ptype: dict[str, Any], pvalue: dict[str, Any]) -> exp.Expression:
    type_name = str(ptype.get("type", "")).upper()
    if type_name == "ARRAY":
        items = [_param_value(ptype.get("arrayType") or {}, v) for v in pvalue.get("arrayValues") or []]
        return exp.Array(expressions=items)
    if type_name == "STRUCT":
        raise invalid_query("STRUCT query parameters are not supported by the local BigQuery endpoint")
    try:
        target = exp.DataType.build(duck_type({"name": "param", "type": type_name}), dialect="duckdb")
    except ValueError as err:
        raise invalid_query(f"Query parameter: {err}") from None
    value = pvalue.get("value") if isinstance(pvalue, dict) else None
    if value is None:
        return exp.cast(exp.null(), target)
    if type_name == "BYTES":
        return exp.func("from_base64", exp.Literal.string(str(value)))
    return exp.cast(exp.Literal.string(str(value)), target)


def _bind_parameters(tree: exp.Expression, parameters: list[dict[str, Any]] | None) -> None:
    params = parameters or []
    named = {str(p.get("name", "")).lower(): p for p in params if p.get("name")}
    positional = [p for p in params if not p.get("name")]
    position = 0
    for node in list(tree.find_all(exp.Parameter, exp.Placeholder)):
        if isinstance(node, exp.Parameter):
            name = node.name.lower()
            if name not in named:
                raise invalid_query(f"Query parameter '{node.name}' not found")
            param = named[name]
        else:
            if position >= len(positional):
                raise invalid_query("Not enough positional query parameters")
            param = positional[position]
            position += 1
        node.replace(_param_value(param.get("parameterType") or {}, param.get("parameterValue") or {}))


def translate(
    sql: str,
    project: str,
    default_dataset: tuple[str, str] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> Translation:
    """Translate one BigQuery statement to DuckDB and report what it touches.

    Parameters
    ----------
    sql : str
        The BigQuery (standard SQL) statement.
    project : str
        The job's project.
    default_dataset : tuple of (project, dataset), optional
        ``defaultDataset`` of the job configuration.
    parameters : list of dict, optional
        ``queryParameters`` in API representation (scalars and arrays).

    Returns
    -------
    Translation

    Raises
    ------
    ApiError
        ``invalidQuery`` for syntax errors and anything unsupported.
    """
    tree = parse_statement(sql)
    statement_type, target = _statement(tree)

    if statement_type in ("CREATE_SCHEMA", "DROP_SCHEMA"):
        proj, dataset = _schema_target(tree, project)
        return Translation(
            sql=_schema_sql(tree, proj, dataset),
            statement_type=statement_type,
            dataset_target=(proj, dataset),
        )

    refs = table_references(tree, project, default_dataset)
    reads: set[TableRef] = set()
    writes: set[TableRef] = set()
    for node, ref in refs:
        (writes if node is target else reads).add(ref)
    reads -= writes
    for node, ref in refs:
        _rewrite(node, ref)

    _bind_parameters(tree, parameters)
    _fix_decimals(tree)
    _keep_date_results(tree)
    _fill_gaps(tree)
    if statement_type == "SELECT":
        _name_anonymous_columns(tree)
    try:
        duck_sql = tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as err:
        raise invalid_query(
            f"Unsupported by the local BigQuery endpoint: {_first_line(err)}"
        ) from None
    return Translation(sql=duck_sql, statement_type=statement_type, reads=reads, writes=writes)


__all__ = [
    "ApiError",
    "TableRef",
    "Translation",
    "parse_statement",
    "schema_name",
    "split_schema_name",
    "table_references",
    "translate",
]
