"""The one configurer: chart values in, JupyterHub ``Config`` out, for both modes.

``configure(values, mode)`` is what the chart's ``jupyterhub_config.py`` and
the embedded default's both call. ``values`` has the keys and meanings of
``helm/labdeck/values.yaml`` (documented in ``values.schema.yaml``); a key
that is absent takes the chart's default, written here once as the default
of each lookup (``tests/hub/test_contract.py`` checks they equal the
chart's ``values.yaml``). ``mode`` (:mod:`labdeck.hub.modes`) carries only
what differs between modes.

Rules, as in tljh's ``configurer.py``: pure (no I/O, no environment), one
``update_<section>(c, v, mode)`` per concern, and config is only ever *set*,
never appended to or mutated, so two results can be compared whole.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from traitlets.config import Config

from . import contract
from .login import issue_credentials_at_login
from .modes import Mode
from .pages import NOT_ISOLATED_HTML, NOT_LIMITED_HTML, banner_html
from .performance import performance_config, server_args
from .values import Values, ValuesError, check_config_sections

#: scopes of each labdeck service's own token
SERVICE_SCOPES = {
    contract.BROKER: ["read:users", "read:users:groups"],
    contract.RUNS: ["admin:servers", "access:servers", "read:users", "read:users:name", "users:activity"],
    contract.VIEWER: ["read:users:groups", "read:users:name"],
    contract.CULLER: ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    contract.METRICS: ["read:metrics"],
}


def enabled_services(v: Values) -> list[str]:
    """labdeck's HTTP services this configuration runs (the broker always)."""
    names = [contract.BROKER]
    for name in (contract.RUNS, contract.VIEWER):
        if v(f"{name}.enabled", True):
            names.append(name)
    return names


# --------------------------------------------------------------------- sections

def update_hub(c: Config, v: Values, mode: Mode) -> None:
    hub = c.JupyterHub
    hub.base_url = v("hub.baseUrl", "/")
    if mode.public_bind_url:
        hub.bind_url = mode.public_bind_url
    hub.hub_bind_url = mode.hub_bind_url
    if mode.hub_connect_url:
        hub.hub_connect_url = mode.hub_connect_url
    hub.cookie_secret = bytes.fromhex(mode.secrets["cookie_secret"])
    db_type = v("hub.db.type", "sqlite-pvc")
    hub.db_url = mode.db_url or {
        "sqlite-pvc": "sqlite:////srv/jupyterhub/jupyterhub.sqlite",
        "sqlite-memory": "sqlite://",
        "url": v("hub.db.url", ""),
    }[db_type]
    if mode.pid_file:
        hub.pid_file = mode.pid_file
    # user servers (and the proxy) outlive a hub restart
    hub.cleanup_servers = False
    hub.cleanup_proxy = mode.cleanup_proxy
    hub.active_server_limit = v("hub.activeServerLimit", 0)
    hub.allow_named_servers = v("hub.namedServers.enabled", True)
    # 3 interactive servers plus the runs service's per-user concurrency (2): a run is a named server
    hub.named_server_limit_per_user = v("hub.namedServers.limitPerUser", 5)
    hub.template_vars = {"announcement_home": banner_html(v("hub.banner", None))}


def update_proxy(c: Config, v: Values, mode: Mode) -> None:
    proxy = c.ConfigurableHTTPProxy
    proxy.should_start = False
    proxy.api_url = mode.proxy_api_url
    proxy.auth_token = mode.secrets["proxy_token"]


