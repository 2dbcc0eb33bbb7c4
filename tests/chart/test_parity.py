"""The chart and the embedded default get the same hub config, except what the mode table names.

For the chart's defaults and every ``helm/examples/*.yaml``: render the chart,
load the hub config from the rendered Secret exactly as the hub pod would
(``chart_mode`` + ``configure``), build the embedded default's config from the
*same* values file (``LABDECK_VALUES_FILE``: settings -> values -> configure),
flatten both and compare every key. A difference passes only if
``labdeck.hub.modes.MODE_TABLE`` (or, with no values file,
``EMBEDDED_DEFAULTS_TABLE``) names it.
"""

import fnmatch

import pytest
import yaml
from chartlib import EXAMPLES

from labdeck.hub import contract
from labdeck.hub.configurer import configure
from labdeck.hub.local.settings import env_settings
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


def embedded_config(tmp_path, values_file=None):
    env = {"PATH": "/usr/bin"}
    if values_file:
        env[contract.ENV_VALUES_FILE] = str(values_file)
    settings = {
        **PORTS,
        "state_dir": str(tmp_path),
        "aws_endpoint": f"http://127.0.0.1:{PORTS['aws_port']}",
        "bq_endpoint": f"http://127.0.0.1:{PORTS['bq_port']}",
        **env_settings(env),
    }
    return configure(local_values(settings), local_mode(settings, LOCAL_SECRETS))


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
