"""Pure builders for the GCP side: impersonation target, IAM Credentials request, local token claims.

No SDK or HTTP calls here; the providers send what these return.
"""

from __future__ import annotations

from jupyterhub.slugs import safe_slug

from labdeck.hub import contract

from .grants import Grants

IAM_CREDENTIALS_URL = "https://iamcredentials.googleapis.com"
BIGQUERY_SCOPES = ("https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/cloud-platform")
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def user_dataset(username: str, template: str = contract.DEFAULT_DATASET_TEMPLATE) -> str:
    """The user's own dataset id (letters, digits, underscores; collision-free)."""
    return template.format(username=safe_slug(username, max_length=1000).replace("-", "_"))


def impersonation_target(username: str, grants: Grants, default_sa: str, template: str = "", project: str = "") -> str:
    """Which service account a user's BigQuery token is minted for.

    A per-user account (``template``, e.g. ``lab-{username}@{project}.iam.gserviceaccount.com``)
    wins; otherwise the first granted dataset that names a service account; otherwise
    ``default_sa``. One token is one identity: datasets are readable with it only if
    that account has been given access to them.
    """
    if template:
        # service account ids are 6-30 characters: keep the user part short
        return template.format(username=safe_slug(username, max_length=20), project=project)
    for g in grants.bigquery:
        if g.service_account:
            return g.service_account
    return default_sa


def generate_access_token_request(service_account: str, scopes, lifetime_s: int, base_url: str = IAM_CREDENTIALS_URL) -> tuple[str, dict]:
    """URL and JSON body of IAM Credentials ``generateAccessToken``."""
    url = f"{base_url.rstrip('/')}/v1/projects/-/serviceAccounts/{service_account}:generateAccessToken"
    return url, {"scope": list(scopes), "lifetime": f"{int(min(lifetime_s, 3600))}s"}


def local_token_claims(username: str, project: str, own_dataset: str, grants: Grants) -> dict:
    """Claims of a token for labdeck's local BigQuery endpoint.

    The user's own dataset is read-write; granted datasets as granted.
    """
    datasets = {f"{project}.{own_dataset}": "rw"}
    for g in grants.bigquery:
        if datasets.get(g.dataset) != "rw":
            datasets[g.dataset] = g.access
    projects = sorted({project} | {d.split(".", 1)[0] for d in datasets})
    return {"sub": username, "projects": projects, "datasets": datasets}


def token_exchange_reply(access_token: str, expires_in: int) -> dict:
    """The RFC 8693 reply google-auth's external_account credentials expect from ``token_url``."""
    return {
        "access_token": access_token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": int(expires_in),
    }
