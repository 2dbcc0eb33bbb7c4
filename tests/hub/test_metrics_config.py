"""The configurer's part of metrics: the `metrics` scrape identity, the same in both modes."""

import pytest

from labdeck.hub.configurer import configure
from labdeck.hub.local.values import local_values
from labdeck.hub.modes import kube_mode, local_mode
from labdeck.hub.values import ValuesError

SETTINGS = {
    "state_dir": "/s", "public_port": 8000, "hub_port": 8081, "proxy_api_port": 8001, "broker_port": 8090,
    "aws_endpoint": "http://127.0.0.1:5000", "bucket": "labdeck-data", "region": "us-east-1",
}  # fmt: skip
SECRETS = {"cookie_secret": "00" * 32, "proxy_token": "p", "broker_token": "b", "supervisor_token": "s", "runs_token": "r", "viewer_token": "v"}
NAMES = {"hub": "h", "proxy-api": "pa", "broker": "b", "runs": "r", "viewer": "v", "singleuser": "su", "user-priority": "up"}
ON = {"metrics": {"serviceMonitor": {"enabled": True}}}


def metrics_parts(c):
    services = [s for s in c.JupyterHub.services if s["name"] == "metrics"]
    roles = [r for r in c.JupyterHub.load_roles if r.get("services") == ["metrics"]]
    return services, roles


@pytest.mark.parametrize("mode", ["local", "kube"])
def test_metrics_service_only_when_service_monitors_are_on(mode):
    secrets = {**SECRETS, "metrics_token": "m" * 32}
    m = local_mode(SETTINGS, secrets) if mode == "local" else kube_mode(NAMES, secrets, "ns")
    values = local_values(SETTINGS) if mode == "local" else {"auth": {"type": "generic-oauth"}}
    assert metrics_parts(configure(values, m)) == ([], [])
    services, roles = metrics_parts(configure({**values, **ON}, m))
    assert services == [{"name": "metrics", "api_token": "m" * 32, "display": False}]
    assert roles == [{"name": "labdeck-metrics", "scopes": ["read:metrics"], "services": ["metrics"]}]


def test_no_metrics_token_is_a_clear_error():
    with pytest.raises(ValuesError, match="metrics.serviceMonitor.enabled needs the metrics token"):
        configure({**local_values(SETTINGS), **ON}, local_mode(SETTINGS, SECRETS))


def test_the_runner_may_read_metrics_for_labdeck_status():
    c = configure(local_values(SETTINGS), local_mode(SETTINGS, SECRETS))
    (role,) = [r for r in c.JupyterHub.load_roles if r["name"] == "labdeck-supervisor"]
    assert "read:metrics" in role["scopes"]
