"""The embedded default's settings as chart-shaped values.

``labdeck up`` describes itself in the chart's vocabulary so that the one
configurer (:mod:`labdeck.hub.configurer`) serves both modes. The layers, each
overriding the one before:

1. the chart's defaults (the configurer's defaults, equal to ``values.yaml``);
2. what an embedded default always is (:func:`embedded_defaults`): a login
   that needs no identity provider, and its own local clouds;
3. an admin's values file (``LABDECK_VALUES_FILE``, the chart's format);
4. ``LABDECK_*`` environment variables, already resolved into ``settings`` by the runner.

Pure: settings in, a new dict out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

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
    """Layer 2: the dev login and the local clouds (moto, the local BigQuery endpoint)."""
    return {
        "auth": {"type": "dev", "dev": {"enabledInsecureDevelopmentLogin": True}},
        "cloud": {
            "providers": ["local-aws", "local-gcp"],
            "aws": {"region": settings.get("region", contract.DEFAULT_REGION), "endpointUrl": settings["aws_endpoint"]},
            "gcp": {
                "project": settings.get("gcp_project", contract.LOCAL_GCP_PROJECT),
                "bigqueryEmulatorHost": settings.get("bq_endpoint", ""),
            },
        },
    }


def settings_values(settings: Mapping) -> dict:
    """Layer 4: what ``LABDECK_*`` variables set (the runner put them in ``settings``)."""
    out: dict = {"cloud": {"aws": {"bucket": settings.get("bucket", contract.DEFAULT_BUCKET)}}}
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
    if settings.get("server_nice"):
        out.setdefault("singleuser", {})["nice"] = settings["server_nice"]
    return out


def local_values(settings: Mapping) -> dict:
    """All four layers merged (see the module docstring)."""
    values = deep_merge(embedded_defaults(settings), settings.get("values") or {})
    return deep_merge(values, settings_values(settings))
