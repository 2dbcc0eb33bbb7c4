"""Data in JupyterLab as alice uses it (issue 26), in headless Chromium on the real embedded default:
the S3 drive (her home and the demo prefix, a CSV from S3, a notebook saved to S3 and listed by
`aws s3 ls`, a refused save into the demo data, bob's home refused by URL) and the BigQuery panel
(demo.customers with its schema; a slow query from her kernel seen running and cancelled)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.emulators.test_bigquery_jobs import CANCELLED, SLOW_SQL
from tests.helpers.hubclient import HubClient

from .test_browser import login, shot
from .test_lab_jobs_and_shares import open_lab, start_server

pytestmark = pytest.mark.browser


def aws_ls(plat, url) -> str:
    """``aws s3 ls`` as alice (her own credentials, in her server)."""
    alice = HubClient(plat.url).login("alice", plat.password)
    kernel = alice.start_kernel()
    out = alice.execute(
        f"import subprocess; print(subprocess.run(['aws', 's3', 'ls', {url!r}], capture_output=True, text=True).stdout)",
        kernel,
    ).check()
    return out.stdout


def aws_cat(plat, url) -> str:
    """``aws s3 cp <url> -`` as alice: the object's text."""
    alice = HubClient(plat.url).login("alice", plat.password)
    kernel = alice.start_kernel()
    return alice.execute(
        f"import subprocess; print(subprocess.run(['aws', 's3', 'cp', {url!r}, '-'], capture_output=True, text=True).stdout)",
        kernel,
    ).check().stdout


def s3_item(page, name):
    return page.locator(f"#labdeck-s3 .jp-DirListing-item[title^='Name: {name}']").first


def open_sidebar(page, panel_id):
    tab = page.locator(f".jp-SideBar .lm-TabBar-tab[data-id='{panel_id}']")
    tab.wait_for(state="visible")
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()


def new_notebook(page):
    """A new notebook in the home (the launcher creates it where the last-used file browser is)."""
    open_sidebar(page, "filebrowser")
    page.locator("#filebrowser .jp-DirListing-content").click()
    card = page.locator(".jp-LauncherCard[data-category='Notebook']").first
    if not card.is_visible():
        tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Launcher")
        if tab.count():
            tab.first.click()
        else:
            page.locator("#filebrowser .jp-ToolbarButtonComponent[data-command='launcher:create']").first.click()
    card.click()
    cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
    cell.wait_for(state="visible", timeout=60_000)
    return cell


def save_as(page, path):
    page.keyboard.press("Control+Shift+S")
    box = page.locator(".jp-Dialog input").first
    box.wait_for(state="visible")
    box.fill(path)
    page.locator(".jp-Dialog .jp-mod-accept").first.click()


