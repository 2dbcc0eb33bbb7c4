"""Runs and shares from the JupyterLab UI, in headless Chromium (issue 17).

jupyter-scheduler's own UI ("Create Notebook Job", Notebook Jobs) on labdeck's
runs service, and labdeck's share dialog and Shares panel (@labdeck/lab), on
the real embedded default. Every wait is on a selector or page condition with
a bounded timeout.
"""

from __future__ import annotations

import re

import nbformat
import pytest
import requests
from playwright.sync_api import expect

from .test_browser import login, shot

pytestmark = pytest.mark.browser

RUN_TIMEOUT_MS = 240_000
#: GET a server API from the page the way JupyterLab's ServerConnection does (cookie + XSRF header)
FETCH_JSON = """async (u) => {
  const xsrf = (document.cookie.match('\\b_xsrf=([^;]*)\\b') || [])[1] || '';
  const r = await fetch(u, {credentials: 'same-origin', headers: {'X-XSRFToken': decodeURIComponent(xsrf)}});
  return {status: r.status, ...(await r.json())};
}"""


def write_nb(plat, user, path, cells, parameters=None):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    if parameters is not None:
        nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    target = plat.state_dir / "homes" / user / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(nbformat.writes(nb))
    return target


def start_server(admin_api, user):
    admin_api.ensure_user(user)
    r = admin_api("POST", f"/users/{user}/server", json={})
    assert r.status_code in (201, 202, 400), r.text
    deadline_ok = False
    for _ in range(480):
        srv = admin_api.servers(user).get("")
        if srv and srv.get("ready"):
            deadline_ok = True
            break
        import time

        time.sleep(0.25)
    assert deadline_ok, f"{user}'s server did not become ready"


def stop_server(admin_api, user):
    import time

    admin_api("DELETE", f"/users/{user}/server")
    for _ in range(240):
        if "" not in admin_api.servers(user):
            return
        time.sleep(0.25)
    raise AssertionError(f"{user}'s server did not stop")


def open_lab(page, plat, user, folder):
    # ?reset: a fresh workspace, whatever an earlier test left open
    page.goto(f"{plat.url}/user/{user}/lab" + (f"/tree/{folder}" if folder else "") + "?reset")
    page.locator("#jp-main-dock-panel").wait_for(state="visible", timeout=120_000)
    listing = page.locator("#filebrowser .jp-DirListing-content")  # the home's browser (not the S3 drive's)
    tab = page.locator(".jp-SideBar .lm-TabBar-tab[data-id='filebrowser']")
    tab.wait_for(state="visible")
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()  # the left area came up collapsed: open the file browser
    listing.wait_for(state="visible")


def file_item(page, name):
    return page.locator(f"#filebrowser .jp-DirListing-item[title^='Name: {name}']").first


