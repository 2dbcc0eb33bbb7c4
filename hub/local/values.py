"""The embedded default's settings as chart-shaped values.

``labdeck up`` describes itself in the chart's vocabulary so that the one
configurer (:mod:`labdeck.hub.configurer`) serves both modes. The layers, each
overriding the one before:

1. the chart's defaults (the configurer's defaults, equal to ``values.yaml``);
2. what an embedded default is when nothing says otherwise
   (:func:`embedded_defaults`): a login that needs no identity provider;
3. an admin's values file (``LABDECK_VALUES_FILE``, the chart's format);
4. ``LABDECK_*`` environment variables, already resolved into ``settings`` by the runner;
5. its own local clouds (:func:`local_clouds`), always: the embedded default
   runs moto and the local BigQuery endpoint, whatever the values say.

Pure: settings in, a new dict out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from labdeck.emulators.aws import users_role_arn

from .. import contract


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """A new dict: ``override`` over ``base``, merging nested mappings (lists are replaced)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def embedded_defaults(settings: Mapping) -> dict:
    """Layer 2: the dev login."""
    return {"auth": {"type": "dev", "dev": {"enabledInsecureDevelopmentLogin": True}}}


def local_clouds(settings: Mapping) -> dict:
    """Layer 5: the local clouds (moto, the local BigQuery endpoint) and their bucket and region.

    S3 uses the chart's own ``aws`` provider: the local endpoint's one users'
    role, scoped per person by a session policy, as on AWS.
    """
    return {
        "cloud": {
            "providers": ["aws", "local-gcp"],
            "aws": {
                "region": settings.get("region", contract.DEFAULT_REGION),
                "bucket": settings.get("bucket", contract.DEFAULT_BUCKET),
                "endpointUrl": settings["aws_endpoint"],
                "roleArn": users_role_arn(),
            },
            "gcp": {
                "project": settings.get("gcp_project", contract.LOCAL_GCP_PROJECT),
                "bigqueryEmulatorHost": settings.get("bq_endpoint", ""),
            },
        },
    }


def settings_values(settings: Mapping) -> dict:
    """Layer 4: what ``LABDECK_*`` variables set (the runner put them in ``settings``)."""
    out: dict = {}
    if settings.get("admin_users"):
        out["auth"] = {"adminUsers": list(settings["admin_users"])}
    hub: dict = {}
    if "banner" in settings:
        hub["banner"] = settings["banner"]
    if settings.get("concurrent_spawn_limit"):
        hub["concurrentSpawnLimit"] = settings["concurrent_spawn_limit"]
    if settings.get("named_server_limit"):
        hub["namedServers"] = {"limitPerUser": settings["named_server_limit"]}
    if hub:
        out["hub"] = hub
    if settings.get("profiles"):
        out["singleuser"] = {"profiles": settings["profiles"]}
    for name in (contract.RUNS, contract.VIEWER):
        if not settings.get(f"{name}_port"):
            out[name] = {"enabled": False}
    if settings.get("credential_ttl"):
        # LABDECK_CREDENTIAL_TTL: the lifetime of every credential the broker issues
        ttl = settings["credential_ttl"]
        out["cloud"] = {"aws": {"ttlSeconds": ttl}, "gcp": {"lifetimeSeconds": ttl}}
    if settings.get("server_nice"):
        out.setdefault("singleuser", {})["nice"] = settings["server_nice"]
    return out


def local_public_url(settings: Mapping) -> str:
    """The URL people open: ``LABDECK_PUBLIC_URL``, else the local proxy's."""
    return settings.get("public_url") or f"{settings.get('public_scheme', 'http')}://127.0.0.1:{settings['public_port']}"


def names_auth(values: Mapping) -> bool:
    """True if an admin's values configure the login (then layer 2 does not apply to it)."""
    auth = values.get("auth")
    return isinstance(auth, Mapping) and bool(auth.get("type") or auth.get("oauth"))


def local_values(settings: Mapping, secrets: Mapping[str, str] | None = None) -> dict:
    """Layers 2-5 merged (see the module docstring); the configurer supplies layer 1.

    ``secrets`` may hold ``oidc_client_secret`` (read from the state directory's
    secrets by the hub's config file; never part of ``settings``).
    """
    admin = settings.get("values") or {}
    oidc = bool(settings.get("oidc"))
    defaults = {} if names_auth(admin) or oidc else embedded_defaults(settings)
    values = deep_merge(defaults, admin)
    values = deep_merge(values, settings_values(settings))
    if oidc:
        # LABDECK_OIDC_* log people in through the company's provider (labdeck.hub.local.team)
        from .team import OIDC_SECRET, oidc_values

        secret = (secrets or {}).get(OIDC_SECRET, "")
        from .team import admin_base_url

        values = deep_merge(values, {"auth": oidc_values(settings, local_public_url(settings), secret, admin_base_url(settings))})
    return deep_merge(values, local_clouds(settings))
