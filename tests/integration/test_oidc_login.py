"""Company login in ``labdeck up``: a real OIDC provider process, its login form, groups, grants, and attacks.

The provider is oidc-provider-mock on 127.0.0.1 (tests/helpers/oidc.py). The
hub gets only ``LABDECK_OIDC_*`` and ``LABDECK_PUBLIC_URL``, plus a values
file that routes its token requests through :class:`TokenSwap` (a
pass-through, except in the audience test).
"""

from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import pytest
import requests

from tests.helpers import journey
from tests.helpers.oidc import OIDCProvider, TokenSwap, authorize, finish, hub_client, oidc_login, start_login
from tests.helpers.platform import free_port, start_platform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    provider = OIDCProvider.start(tmp_path_factory.mktemp("idp"))
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="module")
def swap(idp):
    s = TokenSwap(idp.url + "/oauth2/token")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, idp, swap):
    root = tmp_path_factory.mktemp("oidc-hub")
    values = root / "values.yaml"
    values.write_text(f"auth:\n  oauth:\n    tokenUrl: {swap.url}\n")
    port = free_port()
    env = idp.hub_env(
        public_url=f"http://127.0.0.1:{port}",
        LABDECK_PORT=str(port),
        LABDECK_OIDC_ADMIN_GROUPS="platform-admins",
        LABDECK_VALUES_FILE=str(values),
    )
    plat = start_platform(root / "state", extra_env=env)
    try:
        yield plat
    finally:
        plat.stop()


def admin_api(hub, method, path, **kw):
    token = (hub.state_dir / "secrets" / "supervisor_token").read_text().strip()
    return requests.request(method, f"{hub.url}/hub/api{path}", headers={"Authorization": f"token {token}"}, timeout=10, **kw)


def logged_in_as(hub, session) -> str | None:
    r = session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=10)
    if r.status_code != 200:
        return None
    return session.get(f"{hub.url}/hub/api/user", headers={"Referer": f"{hub.url}/hub/home"}, timeout=10).json().get("name")


def test_client_secret_is_only_in_its_0600_file(hub, idp):
    secret_file = hub.state_dir / "secrets" / "oidc_client_secret"
    assert secret_file.read_text() == idp.client_secret
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert idp.client_secret not in (hub.state_dir / "settings.json").read_text()
    assert idp.client_secret not in hub.logs()
    for pid_file in (hub.state_dir / "run").glob("*.pid"):
        cmdline = open(f"/proc/{pid_file.read_text().strip()}/cmdline", "rb").read().decode(errors="replace")
        assert idp.client_secret not in cmdline, pid_file.stem


def test_login_page_offers_the_company_login_and_uses_pkce_and_state(hub, idp):
    page = requests.get(f"{hub.url}/hub/login", timeout=10)
    assert "company login" in page.text
    login = start_login(hub.url)
    target = urlparse(login.authorize_url)
    assert f"{target.scheme}://{target.netloc}" == idp.url  # found by discovery
    q = parse_qs(target.query)
    assert q["client_id"] == [idp.client_id]
    assert q["redirect_uri"] == [f"{hub.url}/hub/oauth_callback"]
    assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) >= 43
    assert q["state"][0]
    assert "openid" in q["scope"][0].split()


def test_login_through_the_provider_form_brings_groups(hub, idp):
    idp.set_user("u-1001", preferred_username="Alice", groups=["analysts", "platform-admins"])
    session = oidc_login(hub.url, "u-1001")
    assert logged_in_as(hub, session) == "alice"
    model = admin_api(hub, "GET", "/users/alice").json()
    assert sorted(model["groups"]) == ["analysts", "platform-admins"]
    assert model["admin"] is True

    # groups follow the provider at every login
    idp.set_user("u-1001", preferred_username="Alice", groups=["ml"])
    oidc_login(hub.url, "u-1001")
    model = admin_api(hub, "GET", "/users/alice").json()
    assert model["groups"] == ["ml"]
    assert model["admin"] is False


