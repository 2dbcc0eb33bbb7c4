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

#: where each SDK looks by default, relative to the home (a process with a clean environment finds them)
HOME_AWS_CONFIG = ".aws/config"
HOME_GOOGLE_ADC = ".config/gcloud/application_default_credentials.json"
HOME_RENVIRON = ".Renviron"
#: marks what labdeck wrote and may rewrite; a file without it is the person's and is never touched
MANAGED = "labdeck-managed"
RENVIRON_BEGIN = f"# >>> {MANAGED}: rewritten at every server start; add your own lines outside this block >>>"
RENVIRON_END = f"# <<< {MANAGED} <<<"
#: google-auth's and gargle's audience for labdeck's broker-backed Google credentials
GCP_AUDIENCE = "//labdeck/credential-broker"


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
            "audience": GCP_AUDIENCE,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": broker_url.rstrip("/") + "/" + contract.BROKER_TOKEN_ROUTE.format(provider="gcp"),
            "credential_source": {"executable": {"command": command, "timeout_millis": 30000}},
        },
        indent=2,
    )


def credential_argv(credential_command: list[str], files_dir: str, provider: str) -> list[str]:
    """The in-server client's argv for ``provider``, told where the server's labdeck files are.

    ``--files-dir`` lets a process without labdeck's environment (an RStudio
    session) find the broker URL and the server's token.
    """
    return [*credential_command, *(["--files-dir", files_dir] if files_dir else []), provider]


def server_files(
    *,
    region: str,
    credential_command: list[str],
    broker_url: str = "",
    gcp: bool = False,
    files_dir: str = "",
    api_token: str = "",
    home_files: dict | None = None,
) -> dict[str, str]:
    """File name → content for the server's labdeck config directory.

    ``api_token`` (the server's own JupyterHub token) becomes the token file and
    ``broker_url`` the ``broker-url`` file the in-server client reads when a
    process has no labdeck environment; ``home_files`` (:func:`home_files`) is
    what the server places at the SDKs' default paths in the home.
    """
    files = {AWS_CONFIG: aws_config(region, credential_argv(credential_command, files_dir, "aws"))}
    if gcp:
        files[GCP_CREDENTIALS] = gcp_credentials(broker_url, credential_argv(credential_command, files_dir, "gcp-subject"))
    if broker_url:
        files[contract.BROKER_URL_FILE] = broker_url + "\n"
    if api_token:
        # no newline: on Kubernetes the same Secret key is also the server's JUPYTERHUB_API_TOKEN
        files[contract.TOKEN_FILE] = api_token
    if home_files:
        import json

        files[contract.HOME_FILES_FILE] = json.dumps(home_files, indent=1, sort_keys=True)
    return files


def aws_home_config(region: str, credential_command: list[str], endpoint_url: str = "") -> str:
    """``~/.aws/config`` for processes without ``AWS_CONFIG_FILE`` (every AWS SDK reads it by default).

    The profile file wins over container credentials in every AWS chain, so
    this is where the wiring goes; ``credential_command`` is absolute where the
    server's ``PATH`` is not the default one. Carries :data:`MANAGED`: a
    person who wants their own file deletes that line.
    """
    command = " ".join(shlex.quote(part) for part in credential_command)
    lines = [
        f"# {MANAGED}: written by labdeck at every server start; delete this line to keep your own edits",
        "[default]",
        f"region = {region}",
        f"credential_process = {command}",
    ]
    if endpoint_url:
        lines.append(f"endpoint_url = {endpoint_url}")
    return "\n".join(lines) + "\n"


def google_adc(broker_url: str, token_file: str) -> str:
    """Google application-default credentials at the well-known path, for processes without labdeck's environment.

    ``external_account`` sourced from the server's token *file* (not an
    executable: google-auth runs executables only with
    ``GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`` in the environment), exchanged
    at the broker's ``gcp/token``. The file names the token file; it holds no secret.
    gargle skips this type (it reads the metadata endpoint instead).
    """
    import json

    body = {
        MANAGED: "written by labdeck at every server start; replace this file to use your own credentials",
        "type": "external_account",
        "audience": GCP_AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": broker_url.rstrip("/") + "/" + contract.BROKER_TOKEN_ROUTE.format(provider="gcp"),
        "credential_source": {"file": token_file, "format": {"type": "text"}},
    }
    return json.dumps(body, indent=2) + "\n"


_RENVIRON_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:/@+=,%~")


