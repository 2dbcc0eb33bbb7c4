"""Asynchronous query jobs on the local BigQuery endpoint, with the real google-cloud-bigquery client:
jobs are seen RUNNING, listed per identity, cancelled (the waiting client gets BigQuery's
cancellation error), and a long query blocks neither other people nor the table API."""

from __future__ import annotations

import concurrent.futures
import time

import pytest
import requests
from google.api_core import exceptions
from google.cloud import bigquery

from .conftest import PROJECT

#: runs for hours on DuckDB unless cancelled (10^12 rows)
SLOW_SQL = (
    "SELECT COUNT(*) AS n FROM UNNEST(GENERATE_ARRAY(1, 1000000)) AS a "
    "CROSS JOIN UNNEST(GENERATE_ARRAY(1, 1000000)) AS b WHERE MOD(a * b, 7) = 3"
)
CANCELLED = "Job execution was cancelled: User requested cancellation"


@pytest.fixture(scope="module")
def alice(bq_emulator):
    return bq_emulator.client("alice")


@pytest.fixture(scope="module")
def bob(bq_emulator):
    return bq_emulator.client("bob")


def wait_state(client, job_id, state, within=10.0):
    deadline = time.monotonic() + within
    job = client.get_job(job_id)
    while job.state != state and time.monotonic() < deadline:
        time.sleep(0.05)
        job = client.get_job(job_id)
    assert job.state == state, f"job {job_id} is {job.state}, not {state}"
    return job


def test_a_slow_query_runs_is_listed_for_its_owner_only_and_cancels(alice, bob):
    job = alice.query(SLOW_SQL)
    assert job.state in ("PENDING", "RUNNING")  # jobs.insert returns before the query ends
    running = wait_state(alice, job.job_id, "RUNNING")
    assert running.started is not None and running.ended is None

    mine = [j.job_id for j in alice.list_jobs(state_filter="running")]
    assert job.job_id in mine
    assert job.job_id not in [j.job_id for j in bob.list_jobs()]
    assert job.job_id not in [j.job_id for j in alice.list_jobs(state_filter="done")]
    with pytest.raises(exceptions.NotFound):
        bob.cancel_job(job.job_id)

    # while it runs, other work goes on: bob queries, alice lists tables and reads rows
    assert list(bob.query("SELECT 41 + 1 AS x").result())[0].x == 42
    assert "customers" in [t.table_id for t in alice.list_tables(f"{PROJECT}.demo")]
    assert len(list(alice.list_rows(f"{PROJECT}.demo.customers", max_results=3))) == 3

    # a kernel waiting for the job gets BigQuery's cancellation error when it is cancelled elsewhere
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(job.result)
        alice.cancel_job(job.job_id)
        with pytest.raises(exceptions.GoogleAPICallError) as info:
            waiting.result(timeout=20)
    assert CANCELLED in str(info.value)
    done = alice.get_job(job.job_id)
    assert done.state == "DONE" and done.error_result["reason"] == "stopped"
    assert done.ended is not None
    assert job.job_id in [j.job_id for j in alice.list_jobs(state_filter="done")]


def test_result_after_cancel_raises_and_nothing_was_written(alice):
    alice.query("CREATE TABLE IF NOT EXISTS alice.slow_target (n INT64)").result()
    job = alice.query(f"INSERT INTO alice.slow_target (n) {SLOW_SQL}")
    wait_state(alice, job.job_id, "RUNNING")
    alice.cancel_job(job.job_id)
    with pytest.raises(exceptions.GoogleAPICallError, match="cancelled"):
        job.result(timeout=20)
    assert list(alice.query("SELECT COUNT(*) AS c FROM alice.slow_target").result())[0].c == 0


def test_a_finished_job_keeps_its_result_when_cancelled(alice):
    job = alice.query("SELECT COUNT(*) AS n FROM demo.orders")
    assert list(job.result())[0].n == 6000
    alice.cancel_job(job.job_id)
    again = alice.get_job(job.job_id)
    assert again.state == "DONE" and again.error_result is None
    assert again.total_bytes_processed > 0  # an estimate from the table read
    assert again.ended >= again.started >= again.created


def test_jobs_query_returns_before_a_long_query_ends(bq_emulator):
    token = bq_emulator.tokens["alice"]
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{bq_emulator.url}/bigquery/v2/projects/{PROJECT}"
    r = requests.post(f"{base}/queries", json={"query": SLOW_SQL, "useLegacySql": False, "timeoutMs": 200},
                      headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["jobComplete"] is False and "rows" not in body
    job_id = body["jobReference"]["jobId"]
    r = requests.get(f"{base}/queries/{job_id}", params={"timeoutMs": 100}, headers=headers, timeout=10)
    assert r.json()["jobComplete"] is False
    r = requests.post(f"{base}/jobs/{job_id}/cancel", headers=headers, timeout=10)
    assert r.status_code == 200 and r.json()["kind"] == "bigquery#jobCancelResponse"
    r = requests.get(f"{base}/queries/{job_id}", params={"timeoutMs": 10000}, headers=headers, timeout=15)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["errors"][0]["reason"] == "stopped" and err["message"] == CANCELLED


def test_query_and_wait_still_returns_rows(alice):
    rows = alice.query_and_wait("SELECT customer_id FROM demo.customers ORDER BY customer_id LIMIT 3")
    assert [r.customer_id for r in rows] == [1, 2, 3]


def test_jobs_list_filters_and_refusals(bq_emulator, alice, bob):
    alice.query("SELECT 1 AS one").result()
    bob.query("SELECT 2 AS two").result()
    headers = {"Authorization": f"Bearer {bq_emulator.tokens['alice']}"}
    base = f"{bq_emulator.url}/bigquery/v2/projects/{PROJECT}/jobs"
    r = requests.get(base, params={"stateFilter": "exploded"}, headers=headers, timeout=10)
    assert r.status_code == 400 and "stateFilter" in r.json()["error"]["message"]
    r = requests.get(base, params={"allUsers": "true"}, headers=headers, timeout=10)
    assert r.status_code == 403
    owners = {j.user_email for j in alice.list_jobs()}
    assert owners == {"alice"}
    admin = bigquery.Client(project=PROJECT, credentials=bq_emulator.client("broker")._credentials)
    assert {"alice", "bob"} <= {j.user_email for j in admin.list_jobs(all_users=True)}
    page = requests.get(base, params={"maxResults": 1}, headers=headers, timeout=10).json()
    assert len(page["jobs"]) == 1 and page["nextPageToken"] == "1"
    entry = page["jobs"][0]
    assert entry["state"] == "DONE" and entry["configuration"]["query"]["query"]
