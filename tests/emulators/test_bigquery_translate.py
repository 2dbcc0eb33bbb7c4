"""Pure BigQuery -> DuckDB translation and table-reference extraction (no database)."""

import pytest

from labdeck.emulators.bigquery.errors import ApiError
from labdeck.emulators.bigquery.translate import (
    TableRef,
    parse_statement,
    schema_name,
    split_schema_name,
    table_references,
    translate,
)

P = "proj"
DEFAULT = ("proj", "mine")


def T(dataset, table, project=P):
    return TableRef(project, dataset, table)


@pytest.mark.parametrize(
    "sql, reads",
    [
        ("SELECT 1", set()),
        ("SELECT * FROM ds.t", {T("ds", "t")}),
        ("SELECT * FROM `other-proj.ds.t`", {T("ds", "t", "other-proj")}),
        ("SELECT * FROM `other-proj`.ds.t", {T("ds", "t", "other-proj")}),
        ("SELECT * FROM t", {T("mine", "t")}),
        ("SELECT * FROM a.x JOIN b.y USING (id) LEFT JOIN c.z ON TRUE", {T("a", "x"), T("b", "y"), T("c", "z")}),
        ("WITH t AS (SELECT 1) SELECT * FROM t", set()),
        ("WITH t AS (SELECT * FROM ds.t) SELECT * FROM t", {T("ds", "t")}),
        ("WITH secrets AS (SELECT 1) SELECT * FROM bob.secrets", {T("bob", "secrets")}),
        ("WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b, ds.c", {T("ds", "c")}),
        ("SELECT (SELECT MAX(x) FROM ds.s) FROM ds.t WHERE id IN (SELECT id FROM ds.u)",
         {T("ds", "s"), T("ds", "t"), T("ds", "u")}),
        ("SELECT * FROM ds.a UNION ALL SELECT * FROM ds.b", {T("ds", "a"), T("ds", "b")}),
        ("SELECT x FROM UNNEST([1, 2]) AS x", set()),
    ],
    ids=[f"{i:02d}" for i in range(13)],
)
def test_reads(sql, reads):
    result = translate(sql, P, DEFAULT)
    assert result.statement_type == "SELECT"
    assert result.reads == reads
    assert result.writes == set()


@pytest.mark.parametrize(
    "sql, statement_type, reads, writes",
    [
        ("CREATE TABLE ds.t (a INT64)", "CREATE_TABLE", set(), {T("ds", "t")}),
        ("CREATE OR REPLACE TABLE ds.t AS SELECT * FROM src.s", "CREATE_TABLE_AS_SELECT",
         {T("src", "s")}, {T("ds", "t")}),
        ("CREATE VIEW ds.v AS SELECT * FROM src.s", "CREATE_VIEW", {T("src", "s")}, {T("ds", "v")}),
        ("INSERT INTO ds.t (a) SELECT a FROM src.s", "INSERT", {T("src", "s")}, {T("ds", "t")}),
        ("INSERT ds.t (a) VALUES (1)", "INSERT", set(), {T("ds", "t")}),
        ("UPDATE ds.t SET a = 1 WHERE TRUE", "UPDATE", set(), {T("ds", "t")}),
        ("DELETE FROM ds.t WHERE a IN (SELECT a FROM src.s)", "DELETE", {T("src", "s")}, {T("ds", "t")}),
        ("MERGE ds.t USING src.s ON t.a = s.a WHEN MATCHED THEN DELETE", "MERGE",
         {T("src", "s")}, {T("ds", "t")}),
        ("DROP TABLE ds.t", "DROP_TABLE", set(), {T("ds", "t")}),
        ("DROP TABLE IF EXISTS t", "DROP_TABLE", set(), {T("mine", "t")}),
        ("TRUNCATE TABLE ds.t", "TRUNCATE_TABLE", set(), {T("ds", "t")}),
    ],
    ids=[f"{i:02d}" for i in range(11)],
)
def test_writes(sql, statement_type, reads, writes):
    result = translate(sql, P, DEFAULT)
    assert (result.statement_type, result.reads, result.writes) == (statement_type, reads, writes)


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT 1", 'SELECT 1 AS f0_'),
        ("SELECT 1, 2 AS b, 3", 'SELECT 1 AS f0_, 2 AS b, 3 AS f1_'),
        ("SELECT a FROM ds.t", 'SELECT a FROM "proj__ds"."t"'),
        ("SELECT * FROM `my-proj.ds.t` AS x", 'SELECT * FROM "my-proj__ds"."t" AS x'),
        ("SELECT CAST(x AS NUMERIC) AS n FROM ds.t", 'SELECT CAST(x AS DECIMAL(38, 9)) AS n FROM "proj__ds"."t"'),
        ("SELECT DATE_TRUNC(d, MONTH) AS m FROM ds.t",
         """SELECT CAST(DATE_TRUNC('MONTH', d) AS DATE) AS m FROM "proj__ds"."t\""""),
        ("SELECT SAFE_CAST(s AS INT64) AS i FROM ds.t", 'SELECT TRY_CAST(s AS BIGINT) AS i FROM "proj__ds"."t"'),
        ("CREATE SCHEMA IF NOT EXISTS newds", 'CREATE SCHEMA IF NOT EXISTS "proj__newds"'),
        ("DROP SCHEMA other.oldds CASCADE", 'DROP SCHEMA "other__oldds" CASCADE'),
        ('SELECT * FROM `ds.we"ird`', 'SELECT * FROM "proj__ds"."we""ird"'),
    ],
    ids=[f"{i:02d}" for i in range(10)],
)
def test_duckdb_sql(sql, expected):
    assert translate(sql, P, DEFAULT).sql == expected


