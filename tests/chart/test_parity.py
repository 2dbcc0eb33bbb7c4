"""The chart and the embedded default get the same hub config, except what the mode table names.

For the chart's defaults and every ``helm/examples/*.yaml``: render the chart,
load the hub config from the rendered Secret exactly as the hub pod would
(``chart_mode`` + ``configure``), build the embedded default's config from the
*same* values file (``LABDECK_VALUES_FILE``: settings -> values -> configure),
flatten both and compare every key. A difference passes only if
``labdeck.hub.modes.MODE_TABLE`` (or, with no values file,
``EMBEDDED_DEFAULTS_TABLE``) names it.

The same holds for the broker (with its providers), runs and viewer: each
one's config is loaded from the file its pod mounts (the rendered ConfigMap's
``<service>_config.py`` on the values the pod mounts) and from the file the
embedded default starts it with (``hub/local/service_config.py`` on the
runner's ``settings.json``), and compared under the same table.
"""

import fnmatch

import pytest
import yaml
from chartlib import EXAMPLES
from traitlets.config.loader import PyFileConfigLoader

from labdeck.hub import contract
from labdeck.hub import values as hub_values
from labdeck.hub.configurer import configure
from labdeck.hub.local.plan import SERVICE_CONFIG
from labdeck.hub.local.settings import env_settings
from labdeck.hub.local.state import StateDir
from labdeck.hub.local.values import local_values
from labdeck.hub.modes import EMBEDDED_DEFAULTS_TABLE, MODE_TABLE, chart_mode, local_mode

pytestmark = pytest.mark.chart

PORTS = {"public_port": 8000, "hub_port": 18081, "proxy_api_port": 18001, "broker_port": 18090,
         "aws_port": 15000, "bq_port": 19050, "runs_port": 18095, "viewer_port": 18096}  # fmt: skip
LOCAL_SECRETS = {k: "ab" * 32 for k in ("cookie_secret", "proxy_token", "broker_token", "runs_token", "viewer_token", "supervisor_token")}


def chart_config(rendered):
    data = rendered.secret_data("rel-labdeck-hub")
    values = yaml.safe_load(data["values.yaml"])

    def read_secret(key, default=""):
        return data.get(key, default)

    return configure(values, chart_mode(values, read_secret))


def embedded_settings(tmp_path, values_file=None):
    env = {"PATH": "/usr/bin"}
    if values_file:
        env[contract.ENV_VALUES_FILE] = str(values_file)
    return {
        **PORTS,
        "state_dir": str(tmp_path),
        "aws_endpoint": f"http://127.0.0.1:{PORTS['aws_port']}",
        "bq_endpoint": f"http://127.0.0.1:{PORTS['bq_port']}",
        **env_settings(env),
    }


def embedded_config(tmp_path, values_file=None):
    settings = embedded_settings(tmp_path, values_file)
    return configure(local_values(settings), local_mode(settings, LOCAL_SECRETS))


def load_config_file(path, monkeypatch, **env):
    """A traitlets config file loaded as the service loads it (``--config``), with ``env`` set."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    hub_values.clear_cache()
    try:
        return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()
    finally:
        hub_values.clear_cache()


def chart_service_config(rendered, name, tmp_path, monkeypatch):
    """Service ``name``'s config as its pod loads it: its ConfigMap's file, on the values it mounts."""
    pod = tmp_path / f"chart-{name}"
    pod.mkdir(exist_ok=True)
    for key, text in rendered.get("ConfigMap", f"rel-labdeck-{name}")["data"].items():
        (pod / key).write_text(text)
    if name == contract.BROKER:
        # the broker mounts the hub Secret's values.yaml (runs and viewer: their ConfigMap's subset)
        (pod / "values.yaml").write_text(rendered.secret_data("rel-labdeck-hub")["values.yaml"])
    return load_config_file(pod / f"{name}_config.py", monkeypatch, **{hub_values.VALUES_FILE_ENV: str(pod / "values.yaml")})


def embedded_service_config(tmp_path, name, monkeypatch, values_file=None):
    """Service ``name``'s config as the runner starts it: ``--config`` :data:`SERVICE_CONFIG` on ``settings.json``."""
    state = tmp_path / f"state-{name}"
    state.mkdir(exist_ok=True)
    StateDir(state).write_settings(embedded_settings(state, values_file))
    return load_config_file(SERVICE_CONFIG, monkeypatch, LABDECK_STATE_DIR=str(state), JUPYTERHUB_SERVICE_NAME=name)


def flatten(config) -> dict:
    """``Section.trait`` → value; services and roles by name (``services[broker].url``)."""
    out = {}
    for section, traits in config.items():
        for trait, value in traits.items():
            if (section, trait) == ("JupyterHub", "services"):
                for service in value:
                    for key, item in service.items():
                        out[f"services[{service['name']}].{key}"] = item
            elif (section, trait) == ("JupyterHub", "load_roles"):
                for role in value:
                    out[f"load_roles[{role['name']}]"] = role
            else:
                out[f"{section}.{trait}"] = value
    return out


def explained(key: str, table: dict) -> bool:
    """True if a row of ``table`` matches ``key`` (``*`` is a wildcard, brackets are literal)."""
    for pattern in table:
        literal = pattern.replace("[", "[[]")
        if fnmatch.fnmatchcase(key, literal) or fnmatch.fnmatchcase(key, literal + ".*"):
            return True
    return False


