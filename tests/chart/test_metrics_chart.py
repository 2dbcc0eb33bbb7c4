"""The chart's monitoring objects (metrics.*): off by default, and when on, rendered and validated.

kubernetes-validate knows no CRDs, so the ServiceMonitor and PrometheusRule
are checked against the fields of the Prometheus Operator's
``monitoring.coreos.com/v1`` CRDs that the chart uses (``CRD_SCHEMAS``: the
upstream field names and types, with unknown fields refused, as the API
server's structural-schema pruning would drop them). Everything else is
validated with the Kubernetes schema like every other rendered object.
"""

import json

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chartlib import CHART, LINT_VALUES
from test_chart import K8S_VERSION
from traitlets.config.loader import PyFileConfigLoader

from labdeck.hub import values as v

pytestmark = pytest.mark.chart

ON = ("metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true", "metrics.grafanaDashboard.enabled=true")
MONITORING = "monitoring.coreos.com/v1"

_SECRET_KEY_SELECTOR = {
    "type": "object", "additionalProperties": False, "required": ["key"],
    "properties": {"name": {"type": "string"}, "key": {"type": "string"}, "optional": {"type": "boolean"}},
}  # fmt: skip
_LABEL_SELECTOR = {
    "type": "object", "additionalProperties": False,
    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}, "matchExpressions": {"type": "array"}},
}  # fmt: skip
_METADATA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "maxLength": 253}}}
_DURATION = {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}

