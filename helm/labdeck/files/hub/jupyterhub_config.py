"""JupyterHub config of the labdeck Helm chart: maps the mounted values onto traits.

Thin wiring in labelled blocks, like z2jh's jupyterhub_config.py: every value
comes from ``labdeck.hub.values`` (the mounted values.yaml and generated
secrets). Pass-through ``hub.config`` sections are applied after labdeck's
mapping, and ``hub.extraConfig`` snippets run last.
"""

import sys

from labdeck.hub import values as v

c = get_config()  # noqa: F821 - provided by traitlets when JupyterHub loads this file
get, setif, name = v.get_config, v.set_config_if_not_none, v.get_name
port = {"hub": 8081, "proxy-api": 8001, "broker": 8090}

# ---- hub, proxy, database ---------------------------------------------------
c.JupyterHub.base_url = get("hub.baseUrl", "/")
c.JupyterHub.hub_bind_url = f"http://:{port['hub']}"
c.JupyterHub.hub_connect_url = f"http://{name('hub')}:{get('hub.service.port', port['hub'])}"
c.JupyterHub.cookie_secret = bytes.fromhex(v.get_secret_value("hub.cookie-secret"))
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = f"http://{name('proxy-api')}:{port['proxy-api']}"
c.ConfigurableHTTPProxy.auth_token = v.get_secret_value("proxy.token")
setif(c.JupyterHub, "concurrent_spawn_limit", "hub.concurrentSpawnLimit")
setif(c.JupyterHub, "active_server_limit", "hub.activeServerLimit")
c.JupyterHub.cleanup_servers = False  # user servers outlive a hub restart
db_type = get("hub.db.type", "sqlite-pvc")
c.JupyterHub.db_url = {
    "sqlite-pvc": "sqlite:////srv/jupyterhub/jupyterhub.sqlite",
    "sqlite-memory": "sqlite://",
    "url": get("hub.db.url", ""),
}[db_type]

# ---- authentication ------------------------------------------------------------
auth_type = get("auth.type", "generic-oauth")
if auth_type == "dev":
    # The chart refuses auth.type dev without auth.dev.enabledInsecureDevelopmentLogin;
    # check again here so that a hand-edited Secret cannot enable it either.
    if get("auth.dev.enabledInsecureDevelopmentLogin") is not True:
        sys.exit("FATAL: auth.type dev needs auth.dev.enabledInsecureDevelopmentLogin: true")
    c.JupyterHub.authenticator_class = "labdeck-dev"
else:
    # GenericOAuthenticator with labdeck's username rules (labdeck.hub.oidc)
    c.JupyterHub.authenticator_class = "labdeck-oidc"
    oauth = c.GenericOAuthenticator
    for trait, key in [
        ("client_id", "clientId"),
        ("client_secret", "clientSecret"),
        ("authorize_url", "authorizeUrl"),
        ("token_url", "tokenUrl"),
        ("userdata_url", "userdataUrl"),
        ("oauth_callback_url", "callbackUrl"),
        ("scope", "scope"),
        ("username_claim", "usernameClaim"),
        ("claim_groups_key", "groupsClaim"),
        ("allowed_groups", "allowedGroups"),
        ("admin_groups", "adminGroups"),
        ("allow_all", "allowAll"),
        ("login_service", "loginService"),
    ]:
        setif(oauth, trait, f"auth.oauth.{key}")
    oauth.manage_groups = True  # JupyterHub groups follow the groups claim at each login
c.Authenticator.admin_users = set(get("auth.adminUsers", []))

