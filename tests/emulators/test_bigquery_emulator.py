"""The local BigQuery endpoint driven by the real google-cloud-bigquery client."""

from __future__ import annotations

import concurrent.futures
import datetime
import decimal
import io
import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest
import requests
from google.api_core import exceptions
from google.cloud import bigquery

from .conftest import KEY, PROJECT, LocalTokenCredentials, token_for

DEMO = f"{PROJECT}.demo"

REVENUE_BY_CATEGORY = f"""
SELECT p.category, COUNT(*) AS orders, SUM(o.amount) AS revenue,
       COUNT(DISTINCT c.country) AS countries
FROM `{DEMO}.orders` AS o
JOIN `{DEMO}.products` AS p USING (product_id)
JOIN demo.customers AS c ON c.customer_id = o.customer_id
WHERE o.status = 'delivered'
GROUP BY p.category
ORDER BY revenue DESC
"""


@pytest.fixture(scope="module")
def alice(bq_emulator):
    return bq_emulator.client("alice")


@pytest.fixture(scope="module")
def bob(bq_emulator):
    return bq_emulator.client("bob")


# -- queries -------------------------------------------------------------


def test_select_1(alice):
    rows = list(alice.query("select 1").result())
    assert [tuple(r.values()) for r in rows] == [(1,)]
    assert list(rows[0].keys()) == ["f0_"]


def test_query_and_wait_select_1(alice):
    rows = alice.query_and_wait("SELECT 1 AS one, 'x' AS s")
    assert [dict(r) for r in rows] == [{"one": 1, "s": "x"}]


def test_join_and_aggregate(alice):
    started = time.perf_counter()
    rows = list(alice.query(REVENUE_BY_CATEGORY).result())
    elapsed = time.perf_counter() - started
    print(f"demo join + aggregate: {elapsed * 1000:.0f} ms")
    assert {r.category for r in rows} == {"Outdoor", "Home", "Gadgets", "Books"}
    assert all(isinstance(r.revenue, decimal.Decimal) for r in rows)
    assert [r.revenue for r in rows] == sorted((r.revenue for r in rows), reverse=True)
    total = list(alice.query(
        f"SELECT SUM(amount) AS s, COUNT(*) AS n FROM `{DEMO}.orders` WHERE status = 'delivered'"
    ).result())[0]
    assert sum(r.revenue for r in rows) == total.s
    assert sum(r.orders for r in rows) == total.n


def test_with_clause_cte_shadows_table_name(alice):
    sql = """
    WITH orders AS (SELECT 1 AS x UNION ALL SELECT 2),
         monthly AS (SELECT DATE_TRUNC(order_date, MONTH) AS month, COUNT(*) AS n
                     FROM demo.orders GROUP BY month)
    SELECT (SELECT SUM(x) FROM orders) AS cte_sum, COUNT(*) AS months, SUM(n) AS n FROM monthly
    """
    (row,) = alice.query(sql).result()
    assert (row.cte_sum, row.months, row.n) == (3, 12, 6000)


def test_date_and_timestamp_functions(alice):
    sql = """
    SELECT DATE '2024-03-15' AS d,
           DATE_TRUNC(DATE '2024-03-15', MONTH) AS month_start,
           DATE_ADD(DATE '2024-01-31', INTERVAL 1 DAY) AS next_day,
           DATE_DIFF(DATE '2024-03-01', DATE '2024-02-01', DAY) AS days,
           EXTRACT(YEAR FROM DATE '2024-03-15') AS y,
           FORMAT_DATE('%Y-%m', DATE '2024-03-15') AS ym,
           TIMESTAMP '2024-03-15 12:30:00+00' AS ts,
           TIMESTAMP_TRUNC(TIMESTAMP '2024-03-15 12:30:00+00', HOUR) AS ts_hour,
           DATETIME '2024-03-15 08:00:00' AS dt
    """
    (row,) = alice.query(sql).result()
    utc = datetime.timezone.utc
    assert row.d == datetime.date(2024, 3, 15)
    assert row.month_start == datetime.date(2024, 3, 1)
    assert row.next_day == datetime.date(2024, 2, 1)
    assert row.days == 29
    assert row.y == 2024
    assert row.ym == "2024-03"
    assert row.ts == datetime.datetime(2024, 3, 15, 12, 30, tzinfo=utc)
    assert row.ts_hour == datetime.datetime(2024, 3, 15, 12, tzinfo=utc)
    assert row.dt == datetime.datetime(2024, 3, 15, 8)


