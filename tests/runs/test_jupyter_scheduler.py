"""jupyter-scheduler's REST routes in a real user server, answered by labdeck's runs service
(labdeck.runs.jupyter_scheduler): real hub, proxy, moto, broker, runs service, named servers per run."""

import json
import time

import nbformat
import pytest
import requests

from .conftest import write_notebook
from .test_runs import runs_api, wait_run

pytestmark = pytest.mark.integration

NB = "jobs_demo/params.ipynb"


def sched(client, method, path, **kw):
    """As the Lab does: /user/<name>/scheduler/..., with the person's token."""
    kw.setdefault("timeout", 60)
    return requests.request(method, f"{client.server_url()}scheduler/{path}", headers=client.headers(), **kw)


def job_body(**over):
    body = {
        "name": "params job", "input_uri": NB, "runtime_environment_name": "jupyterlab",
        "parameters": {"n": "21"}, "output_formats": ["ipynb", "html"],
    }
    body.update(over)
    return body


@pytest.fixture(scope="module")
def servers(platform, alice, bob):
    write_notebook(platform, "alice", NB, ["print('job says', n * 2)"], parameters="n = 1")
    started = [c for c in (alice, bob) if "" not in (c.api("GET", f"/users/{c.name}").json().get("servers") or {})]
    for c in started:
        c.start_server()
    yield alice, bob
    for c in started:  # leave the session's platform as this module found it
        if "" in (c.api("GET", f"/users/{c.name}").json().get("servers") or {}):
            c.stop_server()


def test_runtime_environments_are_the_allowed_profiles(servers):
    alice, _ = servers
    r = sched(alice, "GET", "runtime_environments")
    assert r.status_code == 200, r.text
    envs = {e["name"]: e for e in r.json()}
    assert "jupyterlab" in envs and envs["jupyterlab"]["label"] == "JupyterLab (Python)"
    assert envs["jupyterlab"]["output_formats"] == [{"name": "ipynb", "label": "Notebook"}, {"name": "html", "label": "HTML"}]
    assert envs["jupyterlab"]["utc_only"] is True
    # RStudio is not installed on this machine: the spawn form disables it, so jobs cannot use it either
    assert "rstudio" not in envs
    features = sched(alice, "GET", "config").json()["supported_features"]
    assert features["stop_job"] is False and features["delete_job"] is True


def test_job_survives_its_authors_server_and_downloads(platform, servers):
    alice, _ = servers
    r = sched(alice, "POST", "jobs", json=job_body())
    assert r.status_code == 200, r.text
    job_id = r.json()["job_id"]
    assert job_id.startswith("run-")
    # the input was staged into the S3 home; the run reads that snapshot
    run = runs_api(alice, "GET", f"/runs/{job_id[4:]}").json()
    assert run["staged_input"].startswith("job-inputs/") and run["notebook"] == NB and run["parameters"] == {"n": 21}
    # editing the notebook now changes nothing for this job (the snapshot is what runs)
    write_notebook(platform, "alice", NB, ["print('edited later', n)"], parameters="n = 1")

    alice.stop_server()  # the author closes the laptop
    run = wait_run(alice, job_id[4:])
    assert run["status"] == "succeeded", run
    alice.start_server()

    jobs = sched(alice, "GET", "jobs").json()
    assert jobs["total_count"] >= 1
    mine = next(j for j in jobs["jobs"] if j["job_id"] == job_id)
    assert mine["status"] == "COMPLETED" and mine["name"] == "params job" and mine["parameters"] == {"n": "21"}
    assert mine["runtime_environment_name"] == "jupyterlab" and mine["end_time"] >= mine["create_time"]
    assert sched(alice, "GET", "jobs", params={"status": "COMPLETED"}).json()["total_count"] >= 1
    assert sched(alice, "GET", "jobs/count", params={"status": "COMPLETED"}).json()["count"] >= 1

    r = sched(alice, "GET", f"jobs/{job_id}/download_files")
    assert r.status_code == 204, r.text
    job = sched(alice, "GET", f"jobs/{job_id}").json()
    assert job["downloaded"] is True
    files = {f["file_format"]: f["file_path"] for f in job["job_files"]}
    home = platform.state_dir / "homes" / "alice"
    out = nbformat.read(str(home / files["ipynb"]), as_version=4)
    text = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    assert "job says 42" in text and "edited later" not in text
    assert out.metadata["labdeck"]["run_id"] == job_id[4:]
    assert "job says 42" in (home / files["html"]).read_text()
    assert "print('job says'" in (home / files["input"]).read_text()
    assert files["ipynb"].startswith("jobs/")
    # no second job database next to the runs service (jupyter-scheduler's default is a sqlite file here)
    assert not list(home.glob(".local/share/jupyter/scheduler*.sqlite"))

    # batch delete forgets the record; the immutable output stays in S3
    r = sched(alice, "DELETE", "batch/jobs", params={"job_id": job_id})
    assert r.status_code == 204, r.text
    assert sched(alice, "GET", f"jobs/{job_id}").status_code == 404
    assert runs_api(alice, "GET", f"/runs/{job_id[4:]}").status_code == 404


