"""Without OS users (not root, or LABDECK_OS_USERS=0) labdeck says so: at start and on every page."""

import pytest

pytestmark = pytest.mark.integration


def test_start_banner_and_pages_say_servers_are_not_isolated(platform, alice):
    assert "WARNING: Servers on this machine are not isolated" in platform.log_path.read_text()
    assert "not isolated from each other" in alice.http.get(f"{platform.url}/hub/home", timeout=10).text
    import requests

    login_page = requests.get(f"{platform.url}/hub/login", timeout=10).text  # nobody logged in
    assert "not isolated from each other" in login_page