def test_struct_and_array(alice):
    sql = """
    SELECT STRUCT(1 AS a, 'x' AS b) AS s, [1, 2, 3] AS arr,
           ARRAY(SELECT AS STRUCT n, n * 2 AS twice FROM UNNEST([1, 2]) AS n) AS pairs,
           (SELECT SUM(v) FROM UNNEST([4, 5, 6]) AS v) AS total
    """
    result = alice.query(sql).result()
    field_types = {f.name: (f.field_type, f.mode) for f in result.schema}
    assert field_types["s"] == ("RECORD", "NULLABLE")
    assert field_types["arr"] == ("INTEGER", "REPEATED")
    (row,) = result
    assert row.s == {"a": 1, "b": "x"}
    assert row.arr == [1, 2, 3]
    assert row.pairs == [{"n": 1, "twice": 2}, {"n": 2, "twice": 4}]
    assert row.total == 15


def test_query_parameters(alice):
    config = bigquery.QueryJobConfig(query_parameters=[
        bigquery.ScalarQueryParameter("status", "STRING", "returned"),
        bigquery.ScalarQueryParameter("since", "DATE", datetime.date(2024, 7, 1)),
    ])
    (row,) = alice.query(
        "SELECT COUNT(*) AS n FROM demo.orders WHERE status = @status AND order_date >= @since",
        job_config=config,
    ).result()
    assert 0 < row.n < 6000


def test_to_dataframe(alice):
    df = alice.query(
        f"SELECT o.order_id, o.order_date, o.ordered_at, o.amount, p.category "
        f"FROM `{DEMO}.orders` o JOIN `{DEMO}.products` p USING (product_id) ORDER BY o.order_id"
    ).to_dataframe()
    assert len(df) == 6000
    assert str(df["order_date"].dtype) == "dbdate"
    assert str(df["ordered_at"].dtype).startswith("datetime64") and "UTC" in str(df["ordered_at"].dtype)
    assert isinstance(df["amount"].iloc[0], decimal.Decimal)
    assert df["order_id"].tolist() == list(range(1, 6001))


def test_pagination(alice):
    rows = alice.query("SELECT order_id FROM demo.orders ORDER BY order_id").result(page_size=700)
    ids = [r.order_id for r in rows]
    assert ids == list(range(1, 6001))
    rows = alice.query_and_wait("SELECT order_id FROM demo.orders", page_size=1000)
    assert rows.total_rows == 6000
    assert len(list(rows)) == 6000


def test_list_rows_of_a_table(alice):
    rows = alice.list_rows(f"{DEMO}.customers", max_results=25, page_size=10)
    got = list(rows)
    assert len(got) == 25
    assert rows.total_rows == 2000
    assert isinstance(got[0].signup_date, datetime.date)


def test_concurrent_queries(alice):
    def one(i: int) -> int:
        return list(alice.query(f"SELECT COUNT(*) + {i} AS n FROM demo.orders").result())[0].n

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert results == [6000 + i for i in range(16)]


# -- datasets, tables, loads ------------------------------------------------


