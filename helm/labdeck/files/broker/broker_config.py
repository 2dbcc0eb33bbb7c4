"""Credential broker config of the labdeck Helm chart (``labdeck broker --config``).

Thin wiring: reads the same mounted values as the hub through
``labdeck.hub.values``. The broker's hub API token arrives as
``JUPYTERHUB_API_TOKEN`` (from the hub Secret), never through this file.
"""

from labdeck.hub import contract
from labdeck.hub import values as v

c = get_config()  # noqa: F821 - provided by traitlets when the broker loads this file
get, setif = v.get_config, v.set_config_if_not_none

# ---- the service ----------------------------------------------------------------
c.BrokerApp.ip = "0.0.0.0"
c.BrokerApp.port = contract.SERVICE_PORTS[contract.BROKER]
c.BrokerApp.base_url = contract.service_prefix(contract.BROKER)
c.BrokerApp.providers = get("cloud.providers", [])
c.BrokerApp.grants = {k: val for k, val in get("broker.grants", {}).items() if val}

# ---- AWS: STS AssumeRole + per-user session policy --------------------------------
setif(c.AWSProvider, "region", "cloud.aws.region")
setif(c.AWSProvider, "bucket", "cloud.aws.bucket")
setif(c.AWSProvider, "role_arn", "cloud.aws.roleArn")
setif(c.AWSProvider, "ttl_seconds", "cloud.aws.ttlSeconds")
setif(c.AWSProvider, "endpoint_url", "cloud.aws.endpointUrl")

# ---- GCP: service-account impersonation for BigQuery ------------------------------
setif(c.GCPProvider, "project", "cloud.gcp.project")
setif(c.GCPProvider, "service_account", "cloud.gcp.serviceAccount")
setif(c.GCPProvider, "ttl_seconds", "cloud.gcp.lifetimeSeconds")
setif(c.GCPProvider, "dataset_template", "cloud.gcp.bigqueryDatasetTemplate")
