"""BigQuery schemas and row encoding: DuckDB types <-> BigQuery fields, rows as ``{"f": [{"v": ...}]}``.

The REST API returns every cell as a string (or nested ``f``/``v`` for RECORD and
a list of ``{"v": ...}`` for REPEATED), and ``google-cloud-bigquery`` 3.47's
``CellDataParser`` reads them back: INTEGER via ``int()``, FLOAT via ``float()``,
NUMERIC via ``Decimal()``, BOOLEAN as ``"true"``/``"false"``, BYTES as base64,
DATE ``YYYY-MM-DD``, DATETIME ``YYYY-MM-DDTHH:MM:SS[.ffffff]``, TIME
``HH:MM:SS[.ffffff]`` and TIMESTAMP as **epoch microseconds** (the client always
asks for ``formatOptions.useInt64Timestamp``).
"""

from __future__ import annotations

import base64
import decimal
import math
from typing import Any, Iterable

import pyarrow as pa

_INTEGER_IDS = {
    "tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint",
    "usmallint", "uinteger", "ubigint", "uhugeint",
}
_SIMPLE_IDS = {
    "float": "FLOAT",
    "double": "FLOAT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp with time zone": "TIMESTAMP",
    "timestamp": "DATETIME",
    "timestamp_s": "DATETIME",
    "timestamp_ms": "DATETIME",
    "timestamp_ns": "DATETIME",
    "time": "TIME",
    "blob": "BYTES",
    "varchar": "STRING",
    "uuid": "STRING",
}

#: BigQuery type (both legacy and standard SQL names) -> DuckDB column type
_BQ_TO_DUCK = {
    "INTEGER": "BIGINT", "INT64": "BIGINT",
    "FLOAT": "DOUBLE", "FLOAT64": "DOUBLE",
    "NUMERIC": "DECIMAL(38, 9)", "BIGNUMERIC": "DECIMAL(38, 9)",
    "DECIMAL": "DECIMAL(38, 9)", "BIGDECIMAL": "DECIMAL(38, 9)",
    "STRING": "VARCHAR", "GEOGRAPHY": "VARCHAR",
    "BOOLEAN": "BOOLEAN", "BOOL": "BOOLEAN",
    "BYTES": "BLOB",
    "DATE": "DATE", "DATETIME": "TIMESTAMP", "TIMESTAMP": "TIMESTAMPTZ", "TIME": "TIME",
    "JSON": "JSON",
}


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB (double quotes, doubled inside)."""
    return '"' + name.replace('"', '""') + '"'


def field_from_duck(name: str, dtype: Any) -> dict[str, Any]:
    """Build a BigQuery ``TableFieldSchema`` from a DuckDB column type.

    Parameters
    ----------
    name : str
        The column name.
    dtype : duckdb.DuckDBPyType
        The column's DuckDB type (from a relation's ``types``).

    Returns
    -------
    dict
        ``{"name", "type", "mode"[, "fields"]}``; lists become ``REPEATED``,
        structs ``RECORD``. Types without a BigQuery equivalent become STRING.
    """
    type_id = dtype.id
    if type_id in ("list", "array"):
        child = dtype.children[0][1]
        if child.id in ("list", "array"):
            # BigQuery has no ARRAY<ARRAY<...>>; report the inner arrays as JSON text
            return {"name": name, "type": "JSON", "mode": "REPEATED"}
        inner = field_from_duck(name, child)
        inner["mode"] = "REPEATED"
        return inner
    if type_id == "struct":
        return {
            "name": name,
            "type": "RECORD",
            "mode": "NULLABLE",
            "fields": [field_from_duck(n, t) for n, t in dtype.children],
        }
    if type_id in _INTEGER_IDS:
        bq_type = "INTEGER"
    elif type_id == "decimal":
        bq_type = "NUMERIC"
    elif str(dtype) == "JSON":
        bq_type = "JSON"
    else:
        bq_type = _SIMPLE_IDS.get(type_id, "STRING")
    return {"name": name, "type": bq_type, "mode": "NULLABLE"}


def schema_from_duck(names: Iterable[str], dtypes: Iterable[Any]) -> list[dict[str, Any]]:
    """BigQuery fields for a DuckDB relation's ``columns`` and ``types``."""
    return [field_from_duck(n, t) for n, t in zip(names, dtypes)]


