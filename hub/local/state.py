"""The embedded default's state directory: one place for everything it writes.

Layout (``$LABDECK_STATE_DIR``, default ``.labdeck/``)::

    settings.json          ports, bucket, paths (no secrets)
    secrets/               0700; every file 0600
      cookie_secret  proxy_token  broker_token  supervisor_token
      dev_password   broker_aws_credentials   bigquery_key
    jupyterhub.sqlite      the hub database
    homes/<user>/          user home directories
    logs/<component>.log   one log per process
    run/<component>.pid    pid files of running components
    emulators/             local BigQuery data
"""

from __future__ import annotations

import json
import os
import secrets as _secrets

from labdeck.hub import contract
from pathlib import Path

SECRET_NAMES = (
    "cookie_secret", "proxy_token", "broker_token", "supervisor_token", "bigquery_key", "runs_token", "viewer_token",
    "metrics_token",
)  # fmt: skip


def state_dir(env: dict | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(contract.ENV_STATE_DIR) or ".labdeck").resolve()


class StateDir:
    """Paths and secret files under one state directory."""

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()

    # paths
    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def homes(self) -> Path:
        return self.root / "homes"

    @property
    def emulators(self) -> Path:
        return self.root / "emulators"

    @property
    def settings_file(self) -> Path:
        return self.root / "settings.json"

    @property
    def db_file(self) -> Path:
        return self.root / "jupyterhub.sqlite"

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for d in (self.logs, self.run, self.homes, self.emulators):
            d.mkdir(exist_ok=True)
        self.secrets.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.secrets, 0o700)

    # secrets
    def secret_path(self, name: str) -> Path:
        return self.secrets / name

    def write_secret(self, name: str, value: str) -> Path:
        path = self.secret_path(name)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
        os.replace(tmp, path)
        return path

    def read_secret(self, name: str) -> str:
        return self.secret_path(name).read_text().strip()

    def ensure_secret(self, name: str, nbytes: int = 32) -> str:
        """Read a secret, generating it (0600) the first time."""
        path = self.secret_path(name)
        if path.exists():
            os.chmod(path, 0o600)
            return self.read_secret(name)
        value = _secrets.token_hex(nbytes)
        self.write_secret(name, value)
        return value

    # settings
    def write_settings(self, settings: dict) -> None:
        self.settings_file.write_text(json.dumps(settings, indent=2, sort_keys=True))

    def read_settings(self) -> dict:
        return json.loads(self.settings_file.read_text())
