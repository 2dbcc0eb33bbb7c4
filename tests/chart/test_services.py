"""The runs and viewer workloads of the chart, rendered, and the hub config that points at them.

Every value set (defaults, each helm/examples/*.yaml, lint-values.yaml) renders a
Deployment, Service, ServiceAccount, PVC and NetworkPolicy for each service; the hub
config loaded from the same render (files/hub/jupyterhub_config.py on the mounted
Secret) registers them at exactly the rendered Service names and ports, with the tokens
the pods get from the hub Secret.
"""

from urllib.parse import urlsplit

import pytest
import yaml
from chartlib import CHART, EXAMPLES, LINT_VALUES
from test_config_files import HUB, load  # noqa: F401 - the ``load`` fixture

from labdeck.hub import contract

pytestmark = pytest.mark.chart

VALUE_SETS = {"default": None} | {f"examples/{p.name}": p for p in EXAMPLES} | {"lint-values": LINT_VALUES}
SERVICES = (contract.RUNS, contract.VIEWER)
MODULES = {contract.RUNS: "labdeck.runs.app", contract.VIEWER: "labdeck.runs.viewer"}
SECTIONS = {contract.RUNS: "RunsApp", contract.VIEWER: "ViewerApp"}


def pod_config(files: dict, tmp_path, monkeypatch):
    """The config a service pod loads: its ConfigMap's files written out, the config file run on its values."""
    from traitlets.config.loader import PyFileConfigLoader

    from labdeck.hub import values as v

    for key, text in files.items():
        (tmp_path / key).write_text(text)
    monkeypatch.setenv(v.VALUES_FILE_ENV, str(tmp_path / "values.yaml"))
    v.clear_cache()
    try:
        (config_file,) = [k for k in files if k.endswith("_config.py")]
        return PyFileConfigLoader(config_file, path=str(tmp_path)).load_config()
    finally:
        v.clear_cache()


def rendered(render, values_file, set_values=()):
    return render(values_file, set_values=set_values) if values_file else render(set_values=set_values)


def prefix_of(objects) -> str:
    """The release's name prefix (``rel-labdeck`` or a fullnameOverride)."""
    hub = next(o for o in objects.of_kind("Deployment") if o["metadata"]["labels"]["app.kubernetes.io/component"] == "hub")
    return hub["metadata"]["name"].removesuffix("-hub")


def env_of(container) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("name", list(VALUE_SETS))
@pytest.mark.parametrize("service", SERVICES)
def test_service_workload(render, tmp_path, monkeypatch, name, service):
    objects = rendered(render, VALUE_SETS[name])
    full = f"{prefix_of(objects)}-{service}"
    hub_values = objects.secret_data(f"{prefix_of(objects)}-hub")
    base_url = "/labdeck/" if name == "lint-values" else "/"
    port = contract.SERVICE_PORTS[service]

    dep = objects.get("Deployment", full)
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}  # the sqlite file never has two writers
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == full
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    # only --config: the rest comes from the service's configurer (labdeck.hub.configure_services)
    assert c["command"] == ["python", "-m", MODULES[service], "--config", f"/usr/local/etc/labdeck/{service}_config.py"]
    (config_volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    assert config_volume == {"name": "config", "configMap": {"name": full}}
    (config_mount,) = [m for m in c["volumeMounts"] if m["name"] == "config"]
    assert config_mount == {"name": "config", "mountPath": "/usr/local/etc/labdeck", "readOnly": True}
    files = objects.get("ConfigMap", full)["data"]
    assert set(files) == {f"{service}_config.py", "values.yaml"}
    assert env_of(c)["LABDECK_VALUES_FILE"] == "/usr/local/etc/labdeck/values.yaml"
    # the pod's values hold no secret of the hub's: only what the service's configurer reads
    assert set(yaml.safe_load(files["values.yaml"])) == {"cloud", "hub", "Names", "Chart", "Release"}
    config = pod_config(files, tmp_path, monkeypatch)[SECTIONS[service]]
    assert (config.ip, config.port, config.base_url) == ("0.0.0.0", port, f"{base_url}services/{service}/")
    assert c["ports"] == [{"name": service, "containerPort": port, "protocol": "TCP"}]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    health = f"{base_url}services/{service}/health"
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": health, "port": service}
    # the hub image unless the service's own is set
    hub_image = objects.get("Deployment", f"{prefix_of(objects)}-hub")["spec"]["template"]["spec"]["containers"][0]["image"]
    if name != "lint-values":
        assert c["image"] == hub_image

    env = env_of(c)
    assert env["JUPYTERHUB_SERVICE_NAME"] == service
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == f"{base_url}services/{service}/"
    assert env["JUPYTERHUB_API_TOKEN"] == {"secretKeyRef": {"name": f"{prefix_of(objects)}-hub", "key": f"{service}.api-token"}}
    assert f"{service}.api-token" in hub_values
    hub_svc = objects.get("Service", f"{prefix_of(objects)}-hub")
    api = urlsplit(env["JUPYTERHUB_API_URL"])
    assert (api.hostname, api.port) == (hub_svc["metadata"]["name"], hub_svc["spec"]["ports"][0]["port"])
    assert api.path == f"{base_url}hub/api"
    if service == contract.RUNS:
        public = objects.get("Service", f"{prefix_of(objects)}-proxy-public")
        proxy = urlsplit(env["LABDECK_PROXY_URL"])
        assert (proxy.hostname, proxy.port) == (public["metadata"]["name"], public["spec"]["ports"][0]["port"])
        assert proxy.path == base_url.rstrip("/")
    else:
        assert env["AWS_DEFAULT_REGION"]

    svc = objects.get("Service", full)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": service, "port": port, "targetPort": service, "protocol": "TCP"}]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]

    # state on a PVC kept by `helm uninstall`, mounted where db_path points
    pvc = objects.get("PersistentVolumeClaim", f"{full}-db")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    (state,) = [v for v in pod["volumes"] if v["name"] == "state"]
    assert state["persistentVolumeClaim"]["claimName"] == f"{full}-db"
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "state"]
    assert config.db_path.startswith(mount["mountPath"] + "/")


