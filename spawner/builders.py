"""Pure builders for what a user server is launched with: environment and files.

No traits, no I/O: plain values in, plain values out (like kubespawner's
``objects.py``). The mixin resolves configuration and passes values here;
each backend decides where the files go (a directory locally, a Secret on
Kubernetes).
"""

from __future__ import annotations

import posixpath
import shlex

from labdeck.hub import contract

#: file names inside the server's labdeck config directory
AWS_CONFIG = "aws_config"
GCP_CREDENTIALS = "gcp_credentials.json"


def bigquery_dataset(username: str, template: str = contract.DEFAULT_DATASET_TEMPLATE) -> str:
    """The user's own BigQuery dataset: letters, digits and underscores only, collision-free."""
    from labdeck.credentials.gcp_requests import user_dataset

    return user_dataset(username, template)


def aws_config(region: str, credential_command: list[str]) -> str:
    """An ``AWS_CONFIG_FILE`` whose default profile gets credentials from the broker.

    botocore, the aws CLI and s3fs all run ``credential_process`` and refresh
    its credentials 15 minutes before they expire. The file holds no secret.
    """
    command = " ".join(shlex.quote(part) for part in credential_command)
    return f"[default]\nregion = {region}\ncredential_process = {command}\n"


def gcp_credentials(broker_url: str, credential_command: list[str]) -> str:
    """A ``GOOGLE_APPLICATION_CREDENTIALS`` file that google-auth refreshes through the broker.

    ``external_account`` with an executable source: google-auth runs the
    in-server client for a subject token (the server's own hub token, via a
    pipe), exchanges it at the broker's ``gcp/token`` and refreshes about four
    minutes before expiry. The file holds no secret. Needs
    ``GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`` in the environment.
    """
    import json

    command = " ".join(shlex.quote(part) for part in credential_command)
    return json.dumps(
        {
            "type": "external_account",
            "audience": "//labdeck/credential-broker",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": broker_url.rstrip("/") + "/gcp/token",
            "credential_source": {"executable": {"command": command, "timeout_millis": 30000}},
        },
        indent=2,
    )


def server_files(
    *, region: str, credential_command: list[str], broker_url: str = "", gcp: bool = False
) -> dict[str, str]:
    """File name → content for the server's labdeck config directory."""
    files = {AWS_CONFIG: aws_config(region, [*credential_command, "aws"])}
    if gcp:
        files[GCP_CREDENTIALS] = gcp_credentials(broker_url, [*credential_command, "gcp-subject"])
    return files


def server_env(
    *,
    username: str,
    files_dir: str,
    broker_url: str,
    aws_region: str,
    s3_bucket: str,
    aws_endpoint_url: str = "",
    gcp_project: str = "",
    bq_dataset: str = "",
    bigquery_emulator_host: str = "",
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
        contract.ENV_BROKER_URL: broker_url,
        "AWS_CONFIG_FILE": posixpath.join(files_dir, AWS_CONFIG),
        "AWS_DEFAULT_REGION": aws_region,
        "AWS_REGION": aws_region,
        # no instance metadata lookups: credentials come from the broker only
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if s3_bucket:
        env[contract.ENV_S3_BUCKET] = s3_bucket
        env[contract.ENV_S3_HOME] = contract.s3_home(s3_bucket, username)
    if aws_endpoint_url:
        env["AWS_ENDPOINT_URL"] = aws_endpoint_url
    if gcp_project:
        env["GOOGLE_CLOUD_PROJECT"] = gcp_project
        env["GOOGLE_APPLICATION_CREDENTIALS"] = posixpath.join(files_dir, GCP_CREDENTIALS)
        env["GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"] = "1"
        env[contract.ENV_BQ_DATASET] = bq_dataset
    if bigquery_emulator_host:
        env["BIGQUERY_EMULATOR_HOST"] = bigquery_emulator_host
    return env