def test_dataset_and_table_lifecycle(alice):
    dataset = alice.create_dataset(f"{PROJECT}.alice_sandbox")
    try:
        assert dataset.dataset_id == "alice_sandbox"
        with pytest.raises(exceptions.Conflict):
            alice.create_dataset(f"{PROJECT}.alice_sandbox")
        schema = [
            bigquery.SchemaField("id", "INTEGER", mode="REQUIRED"),
            bigquery.SchemaField("name", "STRING"),
            bigquery.SchemaField("at", "TIMESTAMP"),
            bigquery.SchemaField("tags", "STRING", mode="REPEATED"),
            bigquery.SchemaField("meta", "RECORD", fields=[bigquery.SchemaField("k", "STRING")]),
        ]
        table = alice.create_table(bigquery.Table(f"{PROJECT}.alice_sandbox.things", schema=schema))
        assert [f.name for f in table.schema] == ["id", "name", "at", "tags", "meta"]
        assert table.schema[0].mode == "REQUIRED"
        errors = alice.insert_rows(table, [
            {"id": 1, "name": "a", "at": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
             "tags": ["x", "y"], "meta": {"k": "v"}},
            {"id": 2, "name": "b", "at": None, "tags": [], "meta": None},
        ])
        assert errors == []
        got = [dict(r) for r in alice.list_rows(table)]
        assert got[0]["tags"] == ["x", "y"] and got[0]["meta"] == {"k": "v"}
        assert got[0]["at"] == datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
        assert [t.table_id for t in alice.list_tables("alice_sandbox")] == ["things"]
        assert alice.get_table(f"{PROJECT}.alice_sandbox.things").num_rows == 2
        alice.delete_table(table)
        with pytest.raises(exceptions.NotFound):
            alice.get_table(f"{PROJECT}.alice_sandbox.things")
        assert list(alice.list_tables("alice_sandbox")) == []
    finally:
        alice.delete_dataset(f"{PROJECT}.alice_sandbox", delete_contents=True, not_found_ok=True)
    with pytest.raises(exceptions.NotFound):
        alice.get_dataset(f"{PROJECT}.alice_sandbox")


def test_load_table_from_dataframe_and_read_back(alice):
    table_id = f"{PROJECT}.alice.frames"
    df = pd.DataFrame({
        "id": [1, 2, 3],
        "name": ["ada", "grace", None],
        "score": [1.5, 2.25, float("nan")],
        "day": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]).date,
        "at": pd.to_datetime(["2024-01-01T10:00:00Z", "2024-01-02T11:00:00Z", "2024-01-03T12:00:00Z"]),
    })
    job = alice.load_table_from_dataframe(df, table_id)
    job.result()
    assert job.output_rows == 3
    back = alice.list_rows(table_id).to_dataframe().sort_values("id").reset_index(drop=True)
    assert back["name"].tolist()[:2] == ["ada", "grace"]
    assert back["at"].iloc[1] == pd.Timestamp("2024-01-02T11:00:00Z")
    assert str(back["day"].dtype) == "dbdate"
    # append, then truncate
    alice.load_table_from_dataframe(df, table_id).result()
    assert alice.get_table(table_id).num_rows == 6
    config = bigquery.LoadJobConfig(write_disposition="WRITE_TRUNCATE")
    alice.load_table_from_dataframe(df.head(1), table_id, job_config=config).result()
    (row,) = alice.query(f"SELECT COUNT(*) AS n, MAX(name) AS m FROM `{table_id}`").result()
    assert (row.n, row.m) == (1, "ada")
    alice.delete_table(table_id)


@pytest.mark.parametrize("resumable", [False, True], ids=["multipart", "resumable"])
def test_load_csv_from_file(alice, resumable):
    table_id = f"{PROJECT}.alice.csv_{'r' if resumable else 'm'}"
    data = b"id,city,amount\n1,Berlin,10.5\n2,Lisbon,20\n3,Osaka,\n"
    config = bigquery.LoadJobConfig(
        source_format="CSV", skip_leading_rows=1,
        schema=[bigquery.SchemaField("id", "INTEGER"), bigquery.SchemaField("city", "STRING"),
                bigquery.SchemaField("amount", "NUMERIC")],
    )
    size = None if resumable else len(data)
    job = alice.load_table_from_file(io.BytesIO(data), table_id, job_config=config, size=size)
    job.result()
    rows = [dict(r) for r in alice.query(f"SELECT * FROM `{table_id}` ORDER BY id").result()]
    assert rows == [
        {"id": 1, "city": "Berlin", "amount": decimal.Decimal("10.5")},
        {"id": 2, "city": "Lisbon", "amount": decimal.Decimal("20")},
        {"id": 3, "city": "Osaka", "amount": None},
    ]
    alice.delete_table(table_id)


