"""The labdeck Helm chart: lint, render, Kubernetes schema, and the rendered objects that matter."""

import ipaddress
import subprocess

import kubernetes_validate
import pytest

from chartlib import CHART, EXAMPLES, LINT_VALUES, NAMESPACE, helm_template

pytestmark = pytest.mark.chart

# The Kubernetes version whose OpenAPI schema the rendered objects must pass (strict:
# unknown fields are errors). kubernetes-validate 1.37.0 ships schemas up to 1.37.
K8S_VERSION = "1.37"

VALUE_SETS = {"default": ()} | {f"examples/{p.name}": (p,) for p in EXAMPLES} | {"lint-values": (LINT_VALUES,)}


def test_examples_exist():
    assert {p.name for p in EXAMPLES} >= {"aws-eks.yaml", "gke.yaml", "minimal.yaml", "k3s-ci.yaml"}


def test_lint_strict(helm):
    proc = subprocess.run(
        [helm, "lint", "--strict", str(CHART), "--values", str(LINT_VALUES)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_render_validates_against_kubernetes_schema(render, name):
    objects = render(*VALUE_SETS[name])
    errors = []
    for obj in objects:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # Prometheus Operator CRDs: validated against their fields in test_metrics_chart.py
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {e.message} at {list(e.path)}")
    assert not errors, "\n".join(errors)
    print(f"{name}: {len(objects)} objects")


# ---- the schema rejects bad values with a message naming the key --------------------


@pytest.mark.parametrize(
    "set_value, expected",
    [
        ("hub.basUrl=/x/", "basUrl"),  # typo'd key
        ("singleuser.imag.name=x", "imag"),  # typo'd nested key
        ("culler.timeout=soon", "timeout"),  # wrong type
        ("auth.type=ldap", "type"),  # not one of the enum
        ("proxy.service.type=ExternalName", "type"),
        ("hub.cookieSecret=not-hex", "cookieSecret"),
        ("cloud.aws.ttlSeconds=60", "ttlSeconds"),  # shorter than botocore's refresh window
        ("singleuser.profiles[0].slug=lab,singleuser.profiles[0].display_name=L,singleuser.profiles[0].cpu=2", "cpu"),
        ("broker.grants.groups.a.s3[0].prefix=x/,broker.grants.groups.a.s3[0].access=all", "access"),
        ("topLevelTypo=1", "topLevelTypo"),
    ],
    ids=lambda v: v if len(v) < 30 else v[:30],
)
def test_schema_rejects(helm, set_value, expected):
    proc = helm_template(helm, set_values=[set_value], check=False)
    assert proc.returncode != 0
    assert "schema" in proc.stderr.lower()
    assert expected in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "set_value, expected",
    [
        ("culler.timeoutSeconds=60", "culler.timeoutSeconds: renamed to culler.timeout"),
        ("auth.dev.enabled=true", "auth.dev.enabled: renamed to auth.dev.enabledInsecureDevelopmentLogin"),
    ],
)
def test_removed_keys_fail_with_their_replacement(helm, set_value, expected):
    proc = helm_template(helm, set_values=[set_value], check=False)
    assert proc.returncode != 0
    assert expected in proc.stderr, proc.stderr


# ---- the dev login needs the loud value ------------------------------------------------


def test_dev_auth_cannot_be_enabled_quietly(helm):
    proc = helm_template(helm, set_values=["auth.type=dev"], check=False)
    assert proc.returncode != 0
    assert "auth.dev.enabledInsecureDevelopmentLogin" in proc.stderr


def test_loud_value_alone_does_not_enable_dev_auth(helm):
    proc = helm_template(helm, set_values=["auth.dev.enabledInsecureDevelopmentLogin=true"], check=False)
    assert proc.returncode != 0
    assert "auth.type" in proc.stderr


def test_dev_auth_with_loud_value(render):
    objects = render(CHART.parent.parent / "helm/examples/k3s-ci.yaml")
    data = objects.secret_data("rel-labdeck-hub")
    assert data["auth.dev-password"] == "ci-password"
    hub = objects.get("Deployment", "rel-labdeck-hub")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in hub["env"]}
    assert env["LABDECK_DEV_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "auth.dev-password"
    # the default has no dev password at all
    assert "auth.dev-password" not in render().secret_data("rel-labdeck-hub")


# ---- aws against an S3 emulator; the removed local-aws provider stops the install ------

EMULATOR_AWS = [
    "cloud.providers={aws}",
    "cloud.aws.bucket=data",
    "cloud.aws.endpointUrl=http://moto:5000",
    "cloud.aws.roleArn=arn:aws:iam::123456789012:role/labdeck-users",
]


def test_aws_provider_is_accepted_with_an_emulator(render):
    objects = render(set_values=EMULATOR_AWS)
    assert "http://moto:5000" in objects.secret_data("rel-labdeck-hub")["values.yaml"]


@pytest.mark.parametrize(
    "set_values",
    [["cloud.providers={local-aws}", *EMULATOR_AWS[1:]], ["cloud.providers={aws,local-aws}", *EMULATOR_AWS[1:]]],
    ids=["alone", "with-aws"],
)
def test_removed_local_aws_provider_fails_with_its_replacement(helm, set_values):
    proc = helm_template(helm, set_values=set_values, check=False)
    assert proc.returncode != 0
    assert "cloud.providers: local-aws was removed" in proc.stderr and "use aws with cloud.aws.endpointUrl" in proc.stderr, proc.stderr


def test_unknown_provider_is_refused_by_the_schema(helm):
    proc = helm_template(helm, set_values=["cloud.providers={local-s3}"], check=False)
    assert proc.returncode != 0
    assert "providers" in proc.stderr, proc.stderr


# ---- RBAC: a namespaced Role with the listed resources only ----------------------------


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_hub_rbac_is_namespaced_and_minimal(render, name):
    objects = render(*VALUE_SETS[name])
    assert not objects.of_kind("ClusterRole") and not objects.of_kind("ClusterRoleBinding")
    fullname = "lint-hub" if name == "lint-values" else "rel-labdeck-hub"
    role = objects.get("Role", fullname)
    assert role["metadata"]["namespace"] == NAMESPACE
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert resources == {"pods", "persistentvolumeclaims", "secrets", "events", "services"}
    assert {g for rule in role["rules"] for g in rule["apiGroups"]} == {""}
    events = [rule for rule in role["rules"] if "events" in rule["resources"]]
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in events)
    binding = objects.get("RoleBinding", fullname)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": fullname}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": fullname, "namespace": NAMESPACE}]


