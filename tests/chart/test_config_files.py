"""The chart's Python config files, run on the values a real render mounts.

Renders the chart, writes the hub Secret's keys to a directory as the
kubelet would, points labdeck.hub.values at it, and loads
files/hub/jupyterhub_config.py and files/broker/broker_config.py with
traitlets (tljh test_configurer style: assert on the resulting Config).
"""

import pytest
from chartlib import CHART, EXAMPLES, LINT_VALUES
from traitlets.config.loader import PyFileConfigLoader

from labdeck.hub import values as v

pytestmark = pytest.mark.chart
EXAMPLE = {p.name: p for p in EXAMPLES}


@pytest.fixture
def load(render, tmp_path, monkeypatch):
    def _load(values_file, config_file, secret="rel-labdeck-hub", set_values=()):
        objects = render(values_file, set_values=set_values) if values_file else render(set_values=set_values)
        secret_dir = tmp_path / "secret"
        secret_dir.mkdir(exist_ok=True)
        for key, text in objects.secret_data(secret).items():
            (secret_dir / key).write_text(text)
        monkeypatch.setenv(v.VALUES_FILE_ENV, str(secret_dir / "values.yaml"))
        monkeypatch.setenv(v.SECRET_DIR_ENV, str(secret_dir))
        v.clear_cache()
        try:
            return PyFileConfigLoader(config_file.name, path=str(config_file.parent)).load_config()
        finally:
            v.clear_cache()

    return _load


HUB = CHART / "files/hub/jupyterhub_config.py"
BROKER = CHART / "files/broker/broker_config.py"


def test_hub_config_aws_eks(load):
    c = load(EXAMPLE["aws-eks.yaml"], HUB)
    assert c.JupyterHub.spawner_class == "labdeck-kube"
    assert c.JupyterHub.authenticator_class == "labdeck-oidc"
    assert c.GenericOAuthenticator.claim_groups_key == "groups"
    assert c.GenericOAuthenticator.manage_groups is True
    assert c.GenericOAuthenticator.allowed_groups == ["data-team", "analysts"]
    assert c.GenericOAuthenticator.admin_groups == ["platform-admins"]
    assert c.ConfigurableHTTPProxy.api_url == "http://rel-labdeck-proxy-api:8001"
    assert c.ConfigurableHTTPProxy.should_start is False
    assert len(c.JupyterHub.cookie_secret) == 32
    assert c.JupyterHub.db_url == "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
    ks = c.KubeSpawner
    assert ks.image == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/labdeck/singleuser:0.1.0"
    assert ks.service_account == "rel-labdeck-singleuser"
    assert ks.automount_service_account_token is False
    assert ks.namespace == "labdeck"
    assert ks.extra_labels == {"app.kubernetes.io/component": "singleuser-server"}
    assert ks.common_labels["app.kubernetes.io/instance"] == "rel"
    assert ks.priority_class_name == "rel-labdeck-user-priority"
    assert ks.storage_class == "gp3" and ks.storage_capacity == "20Gi"
    m = c.LabdeckSpawnerMixin
    assert m.broker_url == "http://rel-labdeck-broker:8090/services/broker/"
    assert (m.aws_region, m.s3_bucket, m.aws_endpoint_url) == ("eu-west-1", "example-labdeck-data", "")
    assert [p["slug"] for p in m.profiles] == ["lab", "rstudio", "large", "gpu"]
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert list(services) == ["broker", "runs", "viewer", "idle-culler"]
    broker, culler = services["broker"], services["idle-culler"]
    assert broker["name"] == "broker" and broker["url"] == "http://rel-labdeck-broker:8090"
    assert len(broker["api_token"]) >= 32
    assert "--timeout=7200" in culler["command"]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["labdeck-broker"] == {
        "name": "labdeck-broker",
        "scopes": ["read:users", "read:users:groups"],
        "services": ["broker"],
    }
    assert "delete:servers" in roles["labdeck-idle-culler"]["scopes"]


def test_profiles_pass_the_mixin_validator(load):
    from labdeck.spawner.profiles import normalize_profiles

    for values in (EXAMPLE["aws-eks.yaml"], EXAMPLE["gke.yaml"], LINT_VALUES):
        c = load(values, HUB, secret="lint-hub" if values == LINT_VALUES else "rel-labdeck-hub")
        assert normalize_profiles(c.LabdeckSpawnerMixin.profiles)
    assert "profiles" not in load(None, HUB).LabdeckSpawnerMixin  # chart default: the mixin's own