def test_bad_csv_load_fails_the_job_and_changes_nothing(alice):
    table_id = f"{PROJECT}.alice.bad_csv"
    config = bigquery.LoadJobConfig(source_format="CSV", schema=[bigquery.SchemaField("id", "INTEGER")])
    job = alice.load_table_from_file(io.BytesIO(b"1\nnot-a-number\n"), table_id, job_config=config)
    with pytest.raises(exceptions.BadRequest):
        job.result()
    with pytest.raises(exceptions.NotFound):
        alice.get_table(table_id)


def test_destination_table_and_ddl(alice):
    dest = f"{PROJECT}.alice.by_country"
    config = bigquery.QueryJobConfig(destination=dest, write_disposition="WRITE_TRUNCATE")
    sql = ("SELECT c.country, COUNT(*) AS n FROM demo.orders o JOIN demo.customers c "
           "USING (customer_id) GROUP BY c.country")
    rows = list(alice.query(sql, job_config=config).result())
    assert alice.get_table(dest).num_rows == len(rows) == 9
    job = alice.query(f"CREATE OR REPLACE TABLE alice.big_orders AS "
                      f"SELECT * FROM demo.orders WHERE amount > 300")
    job.result()
    assert job.statement_type == "CREATE_TABLE_AS_SELECT"
    over_400 = next(iter(alice.query("SELECT COUNT(*) AS n FROM alice.big_orders WHERE amount > 400").result())).n
    before = alice.get_table("alice.big_orders").num_rows
    assert 0 < over_400 < before  # the seeded orders have some of each
    dml = alice.query("DELETE FROM alice.big_orders WHERE amount > 400")
    dml.result()
    assert dml.num_dml_affected_rows == over_400
    assert alice.get_table("alice.big_orders").num_rows == before - over_400
    job = alice.query("INSERT INTO alice.big_orders (order_id, amount) VALUES (-1, 1)")
    job.result()
    assert job.num_dml_affected_rows == 1
    alice.query("DROP TABLE alice.big_orders").result()
    alice.delete_table(dest)


# -- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql, fragment",
    [
        ("SELEC 1", "Syntax error"),
        ("SELECT * FROM demo.INFORMATION_SCHEMA.TABLES", "INFORMATION_SCHEMA is not supported"),
        ("SELECT 1; SELECT 2", "Multi-statement"),
        ("SELECT no_such_column FROM demo.orders", "no_such_column"),
        ("SELECT * FROM ML.PREDICT(MODEL demo.m, (SELECT 1))", "not supported"),
        ("SELECT * FROM orders", "must be qualified with a dataset"),
        ("SELECT * FROM read_csv('/etc/passwd')", "not supported"),
        ("SELECT * FROM `demo./etc/passwd`", "Invalid table ID"),
        ("INSTALL httpfs", "not supported"),
        ("SET x = 1", "not supported"),
    ],
    ids=["syntax", "information-schema", "script", "bad-column", "tvf", "unqualified",
         "file-read", "path-as-table", "install", "set"],
)
def test_bad_sql_is_a_clear_bad_request(alice, sql, fragment):
    with pytest.raises(exceptions.BadRequest) as info:
        alice.query(sql).result()
    assert fragment in str(info.value)
    with pytest.raises(exceptions.BadRequest):
        alice.query_and_wait(sql)