@pytest.mark.parametrize(
    "over, status, words",
    [
        ({"runtime_environment_name": "no-such-env"}, 400, "Unknown runtime environment"),
        ({"runtime_environment_name": "rstudio"}, 400, "Unknown runtime environment"),
        ({"input_uri": "../bob/x.ipynb"}, 400, "inside your home"),
        ({"input_uri": "/etc/passwd.ipynb"}, 400, "inside your home"),
        ({"input_uri": "jobs_demo/missing.ipynb"}, 400, "No notebook"),
        ({"parameters": {"n": {"nested": [1]}}}, 400, "parameters"),
        ({"parameters": {"not an identifier": "1"}}, 400, "identifier"),
        ({"output_formats": ["pdf"]}, 400, "Unsupported output format"),
        ({"package_input_folder": True}, 400, "input folder"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_bad_job_requests_are_refused_clearly(servers, over, status, words):
    alice, _ = servers
    before = runs_api(alice, "GET", "/runs").json()["runs"]
    r = sched(alice, "POST", "jobs", json=job_body(**over))
    assert r.status_code == status, r.text
    assert words in r.json()["message"]
    assert runs_api(alice, "GET", "/runs").json()["runs"] == before  # nothing was submitted


def test_malformed_bodies_are_400(servers):
    alice, _ = servers
    assert sched(alice, "POST", "jobs", data="[1, 2]").status_code == 400
    assert sched(alice, "POST", "jobs", data="{not json").status_code == 400
    r = sched(alice, "POST", "jobs", json={"name": "x"})
    assert r.status_code == 400 and "input_uri" in r.json()["message"]


def test_another_persons_job_is_404(servers):
    alice, bob = servers
    job_id = sched(alice, "POST", "jobs", json=job_body(name="alice only")).json()["job_id"]
    for method, path in [("GET", f"jobs/{job_id}"), ("DELETE", f"jobs/{job_id}"), ("GET", f"jobs/{job_id}/download_files"),
                         ("PATCH", f"jobs/{job_id}")]:
        r = sched(bob, method, path, json={"name": "mine now"} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
    assert sched(bob, "DELETE", "batch/jobs", params={"job_id": job_id}).status_code == 404
    assert all(j["job_id"] != job_id for j in sched(bob, "GET", "jobs").json()["jobs"])
    assert sched(alice, "GET", "jobs/run-000000000000").status_code == 404
    assert sched(alice, "GET", "jobs/not-a-run").status_code == 404
    # what labdeck cannot do is said, not a 500
    r = sched(alice, "PATCH", f"jobs/{job_id}", json={"status": "STOPPED"})
    assert r.status_code == 400 and "cannot stop" in r.json()["message"]
    wait_run(alice, job_id[4:])


def test_job_definitions_are_schedules_both_ways(servers):
    alice, bob = servers
    body = {k: v for k, v in job_body(name="daily params").items()}
    body.update(schedule="0 6 * * *", timezone="UTC")
    r = sched(alice, "POST", "job_definitions", json=body)
    assert r.status_code == 200, r.text
    jd = r.json()["job_definition_id"]
    sid = jd.split("-", 1)[1]
    s = runs_api(alice, "GET", f"/schedules/{sid}").json()
    assert s["cron"] == "0 6 * * *" and s["enabled"] and s["parameters"] == {"n": 21} and s["staged_input"]

    d = sched(alice, "GET", f"job_definitions/{jd}").json()
    assert d["active"] and d["schedule"] == "0 6 * * *" and d["name"] == "daily params"
    assert any(x["job_definition_id"] == jd for x in sched(alice, "GET", "job_definitions").json()["job_definitions"])

    # pause / resume / edit from the UI -> the labdeck schedule
    assert sched(alice, "PATCH", f"job_definitions/{jd}", json={"active": False}).status_code == 204
    assert runs_api(alice, "GET", f"/schedules/{sid}").json()["enabled"] is False
    assert sched(alice, "PATCH", f"job_definitions/{jd}", json={"active": True, "schedule": "30 7 * * *", "name": "renamed"}).status_code == 204
    s = runs_api(alice, "GET", f"/schedules/{sid}").json()
    assert s["enabled"] and s["cron"] == "30 7 * * *" and s["meta"]["name"] == "renamed"
    # ... and from the runs API (the CLI) -> the job definition
    assert runs_api(alice, "PATCH", f"/schedules/{sid}", json={"enabled": False}).status_code == 200
    assert sched(alice, "GET", f"job_definitions/{jd}").json()["active"] is False

    # bad edits change nothing
    r = sched(alice, "PATCH", f"job_definitions/{jd}", json={"schedule": "every day"})
    assert r.status_code == 400 and runs_api(alice, "GET", f"/schedules/{sid}").json()["cron"] == "30 7 * * *"
    assert sched(alice, "PATCH", f"job_definitions/{jd}", json={"timezone": "Europe/Paris"}).status_code == 400
    assert sched(bob, "GET", f"job_definitions/{jd}").status_code == 404
    assert sched(bob, "PATCH", f"job_definitions/{jd}", json={"active": True}).status_code == 404

    # "Run job" from the definition: a run of the schedule, with its own parameters
    r = sched(alice, "POST", f"job_definitions/{jd}/jobs", json={"parameters": {"n": "5"}})
    assert r.status_code == 200, r.text
    run = wait_run(alice, r.json()["job_id"][4:])
    assert run["status"] == "succeeded" and run["schedule_id"] == sid and run["parameters"] == {"n": 5}
    listed = sched(alice, "GET", "jobs", params={"job_definition_id": jd}).json()["jobs"]
    assert [j["job_id"] for j in listed] == [r.json()["job_id"]] and listed[0]["job_definition_id"] == jd

    # a schedule made with the CLI shows up as a job definition
    cli = runs_api(alice, "POST", "/schedules", json={"notebook": NB, "cron": "0 1 * * *", "parameters": {"n": 2}}).json()
    d = sched(alice, "GET", f"job_definitions/schedule-{cli['id']}").json()
    assert d["schedule"] == "0 1 * * *" and d["runtime_environment_name"] == "default" and d["parameters"] == {"n": "2"}

    # refusals
    assert sched(alice, "POST", "job_definitions", json={**body, "timezone": "America/New_York"}).status_code == 400
    r = sched(alice, "POST", "job_definitions", json={**body, "schedule": None})
    assert r.status_code == 400 and "needs a schedule" in r.json()["message"]

    # delete from the UI deletes the schedule; the runs it made stay
    assert sched(alice, "DELETE", f"job_definitions/{jd}").status_code == 204
    assert runs_api(alice, "GET", f"/schedules/{sid}").status_code == 404
    assert runs_api(alice, "GET", f"/runs/{run['id']}").status_code == 200
    assert sched(alice, "DELETE", f"job_definitions/schedule-{cli['id']}").status_code == 204