def test_group_grant_opens_the_shared_prefix_only_to_members(hub, idp):
    idp.set_user("u-carol", preferred_username="carol", groups=["analysts"])
    idp.set_user("u-dave", preferred_username="dave", groups=["sales"])
    carol = hub_client(hub.url, oidc_login(hub.url, "u-carol"), "carol")
    dave = hub_client(hub.url, oidc_login(hub.url, "u-dave"), "dave")
    try:
        carol.start_server()
        # the same step as the chart journey in tests/kube (there the analysts grant is read-write)
        journey.group_grant(journey.Target(name="make up", url=hub.url), carol, dave, "shared/analysts/targets.csv", write=False)
    finally:
        for person in (carol, dave):
            try:
                person.stop_server()
            except Exception:
                pass


def test_wrong_state_is_refused_and_logs_nobody_in(hub, idp):
    idp.set_user("u-mallory", preferred_username="mallory", groups=["analysts"])
    login = authorize(start_login(hub.url), "u-mallory")
    parts = urlparse(login.callback_url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    q["state"] = "eyJzdGF0ZV9pZCI6ICJmb3JnZWQifQ=="  # {"state_id": "forged"}
    r = finish(login, urlunparse(parts._replace(query=urlencode(q))))
    assert r.status_code == 400
    assert "does not match the login started in this browser" in r.text
    assert logged_in_as(hub, login.session) is None
    assert admin_api(hub, "GET", "/users/mallory").status_code == 404


def test_forged_and_replayed_callbacks_are_refused(hub, idp):
    idp.set_user("u-erin", preferred_username="erin", groups=[])
    login = authorize(start_login(hub.url), "u-erin")
    # a stolen callback URL opened in another browser (no login started there)
    thief = requests.Session()
    r = thief.get(login.callback_url, allow_redirects=False, timeout=30)
    assert r.status_code == 400 and "no matching login in this browser" in r.text
    assert logged_in_as(hub, thief) is None
    # a made-up code with the browser's real state: the provider refuses it, nobody is logged in
    parts = urlparse(login.callback_url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    forged = urlunparse(parts._replace(query=urlencode({**q, "code": "forged-code"})))
    r = finish(login, forged)
    assert r.status_code == 403 and "refused this login" in r.text
    assert logged_in_as(hub, login.session) is None
    assert admin_api(hub, "GET", "/users/erin").status_code == 404

    # the real login works once; the same callback replayed afterwards does not
    login = authorize(start_login(hub.url), "u-erin")
    assert finish(login).status_code == 302
    assert logged_in_as(hub, login.session) == "erin"
    replay = requests.Session()
    r = replay.get(login.callback_url, allow_redirects=False, timeout=30)
    assert r.status_code == 400
    r = finish(login)  # same browser: its state was consumed by the first use
    assert r.status_code == 400


def test_id_token_for_another_application_is_refused(hub, idp, swap):
    idp.set_user("u-frank", preferred_username="frank", groups=["analysts"])
    swap.id_token = idp.token_for("u-frank", client_id="some-other-app")["id_token"]
    try:
        login = authorize(start_login(hub.url), "u-frank")
        r = finish(login)
    finally:
        swap.id_token = None
    assert r.status_code == 403
    assert "issued for another application" in r.text
    assert swap.id_token is None and "eyJ" not in r.text  # no token echoed on the page
    assert logged_in_as(hub, login.session) is None
    assert admin_api(hub, "GET", "/users/frank").status_code == 404


def test_unreachable_provider_gets_an_error_page(hub, idp):
    """Last in this module: it stops the provider."""
    idp.set_user("u-grace", preferred_username="grace", groups=[])
    login = authorize(start_login(hub.url), "u-grace")
    idp.stop()
    r = finish(login)
    assert r.status_code == 503
    assert "identity provider is unreachable" in r.text
    assert logged_in_as(hub, login.session) is None
    assert admin_api(hub, "GET", "/users/grace").status_code == 404
