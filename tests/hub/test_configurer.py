"""The one configurer, driven as the embedded default drives it (settings -> values -> Config)."""

from labdeck.hub.configurer import configure
from labdeck.hub.local.values import local_values
from labdeck.hub.modes import local_mode


def local_config(settings, secrets):
    return configure(local_values(settings), local_mode(settings, secrets))


SETTINGS = {
    "state_dir": "/s",
    "public_port": 8000,
    "hub_port": 8081,
    "proxy_api_port": 8001,
    "broker_port": 8090,
    "aws_endpoint": "http://127.0.0.1:5000",
    "bucket": "labdeck-data",
    "region": "us-east-1",
    "admin_users": ["admin"],
}
SECRETS = {"cookie_secret": "00" * 32, "proxy_token": "p", "broker_token": "b", "supervisor_token": "s", "runs_token": "r", "viewer_token": "v"}


def test_local_config_listens_on_loopback_only_and_keeps_servers_across_hub_restarts():
    c = local_config(SETTINGS, SECRETS)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert c.JupyterHub.hub_bind_url == "http://127.0.0.1:8081"
    assert c.JupyterHub.cleanup_servers is False
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.JupyterHub.db_url == "sqlite:////s/jupyterhub.sqlite"


def test_local_config_wires_the_broker_service_with_least_scopes():
    c = local_config(SETTINGS, SECRETS)
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert services["broker"] == {"name": "broker", "url": "http://127.0.0.1:8090", "api_token": "b", "display": False}
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["labdeck-broker"]["scopes"] == ["read:users", "read:users:groups"]
    sp = c.LabdeckSpawnerMixin
    assert sp.broker_url == "http://127.0.0.1:8090/services/broker/"
    assert sp.s3_bucket == "labdeck-data"
    assert c.LabdeckLocalProcessSpawner.homes_dir == "/s/homes"
    assert c.Authenticator.admin_users == {"admin"}


def test_banner_default_and_admin_text_is_escaped():
    c = local_config(SETTINGS, SECRETS)
    assert "exploration and prototyping" in c.JupyterHub.template_vars["announcement_home"]
    c = local_config({**SETTINGS, "banner": "<script>x</script> Data platform"}, SECRETS)
    # (then the warning that servers without OS users are not isolated)
    assert c.JupyterHub.template_vars["announcement_home"].startswith("&lt;script&gt;x&lt;/script&gt; Data platform<br>")


def test_profiles_from_settings_reach_the_spawner_and_supervisor_may_manage_groups():
    c = local_config(SETTINGS, SECRETS)
    assert "profiles" not in c.LabdeckSpawnerMixin  # the spawner's defaults apply
    profiles = [{"slug": "jupyterlab", "default": True}, {"slug": "gpu", "groups": ["ml"]}]
    c = local_config({**SETTINGS, "profiles": profiles}, SECRETS)
    assert c.LabdeckSpawnerMixin.profiles == profiles
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert "admin:groups" in roles["labdeck-supervisor"]["scopes"]


def test_profiles_file_json_or_yaml_is_checked_with_a_clear_error(tmp_path):
    import pytest

    from labdeck.hub.local.settings import SettingsError as SupervisorError
    from labdeck.hub.local.settings import load_profiles_file

    j = tmp_path / "p.json"
    j.write_text('[{"slug": "jupyterlab"}, {"slug": "gpu", "groups": ["ml"]}]')
    assert load_profiles_file(str(j))[1] == {"slug": "gpu", "groups": ["ml"]}
    y = tmp_path / "p.yaml"
    y.write_text("- slug: jupyterlab\n  default: true\n")
    assert load_profiles_file(str(y)) == [{"slug": "jupyterlab", "default": True}]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- slug: Not A Slug\n")
    with pytest.raises(SupervisorError, match="LABDECK_PROFILES_FILE: .*slug"):
        load_profiles_file(str(bad))
    with pytest.raises(SupervisorError, match="LABDECK_PROFILES_FILE: cannot read"):
        load_profiles_file(str(tmp_path / "missing.json"))
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(SupervisorError, match="non-empty list"):
        load_profiles_file(str(tmp_path / "empty.json"))


# ---- kube mode (LABDECK_SPAWNER=kube): the embedded hub spawning through a Kubernetes API


KUBE = {
    "kubeconfig": "/k/kubeconfig",
    "namespace": "labdeck-test",
    "path": "/venv/bin:/usr/bin:/bin",
    "allow_root": True,
    "storage_capacity": "1Gi",
    "image": "labdeck/singleuser:local",
}


def test_kube_mode_is_off_by_default():
    c = local_config(SETTINGS, SECRETS)
    assert c.JupyterHub.spawner_class == "labdeck-local"
    assert "KubeSpawner" not in c