# ---- user pods: network policy and identity --------------------------------------------


def _user_egress_blocks(objects, name="rel-labdeck-singleuser"):
    netpol = objects.get("NetworkPolicy", name)
    return [peer["ipBlock"] for rule in netpol["spec"]["egress"] for peer in rule.get("to", []) if "ipBlock" in peer]


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_user_netpol_blocks_metadata_server(render, name):
    objects = render(*VALUE_SETS[name])
    netpol_name = "lint-singleuser" if name == "lint-values" else "rel-labdeck-singleuser"
    blocks = _user_egress_blocks(objects, netpol_name)
    assert blocks, "user pods need some egress"
    assert not [b for b in blocks if _reaches_metadata_server(b)], blocks


def _reaches_metadata_server(block):
    """True if an ipBlock lets traffic reach 169.254.169.254 (its cidr holds it and no except removes it)."""
    metadata = ipaddress.ip_address("169.254.169.254")
    if metadata not in ipaddress.ip_network(block["cidr"]):
        return False
    return not any(metadata in ipaddress.ip_network(e) for e in block.get("except", []))


def test_user_netpol_metadata_server_only_on_request(render):
    blocks = _user_egress_blocks(render(set_values=["singleuser.networkPolicy.egress.cloudMetadataServer=true"]))
    assert blocks == [{"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}]
    assert _reaches_metadata_server(blocks[0])
    blocks = _user_egress_blocks(render(set_values=["singleuser.networkPolicy.egress.internet=false"]))
    assert blocks == []


def test_user_netpol_ingress_only_from_proxy_and_hub(render):
    netpol = render().get("NetworkPolicy", "rel-labdeck-singleuser")
    (rule,) = netpol["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["podSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/component", "operator": "In", "values": ["proxy", "hub"]}
    ]
    assert netpol["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "singleuser-server"


def test_user_service_account_has_no_identity(render):
    sa = render(LINT_VALUES).get("ServiceAccount", "lint-singleuser")
    assert sa["automountServiceAccountToken"] is False
    assert "annotations" not in sa["metadata"]


# ---- broker identity -----------------------------------------------------------------


@pytest.mark.parametrize(
    "values, annotation",
    [
        ("aws-eks.yaml", {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/labdeck-broker"}),
        ("gke.yaml", {"iam.gke.io/gcp-service-account": "labdeck-broker@example-analytics.iam.gserviceaccount.com"}),
    ],
)
def test_broker_service_account_annotations(render, values, annotation):
    objects = render(CHART.parent / "examples" / values)
    sa = objects.get("ServiceAccount", "rel-labdeck-broker")
    assert sa["metadata"]["annotations"] == annotation
    pod = objects.get("Deployment", "rel-labdeck-broker")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "rel-labdeck-broker"
    # nobody else carries the broker's cloud identity (the viewer may have a read-only one of its own)
    for other in objects.of_kind("ServiceAccount"):
        if other["metadata"]["name"] == "rel-labdeck-broker":
            continue
        others = other["metadata"].get("annotations", {})
        if other["metadata"]["name"] == "rel-labdeck-viewer":
            assert not set(others.items()) & set(annotation.items())
        else:
            assert not set(others) & set(annotation)


# ---- image pre-pullers ------------------------------------------------------------------


def _puller_images(daemonset):
    return {c["image"] for c in daemonset["spec"]["template"]["spec"]["initContainers"]}


@pytest.mark.parametrize("values", [LINT_VALUES, CHART.parent / "examples" / "aws-eks.yaml"], ids=["lint", "aws-eks"])
def test_pre_pullers_cover_every_profile_image(render, values):
    import yaml

    config = yaml.safe_load(values.read_text())
    su = config["singleuser"]
    expected = {f"{su['image']['name']}:{su['image']['tag']}"}
    expected |= {p["image"] for p in su["profiles"] if p.get("image")}
    expected |= set(config.get("prePuller", {}).get("extraImages", {}).values())
    objects = render(values)
    daemonsets = objects.of_kind("DaemonSet")
    assert len(daemonsets) == 2
    for ds in daemonsets:
        assert _puller_images(ds) == expected, ds["metadata"]["name"]
    hook = [ds for ds in daemonsets if "helm.sh/hook" in ds["metadata"].get("annotations", {})]
    assert len(hook) == 1 and hook[0]["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    job = objects.of_kind("Job")[0]
    assert hook[0]["metadata"]["name"] in " ".join(job["spec"]["template"]["spec"]["containers"][0]["command"])


def test_default_pre_puller_pulls_the_default_image(render):
    for ds in render().of_kind("DaemonSet"):
        assert _puller_images(ds) == {"ghcr.io/labdeck/singleuser:0.1.0"}


# ---- secrets ---------------------------------------------------------------------------


SECRET_STRINGS = ["lint-secret", "lint-proxy-token", "lint-broker-token", "0123456789abcdef0123456789abcdef"]


def test_secrets_live_in_secrets_not_configmaps(render):
    objects = render(LINT_VALUES)
    data = objects.secret_data("lint-hub")
    assert data["proxy.token"] == "lint-proxy-token"
    assert data["broker.api-token"] == "lint-broker-token"
    assert "clientSecret: lint-secret" in data["values.yaml"]
    for obj in objects:
        if obj["kind"] == "Secret":
            continue
        text = str(obj)
        for s in SECRET_STRINGS:
            assert s not in text, f"{obj['kind']}/{obj['metadata']['name']} holds a secret"


def test_generated_secrets(render):
    data = render().secret_data("rel-labdeck-hub")
    assert len(data["hub.cookie-secret"]) == 64
    int(data["hub.cookie-secret"], 16)  # hex
    assert len(data["proxy.token"]) >= 32 and len(data["broker.api-token"]) >= 32
    assert data["proxy.token"] != data["broker.api-token"]


def test_secret_volumes_are_read_only_0400(render):
    for obj in render(LINT_VALUES).of_kind("Deployment"):
        pod = obj["spec"]["template"]["spec"]
        secret_volumes = {v["name"] for v in pod.get("volumes", []) if "secret" in v}
        for v in pod.get("volumes", []):
            if "secret" in v:
                assert v["secret"]["defaultMode"] == 0o400
        for c in pod["containers"]:
            for m in c.get("volumeMounts", []):
                if m["name"] in secret_volumes:
                    assert m["readOnly"] is True


# ---- checksums restart the hub when config changes -------------------------------------


def _checksums(objects, deployment="rel-labdeck-hub"):
    return objects.get("Deployment", deployment)["spec"]["template"]["metadata"]["annotations"]


FIXED = [
    "hub.cookieSecret=" + "ab" * 32,
    "proxy.secretToken=p",
    "broker.apiToken=b",
]


def test_checksums_change_with_config(render):
    base = _checksums(render(set_values=FIXED))
    assert base == _checksums(render(set_values=[*FIXED])), "checksums must be stable for equal input"
    changed = _checksums(render(set_values=[*FIXED, "culler.timeout=7200"]))
    assert changed["checksum/secret"] != base["checksum/secret"]
    assert changed["checksum/config-map"] == base["checksum/config-map"]
    rotated = _checksums(render(set_values=[*FIXED[:2], "broker.apiToken=b2"]))
    assert rotated["checksum/secret"] != base["checksum/secret"]
    broker = _checksums(render(set_values=FIXED), "rel-labdeck-broker")
    broker_changed = _checksums(render(set_values=[*FIXED, "culler.timeout=7200"]), "rel-labdeck-broker")
    assert set(broker) == {"checksum/config-map", "checksum/secret"}
    assert broker["checksum/secret"] != broker_changed["checksum/secret"]


def test_config_map_holds_the_hub_config_file(render):
    cm = render().get("ConfigMap", "rel-labdeck-hub")
    assert set(cm["data"]) == {"jupyterhub_config.py"}
    assert (CHART / "files/hub/jupyterhub_config.py").read_text() == cm["data"]["jupyterhub_config.py"]


# ---- security contexts -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_pods_run_non_root_without_privileges(render, name):
    for obj in render(*VALUE_SETS[name]):
        if obj["kind"] not in ("Deployment", "DaemonSet", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] != 0, where
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where


def test_only_the_hub_gets_an_api_token(render):
    for obj in render(LINT_VALUES):
        if obj["kind"] in ("Deployment", "DaemonSet"):
            expected = obj["metadata"]["name"] == "lint-hub"
            assert obj["spec"]["template"]["spec"]["automountServiceAccountToken"] is expected, obj["metadata"]["name"]


def test_public_service_type_by_value(render):
    assert render().get("Service", "rel-labdeck-proxy-public")["spec"]["type"] == "LoadBalancer"
    svc = render(set_values=["proxy.service.type=ClusterIP"]).get("Service", "rel-labdeck-proxy-public")
    assert svc["spec"]["type"] == "ClusterIP"
    assert render().get("Service", "rel-labdeck-proxy-api")["spec"]["type"] == "ClusterIP"


def test_ingress_tls(render):
    ing = render(LINT_VALUES).get("Ingress", "lint-proxy-public")
    assert [r["host"] for r in ing["spec"]["rules"]] == ["labdeck.example.com", "data.example.com"]
    assert ing["spec"]["tls"][0]["secretName"] == "labdeck-tls"
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/labdeck/"


WARM = ["singleuser.warmPool.enabled=true"]


def test_warm_pool_off_by_default_renders_nothing_of_it(render):
    objs = render()
    assert not [o for o in objs.of_kind("PersistentVolumeClaim") if o["metadata"]["name"].endswith("-homes")]
    rules = objs.get("Role", "rel-labdeck-hub")["rules"]
    assert not [r for r in rules if "pods" in r["resources"] and "patch" in r["verbs"]]
    # a server's Secret is patched (owned by its pod) in every configuration, pods never without the pool
    assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["patch"]} in rules


def test_warm_pool_renders_a_kept_rwx_homes_volume_a_hub_only_claim_port_and_the_patch_right(render):
    objs = render(set_values=WARM)
    pvc = objs.get("PersistentVolumeClaim", "rel-labdeck-homes")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"] and pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    netpol = objs.get("NetworkPolicy", "rel-labdeck-singleuser")
    assert netpol["spec"]["podSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/component", "operator": "In", "values": ["singleuser-server", "singleuser-warm"]}
    ]
    claim_rule = [r for r in netpol["spec"]["ingress"] if r["ports"] == [{"port": 8889, "protocol": "TCP"}]]
    assert len(claim_rule) == 1 and [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in claim_rule[0]["from"]] == ["hub"]
    rules = objs.get("Role", "rel-labdeck-hub")["rules"]
    assert {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]} in rules
    assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["patch"]} in rules
    import yaml as _yaml

    secret = objs.secret_data("rel-labdeck-hub")
    assert len(secret["singleuser.homes-key"]) >= 32
    names = _yaml.safe_load(secret["values.yaml"])["Names"]
    assert names["homes"] == "rel-labdeck-homes"
    # an existing claim: no PVC of the chart's, and none in the names
    objs = render(set_values=[*WARM, "singleuser.warmPool.homes.existingClaim=shared-homes"])
    assert not [o for o in objs.of_kind("PersistentVolumeClaim") if o["metadata"]["name"].endswith("-homes")]
