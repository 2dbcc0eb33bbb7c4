"""Hub configuration for the embedded default, as a pure translation.

:func:`local_config` turns the supervisor's settings (ports, bucket, paths)
and secrets into a traitlets ``Config``. It only sets values, never appends to
or mutates existing config (the rule tljh's ``configurer`` follows), so the
result can be compared whole in tests. ``jupyterhub_config.py`` is the thin
file that calls it.
"""

from __future__ import annotations

from traitlets.config import Config

from .performance import performance_config, server_args

import html

BROKER_SERVICE = "broker"

DEFAULT_BANNER = (
    "labdeck is for <strong>exploration and prototyping</strong>. "
    "Anything that must run again becomes a parameterized, recorded run or moves to a code-first pipeline."
)


def banner_html(text: str | None) -> str:
    """The home-page banner: labdeck's default (HTML), or an admin's text (escaped)."""
    if text is None:
        return DEFAULT_BANNER
    return html.escape(text)
SUPERVISOR_SERVICE = "labdeck-supervisor"
RUNS_SERVICE = "runs"
VIEWER_SERVICE = "viewer"


def broker_url(settings: dict) -> str:
    return f"http://127.0.0.1:{settings['broker_port']}/services/{BROKER_SERVICE}/"


def runs_services(settings: dict, secrets: dict) -> list[dict]:
    """The runs scheduler and the read-only viewer (labdeck.runs), when their ports are planned."""
    if "runs_port" not in settings:
        return []
    return [
        {"name": RUNS_SERVICE, "url": f"http://127.0.0.1:{settings['runs_port']}", "api_token": secrets["runs_token"]},
        {
            "name": VIEWER_SERVICE,
            "url": f"http://127.0.0.1:{settings['viewer_port']}",
            "api_token": secrets["viewer_token"],
            "oauth_no_confirm": True,
        },
    ]


def runs_roles(settings: dict) -> list[dict]:
    """Scopes of the runs/viewer services, and every user's (and server token's) access to them."""
    if "runs_port" not in settings:
        return []
    access = [f"access:services!service={RUNS_SERVICE}", f"access:services!service={VIEWER_SERVICE}"]
    return [
        {
            "name": "labdeck-runs",
            "scopes": ["admin:servers", "access:servers", "read:users", "read:users:name"],
            "services": [RUNS_SERVICE],
        },
        {"name": "labdeck-viewer", "scopes": ["read:users:groups", "read:users:name"], "services": [VIEWER_SERVICE]},
        {"name": "user", "scopes": ["self", *access]},
        {"name": "server", "scopes": ["users:activity!user", "access:servers!server", f"access:services!service={RUNS_SERVICE}"]},
    ]


def local_config(settings: dict, secrets: dict) -> Config:
    """The hub's ``Config`` for the embedded default.

    Parameters
    ----------
    settings : dict
        From ``settings.json``: ``state_dir``, ``public_port``, ``hub_port``,
        ``proxy_api_port``, ``broker_port``, ``aws_endpoint``, ``bucket``,
        ``region``, ``admin_users``, optional ``named_server_limit``,
        ``concurrent_spawn_limit``.
    secrets : dict
        ``cookie_secret``, ``proxy_token``, ``broker_token``, ``supervisor_token`` (hex strings).
    """
    state = settings["state_dir"]
    c = Config()
    hub = c.JupyterHub
    hub.bind_url = f"http://127.0.0.1:{settings['public_port']}"
    hub.hub_bind_url = f"http://127.0.0.1:{settings['hub_port']}"
    hub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
    hub.cookie_secret = bytes.fromhex(secrets["cookie_secret"])
    hub.pid_file = f"{state}/run/hub.pid"
    # The supervisor runs the proxy and stops servers on shutdown; a hub
    # restart must not take running servers (or the proxy) down with it.
    hub.cleanup_servers = False
    hub.cleanup_proxy = False
    hub.allow_named_servers = True
    # 3 interactive servers plus the runs service's per-user concurrency (2):
    # a run is a named server too
    hub.named_server_limit_per_user = settings.get("named_server_limit", 5)
    hub.template_vars = {"announcement_home": banner_html(settings.get("banner"))}
    hub.authenticator_class = "labdeck-dev"
    hub.spawner_class = "labdeck-local"
    hub.services = [
        {"name": BROKER_SERVICE, "url": f"http://127.0.0.1:{settings['broker_port']}", "api_token": secrets["broker_token"]},
        {"name": SUPERVISOR_SERVICE, "api_token": secrets["supervisor_token"]},
        *runs_services(settings, secrets),
    ]
    hub.load_roles = [
        {"name": "labdeck-broker", "scopes": ["read:users", "read:users:groups"], "services": [BROKER_SERVICE]},
        {
            "name": "labdeck-supervisor",
            "scopes": ["admin:users", "admin:servers", "admin:groups", "read:users", "list:users", "proxy"],
            "services": [SUPERVISOR_SERVICE],
        },
        *runs_roles(settings),
    ]

    proxy = c.ConfigurableHTTPProxy
    proxy.should_start = False
    proxy.api_url = f"http://127.0.0.1:{settings['proxy_api_port']}"
    proxy.auth_token = secrets["proxy_token"]

    c.Authenticator.admin_users = set(settings.get("admin_users", []))

    sp = c.LabdeckLocalProcessSpawner
    sp.homes_dir = f"{state}/homes"
    sp.broker_url = broker_url(settings)
    sp.aws_region = settings["region"]
    sp.s3_bucket = settings["bucket"]
    sp.aws_endpoint_url = settings["aws_endpoint"]
    if settings.get("profiles"):
        sp.profiles = settings["profiles"]
    if settings.get("gcp_project"):
        sp.gcp_project = settings["gcp_project"]
        sp.bigquery_emulator_host = settings.get("bq_endpoint", "")
    if settings.get("runs_port"):
        sp.runs_url = f"http://127.0.0.1:{settings['runs_port']}/services/{RUNS_SERVICE}/"
    c.merge(performance_config(settings))
    if settings.get("kube"):
        c.merge(kube_config(settings))
    return c