def update_auth(c: Config, v: Values, mode: Mode) -> None:
    auth_type = v("auth.type", "generic-oauth")
    if auth_type == "dev":
        if v("auth.dev.enabledInsecureDevelopmentLogin", False) is not True:
            raise ValuesError("auth.type dev needs auth.dev.enabledInsecureDevelopmentLogin: true")
        c.JupyterHub.authenticator_class = "labdeck-dev"
    elif auth_type == "generic-oauth":
        # GenericOAuthenticator with labdeck's username rules (labdeck.hub.oidc)
        c.JupyterHub.authenticator_class = "labdeck-oidc"
        oauth = c.GenericOAuthenticator
        for trait, key, default in (
            ("client_id", "clientId", ""),
            ("client_secret", "clientSecret", ""),
            ("authorize_url", "authorizeUrl", ""),
            ("token_url", "tokenUrl", ""),
            ("userdata_url", "userdataUrl", ""),
            ("oauth_callback_url", "callbackUrl", ""),
            ("scope", "scope", ["openid", "profile", "email"]),
            ("username_claim", "usernameClaim", "preferred_username"),
            ("claim_groups_key", "groupsClaim", "groups"),
            ("allowed_groups", "allowedGroups", []),
            ("admin_groups", "adminGroups", []),
            ("allow_all", "allowAll", False),
            ("login_service", "loginService", "Single sign-on"),
        ):
            value = v(f"auth.oauth.{key}", default)
            if value not in ("", None):
                setattr(oauth, trait, value)
        # JupyterHub groups follow the groups claim at each login
        oauth.manage_groups = True
        # OIDC discovery fills the URLs left empty and ID tokens are verified (labdeck.hub.oidc)
        issuer = v("auth.oauth.issuer", "")
        if issuer:
            c.LabdeckOIDCAuthenticator.issuer = issuer
    else:
        raise ValuesError(f"auth.type must be 'generic-oauth' or 'dev', not {auth_type!r}")
    c.Authenticator.admin_users = set(v("auth.adminUsers", []))
    c.Authenticator.post_auth_hook = issue_credentials_at_login  # labdeck.hub.login


def update_spawner(c: Config, v: Values, mode: Mode) -> None:
    """The traits every backend shares (``Spawner`` and ``LabdeckSpawnerMixin`` sections)."""
    c.JupyterHub.spawner_class = "labdeck-kube" if mode.backend == "kube" else "labdeck-local"
    sp = c.Spawner
    sp.default_url = v("singleuser.defaultUrl", "/lab")
    for trait, key, default in (
        ("cpu_limit", "singleuser.cpu.limit", 2),
        ("cpu_guarantee", "singleuser.cpu.guarantee", 0.5),
        ("mem_limit", "singleuser.memory.limit", "4G"),
        ("mem_guarantee", "singleuser.memory.guarantee", "1G"),
    ):
        value = v(key, default)
        if value is not None:
            setattr(sp, trait, value)
    # singleuser.data: the S3 drive and the BigQuery panel in JupyterLab (labdeck.data), on by default
    data = {env: "1" if v(f"singleuser.data.{key}.enabled", True) else "0" for key, env in contract.DATA_FEATURES.items()}
    sp.environment = {**dict(v("singleuser.extraEnv", {})), **data}

    mixin = c.LabdeckSpawnerMixin
    mixin.broker_url = contract.service_url(mode.server_service_urls[contract.BROKER], contract.BROKER)
    if contract.RUNS in mode.server_service_urls and contract.RUNS in enabled_services(v):
        # the service serves under the hub's base URL (JupyterHub's prefix of a service: <base_url>services/<name>/)
        base = mode.server_service_urls[contract.RUNS].rstrip("/") + v("hub.baseUrl", "/").rstrip("/")
        mixin.runs_url = contract.service_url(base, contract.RUNS)
    if contract.VIEWER in mode.server_service_urls and contract.VIEWER in enabled_services(v):
        base = mode.server_service_urls[contract.VIEWER].rstrip("/") + v("hub.baseUrl", "/").rstrip("/")
        mixin.viewer_url = contract.service_url(base, contract.VIEWER)
    mixin.aws_region = v("cloud.aws.region", contract.DEFAULT_REGION)
    mixin.s3_bucket = v("cloud.aws.bucket", "")
    mixin.aws_endpoint_url = v("cloud.aws.endpointUrl", "")
    mixin.gcp_project = v("cloud.gcp.project", "")
    mixin.bigquery_dataset_template = v("cloud.gcp.bigqueryDatasetTemplate", contract.DEFAULT_DATASET_TEMPLATE)
    mixin.bigquery_emulator_host = v("cloud.gcp.bigqueryEmulatorHost", "")
    profiles = v("singleuser.profiles", [])
    if profiles:  # empty keeps labdeck's defaults (JupyterLab, JupyterLab with R, RStudio)
        mixin.profiles = profiles
    sizes = v("singleuser.sizes", [])
    if sizes:
        mixin.sizes = sizes
    from labdeck.spawner.onboarding import default_onboarding_dir
    extra = v("singleuser.onboardingDir", "")
    # labdeck's welcome files first, then the admin's (which win for the same path)
    mixin.onboarding_dirs = [default_onboarding_dir(), *([extra] if extra else [])]


