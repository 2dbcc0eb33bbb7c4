"""Runs end to end on the real platform: hub, proxy, moto, broker, the runs service and a real
named server per run whose kernel executes papermill with the user's own S3 credentials."""

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest
import requests

from .conftest import read_s3_json, write_notebook

pytestmark = pytest.mark.integration

READ_S3 = [
    "import boto3, csv, io, os\n"
    "body = boto3.client('s3').get_object(Bucket='labdeck-data', Key='shared/demo/trips.csv')['Body'].read().decode()\n"
    "rows = list(csv.DictReader(io.StringIO(body)))\n"
    "print('result', n * 2, label, len(rows))",
    "bq = os.environ.get('GOOGLE_CLOUD_PROJECT')\n"
    "if bq:\n"
    "    from google.cloud import bigquery\n"
    "    print('bq', list(bigquery.Client().query('select 1 as x').result())[0].x)\n"
    "else:\n"
    "    print('bq skipped: GOOGLE_CLOUD_PROJECT not set in the server')",
]


def runs_api(client, method, path, **kw):
    kw.setdefault("timeout", 30)
    return requests.request(method, f"{client.base}/services/runs/api{path}", headers=client.headers(), **kw)


def wait_run(client, run_id, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = runs_api(client, "GET", f"/runs/{run_id}")
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("succeeded", "failed", "timed_out"):
            return r.json()
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish")


def outputs_text(nb) -> str:
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") if isinstance(out.get("text", ""), str) else "".join(out["text"]))
            if out.get("output_type") == "error":
                parts.append(f"{out['ename']}: {out['evalue']}")
    return "".join(parts)


@pytest.fixture(scope="module")
def params_nb(platform, alice):
    return write_notebook(platform, "alice", "reports/params.ipynb", READ_S3, parameters="n = 1\nlabel = 'default'")


@pytest.fixture(scope="module")
def first_run(alice, params_nb):
    r = runs_api(alice, "POST", "/runs", json={"notebook": "reports/params.ipynb", "parameters": {"n": 21, "label": "hello"}, "timeout": 120})
    assert r.status_code == 201, r.text
    return wait_run(alice, r.json()["id"])


def test_parameterized_run_reads_s3_and_writes_immutable_output(platform, alice, params_nb, first_run, reader):
    before = hashlib.sha256(params_nb.read_bytes()).hexdigest()
    run = first_run
    assert run["status"] == "succeeded", run
    assert run["output"].startswith("s3://labdeck-data/home/alice/runs/reports/params/")
    assert run["input_sha256"] == before == hashlib.sha256(params_nb.read_bytes()).hexdigest()
    nb = read_s3_json(reader, run["output"])
    tags = [c["metadata"].get("tags", []) for c in nb["cells"]]
    assert tags[0] == ["parameters"] and tags[1] == ["injected-parameters"]
    assert "n = 21" in "".join(nb["cells"][1]["source"]) and "hello" in "".join(nb["cells"][1]["source"])
    text = outputs_text(nb)
    assert "result 42 hello 2000" in text
    if "bq skipped" in text:
        print("BigQuery part skipped: GOOGLE_CLOUD_PROJECT is not set in the run's server")
    else:
        assert "bq 1" in text
    meta = nb["metadata"]["labdeck"]
    assert meta["status"] == "succeeded" and meta["parameters"] == {"n": 21, "label": "hello"}
    assert meta["input_sha256"] == before and meta["run_id"] == run["id"] and meta["started"] and meta["finished"]
    record = read_s3_json(reader, run["record"])
    assert record["status"] == "succeeded" and record["output"] == run["output"]
    # the run's server is gone
    servers = alice.api("GET", "/users/alice").json().get("servers") or {}
    assert f"run-{run['id']}" not in servers


def test_rerun_gives_a_new_distinct_output(alice, first_run, reader):
    r = runs_api(alice, "POST", "/runs", json={"notebook": "reports/params.ipynb", "parameters": {"n": 1, "label": "again"}})
    assert r.status_code == 201
    second = wait_run(alice, r.json()["id"])
    assert second["status"] == "succeeded"
    assert second["output"] != first_run["output"]
    assert "result 42 hello" in outputs_text(read_s3_json(reader, first_run["output"]))
    assert "result 2 again" in outputs_text(read_s3_json(reader, second["output"]))


def test_failing_notebook_still_writes_its_output(platform, alice, reader):
    write_notebook(platform, "alice", "broken.ipynb", ["print('before')", "raise ValueError('boom-42')", "print('never')"])
    r = runs_api(alice, "POST", "/runs", json={"notebook": "broken.ipynb"})
    run = wait_run(alice, r.json()["id"])
    assert run["status"] == "failed"
    nb = read_s3_json(reader, run["output"])
    assert nb["metadata"]["labdeck"]["status"] == "failed"
    text = outputs_text(nb)
    assert "before" in text and "ValueError: boom-42" in text and "never" not in text


def test_timeout_is_recorded_timed_out(platform, alice, reader):
    write_notebook(platform, "alice", "slow.ipynb", ["print('started', flush=True)", "import time; time.sleep(120)"])
    r = runs_api(alice, "POST", "/runs", json={"notebook": "slow.ipynb", "timeout": 4})
    run = wait_run(alice, r.json()["id"], timeout=120)
    assert run["status"] == "timed_out", run
    nb = read_s3_json(reader, run["output"])
    assert nb["metadata"]["labdeck"]["status"] == "timed_out"


def test_cli_runs_with_token_from_env(platform, alice, params_nb):
    env = {**os.environ, "LABDECK_URL": platform.url, "LABDECK_TOKEN": alice.token}
    env.pop("JUPYTERHUB_API_TOKEN", None)
    out = subprocess.run(
        [sys.executable, "-m", "labdeck.hub.cli", "run", "reports/params.ipynb", "-p", "n", "5", "-p", "label", "cli", "--wait"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["status"] == "succeeded" and record["parameters"] == {"n": 5, "label": "cli"}
    assert alice.token not in out.stdout + out.stderr


def test_schedules_api(alice, bob):
    r = runs_api(alice, "POST", "/schedules", json={"notebook": "reports/params.ipynb", "cron": "0 6 * * *", "parameters": {"n": 2}, "enabled": False})
    assert r.status_code == 201, r.text
    sched = r.json()
    assert sched["owner"] == "alice" and sched["enabled"] is False
    assert [s["id"] for s in runs_api(alice, "GET", "/schedules").json()["schedules"]] == [sched["id"]]
    assert runs_api(bob, "GET", "/schedules").json()["schedules"] == []
    assert runs_api(bob, "GET", f"/schedules/{sched['id']}").status_code == 404
    assert runs_api(bob, "DELETE", f"/schedules/{sched['id']}").status_code == 404
    assert runs_api(bob, "GET", "/schedules?user=alice").status_code == 403
    assert runs_api(alice, "POST", "/schedules", json={"notebook": "a.ipynb", "cron": "61 * * * *"}).status_code == 400
    assert runs_api(alice, "POST", "/schedules", json={"notebook": "a.ipynb", "cron": "* * * * * *"}).status_code == 400
    assert runs_api(alice, "DELETE", f"/schedules/{sched['id']}").status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        {"notebook": "../bob/x.ipynb"}, {"notebook": "/etc/passwd.ipynb"}, {"notebook": ".labdeck/aws_config.ipynb"},
        {"notebook": "a.py"}, {"notebook": "a/../../x.ipynb"}, {"notebook": "a.ipynb", "parameters": {"x": [1]}},
        {"notebook": "a.ipynb", "parameters": {"os.system('x')": 1}}, {"notebook": "a.ipynb", "parameters": "n=1"},
        {"notebook": "a.ipynb", "profile": "../x"}, {"notebook": "a.ipynb", "timeout": 10**9}, {"notebook": "a.ipynb", "user": "bob"},
    ],
    ids=lambda b: json.dumps(b)[:40],
)
def test_hostile_input_is_400(alice, body):
    before = len(runs_api(alice, "GET", "/runs").json()["runs"])
    r = runs_api(alice, "POST", "/runs", json=body)
    assert r.status_code == 400, r.text
    assert len(runs_api(alice, "GET", "/runs").json()["runs"]) == before


def test_users_see_only_their_own_runs(alice, bob, admin, first_run):
    rid = first_run["id"]
    assert runs_api(bob, "GET", f"/runs/{rid}").status_code == 404
    assert all(r["owner"] == "bob" for r in runs_api(bob, "GET", "/runs").json()["runs"])
    assert runs_api(bob, "GET", "/runs?user=alice").status_code == 403
    assert runs_api(admin, "GET", f"/runs/{rid}").status_code == 200
    assert any(r["id"] == rid for r in runs_api(admin, "GET", "/runs?user=alice").json()["runs"])


def test_token_rules(platform, alice):
    base = f"{platform.url}/services/runs/api/runs"
    assert requests.get(base, timeout=10).status_code in (401, 403)
    assert requests.get(base, headers={"Authorization": "token forged"}, timeout=10).status_code in (401, 403)
    r = requests.get(base + "?token=" + alice.token, timeout=10)
    assert r.status_code in (400, 401, 403)


def test_no_tokens_in_logs(platform, alice, bob, first_run):
    logs = platform.logs()
    secrets_dir = platform.state_dir / "secrets"
    for name in ("runs_token", "viewer_token", "broker_token"):
        assert (secrets_dir / name).read_text().strip() not in logs
    assert oct((secrets_dir / "viewer_aws_credentials").stat().st_mode & 0o777) == "0o600"
    assert alice.token not in logs and bob.token not in logs


def test_cli_inside_a_server_uses_the_servers_own_token(alice, params_nb):
    alice.start_server()
    k = alice.start_kernel()
    r = alice.execute(
        "import json, os, subprocess, sys\n"
        "cli = os.path.join(os.path.dirname(sys.executable), 'labdeck')\n"
        "out = subprocess.run([cli, 'run', 'reports/params.ipynb', '-p', 'n', '2', '-p', 'label', 'inside', '--wait'],\n"
        "                     capture_output=True, text=True, timeout=280)\n"
        "print(out.returncode, json.loads(out.stdout)['status'] if out.returncode == 0 else out.stderr[-400:])",
        k,
        timeout=300,
    ).check()
    assert r.stdout.split() == ["0", "succeeded"]