def unexplained_differences(chart: dict, local: dict, table: dict) -> dict:
    diffs = {}
    for key in sorted(set(chart) | set(local)):
        a, b = chart.get(key, "<absent>"), local.get(key, "<absent>")
        if a != b and not explained(key, table):
            diffs[key] = (a, b)
    return diffs


def test_chart_defaults_and_embedded_default_differ_only_by_the_tables(render, tmp_path):
    chart = flatten(chart_config(render()))
    local = flatten(embedded_config(tmp_path))
    assert unexplained_differences(chart, local, {**MODE_TABLE, **EMBEDDED_DEFAULTS_TABLE}) == {}


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_gives_both_modes_the_same_config(render, tmp_path, example):
    chart = flatten(chart_config(render(example)))
    local = flatten(embedded_config(tmp_path, example))
    assert unexplained_differences(chart, local, MODE_TABLE) == {}


@pytest.mark.parametrize(
    "key",
    [
        "JupyterHub.allow_named_servers",
        "JupyterHub.named_server_limit_per_user",
        "LabdeckSpawnerMixin.onboarding_dirs",
        "LabdeckSpawnerMixin.bigquery_dataset_template",
        "Spawner.http_timeout",
        "Spawner.start_timeout",
        "JupyterHub.concurrent_spawn_limit",
        "services[runs].name",
        "services[viewer].name",
        "services[idle-culler].command",
        "load_roles[labdeck-runs]",
        "load_roles[labdeck-viewer]",
        "load_roles[user]",
        "load_roles[server]",
    ],
)
def test_the_shared_concerns_are_compared_not_excused(render, tmp_path, key):
    """Each concern the issue names is present in both configs and no table row excuses it."""
    chart = flatten(chart_config(render()))
    local = flatten(embedded_config(tmp_path))
    assert key in chart and key in local
    assert not explained(key, {**MODE_TABLE, **EMBEDDED_DEFAULTS_TABLE})
    assert chart[key] == local[key]


def test_a_drift_is_caught(render, tmp_path):
    """The comparison is not vacuous: a value only the chart gets shows up as a difference."""
    chart = flatten(chart_config(render(set_values=["culler.timeout=60"])))
    local = flatten(embedded_config(tmp_path))
    diffs = unexplained_differences(chart, local, {**MODE_TABLE, **EMBEDDED_DEFAULTS_TABLE})
    assert list(diffs) == ["services[idle-culler].command"]


# ------------------------------------------------------------------ the services

SERVICES = list(contract.LABDECK_SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_each_services_defaults_differ_only_by_the_tables(render, tmp_path, monkeypatch, name):
    chart = flatten(chart_service_config(render(), name, tmp_path, monkeypatch))
    local = flatten(embedded_service_config(tmp_path, name, monkeypatch))
    assert chart and local
    assert unexplained_differences(chart, local, {**MODE_TABLE, **EMBEDDED_DEFAULTS_TABLE}) == {}


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_gives_each_service_the_same_config_in_both_modes(render, tmp_path, monkeypatch, example, name):
    chart = flatten(chart_service_config(render(example), name, tmp_path, monkeypatch))
    local = flatten(embedded_service_config(tmp_path, name, monkeypatch, example))
    assert unexplained_differences(chart, local, MODE_TABLE) == {}


@pytest.mark.parametrize(
    "name,key",
    [
        (contract.BROKER, "BrokerApp.base_url"),
        (contract.BROKER, "BrokerApp.grants"),
        (contract.BROKER, "BrokerApp.cache_margin_seconds"),
        (contract.BROKER, "AWSProvider.region"),
        (contract.BROKER, "AWSProvider.ttl_seconds"),
        (contract.BROKER, "GCPProvider.ttl_seconds"),
        (contract.BROKER, "GCPProvider.dataset_template"),
        (contract.RUNS, "RunsApp.base_url"),
        (contract.VIEWER, "ViewerApp.base_url"),
    ],
)
def test_the_services_shared_concerns_are_compared_not_excused(render, tmp_path, monkeypatch, name, key):
    chart = flatten(chart_service_config(render(), name, tmp_path, monkeypatch))
    local = flatten(embedded_service_config(tmp_path, name, monkeypatch))
    assert key in chart and key in local
    assert not explained(key, {**MODE_TABLE, **EMBEDDED_DEFAULTS_TABLE})
    assert chart[key] == local[key]


def test_a_broker_drift_is_caught(render, tmp_path, monkeypatch):
    """Control: one broker value only the chart gets is the one difference found."""
    chart = flatten(chart_service_config(render(set_values=["cloud.aws.ttlSeconds=7200"]), contract.BROKER, tmp_path, monkeypatch))
    local = flatten(embedded_service_config(tmp_path, contract.BROKER, monkeypatch))
    diffs = unexplained_differences(chart, local, {**MODE_TABLE, **EMBEDDED_DEFAULTS_TABLE})
    assert diffs == {"AWSProvider.ttl_seconds": (7200, 3600)}


def test_a_base_url_reaches_runs_and_viewer_in_both_modes(render, tmp_path, monkeypatch):
    """hub.baseUrl moves the services' prefix in both modes (the runs/viewer ConfigMaps carry it)."""
    values = tmp_path / "base-url.yaml"
    values.write_text("hub:\n  baseUrl: /labdeck/\n")
    for name, section in ((contract.RUNS, "RunsApp"), (contract.VIEWER, "ViewerApp")):
        chart = chart_service_config(render(values), name, tmp_path, monkeypatch)
        local = embedded_service_config(tmp_path, name, monkeypatch, values)
        assert chart[section].base_url == local[section].base_url == f"/labdeck/services/{name}/"
