"""The embedded default's settings from its environment (``LABDECK_*``).

Pure where it can be: functions take the environment as a mapping and return
plain data; the only I/O is reading files an admin named (profiles, values).
Errors are :class:`SettingsError`, with a message for a person.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .. import contract
from ..usernames import InvalidUsername, check_username, normalize_username
from ..values import ValuesError, lookup


class SettingsError(Exception):
    """A reason not to start, for a person (stale run, port in use, bad env)."""


#: grants of the embedded default, written to <state>/grants.json once (edit it live:
#: the broker re-reads it, changes apply at each user's next credential refresh)
DEFAULT_GRANTS = {
    "everyone": {
        "s3": [{"prefix": "shared/", "access": "ro"}],
        "bigquery": [{"dataset": f"{contract.LOCAL_GCP_PROJECT}.demo", "access": "ro"}],
    },
    "groups": {"analysts": {"s3": [{"prefix": "shared/analysts/", "access": "ro"}]}},
    "users": {},
}


def parse_admin_users(value: str) -> list[str]:
    admins = []
    for raw in value.split(","):
        raw = raw.strip()
        if not raw:
            continue
        name = normalize_username(raw)
        try:
            check_username(name)
        except InvalidUsername as e:
            raise SettingsError(f"LABDECK_ADMIN_USERS: {e}") from None
        admins.append(name)
    return admins


def load_profiles_file(path: str) -> list[dict]:
    """``LABDECK_PROFILES_FILE``: a JSON or YAML list of profiles, checked like the spawner checks them."""
    import yaml

    from labdeck.spawner.profiles import ProfileConfigError, normalize_profiles

    try:
        with open(path) as f:
            data = yaml.safe_load(f)  # YAML is a superset of JSON
    except (OSError, yaml.YAMLError) as e:
        raise SettingsError(f"LABDECK_PROFILES_FILE: cannot read {path}: {e}") from None
    if not isinstance(data, list) or not data:
        raise SettingsError(f"LABDECK_PROFILES_FILE: {path} must hold a non-empty list of profiles")
    try:
        normalize_profiles(data)
    except ProfileConfigError as e:
        raise SettingsError(f"LABDECK_PROFILES_FILE: {e}") from None
    return data


def load_values_file(path: str) -> dict:
    """``LABDECK_VALUES_FILE``: an admin's values in the chart's format (a subset is fine)."""
    from ..values import parse_values

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise SettingsError(f"LABDECK_VALUES_FILE: cannot read {path}: {e.strerror}") from None
    try:
        return parse_values(text, source=path)
    except ValuesError as e:
        raise SettingsError(f"LABDECK_VALUES_FILE: {e}") from None


def kube_settings(env: Mapping[str, str]) -> dict | None:
    """``LABDECK_SPAWNER=kube`` (+ ``LABDECK_KUBECONFIG``, ``LABDECK_KUBE_NAMESPACE``,
    optional ``LABDECK_KUBE_IMAGE``): spawn with ``LabdeckKubeSpawner`` instead of local processes.

    For one machine (tests against tests/kube's API server and process kubelet): the
    "image" is this virtualenv, so its ``bin`` leads the pods' ``PATH``.
    """
    mode = env.get("LABDECK_SPAWNER", "local") or "local"
    if mode == "local":
        return None
    if mode != "kube":
        raise SettingsError(f"LABDECK_SPAWNER must be 'local' or 'kube', not {mode!r}")
    kubeconfig = env.get("LABDECK_KUBECONFIG", "")
    if not kubeconfig or not os.access(kubeconfig, os.R_OK):
        raise SettingsError("LABDECK_SPAWNER=kube needs LABDECK_KUBECONFIG: a readable kubeconfig file")
    namespace = env.get("LABDECK_KUBE_NAMESPACE", "")
    if not namespace:
        raise SettingsError("LABDECK_SPAWNER=kube needs LABDECK_KUBE_NAMESPACE")
    kube = {
        "kubeconfig": str(Path(kubeconfig).resolve()),
        "namespace": namespace,
        "path": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]),
        "allow_root": os.geteuid() == 0,
        "storage_capacity": "1Gi",
        "image": env.get("LABDECK_KUBE_IMAGE") or "labdeck/singleuser:local",
    }
    return kube


def env_settings(env: Mapping[str, str]) -> dict:
    """Everything ``LABDECK_*`` variables decide, except ports and paths."""
    try:
        ttl = int(env.get("LABDECK_CREDENTIAL_TTL") or 0)
    except ValueError:
        raise SettingsError("LABDECK_CREDENTIAL_TTL must be a whole number of seconds") from None
    if env.get("LABDECK_CREDENTIAL_TTL") and ttl < 5:
        raise SettingsError("LABDECK_CREDENTIAL_TTL must be at least 5 seconds (default: cloud.aws.ttlSeconds, 3600)")
    values = load_values_file(env[contract.ENV_VALUES_FILE]) if env.get(contract.ENV_VALUES_FILE) else {}
    try:
        bucket, region = lookup(values, "cloud.aws.bucket", ""), lookup(values, "cloud.aws.region", "")
    except ValuesError as e:
        raise SettingsError(f"LABDECK_VALUES_FILE: {e}") from None
    settings = {
        # the local S3 holds the bucket the values name (LABDECK_BUCKET wins)
        "bucket": env.get("LABDECK_BUCKET") or bucket or contract.DEFAULT_BUCKET,
        "region": region or contract.DEFAULT_REGION,
        "gcp_project": contract.LOCAL_GCP_PROJECT,
        "admin_users": parse_admin_users(env.get("LABDECK_ADMIN_USERS", "")),
    }
    if ttl:
        # overrides the values' cloud.aws.ttlSeconds and cloud.gcp.lifetimeSeconds (labdeck.hub.local.values)
        settings["credential_ttl"] = ttl
    if env.get("LABDECK_BANNER") is not None:
        settings["banner"] = env["LABDECK_BANNER"]
    if env.get("LABDECK_PROFILES_FILE"):
        settings["profiles"] = load_profiles_file(env["LABDECK_PROFILES_FILE"])
    if values:
        settings["values"] = values
    kube = kube_settings(env)
    if kube:
        settings["kube"] = kube
    from .team import team_settings

    # company login, public URL, TLS (labdeck.hub.local.team)
    settings.update(team_settings(env))
    return settings