def test_unknown_table_is_not_found(alice):
    with pytest.raises(exceptions.NotFound, match="demo.nope"):
        alice.query("SELECT * FROM demo.nope").result()
    with pytest.raises(exceptions.NotFound):
        alice.get_table(f"{DEMO}.nope")


# -- authorization -------------------------------------------------------------


def test_alice_cannot_touch_bobs_dataset(alice, bob):
    bob.query("CREATE OR REPLACE TABLE bob.secrets AS SELECT 'bob-only' AS s").result()
    with pytest.raises(exceptions.Forbidden, match="bob") as info:
        alice.query("SELECT * FROM bob.secrets").result()
    assert "accessDenied" in json.dumps(info.value.errors) or info.value.code == 403
    with pytest.raises(exceptions.Forbidden):
        alice.query_and_wait("SELECT * FROM bob.secrets")
    with pytest.raises(exceptions.Forbidden, match="bob"):
        alice.query("CREATE TABLE bob.planted AS SELECT 1 AS x").result()
    with pytest.raises(exceptions.Forbidden):
        alice.get_dataset(f"{PROJECT}.bob")
    with pytest.raises(exceptions.Forbidden):
        list(alice.list_tables("bob"))
    with pytest.raises(exceptions.Forbidden):
        list(alice.list_rows(f"{PROJECT}.bob.secrets"))
    with pytest.raises(exceptions.Forbidden):
        alice.load_table_from_dataframe(pd.DataFrame({"x": [1]}), f"{PROJECT}.bob.planted").result()
    with pytest.raises(exceptions.Forbidden):
        alice.delete_table(f"{PROJECT}.bob.secrets")
    with pytest.raises(exceptions.Forbidden):
        alice.create_dataset(f"{PROJECT}.bob2")
    # a CTE named like bob's table does not hide a real reference
    with pytest.raises(exceptions.Forbidden):
        alice.query("WITH secrets AS (SELECT 1 AS s) SELECT * FROM bob.secrets").result()
    assert [d.dataset_id for d in alice.list_datasets()] == ["alice", "demo"]
    assert [r.s for r in bob.query("SELECT s FROM bob.secrets").result()] == ["bob-only"]
    assert [t.table_id for t in bob.list_tables("bob")] == ["secrets"]


def test_alice_cannot_see_bobs_jobs(alice, bob):
    job = bob.query("SELECT 42 AS answer")
    job.result()
    with pytest.raises(exceptions.NotFound):
        alice.get_job(job.job_id)


def test_read_only_dataset_cannot_be_written(alice, bq_emulator):
    before = bq_emulator.engine.num_rows(
        __import__("labdeck.emulators.bigquery.translate", fromlist=["TableRef"]).TableRef(
            PROJECT, "demo", "orders"))
    statements = [
        "INSERT INTO demo.orders (order_id) VALUES (-1)",
        "DELETE FROM demo.orders WHERE TRUE",
        "UPDATE demo.orders SET amount = 0 WHERE TRUE",
        "CREATE TABLE demo.mine AS SELECT 1 AS x",
        "DROP TABLE demo.orders",
        "TRUNCATE TABLE demo.orders",
    ]
    for sql in statements:
        with pytest.raises(exceptions.Forbidden, match="demo"):
            alice.query(sql).result()
    config = bigquery.QueryJobConfig(destination=f"{DEMO}.copy")
    with pytest.raises(exceptions.Forbidden):
        alice.query("SELECT 1 AS x", job_config=config).result()
    with pytest.raises(exceptions.Forbidden):
        alice.delete_table(f"{DEMO}.orders")
    with pytest.raises(exceptions.Forbidden):
        alice.insert_rows_json(f"{DEMO}.orders", [{"order_id": -1}])
    with pytest.raises(exceptions.Forbidden):
        alice.load_table_from_dataframe(pd.DataFrame({"order_id": [-1]}), f"{DEMO}.orders").result()
    assert alice.get_table(f"{DEMO}.orders").num_rows == before == 6000