def test_hub_config_dev_login(load):
    c = load(EXAMPLE["k3s-ci.yaml"], HUB)
    assert c.JupyterHub.authenticator_class == "labdeck-dev"
    # k3s CI keeps the hub database on a volume, so helm upgrade keeps the running servers
    assert c.JupyterHub.db_url == "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
    assert load(EXAMPLE["k3s-ci.yaml"], HUB, set_values=["hub.db.type=sqlite-memory"]).JupyterHub.db_url == "sqlite://"
    assert c.LabdeckSpawnerMixin.aws_endpoint_url == "http://moto:5000"
    assert "volumes" not in c.KubeSpawner  # storage.type none


def test_hub_config_passthrough_and_extra_config(load):
    c = load(LINT_VALUES, HUB, secret="lint-hub")
    assert c.KubeSpawner.http_timeout == 60
    assert c.JupyterHub.shutdown_on_logout is True
    assert c.JupyterHub.template_vars == {"org": "Example"}
    assert c.JupyterHub.base_url == "/labdeck/"
    assert c.ConfigurableHTTPProxy.auth_token == "lint-proxy-token"
    from labdeck.spawner.onboarding import default_onboarding_dir

    # labdeck's welcome files first, the admin's directory after them (it wins for the same path)
    assert c.LabdeckSpawnerMixin.onboarding_dirs == [default_onboarding_dir(), "/opt/labdeck/onboarding"]
    culler = {s["name"]: s for s in c.JupyterHub.services}["idle-culler"]
    assert "--remove-named-servers=True" in culler["command"]


def test_hub_config_refuses_lowercase_sections(load):
    with pytest.raises(SystemExit, match="kubeSpawner"):
        load(None, HUB, set_values=["hub.config.kubeSpawner.http_timeout=5"])


def test_broker_config(load):
    c = load(LINT_VALUES, BROKER, secret="lint-hub")
    assert c.BrokerApp.port == 8090 and c.BrokerApp.ip == "0.0.0.0"
    assert c.BrokerApp.providers == ["aws", "gcp"]
    assert c.BrokerApp.grants["groups"]["analysts"]["s3"] == [{"prefix": "shared/analysts/", "access": "ro"}]
    assert c.AWSProvider.role_arn == "arn:aws:iam::123456789012:role/labdeck-users"
    assert c.AWSProvider.ttl_seconds == 7200
    assert c.GCPProvider.project == "lint-project"
    assert c.GCPProvider.service_account == "users@lint-project.iam.gserviceaccount.com"
    assert (c.GCPProvider.ttl_seconds, c.GCPProvider.dataset_template) == (3600, "user_{username}")


def test_broker_config_aws_against_an_emulator(load):
    """cloud.providers [aws] with cloud.aws.endpointUrl (an S3 emulator): the production AWSProvider reads every cloud.aws value."""
    from labdeck.credentials.app import provider_class
    from labdeck.credentials.providers.aws import AWSProvider

    role = "arn:aws:iam::123456789012:role/labdeck-users"
    c = load(None, BROKER, set_values=["cloud.providers={aws}", "cloud.aws.bucket=data", "cloud.aws.endpointUrl=http://moto:5000", f"cloud.aws.roleArn={role}"])
    assert c.BrokerApp.providers == ["aws"]
    assert provider_class("aws") is AWSProvider
    prov = AWSProvider(config=c)
    assert (prov.bucket, prov.endpoint_url, prov.region, prov.role_arn) == ("data", "http://moto:5000", "us-east-1", role)


def test_broker_config_validates_with_broker_app(load):
    """The grants the chart writes are accepted by BrokerApp's own validator."""
    from labdeck.credentials.grants import validate_grant_config

    c = load(LINT_VALUES, BROKER, secret="lint-hub")
    validate_grant_config(c.BrokerApp.grants)



def test_user_pods_keep_labdecks_strict_security_context(load):
    """The chart leaves the spawner's non-root / no-escalation / seccomp default in place."""
    from labdeck.spawner.kube import objects
    from labdeck.spawner.kube.spawner import LabdeckKubeSpawner

    c = load(EXAMPLE["aws-eks.yaml"], HUB)
    assert "container_security_context" not in c.KubeSpawner
    assert "container_security_context" not in c.LabdeckKubeSpawner
    assert c.KubeSpawner.allow_privilege_escalation is False
    default = LabdeckKubeSpawner._container_security_context_default(None)
    assert default == objects.container_security_context()
    assert default["runAsNonRoot"] is True and default["capabilities"] == {"drop": ["ALL"]}
