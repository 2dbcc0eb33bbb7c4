"""labdeck's cross-process contract: names every process must agree on, defined once.

Service names, the fixed ports of the in-cluster Services, URL routes,
environment variable names and the data defaults (bucket, region, dataset
template) are used by the hub config, the spawner, the broker, the runs and
viewer services, the in-server client and the embedded default's runner.
They are literals nowhere else in Python. Helm cannot import Python, so
``tests/hub/test_contract.py`` checks the chart's defaults against this
module.

Pure constants and tiny pure helpers; no I/O, nothing read at import time.
"""

from __future__ import annotations

# ---------------------------------------------------------------- services
#: the credential broker (labdeck.credentials)
BROKER = "broker"
#: parameterized runs and schedules (labdeck.runs.app)
RUNS = "runs"
#: read-only notebook viewer and shares (labdeck.runs.viewer)
VIEWER = "viewer"
#: jupyterhub-idle-culler, a hub-managed service in both modes
CULLER = "idle-culler"
#: the embedded default's runner (stops servers on shutdown, re-syncs proxy routes)
SUPERVISOR = "labdeck-supervisor"
#: the identity Prometheus scrapes with (role: read:metrics only; chart: metrics.serviceMonitor)
METRICS = "metrics"

#: labdeck's own HTTP services, in the order they are configured
LABDECK_SERVICES = (BROKER, RUNS, VIEWER)

# ---------------------------------------------------------------- fixed ports
#: ports of the chart's Services and containers (the embedded default picks free
#: loopback ports instead and records them in settings.json)
HUB_PORT = 8081
PROXY_API_PORT = 8001
PROXY_HTTP_PORT = 8000
SERVICE_PORTS = {BROKER: 8090, RUNS: 8095, VIEWER: 8096}
#: where a user server listens inside its pod
SINGLEUSER_PORT = 8888
#: where a warm pod's agent waits for its one claim (labdeck.spawner.kube.podagent; the hub only)
WARM_CLAIM_PORT = 8889

# ---------------------------------------------------------------- routes
HEALTH_ROUTE = "health"
METRICS_ROUTE = "metrics"
#: where the identity provider sends a person back after login (OAuthenticator's callback)
OAUTH_CALLBACK_PATH = "/hub/oauth_callback"


def service_prefix(name: str) -> str:
    """URL prefix of a hub service: ``/services/<name>/`` (JupyterHub's rule)."""
    return f"/services/{name}/"


def service_url(base: str, name: str) -> str:
    """``base`` (``http://host:port``) joined with the service's prefix."""
    return base.rstrip("/") + service_prefix(name)


#: broker routes, relative to its prefix, per provider (``aws``, ``gcp``): credentials, and the
#: RFC 8693 token exchange google-auth calls
BROKER_CREDENTIALS_ROUTE = "{provider}/credentials"
BROKER_TOKEN_ROUTE = "{provider}/token"
#: runs service API, relative to its prefix
RUNS_API_ROUTE = "api/runs"
SCHEDULES_API_ROUTE = "api/schedules"
#: a run executes in the owner's named server ``run-<run id>`` (labdeck.runs.records.Run.server_name)
RUN_SERVER_PREFIX = "run-"


def run_server_name(run_id: str) -> str:
    """The named server run ``run_id`` (12 hex digits) executes in: ``run-<run id>``."""
    if len(run_id) != 12 or any(ch not in "0123456789abcdef" for ch in run_id):
        raise ValueError("invalid run id")
    return f"{RUN_SERVER_PREFIX}{run_id}"


def is_run_server(server_name: str) -> bool:
    """True for the name of a run's server: ``run-`` + a 12-hex-digit run id."""
    rest = server_name[len(RUN_SERVER_PREFIX) :] if server_name.startswith(RUN_SERVER_PREFIX) else ""
    return len(rest) == 12 and all(ch in "0123456789abcdef" for ch in rest)


#: viewer routes, relative to its prefix
VIEWER_SHARES_API_ROUTE = "api/shares"
VIEWER_SHARE_ROUTE = "s"
VIEWER_VIEW_ROUTE = "view"

