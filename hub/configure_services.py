"""The configurers of labdeck's own services: chart values plus a mode in, each service's ``Config`` out.

The services' counterpart of :mod:`labdeck.hub.configurer`, under the same
rules (tljh's ``configurer.py``): pure, config only ever *set*, a key that is
absent takes the chart's default (recorded, and compared with ``values.yaml``
by ``tests/hub/test_contract.py``). What differs by mode (where a service
listens, where its state lives) comes from the :class:`~labdeck.hub.modes.Mode`
and :data:`~labdeck.hub.modes.MODE_TABLE` says why.

Callers: the chart's ``files/{broker,runs,viewer}/*_config.py`` (each
Deployment passes only ``--config``) and the embedded default's
``hub/local/service_config.py``; ``tests/chart/test_parity.py`` compares the
two modes for every service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from traitlets.config import Config

from . import contract
from .modes import Mode
from .values import Values

#: refresh a cached credential when it has less than this left (the SDKs' own window is 15 min)
CACHE_MARGIN_SECONDS = 1200


def update_listen(c: Config, section: str, name: str, v: Values, mode: Mode) -> None:
    """Where service ``name`` listens: the mode's address and port, under its hub prefix."""
    app = getattr(c, section)
    app.ip = mode.service_ip
    app.port = mode.service_ports[name]
    if name == contract.BROKER:
        # user servers call the broker directly, not through the proxy: no hub.baseUrl
        app.base_url = contract.service_prefix(name)
    else:
        # JupyterHub's prefix of a service: <hub.baseUrl>services/<name>/
        app.base_url = v("hub.baseUrl", "/").rstrip("/") + contract.service_prefix(name)


def update_broker_app(c: Config, v: Values, mode: Mode) -> None:
    update_listen(c, "BrokerApp", contract.BROKER, v, mode)
    c.BrokerApp.providers = v("cloud.providers", [])
    c.BrokerApp.grants = {k: val for k, val in v("broker.grants", {"everyone": {}, "groups": {}, "users": {}}).items() if val}
    grants_file = mode.service_state.get("grants_file")
    if grants_file:
        c.BrokerApp.grants_file = grants_file
    ttls = [v("cloud.aws.ttlSeconds", 3600), v("cloud.gcp.lifetimeSeconds", 3600)]
    # a cached credential must still be served for a while: a third of the shortest lifetime at most
    c.BrokerApp.cache_margin_seconds = min(CACHE_MARGIN_SECONDS, min(int(t) for t in ttls) // 3)


def _set_nonempty(section, trait: str, value: Any) -> None:
    if value not in ("", None):
        setattr(section, trait, value)


def update_aws_provider(c: Config, v: Values, mode: Mode) -> None:
    """STS AssumeRole with a per-user session policy (against the local endpoint too)."""
    aws = c.AWSProvider
    aws.region = v("cloud.aws.region", contract.DEFAULT_REGION)
    aws.ttl_seconds = v("cloud.aws.ttlSeconds", 3600)
    for trait, key in (("bucket", "bucket"), ("role_arn", "roleArn"), ("endpoint_url", "endpointUrl")):
        _set_nonempty(aws, trait, v(f"cloud.aws.{key}", ""))


def update_gcp_provider(c: Config, v: Values, mode: Mode) -> None:
    """Service-account impersonation for BigQuery (the local provider shares its project and lifetime)."""
    gcp = c.GCPProvider
    gcp.ttl_seconds = v("cloud.gcp.lifetimeSeconds", 3600)
    gcp.dataset_template = v("cloud.gcp.bigqueryDatasetTemplate", contract.DEFAULT_DATASET_TEMPLATE)
    _set_nonempty(gcp, "project", v("cloud.gcp.project", ""))
    _set_nonempty(gcp, "service_account", v("cloud.gcp.serviceAccount", ""))
    if "local-gcp" in v("cloud.providers", []):
        # the embedded default's BigQuery endpoint and the key it signs tokens with
        local = c.LocalGCPProvider
        local.emulator_url = v("cloud.gcp.bigqueryEmulatorHost", "")
        local.key_file = mode.service_state["bigquery_key"]


def update_runs_app(c: Config, v: Values, mode: Mode) -> None:
    update_listen(c, "RunsApp", contract.RUNS, v, mode)
    c.RunsApp.db_path = mode.service_state["runs_db"]
    _set_nonempty(c.RunsApp, "bucket", v("cloud.aws.bucket", ""))


def update_viewer_app(c: Config, v: Values, mode: Mode) -> None:
    update_listen(c, "ViewerApp", contract.VIEWER, v, mode)
    c.ViewerApp.db_path = mode.service_state["viewer_db"]
    _set_nonempty(c.ViewerApp, "bucket", v("cloud.aws.bucket", ""))


def configure_broker(values: Mapping, mode: Mode) -> Config:
    """``BrokerApp`` and its providers' config for ``values`` in ``mode``."""
    return configure_service_with(contract.BROKER, Values(values), mode)


def configure_runs(values: Mapping, mode: Mode) -> Config:
    """``RunsApp`` config for ``values`` in ``mode``."""
    return configure_service_with(contract.RUNS, Values(values), mode)


def configure_viewer(values: Mapping, mode: Mode) -> Config:
    """``ViewerApp`` config for ``values`` in ``mode``."""
    return configure_service_with(contract.VIEWER, Values(values), mode)


#: service name → its update steps, in order
SERVICE_STEPS = {
    contract.BROKER: (update_broker_app, update_aws_provider, update_gcp_provider),
    contract.RUNS: (update_runs_app,),
    contract.VIEWER: (update_viewer_app,),
}


def configure_service(name: str, values: Mapping, mode: Mode) -> Config:
    """The config of labdeck service ``name`` (``broker``, ``runs`` or ``viewer``)."""
    if name not in SERVICE_STEPS:
        raise ValueError(f"no labdeck service named {name!r}; known: {', '.join(SERVICE_STEPS)}")
    return configure_service_with(name, Values(values), mode)


def configure_service_with(name: str, v: Values, mode: Mode) -> Config:
    c = Config()
    for step in SERVICE_STEPS[name]:
        step(c, v, mode)
    return c


def recorded_defaults(mode: Mode) -> dict[str, Any]:
    """Every values key the services' configurers read (in ``mode``), with the default each assumes."""
    v = Values({})
    for name in SERVICE_STEPS:
        configure_service_with(name, v, mode)
    return dict(v.defaults)
