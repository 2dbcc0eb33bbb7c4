"""jupyter-scheduler shapes <-> labdeck runs and schedules (labdeck.runs.job_mapping), pure."""

import json

import pytest

from labdeck.runs import job_mapping as jm

RUN = {
    "id": "0123456789ab", "owner": "alice", "notebook": "reports/daily.ipynb", "parameters": {"n": 3, "label": "x"},
    "profile": "jupyterlab", "status": "succeeded", "schedule_id": "ba9876543210",
    "created": "2026-12-04T03:00:00.000Z", "started": "2026-12-04T03:00:05.000Z", "finished": "2026-12-04T03:01:00.000Z",
    "output": "s3://labdeck-data/home/alice/runs/reports/daily/20261204T030000Z-0123456789ab.ipynb", "error": None,
    "staged_input": "job-inputs/20261204T030000Z-abcd/daily.ipynb",
    "meta": {"name": "daily", "input_filename": "daily.ipynb", "environment": "jupyterlab", "output_formats": ["ipynb", "html"]},
}


def test_describe_job_whole_dict():
    assert jm.describe_job(RUN, "/services/viewer/view/") == {
        "job_id": "run-0123456789ab", "name": "daily", "input_filename": "daily.ipynb",
        "runtime_environment_name": "jupyterlab", "runtime_environment_parameters": None,
        "output_formats": ["ipynb", "html"], "parameters": {"n": "3", "label": "x"}, "tags": [],
        "job_definition_id": "schedule-ba9876543210", "url": "/services/viewer/view/" + RUN["output"],
        "create_time": 1796353200000, "update_time": 1796353260000, "start_time": 1796353205000, "end_time": 1796353260000,
        "status": "COMPLETED", "status_message": None, "idempotency_token": None, "package_input_folder": False, "packaged_files": [],
    }


@pytest.mark.parametrize("status, expect", [("queued", "QUEUED"), ("starting", "IN_PROGRESS"), ("running", "IN_PROGRESS"),
                                            ("succeeded", "COMPLETED"), ("failed", "FAILED"), ("timed_out", "FAILED")])
def test_statuses(status, expect):
    assert jm.describe_job({**RUN, "status": status})["status"] == expect


def test_ids_round_trip_and_refuse_foreign_shapes():
    assert jm.run_id_of(jm.job_id("0123456789ab")) == "0123456789ab"
    assert jm.schedule_id_of(jm.definition_id("ba9876543210")) == "ba9876543210"
    for bad in ("run-../../x", "0123456789ab", "schedule-0123456789ab", "run-0123456789AB", ""):
        with pytest.raises(jm.MappingError) as e:
            jm.run_id_of(bad)
        assert e.value.status == 404


def test_parameters_typed_like_the_cli_and_validated():
    assert jm.parameters_in({"n": "21", "f": "0.5", "b": "true", "s": "hello", "z": None}) == {"n": 21, "f": 0.5, "b": True, "s": "hello", "z": None}
    assert jm.parameters_in(None) == {}
    for bad in ({"n": {"a": 1}}, {"n": [1]}, {"not ok": "1"}, {"class": "1"}, "n=1"):
        with pytest.raises(jm.MappingError):
            jm.parameters_in(bad)
    assert jm.parameters_out({"n": 3, "s": "x", "b": False}) == {"n": "3", "s": "x", "b": "false"}


@pytest.mark.parametrize("uri", ["../x.ipynb", "/etc/x.ipynb", "a/../../x.ipynb", ".hidden/x.ipynb", "file:///x.ipynb", "x.py", "", None])
def test_input_outside_the_home_is_refused(uri):
    with pytest.raises(jm.MappingError):
        jm.home_relative(uri)


def test_environments_from_the_spawner_and_fallback():
    envs = jm.environments(json.dumps([{"slug": "jupyterlab", "display_name": "JupyterLab (Python)", "description": "Py."}]))
    assert [e["name"] for e in envs] == ["jupyterlab"] and envs[0]["utc_only"] and envs[0]["output_formats"] == ["ipynb", "html"]
    assert [e["name"] for e in jm.environments(None)] == ["default"]
    assert [e["name"] for e in jm.environments("not json")] == ["default"]
    assert jm.profile_of("jupyterlab", envs) == "jupyterlab"
    with pytest.raises(jm.MappingError, match="Unknown runtime environment"):
        jm.profile_of("gpu", envs)


def test_formats_timezones_and_staging_keys():
    assert jm.output_formats_in(["html"]) == ["ipynb", "html"]
    with pytest.raises(jm.MappingError):
        jm.output_formats_in(["pdf"])
    jm.check_timezone("UTC")
    with pytest.raises(jm.MappingError, match="UTC"):
        jm.check_timezone("Europe/Paris")
    assert jm.staged_key("reports/daily.ipynb", 0, "abcd") == "job-inputs/19700101T000000Z-abcd/daily.ipynb"


def test_filters_sort_and_pages():
    jobs = [{"name": f"j{i}", "status": "COMPLETED" if i % 2 else "FAILED", "create_time": i, "tags": []} for i in range(5)]
    assert [j["name"] for j in jobs if jm.matches(j, status="FAILED")] == ["j0", "j2", "j4"]
    page, token = jm.sort_and_page(jobs, [{"name": "create_time", "direction": "desc"}], 2, None)
    assert [j["name"] for j in page] == ["j4", "j3"] and token == "2"
    page, token = jm.sort_and_page(jobs, [{"name": "create_time", "direction": "desc"}], 2, "4")
    assert [j["name"] for j in page] == ["j0"] and token is None
    with pytest.raises(jm.MappingError):
        jm.sort_and_page(jobs, [], "x", None)
