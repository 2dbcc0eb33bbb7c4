"""Pure builders for what a user server is launched with: environment and files.

No traits, no I/O: plain values in, plain values out (like kubespawner's
``objects.py``). The mixin resolves configuration and passes values here;
each backend decides where the files go (a directory locally, a Secret on
Kubernetes).
"""

from __future__ import annotations

import posixpath
import shlex

from jupyterhub.slugs import safe_slug

#: file names inside the server's labdeck config directory
AWS_CONFIG = "aws_config"


def bigquery_dataset(username: str, template: str = "user_{username}") -> str:
    """The user's own BigQuery dataset: letters, digits and underscores only, collision-free."""
    slug = safe_slug(username, max_length=1000).replace("-", "_")
    return template.format(username=slug)


def aws_config(region: str, credential_command: list[str]) -> str:
    """An ``AWS_CONFIG_FILE`` whose default profile gets credentials from the broker.

    botocore, the aws CLI and s3fs all run ``credential_process`` and refresh
    its credentials 15 minutes before they expire. The file holds no secret.
    """
    command = " ".join(shlex.quote(part) for part in credential_command)
    return f"[default]\nregion = {region}\ncredential_process = {command}\n"


def server_files(*, region: str, credential_command: list[str]) -> dict[str, str]:
    """File name → content for the server's labdeck config directory."""
    return {AWS_CONFIG: aws_config(region, credential_command)}


def server_env(
    *,
    username: str,
    files_dir: str,
    broker_url: str,
    aws_region: str,
    s3_bucket: str,
    aws_endpoint_url: str = "",
) -> dict[str, str]:
    """Environment variables labdeck adds to a user server.

    Parameters
    ----------
    username : str
        A validated username.
    files_dir : str
        Where the server sees the files of :func:`server_files`.
    broker_url : str
        The broker's base URL as seen from the server.
    aws_region, s3_bucket : str
        AWS region and data bucket.
    aws_endpoint_url : str
        Local S3/STS endpoint (embedded default); empty on real AWS.

    Returns
    -------
    dict
        No secrets: the server authenticates to the broker with its own
        ``JUPYTERHUB_API_TOKEN``, which JupyterHub sets.
    """
    env = {
        "LABDECK_BROKER_URL": broker_url,
        "AWS_CONFIG_FILE": posixpath.join(files_dir, AWS_CONFIG),
        "AWS_DEFAULT_REGION": aws_region,
        "AWS_REGION": aws_region,
        # no instance metadata lookups: credentials come from the broker only
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if s3_bucket:
        env["LABDECK_S3_BUCKET"] = s3_bucket
        env["LABDECK_S3_HOME"] = f"s3://{s3_bucket}/home/{username}/"
    if aws_endpoint_url:
        env["AWS_ENDPOINT_URL"] = aws_endpoint_url
    return env