# ---- user servers (LabdeckKubeSpawner) ------------------------------------------
c.JupyterHub.spawner_class = "labdeck-kube"
ks = c.KubeSpawner
release_labels = {
    "app.kubernetes.io/name": get("Chart.Name", "labdeck"),
    "app.kubernetes.io/instance": get("Release.Name", ""),
}
ks.common_labels = {**release_labels, "app.kubernetes.io/managed-by": "kubespawner"}
ks.extra_labels = {"app.kubernetes.io/component": "singleuser-server"}
ks.namespace = get("Release.Namespace", "default")
image = get("singleuser.image")
ks.image = f"{image['name']}:{image.get('tag') or get('Chart.AppVersion')}"
setif(ks, "image_pull_policy", "singleuser.image.pullPolicy")
ks.image_pull_secrets = get("imagePullSecrets", [])
setif(ks, "default_url", "singleuser.defaultUrl")
setif(ks, "start_timeout", "singleuser.startTimeout")
setif(ks, "cpu_limit", "singleuser.cpu.limit")
setif(ks, "cpu_guarantee", "singleuser.cpu.guarantee")
setif(ks, "mem_limit", "singleuser.memory.limit")
setif(ks, "mem_guarantee", "singleuser.memory.guarantee")
setif(ks, "uid", "singleuser.uid")
setif(ks, "fs_gid", "singleuser.fsGid")
setif(ks, "node_selector", "singleuser.nodeSelector")
ks.environment = dict(get("singleuser.extraEnv", {}))
# User pods get a ServiceAccount with no cloud role and no API token.
ks.service_account = name("singleuser")
ks.automount_service_account_token = False
ks.allow_privilege_escalation = False
# LabdeckKubeSpawner's default container security context applies: non-root, no privilege
# escalation, all capabilities dropped, RuntimeDefault seccomp (spawner/objects.py).
if get("scheduling.podPriority.enabled", False):
    ks.priority_class_name = name("user-priority")
if get("singleuser.storage.type", "dynamic") == "dynamic":
    ks.storage_pvc_ensure = True
    ks.pvc_name_template = "claim-{user_server}"
    setif(ks, "storage_capacity", "singleuser.storage.capacity")
    if get("singleuser.storage.storageClass"):
        ks.storage_class = get("singleuser.storage.storageClass")
    ks.volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
    ks.volume_mounts = [{"name": "home", "mountPath": get("singleuser.storage.homeMountPath", "/home/jovyan")}]

# ---- labdeck: credentials, profiles, onboarding ---------------------------------
mixin = c.LabdeckSpawnerMixin
mixin.broker_url = f"http://{name('broker')}:{port['broker']}/services/broker/"
setif(mixin, "aws_region", "cloud.aws.region")
setif(mixin, "s3_bucket", "cloud.aws.bucket")
setif(mixin, "aws_endpoint_url", "cloud.aws.endpointUrl")
setif(mixin, "gcp_project", "cloud.gcp.project")
setif(mixin, "bigquery_dataset_template", "cloud.gcp.bigqueryDatasetTemplate")
setif(mixin, "bigquery_emulator_host", "cloud.gcp.bigqueryEmulatorHost")
if get("singleuser.profiles"):  # empty keeps labdeck's defaults (JupyterLab, JupyterLab with R, RStudio)
    mixin.profiles = get("singleuser.profiles")
if get("singleuser.onboardingDir"):
    mixin.onboarding_dirs.append(get("singleuser.onboardingDir"))  # after labdeck's welcome files

# ---- services: credential broker, idle culler -----------------------------------
services = [
    {
        "name": "broker",
        "url": f"http://{name('broker')}:{port['broker']}",
        "api_token": v.get_secret_value("broker.api-token"),
        "display": False,
    }
]
roles = [{"name": "labdeck-broker", "scopes": ["read:users", "read:users:groups"], "services": ["broker"]}]
if get("culler.enabled", True):
    cull = [
        sys.executable, "-m", "jupyterhub_idle_culler",
        f"--timeout={get('culler.timeout', 3600)}",
        f"--cull-every={get('culler.every', 600)}",
        f"--concurrency={get('culler.concurrency', 10)}",
        f"--max-age={get('culler.maxAge', 0)}",
    ]  # fmt: skip
    if get("culler.removeNamedServers", False):
        cull.append("--remove-named-servers")
    services.append({"name": "idle-culler", "command": cull})
    roles.append(
        {
            "name": "labdeck-idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        }
    )
c.JupyterHub.services = services
c.JupyterHub.load_roles = roles

# ---- pass-through hub.config, then hub.extraConfig --------------------------------
passthrough = get("hub.config", {})
bad = v.check_config_sections(passthrough)
if bad:
    sys.exit(f"FATAL: hub.config sections must be configurable class names (CapitalCase): {', '.join(bad)}")
for section, traits in passthrough.items():
    for trait, value in traits.items():
        setattr(getattr(c, section), trait, value)
for snippet_name, code in sorted(get("hub.extraConfig", {}).items()):
    exec(compile(code, f"hub.extraConfig.{snippet_name}", "exec"), {"c": c})  # noqa: S102 - admin-supplied config