def test_schema_statements_report_the_dataset():
    assert translate("CREATE SCHEMA newds", P).dataset_target == ("proj", "newds")
    assert translate("DROP SCHEMA `other.oldds`", P).dataset_target == ("other", "oldds")


def test_query_parameters_are_inlined_as_typed_literals():
    params = [
        {"name": "n", "parameterType": {"type": "INT64"}, "parameterValue": {"value": "5"}},
        {"name": "s", "parameterType": {"type": "STRING"}, "parameterValue": {"value": "it's"}},
        {"name": "ids", "parameterType": {"type": "ARRAY", "arrayType": {"type": "INT64"}},
         "parameterValue": {"arrayValues": [{"value": "1"}, {"value": "2"}]}},
    ]
    sql = translate("SELECT @n AS n, @s AS s, @ids AS ids", P, None, params).sql
    assert sql == ("SELECT CAST('5' AS BIGINT) AS n, CAST('it''s' AS TEXT) AS s, "
                   "[CAST('1' AS BIGINT), CAST('2' AS BIGINT)] AS ids")
    positional = [{"parameterType": {"type": "DATE"}, "parameterValue": {"value": "2024-01-01"}}]
    assert translate("SELECT ? AS d", P, None, positional).sql == (
        "SELECT CAST('2024-01-01' AS DATE) AS d"
    )


@pytest.mark.parametrize(
    "sql, params, fragment",
    [
        ("", None, "empty"),
        ("   ;", None, "empty"),
        ("SELEC 1", None, "Syntax error"),
        ("SELECT 1; SELECT 2", None, "Multi-statement"),
        ("SELECT * FROM t", None, "must be qualified"),
        ("SELECT * FROM ds.INFORMATION_SCHEMA.TABLES", None, "INFORMATION_SCHEMA"),
        ("SELECT * FROM ds.events_*", None, "Wildcard"),
        ("SELECT * FROM ML.PREDICT(MODEL ds.m, (SELECT 1))", None, "Table-valued function"),
        ("DECLARE x INT64", None, "not supported"),
        ("ALTER TABLE ds.t ADD COLUMN c INT64", None, "not supported"),
        ("CREATE FUNCTION ds.f() AS (1)", None, "not supported"),
        ("SELECT @missing", [], "'missing' not found"),
        ("SELECT ?", [], "positional"),
    ],
    ids=[f"{i:02d}" for i in range(13)],
)
def test_rejected(sql, params, fragment):
    with pytest.raises(ApiError) as info:
        translate(sql, P, None, params)
    assert info.value.reason == "invalidQuery"
    assert info.value.code == 400
    assert fragment in info.value.message


def test_table_references_skip_ctes_but_keep_nodes():
    tree = parse_statement("WITH c AS (SELECT * FROM ds.a) SELECT * FROM c JOIN `p2.ds.b` USING (id)")
    refs = [ref for _node, ref in table_references(tree, P)]
    assert refs == [T("ds", "b", "p2"), T("ds", "a")] or refs == [T("ds", "a"), T("ds", "b", "p2")]


@pytest.mark.parametrize(
    "project, dataset",
    [("labdeck-local", "demo"), ("p", "a__b"), ("my-proj-1", "x_y")],
)
def test_schema_names_round_trip(project, dataset):
    assert split_schema_name(schema_name(project, dataset)) == (project, dataset)


@pytest.mark.parametrize("name", ["main", "information_schema", "__x", "x__"])
def test_non_dataset_schemas(name):
    assert split_schema_name(name) is None
