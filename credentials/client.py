"""The in-server client that SDK credential chains call.

AWS: ``credential_process = labdeck-credentials aws`` in the ``AWS_CONFIG_FILE``
the spawner writes. botocore runs it whenever it needs credentials (and again
15 minutes before they expire); it prints the credential_process JSON on
stdout. Errors go to stderr as one readable line, which botocore shows to the
person in its exception, and the exit code is non-zero.

It reads the broker's URL from ``LABDECK_BROKER_URL`` and authenticates with
the server's own ``JUPYTERHUB_API_TOKEN``, sent in a header, never on a command
line. A process without that environment (RStudio's ``rsession``, a child
started with a clean environment) finds both in the server's labdeck
directory instead, named by ``--files-dir DIR`` (the SDK config files the
spawner writes put it on the command line) or ``LABDECK_FILES_DIR``: the
files ``broker-url`` and ``jupyterhub-api-token``, which only the person can
read (0600 in their 0700 ``~/.labdeck`` locally; the server's own Secret on
Kubernetes). The environment wins when it is set. Standard library only, so
it starts fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

from labdeck.hub import contract

TIMEOUT_S = 10
#: a broker that answers with a 5xx is asked this many times
RETRIES = 3
RETRY_DELAY_S = 0.5
#: a broker that cannot be reached (restarting, say) is retried until this deadline,
#: with backoff capped at RETRY_MAX_DELAY_S: a supervisor restart takes a few seconds
UNREACHABLE_DEADLINE_S = 25
RETRY_MAX_DELAY_S = 2.0


class ClientError(Exception):
    """A readable, secret-free reason the credentials could not be fetched."""


def _read_file(files_dir: str, name: str) -> str:
    if not files_dir:
        return ""
    try:
        with open(os.path.join(files_dir, name)) as f:
            return f.read().strip()
    except OSError:
        return ""


def files_dir_default() -> str:
    return os.environ.get(contract.ENV_FILES_DIR, "")


def broker_url_default(files_dir: str | None = None) -> str:
    """``LABDECK_BROKER_URL``, else the server's ``broker-url`` file."""
    return os.environ.get(contract.ENV_BROKER_URL, "") or _read_file(files_dir_default() if files_dir is None else files_dir, contract.BROKER_URL_FILE)


def token_default(files_dir: str | None = None) -> str:
    """``JUPYTERHUB_API_TOKEN``, else the server's token file (only the person can read it)."""
    return os.environ.get("JUPYTERHUB_API_TOKEN", "") or _read_file(files_dir_default() if files_dir is None else files_dir, contract.TOKEN_FILE)


def fetch(provider: str, *, broker_url: str | None = None, token: str | None = None, files_dir: str | None = None) -> dict:
    """Fetch credentials for ``provider`` from the broker and return the decoded JSON."""
    broker_url = broker_url or broker_url_default(files_dir)
    token = token or token_default(files_dir)
    if not broker_url:
        raise ClientError("LABDECK_BROKER_URL is not set and no labdeck files were found: this server was not started by labdeck")
    if not token:
        raise ClientError("JUPYTERHUB_API_TOKEN is not set and the server's token file is missing: cannot authenticate to the credential broker")
    url = broker_url.rstrip("/") + "/" + contract.BROKER_CREDENTIALS_ROUTE.format(provider=provider)
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}", "Accept": "application/json"})
    deadline = time.monotonic() + UNREACHABLE_DEADLINE_S
    server_errors = 0
    delay = RETRY_DELAY_S
    while True:
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read()).get("error") or e.reason
            except Exception:
                message = e.reason
            server_errors += 1
            if e.code < 500 or server_errors >= RETRIES:
                raise ClientError(f"credential broker refused ({e.code}): {message}") from None
            time.sleep(RETRY_DELAY_S * server_errors)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            if time.monotonic() + delay > deadline:
                raise ClientError(f"credential broker unreachable at {broker_url}: {reason}") from None
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY_S)


def gcp_subject_token(token: str | None = None, now: float | None = None, files_dir: str | None = None) -> dict:
    """The executable-sourced subject token google-auth exchanges at the broker's ``gcp/token``.

    It is the server's own JupyterHub API token, passed through a pipe to
    google-auth, which sends it to the broker in a POST body: no file on disk
    holds it and it never appears in a URL.
    """
    token = token or token_default(files_dir)
    if not token:
        return {"version": 1, "success": False, "code": "401", "message": "JUPYTERHUB_API_TOKEN is not set and the server's token file is missing"}
    return {
        "version": 1,
        "success": True,
        "token_type": "urn:ietf:params:oauth:token-type:jwt",
        "id_token": token,
        "expiration_time": int((time.time() if now is None else now) + 300),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    files_dir = None
    if len(argv) == 3 and argv[0] == "--files-dir":
        files_dir, argv = argv[1], argv[2:]
    if len(argv) != 1 or argv[0] not in ("aws", "gcp-subject"):
        print("usage: labdeck-credentials [--files-dir DIR] aws | gcp-subject", file=sys.stderr)
        return 2
    if argv[0] == "gcp-subject":
        body = gcp_subject_token(files_dir=files_dir)
        json.dump(body, sys.stdout)
        return 0 if body["success"] else 1
    try:
        body = fetch(argv[0], files_dir=files_dir)
    except ClientError as e:
        print(f"labdeck: {e}", file=sys.stderr)
        return 1
    json.dump(body, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
