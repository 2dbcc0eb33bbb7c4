"""Prometheus metrics of labdeck's services: one registry each, served at ``<prefix>metrics``.

Like JupyterHub's own ``/hub/metrics`` (``authenticate_prometheus``), the
endpoint needs a token with the ``read:metrics`` scope (admins have it; the
chart's ``metrics`` service has only that): no token is a 401, a token
without the scope a 403. The token is introspected by the hub
(``HubAuth.user_for_token``) and travels in the ``Authorization`` header only.

Rules for every labdeck metric: a fixed, small set of label values (provider,
status, result, kind — never a username, path, token, bucket key or share
id), so cardinality does not grow with users; every label combination that
can occur is created at zero when the service starts, so alerts and
dashboards see a series before the first event. Each service has its own
``CollectorRegistry`` (never prometheus_client's global one), with the
process, platform and GC collectors, so tests of several services in one
process stay isolated.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, generate_latest
from tornado import web

from .service import JSONErrorsMixin, TokenAuthMixin

#: the JupyterHub scope that may read metrics (the hub's own /hub/metrics uses it too)
READ_METRICS_SCOPE = "read:metrics"

#: buckets for calls that take 10 ms to 30 s (credential issuance, upstream calls)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, float("inf"))

#: buckets for notebook runs: seconds to a day
RUN_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600, float("inf"))


def new_registry() -> CollectorRegistry:
    """A registry of one service, with its process, platform and GC metrics."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def has_scope(model: dict, scope: str = READ_METRICS_SCOPE) -> bool:
    """True if the hub's model of a token (``/hub/api/user``) carries ``scope``."""
    from jupyterhub.services.auth import check_scopes

    return bool(check_scopes({scope}, set(model.get("scopes") or ())))


class MetricsHandler(TokenAuthMixin, JSONErrorsMixin, web.RequestHandler):
    """``GET <prefix>metrics``: the service's registry in the Prometheus text format."""

    service_label = "service"

    def initialize(self, app):
        self.app = app

    @property
    def service_log(self):
        return self.app.log

    def set_default_headers(self):
        self.set_header("Cache-Control", "no-store")

    async def get(self):
        token = self.api_token()
        model = await self.app.metrics_auth.user_for_token(token, sync=False)
        if not model:
            raise web.HTTPError(401, "Invalid or expired JupyterHub API token")
        if not has_scope(model):
            raise web.HTTPError(403, f"Reading metrics needs a token with the {READ_METRICS_SCOPE} scope")
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.app.registry))
