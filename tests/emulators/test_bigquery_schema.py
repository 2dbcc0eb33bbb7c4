"""Pure pieces of the local BigQuery endpoint: type mapping, row encoding, grants, uploads."""

import datetime
import decimal

import duckdb
import pyarrow as pa
import pytest

from labdeck.emulators.bigquery import access
from labdeck.emulators.bigquery.errors import ApiError
from labdeck.emulators.bigquery.schema import (
    column_defs,
    duck_type,
    encode_rows,
    encode_value,
    schema_from_duck,
)
from labdeck.emulators.bigquery.uploads import parse_content_range, parse_multipart


@pytest.mark.parametrize(
    "field, expected",
    [
        ({"name": "a", "type": "INTEGER"}, "BIGINT"),
        ({"name": "a", "type": "INT64"}, "BIGINT"),
        ({"name": "a", "type": "FLOAT64"}, "DOUBLE"),
        ({"name": "a", "type": "NUMERIC"}, "DECIMAL(38, 9)"),
        ({"name": "a", "type": "TIMESTAMP"}, "TIMESTAMPTZ"),
        ({"name": "a", "type": "DATETIME"}, "TIMESTAMP"),
        ({"name": "a", "type": "STRING", "mode": "REPEATED"}, "VARCHAR[]"),
        ({"name": "a", "type": "RECORD", "fields": [{"name": "k", "type": "STRING"}]},
         'STRUCT("k" VARCHAR)'),
    ],
)
def test_duck_type(field, expected):
    assert duck_type(field) == expected


@pytest.mark.parametrize(
    "fields",
    [[], [{"name": "a", "type": "GEOMETRY_BLOB"}], [{"type": "STRING"}],
     [{"name": "r", "type": "RECORD"}]],
    ids=["empty", "unknown-type", "no-name", "record-without-fields"],
)
def test_bad_schemas(fields):
    with pytest.raises(ValueError):
        column_defs(fields)


def test_column_defs_quote_names_and_required():
    assert column_defs([{"name": 'we"ird', "type": "STRING", "mode": "REQUIRED"}]) == (
        '"we""ird" VARCHAR NOT NULL'
    )


@pytest.mark.parametrize(
    "value, field, encoded",
    [
        (None, {"type": "STRING"}, None),
        (5, {"type": "INTEGER"}, "5"),
        (1.5, {"type": "FLOAT"}, "1.5"),
        (float("nan"), {"type": "FLOAT"}, "NaN"),
        (float("-inf"), {"type": "FLOAT"}, "-Infinity"),
        (decimal.Decimal("1.500000000"), {"type": "NUMERIC"}, "1.5"),
        (decimal.Decimal("100.000000000"), {"type": "NUMERIC"}, "100"),
        (True, {"type": "BOOLEAN"}, "true"),
        (b"ab", {"type": "BYTES"}, "YWI="),
        (datetime.date(2024, 1, 2), {"type": "DATE"}, "2024-01-02"),
        (datetime.datetime(2024, 1, 2, 3, 4, 5, 6), {"type": "DATETIME"}, "2024-01-02T03:04:05.000006"),
        (datetime.time(12, 0, 1), {"type": "TIME"}, "12:00:01"),
        (1704067200000000, {"type": "TIMESTAMP"}, "1704067200000000"),
        ([1, None], {"type": "INTEGER", "mode": "REPEATED"}, [{"v": "1"}, {"v": None}]),
        (None, {"type": "INTEGER", "mode": "REPEATED"}, []),
        ({"k": "v", "n": 1}, {"type": "RECORD", "fields": [{"name": "k", "type": "STRING"},
                                                           {"name": "n", "type": "INTEGER"}]},
         {"f": [{"v": "v"}, {"v": "1"}]}),
    ],
    ids=[f"{i:02d}" for i in range(16)],
)
def test_encode_value(value, field, encoded):
    assert encode_value(value, {"name": "c", "mode": "NULLABLE", **field}) == encoded


