"""One token check on every labdeck service API (labdeck.hub.service.TokenAuthMixin).

A JupyterHub API token in the query string of an API call is refused with a
clear 400 and never used, whether or not a valid header comes with it, and a
refused call changes nothing. Real broker, runs and viewer behind the real
proxy of ``labdeck up``.
"""

import pytest
import requests

from labdeck.hub.service import URL_TOKEN_REFUSED

from .conftest import write_notebook

pytestmark = pytest.mark.integration


def api_urls(platform) -> dict:
    broker = f"http://127.0.0.1:{platform.settings()['broker_port']}/services/broker/"
    return {
        "broker": broker + "aws/credentials",
        "broker-whoami": broker + "whoami",
        "runs": f"{platform.url}/services/runs/api/runs",
        "schedules": f"{platform.url}/services/runs/api/schedules",
        "viewer": f"{platform.url}/services/viewer/api/shares",
    }


@pytest.mark.parametrize("api", ["broker", "broker-whoami", "runs", "schedules", "viewer"])
@pytest.mark.parametrize("with_header", [False, True])
def test_query_string_token_is_refused(platform, alice, api, with_header):
    url = api_urls(platform)[api]
    headers = alice.headers() if with_header else {}
    ok = requests.get(url, headers=alice.headers(), timeout=30)
    assert ok.status_code == 200, ok.text  # the same token in the header works
    r = requests.get(url, params={"token": alice.token}, headers=headers, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == URL_TOKEN_REFUSED
    assert alice.token not in r.text


def test_refused_calls_change_nothing(platform, alice):
    urls = api_urls(platform)
    write_notebook(platform, "alice", "token_rules.ipynb", ["1 + 1"])
    runs_before = requests.get(urls["runs"], headers=alice.headers(), timeout=30).json()["runs"]
    r = requests.post(urls["runs"], params={"token": alice.token}, json={"notebook": "token_rules.ipynb"}, timeout=30)
    assert r.status_code == 400
    r = requests.post(urls["schedules"], params={"token": alice.token}, json={"notebook": "token_rules.ipynb", "cron": "0 6 * * *"}, timeout=30)
    assert r.status_code == 400
    r = requests.post(urls["viewer"], params={"token": alice.token}, headers=alice.headers(), json={"path": "token_rules.ipynb", "user": "bob"}, timeout=30)
    assert r.status_code == 400
    assert requests.get(urls["runs"], headers=alice.headers(), timeout=30).json()["runs"] == runs_before
    assert not [s for s in requests.get(urls["schedules"], headers=alice.headers(), timeout=30).json()["schedules"] if s["notebook"] == "token_rules.ipynb"]
    assert not [s for s in requests.get(urls["viewer"], headers=alice.headers(), timeout=30).json()["shares"] if s["path"] == "token_rules.ipynb"]
    assert alice.token not in platform.logs()


def test_runs_api_without_a_token_is_401(platform):
    r = requests.get(api_urls(platform)["runs"], timeout=30)
    assert r.status_code == 401 and "Authorization" in r.json()["error"]


def test_runs_api_refusals_say_why(platform, alice):
    url = api_urls(platform)["runs"]
    r = requests.get(url, headers={"Authorization": "token not-a-real-token"}, timeout=30)
    assert r.status_code == 401 and r.json()["error"] == "Invalid or expired JupyterHub API token"
    # a token without access to the runs service (scopes limited to reading the user's own model)
    r = alice.api("POST", "/users/alice/tokens", json={"note": "no runs access", "expires_in": 600, "scopes": ["read:users!user"]})
    assert r.status_code == 201, r.text
    r = requests.get(url, headers={"Authorization": f"token {r.json()['token']}"}, timeout=30)
    assert r.status_code == 403 and "may not use the runs service" in r.json()["error"]
