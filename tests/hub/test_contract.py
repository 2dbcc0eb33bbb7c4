"""The chart's defaults agree with the Python side (Helm cannot import Python).

- Every values key the configurer reads has, as its lookup default, exactly the
  chart's ``values.yaml`` default, so an absent key means the same in both modes.
- The chart's fixed ports and service names are the contract's.
"""

from pathlib import Path

import pytest
import yaml

from labdeck.hub import contract
from labdeck.hub import configure_services
from labdeck.hub.configurer import recorded_defaults
from labdeck.hub.modes import kube_mode
from labdeck.hub.values import lookup

CHART = Path(__file__).resolve().parents[2] / "helm" / "labdeck"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
NAMES = {"hub": "h", "proxy-api": "pa", "singleuser": "su", "user-priority": "up", contract.BROKER: "b", contract.RUNS: "r", contract.VIEWER: "v"}
SECRETS = {k: "00" * 32 for k in ("cookie_secret", "proxy_token", "broker_token", "runs_token", "viewer_token")}
MODE = kube_mode(NAMES, SECRETS, namespace="ns")
#: the hub's configurer and the broker's, runs' and viewer's (labdeck.hub.configure_services)
DEFAULTS = {**recorded_defaults(MODE), **configure_services.recorded_defaults(MODE)}
#: keys the chart injects next to .Values (Chart, Release, Names): not in values.yaml
INJECTED = {k for k in DEFAULTS if k[:1].isupper()}
MISSING = object()


def test_the_configurer_reads_many_keys():
    assert len(DEFAULTS) > 40, sorted(DEFAULTS)
    assert {"culler.timeout", "hub.namedServers.limitPerUser", "runs.enabled", "auth.oauth.groupsClaim"} <= set(DEFAULTS)
    # the services' keys too
    assert {"broker.grants", "cloud.providers", "cloud.gcp.serviceAccount", "cloud.aws.ttlSeconds"} <= set(configure_services.recorded_defaults(MODE))


@pytest.mark.parametrize("key", sorted(set(DEFAULTS) - INJECTED))
def test_lookup_default_equals_the_chart_default(key):
    chart_default = lookup(VALUES, key, MISSING)
    if chart_default is MISSING:
        # values.yaml leaves it out or null: the configurer must treat absence the same way
        assert DEFAULTS[key] in (None, "", [], {}), f"{key}: values.yaml has no default, configurer assumes {DEFAULTS[key]!r}"
    else:
        assert DEFAULTS[key] == chart_default, f"{key}: values.yaml {chart_default!r} != configurer {DEFAULTS[key]!r}"


def test_chart_ports_are_the_contract():
    hub_svc = (CHART / "templates/hub/service.yaml").read_text()
    broker = (CHART / "templates/broker/deployment.yaml").read_text() + (CHART / "templates/broker/service.yaml").read_text()
    proxy = (CHART / "templates/proxy/deployment.yaml").read_text()
    assert VALUES["hub"]["service"]["port"] == contract.HUB_PORT
    assert "port: {{ .Values.hub.service.port }}" in hub_svc
    broker_port = contract.SERVICE_PORTS[contract.BROKER]
    assert f"port: {broker_port}\n" in broker and f"containerPort: {broker_port}\n" in broker
    assert f"- --api-port={contract.PROXY_API_PORT}\n" in proxy
    assert f"- --port={contract.PROXY_HTTP_PORT}\n" in proxy


def test_contract_helpers():
    assert contract.service_prefix(contract.RUNS) == "/services/runs/"
    assert contract.service_url("http://h:1/", contract.BROKER) == "http://h:1/services/broker/"
    assert contract.s3_home("b", "alice") == "s3://b/home/alice/"
    assert contract.DEFAULT_DATASET_TEMPLATE.format(username="alice") == "user_alice"