def test_kube_mode_spawns_labdeck_kube_with_a_pvc_home_reachable_hub_and_the_local_wiring():
    settings = {**SETTINGS, "gcp_project": "labdeck-local", "bq_endpoint": "http://127.0.0.1:9050", "kube": KUBE,
                "profiles": [{"slug": "jupyterlab", "default": True}, {"slug": "gpu", "groups": ["ml"]}]}
    c = local_config(settings, SECRETS)
    assert c.JupyterHub.spawner_class == "labdeck-kube"
    sp = c.KubeSpawner
    assert sp.namespace == "labdeck-test"
    assert sp.image == "labdeck/singleuser:local"
    assert sp.hub_connect_url == "http://127.0.0.1:8081"
    assert (sp.ip, sp.port) == ("0.0.0.0", 8888)
    assert sp.cmd == ["labdeck-singleuser"]  # onboarding, not performance_config's Spawner.cmd
    assert sp.args[-1] == "--allow-root" and "--LabApp.news_url=None" in sp.args
    assert sp.environment == {"HOME": "/home/jovyan", "PATH": "/venv/bin:/usr/bin:/bin",
                              "LABDECK_S3_DRIVE": "1", "LABDECK_BIGQUERY_PANEL": "1"}
    assert sp.storage_pvc_ensure is True
    assert sp.volumes == [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
    assert sp.volume_mounts == [{"name": "home", "mountPath": "/home/jovyan"}]
    # broker/S3/BigQuery/profiles exactly as for the local spawner: one section serves both backends
    local = local_config({k: v for k, v in settings.items() if k != "kube"}, SECRETS).LabdeckSpawnerMixin
    mixin = c.LabdeckSpawnerMixin
    for key in ("broker_url", "aws_region", "s3_bucket", "aws_endpoint_url", "profiles", "gcp_project", "bigquery_emulator_host"):
        assert mixin[key] == local[key], key
    # no secret in the spawner's config (the token reaches pods through a Secret)
    assert not any(v in repr(dict(sp)) for v in SECRETS.values() if len(v) > 1)


def test_kube_mode_without_root_does_not_allow_root_and_image_is_configurable():
    c = local_config({**SETTINGS, "kube": {**KUBE, "allow_root": False, "image": "example/img:1"}}, SECRETS)
    assert "--allow-root" not in c.KubeSpawner.args
    assert c.KubeSpawner.image == "example/img:1"


def test_supervisor_kube_settings_from_env_and_kubeconfig_for_the_hub_only(tmp_path):
    import pytest

    from labdeck.hub.local.runner import Supervisor, SupervisorError

    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\n")
    base = {"LABDECK_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin"}
    assert Supervisor(base).kube_settings() is None
    env = {**base, "LABDECK_SPAWNER": "kube", "LABDECK_KUBECONFIG": str(kc), "LABDECK_KUBE_NAMESPACE": "ns1"}
    sup = Supervisor(env)
    kube = sup.kube_settings()
    assert kube["kubeconfig"] == str(kc) and kube["namespace"] == "ns1"
    assert kube["path"].split(":")[0].endswith("bin")
    sup.settings = {"kube": kube}
    assert sup.kube_hub_env() == {"KUBECONFIG": str(kc)}
    sup.settings = {}
    assert sup.kube_hub_env() == {}
    with pytest.raises(SupervisorError, match="LABDECK_KUBECONFIG"):
        Supervisor({**env, "LABDECK_KUBECONFIG": str(tmp_path / "missing")}).kube_settings()
    with pytest.raises(SupervisorError, match="LABDECK_KUBE_NAMESPACE"):
        Supervisor({**env, "LABDECK_KUBE_NAMESPACE": ""}).kube_settings()
    with pytest.raises(SupervisorError, match="'local' or 'kube'"):
        Supervisor({**env, "LABDECK_SPAWNER": "docker"}).kube_settings()


def test_data_uis_are_on_by_default_and_values_turn_each_off_in_both_backends():
    from labdeck.hub.modes import chart_mode  # noqa: F401 - both modes go through the same update_spawner

    c = local_config(SETTINGS, SECRETS)
    assert c.Spawner.environment == {"LABDECK_S3_DRIVE": "1", "LABDECK_BIGQUERY_PANEL": "1"}
    values = local_values(SETTINGS)
    values.setdefault("singleuser", {})["data"] = {"s3Drive": {"enabled": False}, "bigqueryPanel": {"enabled": True}}
    values["singleuser"]["extraEnv"] = {"TEAM": "x"}
    c = configure(values, local_mode(SETTINGS, SECRETS))
    assert c.Spawner.environment == {"TEAM": "x", "LABDECK_S3_DRIVE": "0", "LABDECK_BIGQUERY_PANEL": "1"}
    kube = local_config({**SETTINGS, "kube": KUBE}, SECRETS)
    assert kube.KubeSpawner.environment["LABDECK_S3_DRIVE"] == "1"
