"""What differs between labdeck's two modes, and nothing else.

The configurer (:mod:`labdeck.hub.configurer`) turns one values mapping into
hub config for both the chart and the embedded default. Everything it cannot
take from the values comes from a :class:`Mode`: where the processes are
(addresses), where secrets come from, which spawner backend runs servers and
which services only one mode runs. :data:`MODE_TABLE` names every config key
that may therefore differ between a chart render and the embedded default
given the same values, and why; ``tests/chart/test_parity.py`` fails on any
other difference.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import contract

#: config key (``Section.trait``, or ``services[<name>].<key>``; ``*`` matches anything) → why it
#: may differ between the chart and the embedded default given the same values
MODE_TABLE: dict[str, str] = {
    # -- backend: local processes or pods
    "JupyterHub.spawner_class": "backend: LabdeckLocalProcessSpawner runs processes, LabdeckKubeSpawner runs pods",
    "LabdeckLocalProcessSpawner.*": (
        "backend: local homes directory, OS users, the servers' interpreter and their cgroups (only the local backend has them; "
        "a pod's limits come from the same Spawner.mem_limit/cpu_limit), and the forked warm pool's same-page merging "
        "(page_merging: pods are not forked from one zygote, and KSM is a setting of the node)"
    ),
    "JupyterHub.tornado_settings": "TLS: with LABDECK_TLS_* the embedded default's proxy serves HTTPS itself, so the hub adds HSTS and secure cookies (on Kubernetes TLS ends before the proxy Service)",
    "JupyterHub.template_vars": "backend: local servers without OS users are not isolated, and every page says so",
    "KubeSpawner.*": "backend: pod spec (image, namespace, storage, labels, security) exists only on Kubernetes",
    "LabdeckKubeSpawner.*": (
        "backend: warm pods (singleuser.warmPool) exist only on Kubernetes, where a pod's volumes are fixed at creation "
        "and so need a shared homes volume and a uid per person; the embedded default always has its own warm pool "
        "(forked servers, LabdeckLocalProcessSpawner.warm_pool_size), whose homes are directories of one machine"
    ),
    "Spawner.cmd": "backend: a pod runs labdeck-singleuser (onboarding inside the pod); locally the hub copies the welcome files",
    "Spawner.args": "backend: server options name the environment's prefix (this venv locally, the image's /usr/local on Kubernetes)",
    # -- addresses
    "JupyterHub.bind_url": "addresses: the embedded default binds 127.0.0.1:<port>; on Kubernetes the proxy Service is the public address",
    "JupyterHub.hub_bind_url": "addresses: loopback port locally, every interface of the hub pod on Kubernetes",
    "JupyterHub.hub_connect_url": "addresses: the hub Service name on Kubernetes",
    "ConfigurableHTTPProxy.api_url": "addresses: loopback port locally, the proxy-api Service on Kubernetes",
    "LabdeckSpawnerMixin.broker_url": "addresses: the broker as a user server reaches it",
    "LabdeckSpawnerMixin.runs_url": "addresses: the runs service as a user server reaches it",
    "LabdeckSpawnerMixin.viewer_url": "addresses: the viewer service as a user server reaches it",
    "services[*].url": "addresses: where the hub reaches each service",
    "JupyterHub.db_url": "state: a sqlite file in the state directory locally; hub.db on Kubernetes",
    "JupyterHub.pid_file": "state: the runner's pid files live in the state directory",
    "JupyterHub.cleanup_proxy": "how services run: the runner owns the proxy process locally; on Kubernetes the proxy is its own Deployment",
    # -- secrets
    "JupyterHub.cookie_secret": "secrets: 0600 files of the state directory locally, the hub Secret on Kubernetes",
    "ConfigurableHTTPProxy.auth_token": "secrets: as above",
    "services[*].api_token": "secrets: as above",
    # -- services only one mode runs
    f"services[{contract.SUPERVISOR}]": "how services run: the runner (stops servers on shutdown, re-syncs routes) exists only locally",
    f"load_roles[{contract.SUPERVISOR}]": "how services run: the runner's role",
    # -- the embedded default's own clouds
    "LabdeckSpawnerMixin.aws_endpoint_url": "local clouds: the embedded default always runs its moto endpoint",
    "LabdeckSpawnerMixin.bigquery_emulator_host": "local clouds: the embedded default always runs its BigQuery endpoint",
    "LabdeckSpawnerMixin.gcp_project": "local clouds: the embedded default's BigQuery project is labdeck-local",
    "LabdeckSpawnerMixin.s3_bucket": "local clouds: its S3 always has a bucket: the values' one, else LABDECK_BUCKET or labdeck-data",
    # -- labdeck's own services (labdeck.hub.configure_services)
    "BrokerApp.ip": "addresses: services listen on loopback locally, on every interface of their pod on Kubernetes",
    "BrokerApp.port": "addresses: the runner picks free loopback ports; the chart's Services use the contract's ports",
    "RunsApp.ip": "addresses: as BrokerApp.ip",
    "RunsApp.port": "addresses: as BrokerApp.port",
    "ViewerApp.ip": "addresses: as BrokerApp.ip",
    "ViewerApp.port": "addresses: as BrokerApp.port",
    "RunsApp.db_path": "state: the state directory locally, the runs PVC on Kubernetes",
    "ViewerApp.db_path": "state: the state directory locally, the viewer PVC on Kubernetes",
    "BrokerApp.grants_file": "state: locally grants live in <state>/grants.json, edited live without a restart (it replaces BrokerApp.grants); the chart's come from broker.grants",
    "BrokerApp.providers": "local clouds: the embedded default always enables aws (its moto endpoint) and local-gcp (its BigQuery endpoint)",
    "LocalGCPProvider.*": "local clouds: the embedded default's BigQuery endpoint and its signing key",
    "AWSProvider.endpoint_url": "local clouds: as LabdeckSpawnerMixin.aws_endpoint_url",
    "AWSProvider.role_arn": "local clouds: the one users' role of the local AWS endpoint",
    "AWSProvider.bucket": "local clouds: as LabdeckSpawnerMixin.s3_bucket",
    "RunsApp.bucket": "local clouds: as LabdeckSpawnerMixin.s3_bucket",
    "ViewerApp.bucket": "local clouds: as LabdeckSpawnerMixin.s3_bucket",
    "GCPProvider.project": "local clouds: as LabdeckSpawnerMixin.gcp_project",
}

#: differences only when *no* values are given: what the embedded default is on a laptop
#: (the same rows stop applying once an admin's values file names them)
EMBEDDED_DEFAULTS_TABLE: dict[str, str] = {
    "JupyterHub.authenticator_class": "login: with no auth in the values, a laptop uses the dev login (no identity provider); the chart requires one",
    "GenericOAuthenticator.*": "login: as above",
}


@dataclass(frozen=True)
class Mode:
    """The mode-specific inputs of :func:`labdeck.hub.configurer.configure`.

    Build one with :func:`local_mode` or :func:`kube_mode`; every field is a
    plain value so configs can be compared in tests.
    """

    name: str
    #: "local" (LocalProcessSpawner) or "kube" (KubeSpawner)
    backend: str
    hub_bind_url: str
    proxy_api_url: str
    #: service name → URL where the hub (and the proxy) reach it
    service_urls: Mapping[str, str]
    #: service name → URL where a user server reaches it (defaults to service_urls)
    server_service_urls: Mapping[str, str]
    #: cookie_secret (hex), proxy_token, and ``<service>_token`` per service
    secrets: Mapping[str, str]
    public_bind_url: str = ""
    hub_connect_url: str = ""
    db_url: str = ""
    pid_file: str = ""
    #: JupyterHub.cleanup_proxy (the runner owns the proxy locally)
    cleanup_proxy: bool = True
    #: services only this mode runs: name → (service dict, role dict or None)
    extra_services: tuple = ()
    #: prefix of the environment user servers run in (server args name it)
    server_prefix: str = sys.prefix
    #: backend-specific inputs (local: homes_dir; kube: namespace, names, path, allow_root …)
    backend_settings: Mapping = field(default_factory=dict)
    #: where labdeck's own services listen (:mod:`labdeck.hub.configure_services`): address, ports
    service_ip: str = "0.0.0.0"
    service_ports: Mapping[str, int] = field(default_factory=lambda: dict(contract.SERVICE_PORTS))
    #: where their state lives: ``runs_db``, ``viewer_db``; locally also ``grants_file``, ``bigquery_key``
    service_state: Mapping[str, str] = field(default_factory=dict)


def local_mode(settings: Mapping, secrets: Mapping[str, str]) -> Mode:
    """The embedded default: every process on 127.0.0.1 ports recorded in ``settings``."""
    state = settings["state_dir"]
    services = {contract.BROKER: f"http://127.0.0.1:{settings['broker_port']}"}
    for name in (contract.RUNS, contract.VIEWER):
        if settings.get(f"{name}_port"):
            services[name] = f"http://127.0.0.1:{settings[name + '_port']}"
    kube = settings.get("kube")
    supervisor = (
        {"name": contract.SUPERVISOR, "api_token": secrets.get("supervisor_token", "")},
        {
            "name": contract.SUPERVISOR,
            # read:metrics: `labdeck status` reads the figures with the runner's token
            "scopes": ["admin:users", "admin:servers", "admin:groups", "read:users", "list:users", "proxy", "read:metrics"],
            "services": [contract.SUPERVISOR],
        },
    )
    backend_settings = {"homes_dir": f"{state}/homes", "os_users": bool(settings.get("os_users"))}
    if settings.get("server_bin"):
        backend_settings["server_bin"] = settings["server_bin"]
    if settings.get("limits"):
        backend_settings["limits"] = dict(settings["limits"])
    if kube:
        backend_settings = {**kube, "hub_connect_url": f"http://127.0.0.1:{settings['hub_port']}"}
    return Mode(
        name="local",
        backend="kube" if kube else "local",
        public_bind_url=f"{settings.get('public_scheme', 'http')}://127.0.0.1:{settings['public_port']}",
        hub_bind_url=f"http://127.0.0.1:{settings['hub_port']}",
        proxy_api_url=f"http://127.0.0.1:{settings['proxy_api_port']}",
        service_urls=services,
        server_service_urls=services,
        secrets=secrets,
        db_url=f"sqlite:///{state}/jupyterhub.sqlite",
        pid_file=f"{state}/run/hub.pid",
        cleanup_proxy=False,
        extra_services=(supervisor,),
        server_prefix=settings.get("server_prefix") or sys.prefix,
        backend_settings=backend_settings,
        service_ip="127.0.0.1",
        service_ports={name: settings[f"{name}_port"] for name in contract.LABDECK_SERVICES if settings.get(f"{name}_port")},
        service_state=local_service_state(state),
    )


def local_service_state(state: str) -> dict[str, str]:
    """The services' files in the embedded default's state directory (:mod:`labdeck.hub.local.state`)."""
    return {
        "runs_db": f"{state}/runs/runs.sqlite",
        "viewer_db": f"{state}/runs/shares.sqlite",
        # edited live by an admin: the broker re-reads it (seeded by the runner)
        "grants_file": f"{state}/grants.json",
        "bigquery_key": f"{state}/secrets/bigquery_key",
    }


#: the chart's service volumes (templates/{runs,viewer}/deployment.yaml mount them there)
KUBE_SERVICE_STATE = {"runs_db": "/srv/labdeck-runs/runs.sqlite", "viewer_db": "/srv/labdeck-viewer/shares.sqlite"}


def kube_mode(names: Mapping[str, str], secrets: Mapping[str, str], namespace: str, db_url: str = "") -> Mode:
    """The chart: every component behind a Service named by the chart (``names``)."""
    services = {
        name: f"http://{names[name]}:{contract.SERVICE_PORTS[name]}" for name in contract.LABDECK_SERVICES if name in names
    }
    return Mode(
        name="kube",
        backend="kube",
        hub_bind_url=f"http://:{contract.HUB_PORT}",
        hub_connect_url=f"http://{names['hub']}:{contract.HUB_PORT}",
        proxy_api_url=f"http://{names['proxy-api']}:{contract.PROXY_API_PORT}",
        service_urls=services,
        server_service_urls=services,
        secrets=secrets,
        db_url=db_url,
        server_prefix="/usr/local",
        backend_settings={"namespace": namespace, "names": dict(names)},
        service_state=dict(KUBE_SERVICE_STATE),
    )


#: generated secrets of the chart (keys of the hub Secret) → Mode.secrets keys
CHART_SECRETS = {
    "hub.cookie-secret": "cookie_secret",
    "proxy.token": "proxy_token",
    f"{contract.BROKER}.api-token": f"{contract.BROKER}_token",
    f"{contract.RUNS}.api-token": f"{contract.RUNS}_token",
    f"{contract.VIEWER}.api-token": f"{contract.VIEWER}_token",
    f"{contract.METRICS}.api-token": f"{contract.METRICS}_token",
    # singleuser.warmPool: the key naming homes on the shared volume (LabdeckKubeSpawner.warm_homes_key)
    "singleuser.homes-key": "homes_key",
}


def chart_mode(values: Mapping, read_secret=lambda key, default="": default) -> Mode:
    """:func:`kube_mode` for the chart's mounted values; ``read_secret(key, default)`` reads the hub Secret.

    The services' configurers need no secret: their files call it without ``read_secret``.
    """
    from .values import ValuesError, lookup

    names = lookup(values, "Names", {})
    if not isinstance(names, Mapping) or "hub" not in names:
        raise ValuesError("the values file has no Names: it was not written by the labdeck chart")
    secrets = {mode_key: read_secret(key, "") for key, mode_key in CHART_SECRETS.items()}
    return kube_mode(names, secrets, namespace=lookup(values, "Release.Namespace", "default"))