def update_local_backend(c: Config, v: Values, mode: Mode) -> None:
    b = mode.backend_settings
    sp = c.LabdeckLocalProcessSpawner
    sp.homes_dir = b["homes_dir"]
    # one OS user per person when the embedded default runs as root (labdeck.spawner.local.asuser)
    sp.os_users = bool(b.get("os_users"))
    if b.get("server_bin"):
        sp.server_bin = b["server_bin"]
    # sizes (Spawner.mem_limit/cpu_limit, as on Kubernetes) enforced with a cgroup per server (labdeck.spawner.local.limits)
    limits = b.get("limits") or {}
    sp.enforce_limits = bool(limits)
    if limits:
        sp.cgroup_group = limits["group"]
    notes = ([] if sp.os_users else [NOT_ISOLATED_HTML]) + ([] if limits else [NOT_LIMITED_HTML])
    if notes:
        tv = c.JupyterHub.template_vars
        note = "<br>".join(notes)
        # every page, and the home page (whose own banner would otherwise replace it)
        home = f"{tv['announcement_home']}<br>{note}" if tv.get("announcement_home") else note
        c.JupyterHub.template_vars = {**tv, "announcement": note, "announcement_home": home}


def update_kube_backend(c: Config, v: Values, mode: Mode) -> None:
    """KubeSpawner traits from ``singleuser.*``; ``mode.backend_settings`` says where the cluster is."""
    b = mode.backend_settings
    names = b.get("names") or {}
    ks = c.KubeSpawner
    ks.namespace = b["namespace"]
    if names:
        ks.common_labels = {
            "app.kubernetes.io/name": v("Chart.Name", "labdeck"),
            "app.kubernetes.io/instance": v("Release.Name", ""),
            "app.kubernetes.io/managed-by": "kubespawner",
        }
        ks.extra_labels = {"app.kubernetes.io/component": "singleuser-server"}
        # user pods get a ServiceAccount with no cloud role and no API token
        ks.service_account = names["singleuser"]
        if v("scheduling.podPriority.enabled", False):
            ks.priority_class_name = names["user-priority"]
    if b.get("hub_connect_url"):
        ks.hub_connect_url = b["hub_connect_url"]
    ks.automount_service_account_token = False
    ks.allow_privilege_escalation = False
    image = v("singleuser.image", {"name": "ghcr.io/labdeck/singleuser", "tag": "", "pullPolicy": "IfNotPresent"})
    ks.image = b.get("image") or f"{image['name']}:{image.get('tag') or v('Chart.AppVersion', 'latest')}"
    ks.image_pull_policy = image.get("pullPolicy") or "IfNotPresent"
    ks.image_pull_secrets = v("imagePullSecrets", [])
    ks.uid = v("singleuser.uid", 1000)
    ks.fs_gid = v("singleuser.fsGid", 100)
    ks.node_selector = v("singleuser.nodeSelector", {})
    ks.ip = "0.0.0.0"
    ks.port = contract.SINGLEUSER_PORT
    # onboarding runs inside the pod (its home is a volume only the pod sees)
    ks.cmd = ["labdeck-singleuser"]
    args = server_args({"server_prefix": mode.server_prefix})
    if b.get("allow_root"):
        args.append("--allow-root")
    ks.args = args
    home = v("singleuser.storage.homeMountPath", contract.KUBE_HOME)
    env = {**dict(c.Spawner.environment), "HOME": home}  # extraEnv and singleuser.data (update_spawner)
    if b.get("path"):
        env["PATH"] = b["path"]
    ks.environment = env
    ks.working_dir = home
    update_warm_pool(c, v, mode)
    if v("singleuser.storage.type", "dynamic") == "dynamic":
        ks.storage_pvc_ensure = True
        ks.pvc_name_template = "claim-{user_server}"
        ks.storage_capacity = b.get("storage_capacity") or v("singleuser.storage.capacity", "10Gi")
        storage_class = v("singleuser.storage.storageClass", "")
        if storage_class:
            ks.storage_class = storage_class
        ks.volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
        ks.volume_mounts = [{"name": "home", "mountPath": home}]