def renviron_block(env: dict[str, str], path_prepend: str = "") -> str:
    """labdeck's block of ``~/.Renviron``: what R (and RStudio's clean-environment sessions) must see.

    Values are single-quoted (R does no ``${}`` expansion there) and refused
    when they hold anything but plain URL/identifier characters.
    ``path_prepend`` puts a directory before R's ``PATH`` (``${PATH}`` is expanded).
    """
    lines = [RENVIRON_BEGIN]
    for name in sorted(env):
        value = env[name]
        if not name.replace("_", "").isalnum() or not set(value) <= _RENVIRON_SAFE:
            raise ValueError(f"refusing to write {name} into .Renviron: unexpected characters")
        lines.append(f"{name}='{value}'")
    if path_prepend:
        if not set(path_prepend) <= _RENVIRON_SAFE:
            raise ValueError("refusing to write PATH into .Renviron: unexpected characters")
        lines.append(f'PATH="{path_prepend}:${{PATH}}"')
    lines.append(RENVIRON_END)
    return "\n".join(lines) + "\n"


#: the environment R needs from :func:`server_env` (no secrets, nothing about the server process itself)
RENVIRON_VARS = (
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_ENDPOINT_URL",
    "BIGQUERY_EMULATOR_HOST",
    "GOOGLE_CLOUD_PROJECT",
    "GCE_METADATA_URL",
    contract.ENV_S3_BUCKET,
    contract.ENV_S3_HOME,
    contract.ENV_BQ_DATASET,
)


def home_files(
    *,
    env: dict[str, str],
    files_dir: str,
    broker_url: str,
    region: str,
    credential_command: list[str],
    r_env: dict[str, str] | None = None,
    path_prepend: str = "",
) -> dict[str, dict]:
    """Home-relative path → ``{"content", "kind"}`` of what goes at the SDKs' default paths.

    ``kind`` ``"file"``: written whole, only where absent or carrying
    :data:`MANAGED`; ``"block"``: labdeck's block of the file is replaced, the
    person's lines are kept (``labdeck.spawner.homefiles`` places them, as the person).

    Parameters
    ----------
    env : dict
        The server's labdeck environment (:func:`server_env`); the
        :data:`RENVIRON_VARS` of it go to ``~/.Renviron``.
    files_dir : str
        Where the server sees its labdeck files (token, broker URL).
    r_env : dict
        More variables for ``~/.Renviron`` (locally ``RETICULATE_PYTHON``).
    path_prepend : str
        A directory R's ``PATH`` starts with (locally the server's ``bin``, for the aws CLI).
    """
    renv = {k: env[k] for k in RENVIRON_VARS if env.get(k)}
    renv.update(r_env or {})
    out = {
        HOME_AWS_CONFIG: {
            "kind": "file",
            "content": aws_home_config(region, credential_argv(credential_command, files_dir, "aws"), env.get("AWS_ENDPOINT_URL", "")),
        },
        HOME_RENVIRON: {"kind": "block", "content": renviron_block(renv, path_prepend)},
    }
    if env.get("GOOGLE_CLOUD_PROJECT"):
        out[HOME_GOOGLE_ADC] = {
            "kind": "file",
            "content": google_adc(broker_url, posixpath.join(files_dir, contract.TOKEN_FILE)),
        }
    return out


def metadata_url(port: int) -> str:
    """``GCE_METADATA_URL`` (gargle's form: ``host:port``, no scheme) of the server's metadata endpoint."""
    return f"127.0.0.1:{int(port)}"


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
    metadata_port: int = 0,
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
    metadata_port : int
        Loopback port of the server's GCE-metadata-compatible endpoint for
        R's gargle (``LABDECK_METADATA_PORT``, ``GCE_METADATA_URL``); with
        ``gcp_project`` only.

    Returns
    -------
    dict
        No secrets: the server authenticates to the broker with its own
        ``JUPYTERHUB_API_TOKEN``, which JupyterHub sets.
    """
    env = {
        contract.ENV_BROKER_URL: broker_url,
        contract.ENV_FILES_DIR: files_dir,
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
        if metadata_port:
            env[contract.ENV_METADATA_PORT] = str(metadata_port)
            env["GCE_METADATA_URL"] = metadata_url(metadata_port)
    if bigquery_emulator_host:
        env["BIGQUERY_EMULATOR_HOST"] = bigquery_emulator_host
    return env
