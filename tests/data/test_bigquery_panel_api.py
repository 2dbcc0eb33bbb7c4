"""The BigQuery panel's server API in a real user server (labdeck.data.bigquery): granted datasets and
their tables, a table's schema and first rows, the person's jobs, and cancelling a kernel's query."""

import time

import pytest

from tests.emulators.test_bigquery_jobs import CANCELLED, SLOW_SQL

from .conftest import call

pytestmark = pytest.mark.integration


def test_datasets_are_the_grants_with_their_tables(alice):
    r = call(alice, "GET", "bigquery/datasets")
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [d["id"] for d in body["datasets"]]
    assert ids == ["labdeck-local.user_alice", "labdeck-local.demo"]
    demo = body["datasets"][1]
    assert demo["access"] == "ro" and {"customers", "orders", "products"} <= {t["id"] for t in demo["tables"]}


def test_table_schema_and_preview(alice):
    r = call(alice, "GET", "bigquery/table", params={"id": "labdeck-local.demo.customers"})
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["num_rows"] == 2000
    assert [f["name"] for f in t["schema"]][:2] == ["customer_id", "name"]
    assert t["preview"]["columns"] == [f["name"] for f in t["schema"]]
    assert len(t["preview"]["rows"]) == 20


@pytest.mark.parametrize("table, status", [
    ("labdeck-local.user_bob.x", 403),
    ("labdeck-local.demo.nope", 404),
    ("demo.customers", 400),
    ("labdeck-local.demo.customers; drop", 400),
])
def test_bad_tables_are_refused(alice, table, status):
    assert call(alice, "GET", "bigquery/table", params={"id": table}).status_code == status


def test_a_kernels_slow_query_is_listed_running_and_cancelled_from_the_panel(alice, bob, alice_kernel):
    r = alice.execute(
        "from google.cloud import bigquery\n"
        "panel_job = bigquery.Client().query(" + repr(SLOW_SQL) + ")\n"
        "print(panel_job.job_id)",
        alice_kernel,
    ).check()
    job_id = r.stdout.strip()
    deadline = time.monotonic() + 30
    row = None
    while time.monotonic() < deadline:
        jobs = call(alice, "GET", "bigquery/jobs").json()["jobs"]
        row = next((j for j in jobs if j["id"] == job_id), None)
        if row and row["state"] == "RUNNING":
            break
        time.sleep(0.2)
    assert row and row["state"] == "RUNNING", row
    assert row["sql"].startswith("SELECT COUNT(*) AS n FROM UNNEST") and row["elapsed_ms"] >= 0
    # bob's panel neither lists nor cancels alice's job
    assert job_id not in [j["id"] for j in call(bob, "GET", "bigquery/jobs").json()["jobs"]]
    assert call(bob, "POST", f"bigquery/jobs/{job_id}/cancel").status_code == 404
    r = call(alice, "POST", f"bigquery/jobs/{job_id}/cancel", params={"location": row["location"]})
    assert r.status_code == 200, r.text
    out = alice.execute(
        "try:\n"
        "    panel_job.result()\n"
        "    print('FINISHED')\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)",
        alice_kernel,
    ).check()
    assert CANCELLED in out.stdout
    done = next(j for j in call(alice, "GET", "bigquery/jobs").json()["jobs"] if j["id"] == job_id)
    assert done["state"] == "DONE" and done["cancelled"] is True and CANCELLED in done["error"]


def test_bad_job_ids_are_refused(alice):
    assert call(alice, "POST", "bigquery/jobs/..%2F..%2Fx/cancel").status_code in (400, 404)
    assert call(alice, "POST", "bigquery/jobs/job_doesnotexist/cancel").status_code == 404