def test_duckdb_result_schema_and_rows():
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    rel = conn.sql(
        "SELECT 1::BIGINT AS i, TIMESTAMPTZ '2024-01-01 00:00:01+00' AS ts, "
        "TIMESTAMP '2024-01-01 10:00:00' AS dt, {'a': 1, 'b': [DATE '2024-01-01']} AS s, "
        "[1.5, 2.5] AS l, '{\"x\": 1}'::JSON AS j"
    )
    fields = schema_from_duck(rel.columns, rel.types)
    assert fields == [
        {"name": "i", "type": "INTEGER", "mode": "NULLABLE"},
        {"name": "ts", "type": "TIMESTAMP", "mode": "NULLABLE"},
        {"name": "dt", "type": "DATETIME", "mode": "NULLABLE"},
        {"name": "s", "type": "RECORD", "mode": "NULLABLE", "fields": [
            {"name": "a", "type": "INTEGER", "mode": "NULLABLE"},
            {"name": "b", "type": "DATE", "mode": "REPEATED"},
        ]},
        {"name": "l", "type": "NUMERIC", "mode": "REPEATED"},
        {"name": "j", "type": "JSON", "mode": "NULLABLE"},
    ]
    rows = encode_rows(rel.to_arrow_table(), fields)
    assert rows == [{"f": [
        {"v": "1"},
        {"v": "1704067201000000"},
        {"v": "2024-01-01T10:00:00"},
        {"v": {"f": [{"v": "1"}, {"v": [{"v": "2024-01-01"}]}]}},
        {"v": [{"v": "1.5"}, {"v": "2.5"}]},
        {"v": '{"x": 1}'},
    ]}]
    conn.close()


def test_encode_rows_empty_table():
    assert encode_rows(pa.table({"a": pa.array([], pa.int64())}), [{"name": "a", "type": "INTEGER"}]) == []


# -- grants ---------------------------------------------------------------------

ALICE = {"sub": "alice", "projects": ["p"], "datasets": {"p.alice": "rw", "p.demo": "ro"}}
ADMIN = {"sub": "labdeck-broker", "admin": True}


@pytest.mark.parametrize(
    "claims, dataset, read, write",
    [
        (ALICE, "alice", True, True),
        (ALICE, "demo", True, False),
        (ALICE, "bob", False, False),
        (ADMIN, "bob", True, True),
        ({"sub": "x", "datasets": {"p.bob": "admin"}}, "bob", False, False),
        ({"sub": "x", "datasets": ["p.bob"]}, "bob", False, False),
        ({"sub": "x", "admin": "true"}, "bob", False, False),
    ],
    ids=["own", "read-only", "other", "admin", "bad-level", "bad-shape", "admin-not-bool"],
)
def test_grants(claims, dataset, read, write):
    assert access.can_read(claims, "p", dataset) is read
    assert access.can_write(claims, "p", dataset) is write


def test_denials_name_the_dataset_not_the_token():
    with pytest.raises(ApiError) as info:
        access.require_read(ALICE, "p", "bob")
    assert info.value.code == 403 and info.value.reason == "accessDenied"
    assert "p:bob" in info.value.message and "alice" in info.value.message
    with pytest.raises(ApiError):
        access.require_job_project(ALICE, "other")
    access.require_job_project(ALICE, "p")
    access.require_job_project(ADMIN, "other")


# -- uploads ----------------------------------------------------------------------


def test_parse_multipart():
    boundary = "===============1234=="
    body = (
        f"--{boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n"
        '{"configuration": {"load": {}}}\r\n'
        f"--{boundary}\r\ncontent-type: */*\r\n\r\n"
    ).encode() + b"a,b\r\n1,2\r\n" + f"\r\n--{boundary}--".encode()
    metadata, data = parse_multipart(f'multipart/related; boundary="{boundary}"', body)
    assert metadata == {"configuration": {"load": {}}}
    assert data == b"a,b\r\n1,2\r\n"


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("application/json", b"{}"),
        ('multipart/related; boundary="b"', b"--b\r\n\r\n{}\r\n--b--"),
        ('multipart/related; boundary="b"', b"--b\r\n\r\nnot json\r\n--b\r\n\r\ndata\r\n--b--"),
    ],
    ids=["not-multipart", "one-part", "bad-json"],
)
def test_parse_multipart_rejects(content_type, body):
    with pytest.raises(ApiError) as info:
        parse_multipart(content_type, body)
    assert info.value.code == 400


@pytest.mark.parametrize(
    "header, expected",
    [("bytes 0-9/10", (0, 9, 10)), ("bytes 0-9/*", (0, 9, None)), ("bytes */10", (None, None, 10))],
)
def test_content_range(header, expected):
    assert parse_content_range(header) == expected


@pytest.mark.parametrize("header", [None, "", "bytes 0-9", "items 0-9/10"])
def test_content_range_rejects(header):
    with pytest.raises(ApiError):
        parse_content_range(header)