def test_pdbs_like_the_hubs(render):
    objects = render(LINT_VALUES)
    hub = objects.get("PodDisruptionBudget", "lint-hub")
    for service in SERVICES:
        pdb = objects.get("PodDisruptionBudget", f"lint-{service}")
        assert pdb["spec"]["maxUnavailable"] == hub["spec"]["maxUnavailable"] == 0
        assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == service
    assert not [o for o in render().of_kind("PodDisruptionBudget") if o["metadata"]["name"].endswith(SERVICES)]


def test_without_persistence_the_state_is_in_the_pod(render):
    objects = render(set_values=["runs.persistence.enabled=false"])
    assert not [o for o in objects.of_kind("PersistentVolumeClaim") if o["metadata"]["name"] == "rel-labdeck-runs-db"]
    pod = objects.get("Deployment", "rel-labdeck-runs")["spec"]["template"]["spec"]
    assert {"name": "state", "emptyDir": {}} in pod["volumes"]


def _peers(rule):
    """Components a from/to rule selects (by label), or its ipBlocks."""
    out = set()
    for peer in rule.get("from", rule.get("to", [])):
        sel = peer.get("podSelector")
        if sel is None:
            out.add(("ipBlock", peer["ipBlock"]["cidr"]))
            continue
        if "app.kubernetes.io/component" in sel.get("matchLabels", {}):
            out.add(sel["matchLabels"]["app.kubernetes.io/component"])
        for expr in sel.get("matchExpressions", []):
            out.update(expr["values"])
    return out