def test_jobs_only_in_granted_projects(bq_emulator):
    client = bigquery.Client(project="someone-elses-project",
                             credentials=LocalTokenCredentials(bq_emulator.tokens["alice"]))
    with pytest.raises(exceptions.Forbidden, match="someone-elses-project"):
        client.query("SELECT 1").result()


@pytest.mark.parametrize(
    "make_token",
    [
        lambda: token_for("alice", {"demo": "ro"}, ttl=60, now=time.time() - 3600),
        lambda: __import__("labdeck.emulators.bigquery.tokens", fromlist=["issue"]).issue(
            b"not-the-key-" + b"y" * 20, {"sub": "alice", "admin": True}, ttl=600),
        lambda: "garbage",
    ],
    ids=["expired", "forged", "garbage"],
)
def test_bad_tokens_are_unauthorized(bq_emulator, make_token):
    token = make_token()
    client = bigquery.Client(project=PROJECT, credentials=LocalTokenCredentials(token))
    with pytest.raises(exceptions.Unauthorized):
        client.query("SELECT 1").result()
    with pytest.raises(exceptions.Unauthorized):
        client.get_table(f"{DEMO}.orders")
    response = requests.get(f"{bq_emulator.url}/bigquery/v2/projects/{PROJECT}/datasets",
                            headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["status"] == "UNAUTHENTICATED"
    assert token not in response.text


def test_missing_token_and_unknown_route(bq_emulator):
    response = requests.get(f"{bq_emulator.url}/bigquery/v2/projects/{PROJECT}/datasets", timeout=5)
    assert response.status_code == 401
    response = requests.get(f"{bq_emulator.url}/nowhere",
                            headers={"Authorization": f"Bearer {bq_emulator.tokens['alice']}"}, timeout=5)
    assert response.status_code == 404
    assert response.json()["error"]["errors"][0]["reason"] == "notFound"


def test_tokens_never_in_logs_or_error_bodies(bq_emulator, alice):
    with pytest.raises(exceptions.Forbidden) as info:
        alice.query("SELECT * FROM bob.secrets2").result()
    text = str(info.value) + json.dumps(info.value.errors)
    logs = "\n".join(bq_emulator.logs.lines)
    assert "sub=alice" in logs  # the access log names the principal...
    for secret in list(bq_emulator.tokens.values()) + [KEY.decode()]:
        assert secret not in logs  # ...but never a token or the key
        assert secret not in text
        for part in secret.split("."):
            assert len(part) < 20 or part not in logs


# -- the CLI -----------------------------------------------------------------


def test_cli_serves_seeded_demo(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "labdeck.emulators.bigquery", "--port", "0",
         "--bind", "127.0.0.1", "--data-dir", str(tmp_path / "data"), "--key-file", str(key_file),
         "--project", PROJECT, "--seed"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()  # bounded by the test deadline
        assert "listening on http://127.0.0.1:" in line, line
        url = line.split()[-3]
        token = token_for("carol", {"demo": "ro"})
        client = bigquery.Client(project=PROJECT, credentials=LocalTokenCredentials(token),
                                 client_options={"api_endpoint": url})
        (row,) = client.query("SELECT COUNT(*) AS n FROM demo.customers").result()
        assert row.n == 2000
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert "sub=carol" in err
    assert token not in err and KEY.decode() not in err
    assert oct(os.stat(tmp_path / "data").st_mode & 0o777) == "0o700"


def test_duckdb_itself_has_no_file_access(bq_emulator):
    """Defense in depth: even SQL that slipped past the translator cannot read files."""
    from labdeck.emulators.bigquery.errors import ApiError
    from labdeck.emulators.bigquery.translate import Translation

    for sql in ["SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM '/etc/passwd'",
                "SET enable_external_access = true"]:
        with pytest.raises(ApiError) as info:
            bq_emulator.engine.run_query(Translation(sql=sql, statement_type="SELECT"))
        assert info.value.code == 400