def test_s3_drive_in_the_file_browser(browser, browser_platform, admin_api, artifacts):
    plat = browser_platform
    start_server(admin_api, "alice")
    page = browser.new_page()
    login(page, plat, "alice")
    open_lab(page, plat, "alice", "")
    open_sidebar(page, "labdeck-s3")
    expect(s3_item(page, "home")).to_be_visible(timeout=60_000)
    expect(page.locator("#labdeck-s3 .jp-DirListing-item")).to_have_count(2)
    expect(s3_item(page, "shared")).to_be_visible()
    s3_item(page, "home").dblclick()
    expect(s3_item(page, "alice")).to_be_visible()
    expect(page.locator("#labdeck-s3 .jp-DirListing-item")).to_have_count(1)  # never bob's home
    page.locator("#labdeck-s3 .jp-BreadCrumbs-home").click()
    s3_item(page, "shared").dblclick()
    s3_item(page, "demo").dblclick()
    s3_item(page, "trips.csv").dblclick()
    expect(page.locator(".lm-TabBar-tab", has_text="trips.csv")).to_be_visible(timeout=60_000)
    page.locator(".jp-CSVViewer").first.wait_for(state="visible")
    shot(page, artifacts, "26-s3-drive-trips-csv")

    # a new notebook where the S3 browser is, the read-only demo prefix: IAM refuses, nothing is written
    launcher = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Launcher")
    launcher.first.click()
    page.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
    dialog = page.locator(".jp-Dialog").filter(has_text="S3 refused to write s3://labdeck-data/shared/demo/")
    expect(dialog).to_contain_text("Access Denied", timeout=30_000)
    shot(page, artifacts, "26-s3-drive-refused-save")
    dialog.locator("button").last.click()
    assert "Untitled" not in aws_ls(plat, "s3://labdeck-data/shared/demo/")

    # in her S3 home: the notebook is saved there and `aws s3 ls` lists it
    page.locator("#labdeck-s3 .jp-BreadCrumbs-home").click()
    s3_item(page, "home").dblclick()
    s3_item(page, "alice").dblclick()
    launcher.first.click()
    page.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
    cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
    cell.wait_for(state="visible", timeout=60_000)
    cell.click()
    page.keyboard.insert_text("print('saved in S3')")
    page.keyboard.press("Control+s")
    box, name = page.locator(".jp-Dialog input"), "Untitled.ipynb"
    try:
        box.first.wait_for(state="visible", timeout=5_000)  # "Rename file" on the first save
        box.first.fill("from-the-lab.ipynb")
        page.locator(".jp-Dialog .jp-mod-accept").first.click()
        name = "from-the-lab.ipynb"
    except Exception:  # noqa: BLE001 - this JupyterLab saves untitled files without asking
        pass
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty")).to_have_count(0, timeout=30_000)
    expect(s3_item(page, name)).to_be_visible(timeout=30_000)
    shot(page, artifacts, "26-s3-drive-saved-notebook")
    assert name in aws_ls(plat, "s3://labdeck-data/home/alice/")
    assert "saved in S3" in aws_cat(plat, f"s3://labdeck-data/home/alice/{name}")

    # bob's home by URL: refused, with the reason
    page.goto(f"{plat.url}/user/alice/lab/tree/S3:home/bob?reset")
    refused = page.locator(".jp-Dialog").filter(has_text="not shared with you")
    expect(refused).to_be_visible(timeout=120_000)
    shot(page, artifacts, "26-s3-drive-bobs-home-refused")


def test_bigquery_panel_tables_and_cancelling_a_kernels_query(browser, browser_platform, admin_api, artifacts):
    plat = browser_platform
    start_server(admin_api, "alice")
    page = browser.new_page()
    login(page, plat, "alice")
    open_lab(page, plat, "alice", "")
    cell = new_notebook(page)
    open_sidebar(page, "labdeck-bigquery")
    page.locator("a[data-table='labdeck-local.demo.customers']").click()
    schema = page.locator(".labdeck-bq-schema")
    expect(schema).to_contain_text("customer_id", timeout=60_000)
    expect(schema).to_contain_text("INTEGER")
    expect(page.locator(".labdeck-bq-preview tr")).to_have_count(21)  # header + first 20 rows
    shot(page, artifacts, "26-bigquery-panel-table")

    # the panel inserts a query cell into the notebook
    page.locator(".labdeck-bq-insert-python").click()
    expect(page.locator(".jp-Notebook .jp-Cell").nth(1)).to_contain_text("labdeck-local.demo.customers")

    # a slow query from the kernel: running in the panel, cancelled there, the error in the notebook
    cell.click()
    page.keyboard.insert_text(f"from google.cloud import bigquery\nbigquery.Client().query({SLOW_SQL!r}).result()")
    page.keyboard.press("Shift+Enter")
    running = page.locator(".labdeck-bq-job[data-state='RUNNING']").first
    expect(running).to_be_visible(timeout=60_000)
    expect(running).to_contain_text("SELECT COUNT(*) AS n FROM UNNEST")
    shot(page, artifacts, "26-bigquery-panel-running-query")
    running.locator(".labdeck-bq-cancel").click()
    expect(page.locator(".labdeck-bq-job[data-state='CANCELLED']").first).to_be_visible(timeout=30_000)
    output = page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-OutputArea")
    expect(output).to_contain_text(CANCELLED, timeout=60_000)
    shot(page, artifacts, "26-bigquery-panel-cancelled-query")
