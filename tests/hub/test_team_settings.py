"""Team-VM settings (labdeck.hub.local.team): LABDECK_OIDC_*, LABDECK_PUBLIC_URL, LABDECK_TLS_* -> settings -> values -> Config."""

import json
import os

import pytest

from labdeck.hub.configurer import configure
from labdeck.hub.local import team
from labdeck.hub.local.settings import SettingsError, env_settings
from labdeck.hub.local.state import StateDir
from labdeck.hub.local.values import local_values
from labdeck.hub.modes import local_mode

from .test_configurer import SECRETS, SETTINGS

OIDC_ENV = {
    "LABDECK_OIDC_ISSUER": "https://login.example.com/realms/co/",
    "LABDECK_OIDC_CLIENT_ID": "labdeck",
    "LABDECK_OIDC_CLIENT_SECRET": "s3cr3t-value",
    "LABDECK_OIDC_ADMIN_GROUPS": "platform, ops ",
    "LABDECK_OIDC_ALLOWED_GROUPS": "",
    "LABDECK_PUBLIC_URL": "https://hub.example.com/",
}


def test_oidc_env_becomes_settings_without_the_secret():
    s = env_settings(OIDC_ENV)
    assert s["oidc"] == {
        "issuer": "https://login.example.com/realms/co",
        "client_id": "labdeck",
        "username_claim": "preferred_username",
        "groups_claim": "groups",
        "admin_groups": ["platform", "ops"],
        "allowed_groups": [],
    }
    assert s["public_url"] == "https://hub.example.com"
    assert "s3cr3t-value" not in json.dumps(s)


def test_oidc_settings_map_to_the_charts_auth_values_and_authenticator_config():
    settings = {**SETTINGS, **env_settings(OIDC_ENV)}
    values = local_values(settings, {team.OIDC_SECRET: "s3cr3t-value"})
    assert values["auth"]["type"] == "generic-oauth"
    assert "dev" not in values["auth"]
    assert values["auth"]["oauth"] == {
        "issuer": "https://login.example.com/realms/co",
        "clientId": "labdeck",
        "clientSecret": "s3cr3t-value",
        "callbackUrl": "https://hub.example.com/hub/oauth_callback",
        "usernameClaim": "preferred_username",
        "groupsClaim": "groups",
        "adminGroups": ["platform", "ops"],
        "allowedGroups": [],
        "allowAll": True,
        "loginService": "company login",
    }
    c = configure(values, local_mode(settings, SECRETS))
    assert c.JupyterHub.authenticator_class == "labdeck-oidc"
    assert c.LabdeckOIDCAuthenticator.issuer == "https://login.example.com/realms/co"
    g = c.GenericOAuthenticator
    assert (g.client_id, g.client_secret, g.manage_groups, g.allow_all) == ("labdeck", "s3cr3t-value", True, True)
    assert g.admin_groups == ["platform", "ops"]
    assert g.oauth_callback_url == "https://hub.example.com/hub/oauth_callback"
    # discovery fills these at the first login
    assert "authorize_url" not in g and "token_url" not in g


def test_allowed_groups_turn_allow_all_off_and_claims_can_be_renamed():
    env = {**OIDC_ENV, "LABDECK_OIDC_ALLOWED_GROUPS": "data", "LABDECK_OIDC_USERNAME_CLAIM": "email", "LABDECK_OIDC_GROUPS_CLAIM": "roles"}
    settings = {**SETTINGS, **env_settings(env)}
    oauth = local_values(settings)["auth"]["oauth"]
    assert (oauth["allowedGroups"], oauth["allowAll"], oauth["usernameClaim"], oauth["groupsClaim"]) == (["data"], False, "email", "roles")
    assert "clientSecret" not in oauth


def test_without_an_issuer_the_dev_login_stays():
    settings = {**SETTINGS, **env_settings({})}
    assert "oidc" not in settings
    assert local_values(settings)["auth"]["type"] == "dev"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"LABDECK_OIDC_CLIENT_ID": "x"}, "LABDECK_OIDC_ISSUER is not"),
        ({"LABDECK_OIDC_ISSUER": "https://idp"}, "needs LABDECK_OIDC_CLIENT_ID"),
        ({"LABDECK_OIDC_ISSUER": "ftp://idp", "LABDECK_OIDC_CLIENT_ID": "x"}, "issuer URL"),
        ({"LABDECK_PUBLIC_URL": "https://hub/path"}, "no path"),
        ({"LABDECK_PUBLIC_URL": "javascript:alert(1)"}, "must look like"),
        ({"LABDECK_TLS_CERT": "/nonexistent"}, "go together"),
        ({"LABDECK_TLS_CERT": "/nonexistent", "LABDECK_TLS_KEY": "/nonexistent"}, "not a readable file"),
    ],
    ids=["00", "01", "02", "03", "04", "05", "06"],
)
def test_bad_team_settings_are_clear_errors(env, message):
    with pytest.raises(SettingsError, match=message):
        env_settings(env)


