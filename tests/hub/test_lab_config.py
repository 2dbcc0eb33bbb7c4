"""The configurer's part of the Lab's runs and shares: servers reach runs and viewer, in both modes."""

import pytest

from labdeck.hub.configurer import configure
from labdeck.hub.local.values import local_values
from labdeck.hub.modes import kube_mode, local_mode

SETTINGS = {
    "state_dir": "/s", "public_port": 8000, "hub_port": 8081, "proxy_api_port": 8001, "broker_port": 8090,
    "runs_port": 8095, "viewer_port": 8096,
    "aws_endpoint": "http://127.0.0.1:5000", "bucket": "labdeck-data", "region": "us-east-1",
}  # fmt: skip
SECRETS = {"cookie_secret": "00" * 32, "proxy_token": "p", "broker_token": "b", "supervisor_token": "s", "runs_token": "r", "viewer_token": "v"}
NAMES = {"hub": "h", "proxy-api": "pa", "broker": "b", "runs": "r", "viewer": "v", "singleuser": "su", "user-priority": "up"}


@pytest.mark.parametrize(
    "mode, runs_url, viewer_url",
    [
        ("local", "http://127.0.0.1:8095/services/runs/", "http://127.0.0.1:8096/services/viewer/"),
        ("kube", "http://r:8095/services/runs/", "http://v:8096/services/viewer/"),
    ],
)
def test_servers_reach_runs_and_viewer_with_their_own_token(mode, runs_url, viewer_url):
    m = local_mode(SETTINGS, SECRETS) if mode == "local" else kube_mode(NAMES, SECRETS, "ns")
    values = local_values(SETTINGS) if mode == "local" else {"auth": {"type": "generic-oauth"}}
    c = configure(values, m)
    assert c.LabdeckSpawnerMixin.runs_url == runs_url
    assert c.LabdeckSpawnerMixin.viewer_url == viewer_url
    server = next(r for r in c.JupyterHub.load_roles if r["name"] == "server")
    assert {"access:services!service=runs", "access:services!service=viewer"} <= set(server["scopes"])
    # never more than that: no access to other people's servers, no admin scopes
    assert not [s for s in server["scopes"] if s.startswith(("admin", "access:servers!user", "read:users"))]


def test_spawner_env_names_the_viewer_and_the_allowed_profiles():
    import json

    from labdeck.spawner import profiles

    profs = profiles.normalize_profiles([
        {"slug": "jupyterlab", "display_name": "JupyterLab", "default": True},
        {"slug": "gpu", "display_name": "GPU", "groups": ["ml"]},
        {"slug": "rstudio", "display_name": "RStudio", "requires": ["rstudio"]},
    ])
    assert profiles.run_profiles(profs, {"ml"}, {"rstudio": "not installed"}) == [
        {"slug": "jupyterlab", "display_name": "JupyterLab", "description": ""},
        {"slug": "gpu", "display_name": "GPU", "description": ""},
    ]
    assert [p["slug"] for p in profiles.run_profiles(profs, set(), {})] == ["jupyterlab", "rstudio"]
    json.dumps(profiles.run_profiles(profs, set(), {}))