def duck_type(field: dict[str, Any]) -> str:
    """The DuckDB column type for a BigQuery ``TableFieldSchema`` (API representation).

    Raises
    ------
    ValueError
        For an unknown BigQuery type (the caller turns it into a 400).
    """
    bq_type = str(field.get("type", "")).upper()
    if bq_type in ("RECORD", "STRUCT"):
        subfields = field.get("fields") or []
        if not subfields:
            raise ValueError(f"field {field.get('name')!r}: RECORD needs sub-fields")
        inner = ", ".join(f"{quote_ident(f['name'])} {duck_type(f)}" for f in subfields)
        base = f"STRUCT({inner})"
    elif bq_type in _BQ_TO_DUCK:
        base = _BQ_TO_DUCK[bq_type]
    else:
        raise ValueError(f"field {field.get('name')!r}: unsupported type {bq_type or '(none)'}")
    if str(field.get("mode", "NULLABLE")).upper() == "REPEATED":
        return base + "[]"
    return base


def column_defs(fields: list[dict[str, Any]]) -> str:
    """A ``CREATE TABLE`` column list for BigQuery fields (REQUIRED -> NOT NULL)."""
    if not fields:
        raise ValueError("a table schema needs at least one field")
    parts = []
    for f in fields:
        if not isinstance(f, dict) or not f.get("name"):
            raise ValueError("every schema field needs a name")
        not_null = " NOT NULL" if str(f.get("mode", "")).upper() == "REQUIRED" else ""
        parts.append(f"{quote_ident(f['name'])} {duck_type(f)}{not_null}")
    return ", ".join(parts)


def _plain_arrow_type(t: pa.DataType) -> pa.DataType:
    """Arrow type whose ``to_pylist`` gives values :func:`encode_value` understands."""
    if pa.types.is_timestamp(t):
        return pa.int64() if t.tz else pa.timestamp("us")
    if pa.types.is_time(t):
        return pa.time64("us")
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain_arrow_type(f.type)) for f in t])
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return pa.list_(_plain_arrow_type(t.value_type))
    return t


def _to_micros(column: pa.ChunkedArray) -> pa.ChunkedArray:
    t = column.type
    if pa.types.is_timestamp(t) and t.tz:
        return column.cast(pa.timestamp("us", tz=t.tz)).cast(pa.int64())
    return column.cast(_plain_arrow_type(t))


def _fmt_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))


def _fmt_numeric(value: decimal.Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def encode_value(value: Any, field: dict[str, Any]) -> Any:
    """Encode one Python value (from :func:`encode_rows`) as a BigQuery REST cell value."""
    if field.get("mode") == "REPEATED":
        if value is None:
            return []
        item_field = {**field, "mode": "NULLABLE"}
        return [{"v": encode_value(item, item_field)} for item in value]
    if value is None:
        return None
    bq_type = field["type"]
    if bq_type == "RECORD":
        return {"f": [{"v": encode_value(value.get(sub["name"]), sub)} for sub in field["fields"]]}
    if bq_type == "INTEGER":
        return str(int(value))
    if bq_type == "FLOAT":
        return _fmt_float(value)
    if bq_type == "NUMERIC":
        return _fmt_numeric(value)
    if bq_type == "BOOLEAN":
        return "true" if value else "false"
    if bq_type == "BYTES":
        return base64.standard_b64encode(value).decode("ascii")
    if bq_type == "TIMESTAMP":
        return str(int(value))
    if bq_type in ("DATE", "TIME"):
        return value.isoformat()
    if bq_type == "DATETIME":
        return value.isoformat(sep="T")
    if bq_type == "JSON" and not isinstance(value, str):
        import json

        return json.dumps(value, default=str)
    return str(value)


def encode_rows(table: pa.Table, fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Encode an Arrow table (a DuckDB result) as BigQuery ``rows``.

    Parameters
    ----------
    table : pyarrow.Table
        The result; column order matches ``fields``.
    fields : list of dict
        The BigQuery schema from :func:`schema_from_duck`.

    Returns
    -------
    list of dict
        ``[{"f": [{"v": ...}, ...]}, ...]``.
    """
    columns = [_to_micros(table.column(i)).to_pylist() for i in range(table.num_columns)]
    rows = []
    for values in zip(*columns):
        rows.append({"f": [{"v": encode_value(v, f)} for v, f in zip(values, fields)]})
    return rows
