"""The embedded default as a plan: settings in, ordered components out. Pure.

Each :class:`Component` is a process (argv, environment), the URL that says
it is ready, and the components it ``needs`` ready before it starts. The
runner (:mod:`labdeck.hub.local.runner`) starts every component whose needs
are met at once, so independent ones start in parallel, and restarts what
dies. The graph:

- the local clouds and the proxy need nothing;
- the broker and the viewer need the AWS emulator (seeded: their credential
  files are written then); the runs service needs nothing at start;
- the hub needs the proxy *and every service it registers* (broker, runs,
  viewer): JupyterHub waits up to ``Service.timeout`` (30 s) for an external
  service that is not up yet before it adds any route, so they answer
  before it looks. Its readiness is its health URL *plus* the proxy's route
  of every service (:attr:`Component.routes`), so when the hub is ready,
  the whole platform is: login, spawns, runs, viewer, jobs and shares.

Readiness is checked on each component's own port, never through routes
that only the hub adds. Secrets reach processes through their environment
or 0600 files, never their argv.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import contract

HUB_CONFIG = Path(__file__).resolve().parent / "jupyterhub_config.py"
#: the config file of the broker, runs and viewer: their configurers, as in the chart (labdeck.hub.configure_services)
SERVICE_CONFIG = Path(__file__).resolve().parent / "service_config.py"

#: a start order that respects every component's ``needs``; stopped in reverse
ORDER = ("aws", "bigquery", "broker", "runs", "viewer", "proxy", "hub")


@dataclass
class Component:
    name: str
    argv: list[str]
    env: dict[str, str]
    #: answers 200 (or 401: up, wants a token) when the component is ready
    ready_url: str | None = None
    #: components that must be ready before this one starts
    needs: tuple[str, ...] = ()
    #: proxy routes (path prefixes) that must exist before this component counts as ready
    routes: tuple[str, ...] = ()
    proc: object = None
    restarts: list[float] = field(default_factory=list)
    #: monotonic times of the last start and of its readiness (the runner's bookkeeping)
    started_at: float | None = None
    ready_at: float | None = None


def service_env(settings: Mapping, name: str, token: str) -> dict[str, str]:
    """What JupyterHub gives a service it manages, for a service the runner starts itself."""
    prefix = contract.service_prefix(name)
    return {
        "JUPYTERHUB_API_TOKEN": token,
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{settings['hub_port']}/hub/api",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_NAME": name,
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_CLIENT_ID": f"service-{name}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
    }


def public_url(settings: Mapping) -> str:
    return f"{settings.get('public_scheme', 'http')}://127.0.0.1:{settings['public_port']}"


def plan(settings: Mapping, secrets: Mapping[str, str], paths: Mapping[str, str], base_env: Mapping[str, str]) -> dict[str, Component]:
    """The components of the embedded default, in :data:`ORDER`.

    Parameters
    ----------
    settings : mapping
        ``settings.json`` (ports, bucket, region, endpoints, optional ``kube``).
    secrets : mapping
        Secret values the processes need in their environment: ``proxy_token``,
        ``broker_token``, ``runs_token``, ``viewer_token``, ``dev_password``.
    paths : mapping
        ``state``, ``chp``, ``bigquery_data``, ``bigquery_key``,
        ``broker_aws_credentials``, ``viewer_aws_credentials`` (the services'
        own config comes from :data:`SERVICE_CONFIG`, which reads ``settings.json``).
    base_env : mapping
        The environment every component starts from.
    """
    s = settings
    py = sys.executable
    base = dict(base_env)
    public = public_url(s)
    broker_base = f"http://127.0.0.1:{s['broker_port']}"
    components = {
        "aws": Component(
            "aws",
            [py, "-m", "labdeck.emulators.aws", "--port", str(s["aws_port"])],
            {**base, "INITIAL_NO_AUTH_ACTION_COUNT": "inf", "AWS_ACCESS_KEY_ID": "seed", "AWS_SECRET_ACCESS_KEY": "seed"},
            ready_url=f"{s['aws_endpoint']}/moto-api/",
        ),
        "bigquery": Component(
            "bigquery",
            [
                py, "-m", "labdeck.emulators.bigquery",
                "--port", str(s["bq_port"]),
                "--bind", "127.0.0.1",
                "--data-dir", paths["bigquery_data"],
                "--key-file", paths["bigquery_key"],
                "--project", s["gcp_project"],
                "--seed",
            ],  # fmt: skip
            base,
            ready_url=f"{s['bq_endpoint']}/bigquery/v2/projects/{s['gcp_project']}/datasets",
        ),
        # before the hub: a spawn in the first second after the login page answers needs it
        "broker": Component(
            "broker",
            [py, "-m", "labdeck.hub.cli", "broker", "--config", str(SERVICE_CONFIG)],
            {
                **base,
                **service_env(s, contract.BROKER, secrets["broker_token"]),
                "AWS_SHARED_CREDENTIALS_FILE": paths["broker_aws_credentials"],
                "AWS_ENDPOINT_URL": s["aws_endpoint"],
            },
            ready_url=contract.service_url(broker_base, contract.BROKER) + contract.HEALTH_ROUTE,
            needs=("aws",),
        ),
        "proxy": Component(
            "proxy",
            proxy_argv(s, paths["chp"]),
            {**base, "CONFIGPROXY_AUTH_TOKEN": secrets["proxy_token"]},
            # its API answers 403 without the token: up
            ready_url=f"http://127.0.0.1:{s['proxy_api_port']}/api/routes",
        ),
        "hub": Component(
            "hub",
            [py, "-m", "labdeck.hub.local.hubprocess", "-f", str(HUB_CONFIG)],
            {**base, "LABDECK_DEV_PASSWORD": secrets.get("dev_password", ""), **kube_hub_env(s)},
            # answers once the warm pool is warm (labdeck.hub.local.hubprocess)
            ready_url=f"{public}/hub/labdeck/ready",
            needs=("proxy",),
            routes=(contract.service_prefix(contract.BROKER),),
        ),
    }
    for name, module in ((contract.RUNS, "app"), (contract.VIEWER, "viewer")):
        if not s.get(f"{name}_port"):
            continue
        env = {**base, **service_env(s, name, secrets[f"{name}_token"]), contract.ENV_PROXY_URL: public}
        if name == contract.VIEWER:
            env["AWS_SHARED_CREDENTIALS_FILE"] = paths["viewer_aws_credentials"]
            env["AWS_ENDPOINT_URL"] = s["aws_endpoint"]
            env["AWS_DEFAULT_REGION"] = s["region"]
        argv = [py, "-m", f"labdeck.runs.{module}", "--config", str(SERVICE_CONFIG)]
        own = f"http://127.0.0.1:{s[name + '_port']}"
        components[name] = Component(
            name, argv, env, ready_url=contract.service_url(own, name) + contract.HEALTH_ROUTE, needs=("aws",) if name == contract.VIEWER else ()
        )
        # the hub is ready once the routes of every service it registers are in the proxy
        components["hub"].routes += (contract.service_prefix(name),)
    return components


def proxy_argv(s: Mapping, chp: str) -> list[str]:
    hub = f"http://127.0.0.1:{s['hub_port']}"
    argv = [
        chp,
        # LABDECK_BIND_IP: 0.0.0.0 on a team VM without a reverse proxy (every other port stays on loopback)
        "--ip", s.get("bind_ip", "127.0.0.1"),
        "--port", str(s["public_port"]),
        "--api-ip", "127.0.0.1",
        "--api-port", str(s["proxy_api_port"]),
        "--default-target", hub,
        "--error-target", f"{hub}/hub/error",
    ]  # fmt: skip
    tls = s.get("tls")
    if tls:
        # the proxy's own TLS (LABDECK_TLS_CERT / LABDECK_TLS_KEY): paths, never the key itself
        argv += ["--ssl-cert", tls["cert"], "--ssl-key", tls["key"]]
    return argv


def kube_hub_env(settings: Mapping) -> dict[str, str]:
    """``KUBECONFIG`` for the hub process only (kubernetes_asyncio reads it at import)."""
    kube = settings.get("kube")
    return {"KUBECONFIG": kube["kubeconfig"]} if kube else {}