def test_runs_netpol(render):
    np = render().get("NetworkPolicy", "rel-labdeck-runs")["spec"]
    assert np["policyTypes"] == ["Ingress", "Egress"]
    assert np["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "runs"
    (ingress,) = np["ingress"]
    assert ingress["ports"] == [{"port": "runs", "protocol": "TCP"}]
    assert _peers(ingress) == {"proxy", "hub", "singleuser-server"}
    egress = np["egress"]
    assert [(_peers(r), r["ports"]) for r in egress] == [
        ({"hub"}, [{"port": "hub", "protocol": "TCP"}]),
        ({"proxy"}, [{"port": "http", "protocol": "TCP"}]),
        (set(), [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]),
    ]


def test_viewer_netpol(render):
    np = render().get("NetworkPolicy", "rel-labdeck-viewer")["spec"]
    assert np["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = np["ingress"]
    # browsers through the proxy, the hub, and user servers (the lab_shares server extension)
    assert _peers(ingress) == {"proxy", "hub", "singleuser-server"}
    hub, dns, store = np["egress"]
    assert _peers(hub) == {"hub"} and _peers(dns) == set()
    (block,) = store["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0"
    # no private range (other pods) and never the node's credentials on the metadata server
    assert {"169.254.169.254/32", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(block["ipBlock"]["except"])
    assert store["ports"] == [{"port": 443, "protocol": "TCP"}]
    lint = render(LINT_VALUES).get("NetworkPolicy", "lint-viewer")["spec"]["egress"]
    assert ("ipBlock", "52.216.0.0/15") in _peers(lint[2]) and ("ipBlock", "203.0.113.0/24") in _peers(lint[3])


def test_hub_and_user_netpols_let_the_services_in(render):
    objects = render()
    (hub_in,) = objects.get("NetworkPolicy", "rel-labdeck-hub")["spec"]["ingress"]
    assert {"runs", "viewer"} <= _peers(hub_in)
    user_egress = objects.get("NetworkPolicy", "rel-labdeck-singleuser")["spec"]["egress"]
    assert any(_peers(r) == {"runs"} and r["ports"] == [{"port": 8095, "protocol": "TCP"}] for r in user_egress)
    off = render(set_values=["runs.enabled=false"]).get("NetworkPolicy", "rel-labdeck-singleuser")["spec"]["egress"]
    assert not any("runs" in _peers(r) for r in off)


def test_viewer_read_only_identity_from_values(render):
    objects = render(CHART.parent / "examples" / "aws-eks.yaml")
    sa = objects.get("ServiceAccount", "rel-labdeck-viewer")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/labdeck-viewer-readonly"}
    assert "annotations" not in objects.get("ServiceAccount", "rel-labdeck-runs")["metadata"]


def test_disabled_services_render_nothing(render):
    objects = render(set_values=["runs.enabled=false", "viewer.enabled=false"])
    names = {o["metadata"]["name"] for o in objects}
    assert not {n for n in names if n.startswith(("rel-labdeck-runs", "rel-labdeck-viewer"))}
    assert not {"runs.api-token", "viewer.api-token"} & set(objects.secret_data("rel-labdeck-hub"))


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_hub_config_points_at_the_rendered_services(render, load, name):  # noqa: F811
    values_file = VALUE_SETS[name]
    objects = rendered(render, values_file)
    prefix = prefix_of(objects)
    secret = objects.secret_data(f"{prefix}-hub")
    c = load(values_file, HUB, secret=f"{prefix}-hub")
    services = {s["name"]: s for s in c.JupyterHub.services}
    for service in SERVICES:
        svc = objects.get("Service", f"{prefix}-{service}")
        url = urlsplit(services[service]["url"])
        assert (url.hostname, url.port) == (svc["metadata"]["name"], svc["spec"]["ports"][0]["port"])
        assert url.port == contract.SERVICE_PORTS[service]
        # the hub knows the token the service's pod reads from the same Secret key
        assert services[service]["api_token"] == secret[f"{service}.api-token"]
    runs_svc = objects.get("Service", f"{prefix}-runs")
    runs_url = urlsplit(c.LabdeckSpawnerMixin.runs_url)
    assert (runs_url.hostname, runs_url.port) == (runs_svc["metadata"]["name"], contract.SERVICE_PORTS["runs"])
    # the prefix the runs pod serves under (JUPYTERHUB_SERVICE_PREFIX), hub.baseUrl included
    runs_env = env_of(objects.get("Deployment", f"{prefix}-runs")["spec"]["template"]["spec"]["containers"][0])
    assert runs_url.path == runs_env["JUPYTERHUB_SERVICE_PREFIX"]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert "users:activity" in roles["labdeck-runs"]["scopes"]


def test_only_an_explicit_token_restarts_the_services(render):
    def checksum(objects, service):
        return objects.get("Deployment", f"rel-labdeck-{service}")["spec"]["template"]["metadata"]["annotations"]["checksum/api-token"]

    for service in SERVICES:
        default = checksum(render(), service)
        # another value (or a re-render: generated tokens differ between offline renders) keeps the pod
        assert checksum(render(set_values=["hub.banner=changed"]), service) == default
        assert checksum(render(set_values=[f"{service}.apiToken=rotated"]), service) != default
    proxy = lambda objects: objects.get("Deployment", "rel-labdeck-proxy")["spec"]["template"]["metadata"]["annotations"]["checksum/proxy-token"]  # noqa: E731
    assert proxy(render()) == proxy(render(set_values=["hub.banner=changed"]))
    assert proxy(render()) != proxy(render(set_values=["proxy.secretToken=rotated"]))