def update_warm_pool(c: Config, v: Values, mode: Mode) -> None:
    """``singleuser.warmPool``: warm pods (Kubernetes only, :data:`labdeck.hub.modes.MODE_TABLE` says why)."""
    names = mode.backend_settings.get("names") or {}
    enabled = bool(v("singleuser.warmPool.enabled", False))
    size = v("singleuser.warmPool.size", 2)
    uid_base = v("singleuser.warmPool.uidBase", 100000)
    claim = v("singleuser.warmPool.homes.existingClaim", "") or names.get("homes", "")
    v("singleuser.warmPool.homes.storageClass", "")  # the chart's PVC (templates/singleuser/homes-pvc.yaml)
    v("singleuser.warmPool.homes.capacity", "100Gi")
    if not enabled:
        return
    if not claim:
        raise ValuesError("singleuser.warmPool.enabled needs a homes volume: singleuser.warmPool.homes.existingClaim (the chart creates one)")
    key = mode.secrets.get("homes_key", "")
    if not key:
        raise ValuesError("singleuser.warmPool.enabled needs the homes key (singleuser.homes-key of the hub Secret, which the chart generates)")
    ks = c.LabdeckKubeSpawner
    ks.warm_pool_enabled = True
    ks.warm_pool_size = size
    ks.warm_uid_base = uid_base
    ks.warm_homes_claim = claim
    ks.warm_homes_key = key
    if names.get("singleuser"):
        ks.warm_pod_prefix = f"{names['singleuser']}-warm"
        # free warm pods go with the release (the hub Secret is helm's): helm uninstall leaves none
        ks.warm_owner_secret = names["hub"]


def update_performance(c: Config, v: Values, mode: Mode) -> None:
    """Timeouts and limits derived from load (labdeck.hub.performance), the same in both modes."""
    settings = {
        "concurrent_spawn_limit": v("hub.concurrentSpawnLimit", 64),
        "server_prefix": mode.server_prefix,
    }
    nice = v("singleuser.nice", 0)
    if nice:
        settings["server_nice"] = nice
    perf = performance_config(settings)
    start_timeout = v("singleuser.startTimeout", 600)
    # an admin's longer bound wins; never shorter than the credential wait needs
    perf.Spawner.start_timeout = max(int(start_timeout), perf.Spawner.start_timeout)
    c.merge(perf)


#: HSTS of a hub that serves HTTPS itself: browsers use https for a year, subdomains untouched
HSTS = "max-age=31536000"


def update_tls(c: Config, v: Values, mode: Mode) -> None:
    """HSTS and secure cookies when this mode's public address is https (the embedded default's own TLS)."""
    if not mode.public_bind_url.startswith("https://"):
        return
    tornado = dict(c.JupyterHub.tornado_settings) if "tornado_settings" in c.JupyterHub else {}
    headers = {**tornado.get("headers", {}), "Strict-Transport-Security": HSTS}
    cookies = {**tornado.get("cookie_options", {}), "secure": True}
    c.JupyterHub.tornado_settings = {**tornado, "headers": headers, "cookie_options": cookies}


def culler_command(v: Values) -> list[str]:
    cmd = [
        sys.executable, "-m", "jupyterhub_idle_culler",
        f"--timeout={v('culler.timeout', 3600)}",
        f"--cull-every={v('culler.every', 600)}",
        f"--concurrency={v('culler.concurrency', 10)}",
        f"--max-age={v('culler.maxAge', 0)}",
    ]  # fmt: skip
    if v("culler.removeNamedServers", False):
        cmd.append("--remove-named-servers=True")  # jupyterhub-idle-culler 2 takes a value: a bare flag stops it at start
    return cmd


