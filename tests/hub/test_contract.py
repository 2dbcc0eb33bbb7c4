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


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "../bob", "alice ", "al\tice", "al\x00ice", "/"])
def test_home_prefix_refuses_what_could_leave_one_home(bad):
    with pytest.raises(ValueError, match="invalid user name"):
        contract.home_prefix(bad)
    with pytest.raises(ValueError):
        contract.s3_home("b", bad)


def test_run_server_name_is_the_one_naming():
    from labdeck.runs.records import Run

    assert contract.run_server_name("0123456789ab") == "run-0123456789ab"
    assert contract.is_run_server(contract.run_server_name("0123456789ab"))
    for bad in ("nope", "0123456789AB", "0123456789abc", ""):
        with pytest.raises(ValueError):
            contract.run_server_name(bad)
    run = Run.__new__(Run)
    run.id = "0123456789ab"
    assert run.server_name == "run-0123456789ab"


#: contract values that are also ordinary words (``runs``, ``view``, ``s``, ``health``): their literals
#: appear legitimately in other roles (a folder name, a log word), so the scan below skips them
ORDINARY_WORDS = {"BROKER", "RUNS", "VIEWER", "METRICS", "CULLER", "HEALTH_ROUTE", "METRICS_ROUTE", "HOME_PREFIX",
                  "RUN_SERVER_PREFIX", "VIEWER_SHARE_ROUTE", "VIEWER_VIEW_ROUTE", "DEFAULT_REGION", "KUBE_HOME"}
PACKAGES = ("hub", "spawner", "credentials", "runs", "emulators", "data")
#: the same characters in another role: (file, literal) -> what it is there
COINCIDENCES = {("hub/configurer.py", "labdeck-local"): "the local spawner's entry-point name (pyproject.toml), not the GCP project"}
ROOT = Path(__file__).resolve().parents[2]


def _code_literals(path: Path) -> set[str]:
    """String constants in code (docstrings excluded), including the constant parts of f-strings."""
    import ast

    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.add(node.value)
    return found


def test_the_contracts_values_are_literals_nowhere_else():
    """Each name the contract defines is written once: other modules use ``contract.X``."""
    values = {k: v for k, v in vars(contract).items() if k.isupper() and isinstance(v, str) and k not in ORDINARY_WORDS}
    offenders = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path.name == "contract.py":
                continue
            literals = _code_literals(path)
            for key, value in values.items():
                if (str(path.relative_to(ROOT)), value) in COINCIDENCES:
                    continue
                if any(value == lit or lit.startswith(value + "=") or lit.endswith("/" + value) for lit in literals):
                    offenders.append(f"{path.relative_to(ROOT)}: {value!r} (contract.{key})")
    assert not offenders, "\n".join(offenders)


def test_every_contract_name_is_used():
    """A constant nothing needs is deleted rather than kept as a second source of truth."""
    used = "\n".join(p.read_text() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if p.name != "contract.py")
    inside = (ROOT / "hub" / "contract.py").read_text()
    unused = [k for k, v in vars(contract).items() if k.isupper() and not k.startswith("_")
              and f"contract.{k}" not in used and f"import {k}" not in used and inside.count(k) < 2]
    assert not unused, unused