def test_notebook_job_from_the_ui_survives_a_server_restart(browser, browser_platform, admin_api, artifacts):
    plat = browser_platform
    write_nb(plat, "erin", "jobs_ui/report.ipynb", ["print('report for', n * 2)"], parameters="n = 1")
    start_server(admin_api, "erin")
    page = browser.new_page()
    login(page, plat, "erin")
    open_lab(page, plat, "erin", "jobs_ui")

    file_item(page, "report.ipynb").click(button="right")
    page.locator(".lm-Menu-itemLabel", has_text="Create Job").first.click()
    page.get_by_role("button", name="Create").wait_for(state="visible")
    page.fill("#jp-create-job-jobName", "report from the UI")
    page.locator("button[title='Add new parameter']").click()
    page.locator("input[name='parameter-0-name']").press_sequentially("n")
    page.locator("input[name='parameter-0-value']").press_sequentially("21")
    page.locator("input[name='parameter-0-value']").press("Tab")  # the form validates on blur
    expect(page.get_by_role("button", name="Create")).to_be_enabled()
    shot(page, artifacts, "17-create-notebook-job")
    page.get_by_role("button", name="Create").click()
    # the Notebook Jobs list opens with the new job
    row = page.locator("tr", has_text="report from the UI").first
    row.wait_for(state="visible", timeout=60_000)

    # the author stops the server (closes the laptop); the run goes on in its own server
    stop_server(admin_api, "erin")
    import time

    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    job = None
    while time.monotonic() < deadline:
        r = requests.get(f"{plat.url}/services/runs/api/runs", headers=_user_headers(plat, admin_api, "erin"), timeout=30)
        runs = [x for x in r.json()["runs"] if (x.get("meta") or {}).get("name") == "report from the UI"]
        if runs and runs[0]["status"] in ("succeeded", "failed", "timed_out"):
            job = runs[0]
            break
        time.sleep(1)
    assert job and job["status"] == "succeeded" and job["parameters"] == {"n": 21}, job

    # back the next morning: restart, the Notebook Jobs panel shows it completed, open its output
    start_server(admin_api, "erin")
    open_lab(page, plat, "erin", "jobs_ui")
    # the Notebook Jobs panel (the launcher's "Jobs" card) lists it as completed, from the runs service
    # (JupyterLab restores the Jobs tab as it was left: the Create Job form; Cancel shows the list)
    jobs_tab = page.locator(".lm-TabBar-tab", has_text="Jobs")
    if jobs_tab.count() == 0:
        page.locator(".jp-LauncherCard", has_text="Jobs").first.click()
    else:
        jobs_tab.first.click()
        cancel = page.get_by_role("button", name="Cancel")
        if cancel.count():
            cancel.first.click()
    row = page.locator("tr", has_text="report from the UI").first
    expect(row).to_contain_text("Completed", timeout=60_000)
    shot(page, artifacts, "17-notebook-jobs-completed")
    # "Download" brings the immutable output into jobs/; open it
    row.locator("button[aria-label='download']").click()
    out_link = row.locator("a", has_text=re.compile("Notebook", re.I)).first
    try:
        out_link.wait_for(state="visible", timeout=60_000)
    finally:
        (artifacts / "jobs-list.html").write_text(row.inner_html())
    out_link.click()
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output", has_text="report for 42").first.wait_for(
        state="visible", timeout=60_000
    )
    shot(page, artifacts, "17-job-output")


_TOKENS = {}


def _user_headers(plat, admin_api, user):
    if user not in _TOKENS:
        from tests.helpers.hubclient import HubClient

        _TOKENS[user] = HubClient(plat.url).login(user, plat.password).token
    return {"Authorization": f"token {_TOKENS[user]}"}


def second_context(playwright_driver):
    import tempfile

    from .conftest import CHROMIUM, CHROMIUM_ARGS

    ctx = playwright_driver.chromium.launch_persistent_context(
        tempfile.mkdtemp(prefix="labdeck-chromium-"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 860},
    )
    ctx.set_default_timeout(30_000)
    return ctx


def write_output_nb(plat, user, path, text):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    cell = nbformat.v4.new_code_cell("print('figure')")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text + "\n")]
    nb.cells.append(cell)
    target = plat.state_dir / "homes" / user / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(nbformat.writes(nb))


def open_shares_panel(page):
    page.locator(".jp-SideBar .lm-TabBar-tab[data-id='labdeck-shares']").click()
    page.locator(".labdeck-shares-panel").wait_for(state="visible")