# ---------------------------------------------------------------- kube mode (tests)
#: where the per-user PVC is mounted, and the server's $HOME (onboarding writes there)
KUBE_HOME = "/home/jovyan"
KUBE_DEFAULT_IMAGE = "labdeck/singleuser:local"


def kube_config(settings: dict) -> Config:
    """``LABDECK_SPAWNER=kube``: the embedded default's hub spawning with ``LabdeckKubeSpawner``.

    For one machine and tests: the hub runs outside the cluster (``KUBECONFIG``
    is given to the hub process only), pods reach the hub, broker, S3 and
    BigQuery endpoints on 127.0.0.1 (the process kubelet runs them as local
    processes). ``settings["kube"]``: ``namespace``, optional ``image``,
    ``path`` (the image's ``PATH``: where ``labdeck-singleuser`` and
    ``labdeck-credentials`` are), ``allow_root`` (pods run as root there).
    Broker/S3/BigQuery wiring is the local spawner's, trait for trait.
    """
    kube = settings["kube"]
    c = Config()
    c.JupyterHub.spawner_class = "labdeck-kube"
    sp = c.LabdeckKubeSpawner
    sp.namespace = kube["namespace"]
    sp.image = kube.get("image") or KUBE_DEFAULT_IMAGE
    sp.hub_connect_url = f"http://127.0.0.1:{settings['hub_port']}"
    sp.ip = "0.0.0.0"
    sp.port = 8888
    # the product default (Spawner.cmd from performance_config would skip onboarding)
    sp.cmd = ["labdeck-singleuser"]
    args = server_args(settings)
    if kube.get("allow_root"):
        args.append("--allow-root")
    sp.args = args
    env = {"HOME": KUBE_HOME}
    if kube.get("path"):
        env["PATH"] = kube["path"]
    sp.environment = env
    sp.working_dir = KUBE_HOME
    sp.storage_pvc_ensure = True
    sp.storage_capacity = kube.get("storage_capacity", "1Gi")
    sp.volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
    sp.volume_mounts = [{"name": "home", "mountPath": KUBE_HOME}]
    local = local_spawner_traits(settings)
    for key, value in local.items():
        setattr(sp, key, value)
    return c


def local_spawner_traits(settings: dict) -> dict:
    """The broker/S3/BigQuery/profile traits both backends share in the embedded default."""
    out = {
        "broker_url": broker_url(settings),
        "aws_region": settings["region"],
        "s3_bucket": settings["bucket"],
        "aws_endpoint_url": settings["aws_endpoint"],
    }
    if settings.get("profiles"):
        out["profiles"] = settings["profiles"]
    if settings.get("gcp_project"):
        out["gcp_project"] = settings["gcp_project"]
        out["bigquery_emulator_host"] = settings.get("bq_endpoint", "")
    return out
