"""Warm from the first second: the pool is warm before ``labdeck up``'s banner, credentials come at login.

One real platform (``labdeck up``: hub, proxy, broker, moto, BigQuery
emulator). The first person after the banner gets a warm server; their
credentials were issued when they logged in (with a token the hub makes for
that call only and deletes), so their spawn's broker call is served from the
broker's cache; a person whose grants cannot be issued still logs in.
"""

from __future__ import annotations

import json
import os
import time

import pytest
import requests

from labdeck.hub import contract
from labdeck.hub.login import NOTE
from tests.helpers.hubclient import HubClient
from labdeck.spawner.local import pagemerge
from tests.helpers.platform import person, pid_of, server_pid, session_platform

pytestmark = pytest.mark.integration


platform = session_platform("warm-start", scope="module")  # a platform of its own


def hub_log(plat) -> str:
    return (plat.state_dir / "logs" / "hub.log").read_text(errors="replace")


def broker_health(plat) -> dict:
    url = contract.service_url(plat.url, contract.BROKER) + contract.HEALTH_ROUTE
    return requests.get(url, timeout=10).json()


def progress_messages(client: HubClient) -> list[str]:
    r = client.api("POST", client.server_path(), json={})
    assert r.status_code in (201, 202), r.text
    out = []
    with requests.get(f"{client.base}/hub/api{client.server_path()}/progress", headers=client.headers(), stream=True, timeout=120) as events:
        for line in events.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                out.append(event.get("message", ""))
                if event.get("ready") or event.get("failed"):
                    break
    return out


def wait_for_line(plat, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in hub_log(plat):
        assert time.monotonic() < deadline, f"{text!r} not in the hub log after {timeout} s"
        time.sleep(0.1)


def test_the_pool_is_warm_when_the_banner_shows_and_the_first_person_gets_a_warm_server(platform):
    ready = requests.get(f"{platform.url}/hub/labdeck/ready", timeout=10)
    assert ready.status_code == 200 and ready.json() == {"ready": True, "warm": True}
    log = hub_log(platform)
    assert "warm pool: zygote" in log and "Claimed warm server" not in log  # nobody has spawned yet

    first = HubClient(platform.url).login("first-after-start", platform.password)
    messages = progress_messages(first)
    assert "Server process started (warm)" in messages, messages
    assert messages[-1].startswith("Server ready"), messages


def test_servers_and_only_servers_are_marked_for_same_page_merging(platform):
    if pagemerge.process_marked(os.getpid()) is None:
        pytest.skip("this kernel does not report same-page merging (/proc/<pid>/ksm_stat)")
    log = hub_log(platform)
    assert "same-page merging: " in log  # what the setting gives on this machine, said once
    assert "servers marked for same-page merging" in log
    person(platform, "merge-check", started=True)
    pid = server_pid(platform, "merge-check")
    assert pid and pagemerge.process_marked(pid) is True
    for component in ("hub", "proxy", "broker"):  # they hold everybody's secrets: never scanned, never merged
        assert pagemerge.process_marked(pid_of(platform, component)) is False, component


def test_the_hub_database_is_in_wal_mode_and_readable_by_the_hub_only(platform):
    import sqlite3
    import stat

    db = platform.state_dir / "jupyterhub.sqlite"
    assert sqlite3.connect(db).execute("pragma journal_mode").fetchone() == ("wal",)
    for f in (db, db.with_name(db.name + "-wal")):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_credentials_are_issued_at_login_and_the_spawn_is_served_from_the_cache(platform):
    before = broker_health(platform)
    clouds = len(before["providers"])
    person = HubClient(platform.url).login("issued-at-login", platform.password)
    wait_for_line(platform, "Credentials for issued-at-login issued at login")
    at_login = broker_health(platform)
    assert at_login["upstream_calls"] - before["upstream_calls"] == clouds
    assert at_login["requests_served"] - before["requests_served"] == clouds

    messages = progress_messages(person)
    assert messages[-1].startswith("Server ready"), messages
    after = broker_health(platform)
    assert after["requests_served"] - at_login["requests_served"] == clouds  # the spawn asked...
    assert after["upstream_calls"] == at_login["upstream_calls"]  # ...and the cache answered

    # the hub's token for that call is gone, and no log line holds a token
    tokens = person.api("GET", f"/users/{person.name}/tokens").json()["api_tokens"]
    assert [t for t in tokens if t["note"] == NOTE] == []
    assert person.token not in hub_log(platform)