def update_services(c: Config, v: Values, mode: Mode) -> None:
    """labdeck's services, the idle culler and their roles; users and servers may reach runs and viewer."""
    services, roles = [], []
    enabled = enabled_services(v)
    for name in enabled:
        if name not in mode.service_urls:
            raise ValuesError(f"{name} is enabled but this mode has no address for it")
        service = {"name": name, "url": mode.service_urls[name], "api_token": mode.secrets[f"{name}_token"]}
        if name == contract.BROKER:
            service["display"] = False
        if name == contract.VIEWER:
            service["oauth_no_confirm"] = True
        services.append(service)
        roles.append({"name": f"labdeck-{name}", "scopes": list(SERVICE_SCOPES[name]), "services": [name]})
    for service, role in mode.extra_services:
        services.append(dict(service))
        if role:
            roles.append(dict(role))
    if v("culler.enabled", True):
        services.append({"name": contract.CULLER, "command": culler_command(v)})
        roles.append({"name": "labdeck-idle-culler", "scopes": list(SERVICE_SCOPES[contract.CULLER]), "services": [contract.CULLER]})
    if v("metrics.serviceMonitor.enabled", False):
        # the scrape identity: a token-only service that may read /metrics and nothing else
        token = mode.secrets.get(f"{contract.METRICS}_token")
        if not token:
            raise ValuesError("metrics.serviceMonitor.enabled needs the metrics token (metrics.apiToken, or the one the chart generates)")
        services.append({"name": contract.METRICS, "api_token": token, "display": False})
        roles.append({"name": f"labdeck-{contract.METRICS}", "scopes": list(SERVICE_SCOPES[contract.METRICS]), "services": [contract.METRICS]})
    reachable = [f"access:services!service={n}" for n in enabled if n != contract.BROKER]
    roles.append({"name": "user", "scopes": ["self", *reachable]})
    server = ["users:activity!user", "access:servers!server"]
    if contract.RUNS in enabled:
        server.append(f"access:services!service={contract.RUNS}")
    if contract.VIEWER in enabled:
        # the Lab's share dialog (labdeck.runs.lab_shares) calls the viewer's share API with the server's token
        server.append(f"access:services!service={contract.VIEWER}")
    roles.append({"name": "server", "scopes": server})
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles


def update_passthrough(c: Config, v: Values, mode: Mode) -> None:
    """``hub.config``: Class → trait → value, applied after labdeck's own settings."""
    passthrough = v("hub.config", {})
    bad = check_config_sections(passthrough)
    if bad:
        raise ValuesError(f"hub.config sections must be configurable class names (CapitalCase): {', '.join(bad)}")
    for section, traits in passthrough.items():
        if not isinstance(traits, Mapping):
            raise ValuesError(f"hub.config.{section} must be a mapping of trait names to values")
        for trait, value in traits.items():
            setattr(getattr(c, section), trait, value)


def configure(values: Mapping, mode: Mode) -> Config:
    """The hub's ``Config`` for ``values`` in ``mode``; ``values`` is not modified."""
    return configure_with(Values(values), mode)


def configure_with(v: Values, mode: Mode) -> Config:
    c = Config()
    update_hub(c, v, mode)
    update_proxy(c, v, mode)
    update_auth(c, v, mode)
    update_spawner(c, v, mode)
    update_performance(c, v, mode)
    update_tls(c, v, mode)
    if mode.backend == "kube":
        update_kube_backend(c, v, mode)
    else:
        update_local_backend(c, v, mode)
    update_services(c, v, mode)
    update_passthrough(c, v, mode)
    return c


def recorded_defaults(mode: Mode) -> dict[str, Any]:
    """Every values key the configurer reads (in a kube ``mode``), with the default it assumes when absent."""
    v = Values({})
    configure_with(v, mode)
    # the generic-oauth branch ran; the dev branch reads one more key
    v("auth.dev.enabledInsecureDevelopmentLogin", False)
    return dict(v.defaults)
