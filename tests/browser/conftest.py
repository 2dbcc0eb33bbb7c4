"""Browser tests: a real platform (its own state dir) driven by Debian's headless Chromium.

Playwright (the Python package, with its own bundled driver) drives
``/usr/bin/chromium``; it never downloads a browser. Each test gets a fresh
browser profile (``--user-data-dir`` in a temporary directory), so logins do
not leak between tests. Screenshots go to ``test-artifacts/browser/``; a failing
test leaves ``FAILED-<test>.png`` there too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import pytest
import requests

from tests.helpers.platform import ROOT, start_platform

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
#: a profile only members of this group see (and may start)
TEAM_GROUP = "data-team"
TEAM_PROFILE = {
    "slug": "team-lab",
    "display_name": "JupyterLab for the data team",
    "description": "JupyterLab with the data team's shared prefixes mounted in its grants.",
    "groups": [TEAM_GROUP],
    "default_url": "/lab",
}

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser_platform(tmp_path_factory):
    from labdeck.spawner.profiles import DEFAULT_PROFILES

    base = tmp_path_factory.mktemp("labdeck-browser")
    profiles_file = base / "profiles.json"
    profiles_file.write_text(json.dumps([*DEFAULT_PROFILES, TEAM_PROFILE], indent=2))
    plat = start_platform(base / "state", extra_env={"LABDECK_PROFILES_FILE": str(profiles_file)})
    try:
        yield plat
    finally:
        rc = plat.stop()
        assert rc == 0, f"labdeck up exited with {rc}:\n{plat.logs()[-5000:]}"


class AdminAPI:
    """The hub REST API with the supervisor's service token (in a header, never a URL)."""

    def __init__(self, plat):
        self.base = plat.url + "/hub/api"
        token = (plat.state_dir / "secrets" / "supervisor_token").read_text().strip()
        self.headers = {"Authorization": f"token {token}"}

    def __call__(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        return requests.request(method, self.base + path, headers=self.headers, **kw)

    def ensure_user(self, name: str) -> None:
        r = self("POST", f"/users/{name}")
        assert r.status_code in (201, 409), r.text[:200]

    def servers(self, name: str) -> dict:
        r = self("GET", f"/users/{name}")
        r.raise_for_status()
        return r.json().get("servers") or {}


@pytest.fixture(scope="session")
def admin_api(browser_platform) -> AdminAPI:
    api = AdminAPI(browser_platform)
    api.ensure_user("admin")
    r = api("POST", f"/groups/{TEAM_GROUP}", json={"users": ["admin"]})
    assert r.status_code in (201, 409), r.text[:200]
    if r.status_code == 409:
        api("POST", f"/groups/{TEAM_GROUP}/users", json={"users": ["admin"]}).raise_for_status()
    return api


@pytest.fixture(scope="module")
def playwright_driver():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps` (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        yield pw
    finally:
        pw.stop()


@pytest.fixture
def browser(playwright_driver, request, artifacts):
    """A fresh Chromium profile for one test (its own cookies, storage and cache)."""
    profile = tempfile.mkdtemp(prefix="labdeck-chromium-")
    ctx = playwright_driver.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 860},
    )
    ctx.set_default_timeout(30_000)
    ctx.set_default_navigation_timeout(60_000)
    try:
        yield ctx
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            for i, page in enumerate(ctx.pages):
                try:
                    page.screenshot(path=str(artifacts / f"FAILED-{request.node.name}-{i}.png"), full_page=True)
                except Exception:
                    pass
        ctx.close()
        shutil.rmtree(profile, ignore_errors=True)