#: the parts of the Prometheus Operator CRDs (monitoring.coreos.com/v1) the chart uses
CRD_SCHEMAS = {
    "ServiceMonitor": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": MONITORING}, "kind": {"const": "ServiceMonitor"}, "metadata": _METADATA,
            "spec": {
                "type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
                "properties": {
                    "selector": _LABEL_SELECTOR,
                    "namespaceSelector": {
                        "type": "object", "additionalProperties": False,
                        "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}},
                    },
                    "jobLabel": {"type": "string"},
                    "endpoints": {
                        "type": "array", "minItems": 1,
                        "items": {
                            "type": "object", "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
                                "scheme": {"enum": ["http", "https"]}, "interval": _DURATION, "scrapeTimeout": _DURATION,
                                "honorLabels": {"type": "boolean"},
                                "authorization": {
                                    "type": "object", "additionalProperties": False,
                                    "properties": {"type": {"type": "string"}, "credentials": _SECRET_KEY_SELECTOR},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": MONITORING}, "kind": {"const": "PrometheusRule"}, "metadata": _METADATA,
            "spec": {
                "type": "object", "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object", "additionalProperties": False, "required": ["name"],
                            "properties": {
                                "name": {"type": "string", "minLength": 1}, "interval": _DURATION,
                                "rules": {
                                    "type": "array",
                                    "items": {
                                        "type": "object", "additionalProperties": False, "required": ["expr"],
                                        "properties": {
                                            "alert": {"type": "string"}, "record": {"type": "string"},
                                            "expr": {"type": ["string", "integer"]}, "for": _DURATION,
                                            "keep_firing_for": _DURATION,
                                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}  # fmt: skip

ALERTS = {
    "LabdeckSpawnFailures", "LabdeckSpawnsSlow", "LabdeckBrokerUpstreamErrors",
    "LabdeckCredentialIssuanceSlow", "LabdeckRunsFailing", "LabdeckSchedulesNotFiring",
}  # fmt: skip


def monitoring(objects):
    return [o for o in objects if o["apiVersion"] == MONITORING]


def test_off_by_default(render):
    objects = render()
    assert not monitoring(objects)
    assert not [o for o in objects if o["metadata"]["name"].startswith("rel-labdeck-metrics")]
    assert "metrics.api-token" not in objects.secret_data("rel-labdeck-hub")


@pytest.mark.parametrize("values", [(), (LINT_VALUES,)], ids=["default", "lint-values"])
def test_on_renders_and_validates(render, values):
    objects = render(*values, set_values=ON)
    kinds = sorted(o["kind"] for o in monitoring(objects))
    assert kinds == ["PrometheusRule"] + ["ServiceMonitor"] * 4
    errors = []
    for obj in objects:
        try:
            if obj["apiVersion"] == MONITORING:
                jsonschema.validate(obj, CRD_SCHEMAS[obj["kind"]])
            elif obj["metadata"]["name"].startswith(("rel-labdeck-metrics", "lint-metrics")):
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as e:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {e.message}")
    assert not errors, "\n".join(errors)


def test_service_monitors_scrape_each_service_with_the_metrics_token(render):
    objects = render(set_values=ON + ("hub.baseUrl=/lab/",))
    services = {o["metadata"]["labels"]["app.kubernetes.io/component"]: o for o in objects.of_kind("Service")}
    paths = {}
    for sm in objects.of_kind("ServiceMonitor"):
        (ep,) = sm["spec"]["endpoints"]
        selected = [s for s in services.values() if sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        assert len(selected) == 1, sm["metadata"]["name"]
        svc = selected[0]
        assert ep["port"] in [p["name"] for p in svc["spec"]["ports"]]
        assert ep["authorization"] == {"type": "Bearer", "credentials": {"name": "rel-labdeck-hub", "key": "metrics.api-token"}}
        assert sm["spec"]["namespaceSelector"] == {"matchNames": ["labdeck"]}
        paths[svc["metadata"]["labels"]["app.kubernetes.io/component"]] = ep["path"]
    assert paths == {
        "hub": "/lab/hub/metrics",
        "broker": "/services/broker/metrics",
        "runs": "/lab/services/runs/metrics",
        "viewer": "/lab/services/viewer/metrics",
    }
    token = objects.secret_data("rel-labdeck-hub")["metrics.api-token"]
    assert len(token) >= 32
    # never in a ConfigMap, an annotation or the values copy
    for obj in objects:
        if obj["kind"] != "Secret":
            assert token not in json.dumps(obj)
    # runs/viewer off: no monitor for them
    fewer = render(set_values=ON + ("runs.enabled=false", "viewer.enabled=false"))
    assert len(fewer.of_kind("ServiceMonitor")) == 2


def test_metrics_service_and_role_in_the_hub_config(render, tmp_path, monkeypatch):
    objects = render(set_values=ON + ("metrics.apiToken=scrape-token-0123456789abcdef",))
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    for key, text in objects.secret_data("rel-labdeck-hub").items():
        (secret_dir / key).write_text(text)
    monkeypatch.setenv(v.VALUES_FILE_ENV, str(secret_dir / "values.yaml"))
    monkeypatch.setenv(v.SECRET_DIR_ENV, str(secret_dir))
    v.clear_cache()
    try:
        hub = CHART / "files/hub/jupyterhub_config.py"
        c = PyFileConfigLoader(hub.name, path=str(hub.parent)).load_config()
    finally:
        v.clear_cache()
    (svc,) = [s for s in c.JupyterHub.services if s["name"] == "metrics"]
    assert svc == {"name": "metrics", "api_token": "scrape-token-0123456789abcdef", "display": False}
    (role,) = [r for r in c.JupyterHub.load_roles if r.get("services") == ["metrics"]]
    assert role["scopes"] == ["read:metrics"]


def test_netpol_lets_prometheus_reach_the_metrics_ports(render):
    objects = render(set_values=ON)
    pol = objects.get("NetworkPolicy", "rel-labdeck-metrics")
    components = pol["spec"]["podSelector"]["matchExpressions"][0]["values"]
    assert components == ["hub", "broker", "runs", "viewer"]
    (rule,) = pol["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]
    # each named port is a container port of that component's pod
    for dep in objects.of_kind("Deployment"):
        comp = dep["metadata"]["labels"]["app.kubernetes.io/component"]
        if comp in components:
            names = [p["name"] for c in dep["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])]
            assert comp in names, (comp, names)
    assert [p["port"] for p in rule["ports"]] == components


def test_alerts_and_dashboard(render):
    objects = render(set_values=ON + ("metrics.prometheusRule.thresholds.issuanceP95Seconds=7",))
    (rule,) = objects.of_kind("PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == ALERTS
    assert "> 7" in alerts["LabdeckCredentialIssuanceSlow"]["expr"]
    for a in alerts.values():
        assert a["labels"]["severity"] in ("warning", "critical") and a["annotations"]["summary"] and a["annotations"]["description"]
        assert 'namespace="labdeck"' in a["expr"]
    (cm,) = [o for o in objects.of_kind("ConfigMap") if o["metadata"]["name"] == "rel-labdeck-metrics-dashboard"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dash = json.loads(cm["data"]["labdeck.json"])
    assert dash == json.loads((CHART / "files/metrics/dashboard.json").read_text())
    titles = " | ".join(p["title"] for p in dash["panels"])
    for topic in ("Spawns", "Spawn duration", "Running servers", "issuance latency", "upstream errors", "cache hit ratio", "Runs finished", "Share views"):
        assert topic in titles, topic
    ids = [p["id"] for p in dash["panels"]]
    assert len(set(ids)) == len(ids)


def test_schema_refuses_bad_metrics_values(helm):
    from chartlib import helm_template

    for bad, key in (("metrics.serviceMonitor.interval=often", "interval"), ("metrics.prometheusRule.thresholds.spawnFailureRatio=2", "spawnFailureRatio"), ("metrics.typo=1", "typo")):
        proc = helm_template(helm, set_values=(bad,), check=False)
        assert proc.returncode != 0 and key in proc.stderr, (bad, proc.stderr[-300:])