def test_client_secret_goes_to_a_0600_file_and_is_required(tmp_path):
    state = StateDir(tmp_path / "state")
    state.create()
    settings = env_settings(OIDC_ENV)
    with pytest.raises(SettingsError, match="needs LABDECK_OIDC_CLIENT_SECRET"):
        team.store_oidc_secret(state, {k: v for k, v in OIDC_ENV.items() if k != team.OIDC_SECRET_ENV}, settings)
    team.store_oidc_secret(state, OIDC_ENV, settings)
    path = state.secret_path(team.OIDC_SECRET)
    assert path.read_text() == "s3cr3t-value"
    assert os.stat(path).st_mode & 0o777 == 0o600
    # a later start without the variable keeps the stored secret
    team.store_oidc_secret(state, {}, settings)
    assert path.read_text() == "s3cr3t-value"


def test_tls_settings_switch_the_public_scheme(tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("y")
    s = env_settings({"LABDECK_TLS_CERT": str(cert), "LABDECK_TLS_KEY": str(key)})
    assert s["tls"] == {"cert": str(cert), "key": str(key)}
    assert s["public_scheme"] == "https"


def test_os_users_when_root_unless_turned_off_and_the_config_follows():
    assert team.os_users_wanted({}, 0) is True
    assert team.os_users_wanted({"LABDECK_OS_USERS": "0"}, 0) is False
    assert team.os_users_wanted({}, 1000) is False
    with pytest.raises(SettingsError, match="needs labdeck up to run as root"):
        team.os_users_wanted({"LABDECK_OS_USERS": "1"}, 1000)
    limits = {"backend": "v1", "group": "labdeck-0123456789ab"}
    on = configure(local_values(SETTINGS), local_mode({**SETTINGS, "os_users": True, "server_bin": "/s/server-env/bin", "limits": limits}, SECRETS))
    assert on.LabdeckLocalProcessSpawner.os_users is True
    assert on.LabdeckLocalProcessSpawner.server_bin == "/s/server-env/bin"
    assert "announcement" not in on.JupyterHub.template_vars
    off = configure(local_values(SETTINGS), local_mode(SETTINGS, SECRETS))
    assert off.LabdeckLocalProcessSpawner.os_users is False
    assert "not isolated" in off.JupyterHub.template_vars["announcement"]
    assert "not isolated" in off.JupyterHub.template_vars["announcement_home"]
    assert "exploration and prototyping" in off.JupyterHub.template_vars["announcement_home"]


def test_limits_when_root_with_cgroups_unless_turned_off_and_every_page_says_when_they_are_not():
    from labdeck.spawner.local.cgroups import Availability

    v1 = lambda: Availability("v1", bases={"memory": "/m", "cpu": "/c"})  # noqa: E731
    none = lambda: Availability("", "no cgroups here")  # noqa: E731
    on = team.limits_settings({}, 0, "/srv/state", detect=v1)
    assert on == {"limits": {"backend": "v1", "group": on["limits"]["group"]}}
    assert on["limits"]["group"].startswith("labdeck-") and on["limits"]["group"] != team.limits_settings({}, 0, "/srv/other", detect=v1)["limits"]["group"]
    assert team.limits_settings({"LABDECK_LIMITS": "0"}, 0, "/s", detect=v1) == {"limits_off": "LABDECK_LIMITS=0"}
    assert team.limits_settings({}, 1000, "/s", detect=v1) == {"limits_off": "labdeck up is not running as root"}
    assert team.limits_settings({}, 0, "/s", detect=none) == {"limits_off": "no cgroups here"}
    for env, euid, detect in (({"LABDECK_LIMITS": "1"}, 1000, v1), ({"LABDECK_LIMITS": "1"}, 0, none)):
        with pytest.raises(SettingsError, match="LABDECK_LIMITS=1"):
            team.limits_settings(env, euid, "/s", detect=detect)
    assert "enforced with a cgroup (v1)" in team.limits_lines(on)[0]
    assert "not enforced" in "\n".join(team.limits_lines({"limits_off": "labdeck up is not running as root"}))

    c = configure(local_values(SETTINGS), local_mode({**SETTINGS, "os_users": True, "limits": on["limits"]}, SECRETS))
    assert (c.LabdeckLocalProcessSpawner.enforce_limits, c.LabdeckLocalProcessSpawner.cgroup_group) == (True, on["limits"]["group"])
    off = configure(local_values(SETTINGS), local_mode({**SETTINGS, "os_users": True}, SECRETS))
    assert off.LabdeckLocalProcessSpawner.enforce_limits is False
    assert "sizes are not enforced" in off.JupyterHub.template_vars["announcement"]
    assert "not isolated" not in off.JupyterHub.template_vars["announcement"]


def test_state_dir_for_os_users_keeps_everything_but_homes_private(tmp_path):
    state = StateDir(tmp_path / "state")
    state.create()
    (state.root / "settings.json").write_text("{}")
    (state.root / "jupyterhub.sqlite").write_text("")
    (state.root / "server-env").mkdir(mode=0o755)
    (state.root / "server-env-python").mkdir(mode=0o755)  # the interpreter server-env's python links to
    team.secure_state_dir(state)
    modes = {p.name: p.stat().st_mode & 0o777 for p in state.root.iterdir()}
    assert state.root.stat().st_mode & 0o777 == 0o711
    assert modes.pop("homes") == 0o711 and modes.pop("server-env") == 0o755 and modes.pop("server-env-python") == 0o755
    assert modes == {"settings.json": 0o600, "jupyterhub.sqlite": 0o600, "secrets": 0o700, "logs": 0o700, "run": 0o700, "emulators": 0o700}


def test_tls_gives_the_proxy_its_files_and_the_hub_hsts_and_secure_cookies():
    from labdeck.hub.local.plan import proxy_argv, public_url

    s = {**SETTINGS, "tls": {"cert": "/etc/labdeck/tls.crt", "key": "/etc/labdeck/tls.key"}, "public_scheme": "https"}
    argv = proxy_argv(s, "chp")
    assert argv[argv.index("--ssl-cert") + 1] == "/etc/labdeck/tls.crt"
    assert argv[argv.index("--ssl-key") + 1] == "/etc/labdeck/tls.key"
    assert public_url(s) == "https://127.0.0.1:8000"
    c = configure(local_values(s), local_mode(s, SECRETS))
    assert c.JupyterHub.bind_url == "https://127.0.0.1:8000"
    ts = c.JupyterHub.tornado_settings
    assert ts["headers"]["Strict-Transport-Security"] == "max-age=31536000"
    assert ts["cookie_options"] == {"secure": True}
    assert ts["slow_spawn_timeout"] == 0  # labdeck.hub.performance's setting is kept
    plain = configure(local_values(SETTINGS), local_mode(SETTINGS, SECRETS))
    assert "headers" not in plain.JupyterHub.tornado_settings and "--ssl-key" not in proxy_argv(SETTINGS, "chp")


def test_public_port_may_listen_on_every_interface_and_nothing_else_does():
    from labdeck.hub.local.plan import proxy_argv

    s = {**SETTINGS, **env_settings({"LABDECK_BIND_IP": "0.0.0.0"})}
    argv = proxy_argv(s, "chp")
    assert argv[argv.index("--ip") + 1] == "0.0.0.0"
    assert argv[argv.index("--api-ip") + 1] == "127.0.0.1"
    assert proxy_argv(SETTINGS, "chp")[proxy_argv(SETTINGS, "chp").index("--ip") + 1] == "127.0.0.1"
    with pytest.raises(SettingsError, match="LABDECK_BIND_IP"):
        env_settings({"LABDECK_BIND_IP": "10.0.0.5; rm"})


def test_callback_follows_an_admins_base_url():
    settings = {**SETTINGS, **env_settings(OIDC_ENV), "values": {"hub": {"baseUrl": "/lab/"}}}
    assert local_values(settings)["auth"]["oauth"]["callbackUrl"] == "https://hub.example.com/lab/hub/oauth_callback"


def test_unreachable_state_dir_for_os_users_is_a_clear_error(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    with pytest.raises(SettingsError, match="not searchable by other users.*LABDECK_OS_USERS=0"):
        team.check_reachable_homes(private / "state")


def test_banner_names_the_callback_to_register():
    settings = {**SETTINGS, **env_settings(OIDC_ENV), "values": {"hub": {"baseUrl": "/lab/"}}}
    text = "\n".join(team.login_lines(settings, "https://hub.example.com"))
    assert "https://hub.example.com/lab/hub/oauth_callback" in text
    assert "login.example.com/realms/co" in text and "platform, ops" in text
    assert "s3cr3t" not in text