# ---------------------------------------------------------------- data defaults
DEFAULT_BUCKET = "labdeck-data"
DEFAULT_REGION = "us-east-1"
#: the user's own BigQuery dataset; ``{username}`` is the hub username
DEFAULT_DATASET_TEMPLATE = "user_{username}"
#: the GCP project of the embedded default's local BigQuery
LOCAL_GCP_PROJECT = "labdeck-local"
#: S3 key prefix of a user's home: ``home/<user>/``
HOME_PREFIX = "home/"

#: where the home volume is mounted in a Kubernetes user pod
KUBE_HOME = "/home/jovyan"
#: warm pods (singleuser.warmPool): where the shared homes volume is mounted; each
#: person's home is a 0700 directory in it, owned by their own uid
KUBE_WARM_HOMES = "/home"

# ---------------------------------------------------------------- a server's labdeck files
#: in the server's labdeck directory (``~/.labdeck`` locally, the per-server Secret at
#: ``/etc/labdeck`` on Kubernetes): what the in-server client reads when a process has no
#: labdeck environment (an RStudio session, a clean-env child). Only the person can read them.
TOKEN_FILE = "jupyterhub-api-token"
BROKER_URL_FILE = "broker-url"
#: the files placed at the SDKs' default paths in the home (``labdeck.spawner.homefiles``)
HOME_FILES_FILE = "home-files.json"
#: the GCE-metadata-compatible endpoint (``labdeck.credentials.metadata``) in a Kubernetes
#: user pod, on the pod's own loopback; locally each server gets a free loopback port
METADATA_PORT = 8988

# ---------------------------------------------------------------- environment
#: set in every user server by the spawner
ENV_FILES_DIR = "LABDECK_FILES_DIR"
ENV_METADATA_PORT = "LABDECK_METADATA_PORT"
ENV_S3_HOME = "LABDECK_S3_HOME"
ENV_S3_BUCKET = "LABDECK_S3_BUCKET"
ENV_BROKER_URL = "LABDECK_BROKER_URL"
ENV_RUNS_URL = "LABDECK_RUNS_URL"
ENV_VIEWER_URL = "LABDECK_VIEWER_URL"
ENV_RUN_PROFILES = "LABDECK_RUN_PROFILES"
ENV_BQ_DATASET = "LABDECK_BQ_DATASET"
ENV_PROFILE = "LABDECK_PROFILE"
ENV_SIZE = "LABDECK_SIZE"
ENV_ONBOARDING_DIRS = "LABDECK_ONBOARDING_DIRS"
#: the data UIs in JupyterLab (labdeck.data), "1" or "0" (values singleuser.data.*)
ENV_S3_DRIVE = "LABDECK_S3_DRIVE"
ENV_BIGQUERY_PANEL = "LABDECK_BIGQUERY_PANEL"
#: values key under ``singleuser.data`` -> its variable
DATA_FEATURES = {"s3Drive": ENV_S3_DRIVE, "bigqueryPanel": ENV_BIGQUERY_PANEL}
#: read by services and the runner
ENV_STATE_DIR = "LABDECK_STATE_DIR"
ENV_PROXY_URL = "LABDECK_PROXY_URL"
ENV_VALUES_FILE = "LABDECK_VALUES_FILE"
ENV_SECRET_DIR = "LABDECK_SECRET_DIR"
#: ``labdeck run`` from outside a server
ENV_URL = "LABDECK_URL"
ENV_TOKEN = "LABDECK_TOKEN"


def home_prefix(username: str) -> str:
    """S3 key prefix of ``username``'s home (``home/<user>/``): the one definition of the layout,
    for the session policy, the server's environment, runs, the viewer and the S3 drive.

    Refuses (``ValueError``) a name that could name anything but one home: empty, ``.``/``..``,
    or with a ``/``, whitespace or a control character (hub usernames never have them).
    """
    if not username or username in (".", "..") or any(ch == "/" or ch.isspace() or ord(ch) < 32 for ch in username):
        raise ValueError("invalid user name for an S3 home")
    return f"{HOME_PREFIX}{username}/"


def s3_home(bucket: str, username: str) -> str:
    """``s3://<bucket>/home/<user>/``: the value of ``LABDECK_S3_HOME``."""
    return f"s3://{bucket}/{home_prefix(username)}"