def test_share_an_output_with_bob_then_revoke(browser, playwright_driver, browser_platform, admin_api, artifacts):
    plat = browser_platform
    write_output_nb(plat, "alice", "outputs/result.ipynb", "shared figure 1234")
    start_server(admin_api, "alice")
    start_server(admin_api, "bob")
    page = browser.new_page()
    login(page, plat, "alice")
    open_lab(page, plat, "alice", "outputs")

    file_item(page, "result.ipynb").click(button="right")
    page.locator(".lm-Menu-itemLabel", has_text="Share read-only link").first.click()
    page.locator(".labdeck-share-name").fill("bob")
    page.locator(".labdeck-share-expiry").select_option("7")
    shot(page, artifacts, "17-share-dialog")
    page.get_by_role("button", name="Share").click()
    link_box = page.locator(".labdeck-share-link")
    link_box.wait_for(state="visible", timeout=60_000)
    link = link_box.input_value()
    assert "/services/viewer/s/" in link
    page.locator(".labdeck-copy-link").click()
    expect(page.locator(".labdeck-copy-link")).to_have_text("Copied")
    shot(page, artifacts, "17-share-link")
    page.get_by_role("button", name="Done").click()

    bob_ctx = second_context(playwright_driver)
    try:
        bob = bob_ctx.new_page()
        login(bob, plat, "bob")
        open_lab(bob, plat, "bob", "")
        open_shares_panel(bob)
        entry = bob.locator(".labdeck-shared-with-me a.labdeck-share-open", has_text="result.ipynb").first
        entry.wait_for(state="visible", timeout=30_000)
        shot(bob, artifacts, "17-shared-with-me")
        with bob_ctx.expect_page() as opened:
            entry.click()
        view = opened.value
        view.wait_for_load_state()
        expect(view.locator("body")).to_contain_text("shared figure 1234", timeout=60_000)

        # alice revokes from "My shares"
        open_shares_panel(page)
        mine = page.locator(".labdeck-my-shares li", has_text="result.ipynb").first
        mine.wait_for(state="visible")
        mine.locator(".labdeck-revoke").click()
        expect(page.locator(".labdeck-my-shares li", has_text="result.ipynb")).to_have_count(0, timeout=30_000)

        resp = view.reload()
        assert resp.status == 410
        expect(view.locator(".labdeck-share-refused")).to_contain_text("revoked")
        shot(view, artifacts, "17-revoked-link")
    finally:
        bob_ctx.close()


def test_daily_job_definition_from_the_ui_and_its_runs(browser, browser_platform, admin_api, artifacts):
    plat = browser_platform
    write_nb(plat, "erin", "jobs_ui/daily.ipynb", ["print('daily says', n + 1)"], parameters="n = 1")
    start_server(admin_api, "erin")
    page = browser.new_page()
    login(page, plat, "erin")
    open_lab(page, plat, "erin", "jobs_ui")
    file_item(page, "daily.ipynb").click(button="right")
    page.locator(".lm-Menu-itemLabel", has_text="Create Job").first.click()
    page.get_by_role("button", name="Create").wait_for(state="visible")
    page.fill("#jp-create-job-jobName", "daily report")
    page.locator("input[name='createType'][value='JobDefinition']").check()
    page.locator("[id^='jp-create-job-createType-definition-interval'][role='button'], [role='combobox'][id*='interval']").first.click()
    page.locator("li[role='option']", has_text=re.compile(r"^Day$")).click()
    clock = page.locator("input[name='scheduleClock']")
    clock.fill("")
    clock.press_sequentially("06:30")
    clock.press("Tab")
    shot(page, artifacts, "17-create-definition")
    page.get_by_role("button", name="Create").click()
    page.locator("tr", has_text="daily report").first.wait_for(state="visible", timeout=60_000)

    # the definition is a labdeck schedule (daily, UTC)
    headers = _user_headers(plat, admin_api, "erin")
    scheds = requests.get(f"{plat.url}/services/runs/api/schedules", headers=headers, timeout=30).json()["schedules"]
    daily = next(x for x in scheds if (x.get("meta") or {}).get("name") == "daily report")
    assert daily["cron"] == "30 6 * * *" and daily["enabled"] and daily["staged_input"], daily
    # not waiting a day: the schedule's run is triggered through the runs API ("run now" of that schedule)
    r = requests.post(f"{plat.url}/services/runs/api/schedules/{daily['id']}/runs", headers=headers, json={}, timeout=30)
    assert r.status_code == 201, r.text

    # its runs appear under the job definition in the Lab
    page.locator("tr", has_text="daily report").first.locator("a").first.click()
    runs_row = page.locator("tr", has_text="daily report").first
    import time

    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        reload = page.get_by_role("button", name="Reload", exact=True)
        if reload.count():
            reload.first.click()
        if runs_row.count() and "Completed" in (runs_row.inner_text() or ""):
            break
        page.wait_for_timeout(2000)
    expect(runs_row).to_contain_text("Completed")
    shot(page, artifacts, "17-definition-runs")
