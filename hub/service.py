"""The shared base of labdeck's own JupyterHub services (broker, runs, viewer).

Each is a traitlets ``Application`` that listens on ``ip:port`` under a URL
prefix (``JUPYTERHUB_SERVICE_PREFIX`` by default), logs one line per request
with the path only (never a query string, header or token), and serves until
SIGINT/SIGTERM. The base carries what every service shares:

- the boilerplate: ``--config FILE`` (``config_file``), ``--ip``/``--port``,
  loading the file in :meth:`~LabdeckServiceApp.initialize`;
- ``health`` and ``metrics`` under the prefix (:meth:`~LabdeckServiceApp.base_handlers`;
  a service adds its own figures by overriding :meth:`~LabdeckServiceApp.health`);
- the hub lookups: who a token belongs to (:meth:`~LabdeckServiceApp.hub_user`)
  and a user's current groups (:meth:`~LabdeckServiceApp.groups_of`), trusted
  for ``hub_cache_seconds``.

Subclasses set ``default_port`` and ``default_prefix``, implement
``make_app()`` with their own handlers plus ``base_handlers()``, extend
``initialize`` (calling ``super()`` first) with their own setup, and may
override ``serve(stop)`` to run background work next to the HTTP server.

Handlers share one token check (:class:`TokenAuthMixin`): the JupyterHub API
token comes from the ``Authorization: token <t>`` (or ``Bearer <t>``) header
only; a ``?token=`` in the URL is refused with a 400 and never used, so no
token lands in a proxy log, browser history or ``Referer``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import time

from tornado import httpserver, web
from traitlets import Integer, Unicode, default, validate
from traitlets.config import Application


class LabdeckServiceApp(Application):
    """A labdeck HTTP service registered with the hub."""

    #: port and prefix when nothing is configured
    default_port = 8090
    default_prefix = "/services/labdeck/"

    #: ``hub_cache_seconds`` when nothing is configured
    default_hub_cache_seconds = 10

    aliases = {"config": "LabdeckServiceApp.config_file", "port": "LabdeckServiceApp.port", "ip": "LabdeckServiceApp.ip"}

    config_file = Unicode("", config=True, help="Config file to load (.py or .json).\n\n.. versionadded:: 0.1")

    ip = Unicode("127.0.0.1", config=True, help="Address to listen on.\n\n.. versionadded:: 0.1")

    port = Integer(
        config=True,
        help="""Port to listen on (each service has its own default).\n\n.. versionadded:: 0.1""",
    )

    @default("port")
    def _port_default(self):
        return self.default_port

    base_url = Unicode(
        config=True,
        help="""URL prefix of every endpoint.

        Defaults to ``JUPYTERHUB_SERVICE_PREFIX`` (``/services/<name>/``), which the
        hub sets for its services, so the service can also be reached through the proxy.

        .. versionadded:: 0.1
        """,
    )

    @default("base_url")
    def _base_url_default(self):
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", self.default_prefix)

    @validate("base_url")
    def _validate_base_url(self, proposal):
        return ("/" + proposal.value.strip("/") + "/").replace("//", "/")

    hub_cache_seconds = Integer(
        config=True,
        help="""How long the service trusts the hub's answer about a token and its user's groups.

        A revoked token or a group change is noticed within this many seconds
        (each service has its own default: 10 for the broker, 0 for the viewer,
        which asks about group shares on every view).

        .. versionadded:: 0.1
        """,
    )

    @default("hub_cache_seconds")
    def _hub_cache_seconds_default(self):
        return self.default_hub_cache_seconds

    def initialize(self, argv=None):
        """Parse the command line, then load ``config_file``; subclasses call this first."""
        super().initialize(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
        self.log.setLevel(logging.INFO)
        self._groups_cache: dict[str, tuple[float, tuple[str, ...]]] = {}

    def make_app(self) -> web.Application:
        raise NotImplementedError("Override in subclass.")

    def health(self) -> dict:
        """The body of ``GET <prefix>health`` (no authentication: no secrets, no user data)."""
        return {"status": "ok"}

    # ------------------------------------------------------------ hub lookups

    _hub_auth = None

    @property
    def hub_auth(self):
        """``HubAuth`` of this service (``JUPYTERHUB_API_URL``/``JUPYTERHUB_API_TOKEN``), caching ``hub_cache_seconds``."""
        if self._hub_auth is None:
            from jupyterhub.services.auth import HubAuth

            self._hub_auth = HubAuth(parent=self, cache_max_age=self.hub_cache_seconds)
        return self._hub_auth

    async def hub_user(self, token: str) -> dict | None:
        """The hub's model of the *user* a token belongs to, with ``groups``; None otherwise.

        None for an invalid token and for a service's or a server's own
        identity that is not a user's.
        """
        model = await self.hub_auth.user_for_token(token, sync=False)
        if not model or model.get("kind", "user") != "user" or not model.get("name"):
            return None
        if model.get("groups") is None:
            model = {**model, "groups": list(await self.groups_of(model["name"]))}
        return model

    async def groups_of(self, name: str) -> tuple[str, ...]:
        """The user's groups (sorted), asked from the hub unless asked within ``hub_cache_seconds``.

        An unknown user or a hub that does not answer gives no groups (logged).
        """
        from urllib.parse import quote

        from jupyterhub.utils import url_path_join
        from tornado.httpclient import AsyncHTTPClient, HTTPRequest

        hit = self._groups_cache.get(name)
        if hit and time.time() - hit[0] < self.hub_cache_seconds:
            return hit[1]
        url = url_path_join(self.hub_auth.api_url, "users", quote(name, safe=""))
        req = HTTPRequest(url, headers={"Authorization": f"token {self.hub_auth.api_token}"})
        resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        if resp.code != 200:
            self.log.warning("Could not read the groups of %s from the hub (HTTP %s)", name, resp.code)
            groups = ()
        else:
            groups = tuple(sorted(json.loads(resp.body).get("groups") or ()))
        if self.hub_cache_seconds > 0:
            self._groups_cache[name] = (time.time(), groups)
        return groups

    _registry = None
    _metrics_auth = None

    @property
    def registry(self):
        """This service's Prometheus ``CollectorRegistry`` (:mod:`labdeck.hub.metrics`)."""
        if self._registry is None:
            from .metrics import new_registry

            self._registry = new_registry()
        return self._registry

    @property
    def metrics_auth(self):
        """``HubAuth`` that introspects the tokens of ``metrics`` requests (JUPYTERHUB_API_* from env)."""
        if self._metrics_auth is None:
            from jupyterhub.services.auth import HubAuth

            self._metrics_auth = HubAuth(parent=self, cache_max_age=60)
        return self._metrics_auth

    def base_handlers(self) -> list:
        """Routes every labdeck service serves under its prefix: ``health`` and ``metrics``."""
        from .metrics import MetricsHandler

        from .contract import HEALTH_ROUTE, METRICS_ROUTE

        return [
            (self.base_url + HEALTH_ROUTE, HealthHandler, {"app": self}),
            (self.base_url + METRICS_ROUTE, MetricsHandler, {"app": self}),
        ]

    def log_request(self, handler) -> None:
        """Tornado ``log_function``: status, method, path and time only."""
        status = handler.get_status()
        log = self.log.info if status < 400 else self.log.warning
        log("%s %s %s %.1fms", status, handler.request.method, handler.request.path, 1000.0 * handler.request.request_time())

    def listen(self) -> httpserver.HTTPServer:
        server = httpserver.HTTPServer(self.make_app(), xheaders=True)
        server.listen(self.port, self.ip)
        self.log.info("%s listening on http://%s:%s%s", self.name, self.ip, self.port, self.base_url)
        return server

    async def serve(self, stop: asyncio.Event) -> None:
        """Listen until ``stop`` is set."""
        server = self.listen()
        await stop.wait()
        server.stop()
        self.log.info("%s stopped", self.name)

    def start(self):
        async def run():
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await self.serve(stop)

        asyncio.run(run())


class HealthHandler(web.RequestHandler):
    """``GET <prefix>health``: the app's :meth:`~LabdeckServiceApp.health`, no authentication."""

    def initialize(self, app: LabdeckServiceApp):
        self.app = app

    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.app.health()))


class JSONErrorsMixin:
    """Handler mixin: errors as ``{"error": <message>, "status": <code>}``, refusals logged in one line.

    The message of an ``HTTPError`` is meant for a person and goes out as is; any
    other failure becomes "internal error in the <service_label> (see its log)",
    with the traceback in the log only. Handlers set ``service_label`` and
    provide ``service_log`` (their app's logger).
    """

    service_label = "service"

    @property
    def service_log(self):
        from tornado.log import app_log

        return app_log

    def write_error(self, status_code, **kwargs):
        import json

        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message
        elif status_code >= 500:
            message = f"internal error in the {self.service_label} (see its log)"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message, "status": status_code}))

    def log_exception(self, typ, value, tb):
        if isinstance(value, web.HTTPError):
            # an expected refusal: one line, no traceback
            self.service_log.warning("%s %s -> %s: %s", self.request.method, self.request.path, value.status_code, value.log_message)
        else:
            super().log_exception(typ, value, tb)


#: the reply to a request that carries ``?token=`` (the token is never used)
URL_TOKEN_REFUSED = "Send the API token in the Authorization header, never in the URL"
_AUTH_HEADER = re.compile(r"^(?:token|bearer)\s+(\S+)\s*$", re.IGNORECASE)


def request_token(request, required: bool = True) -> str | None:
    """The API token of a tornado ``request``, from its ``Authorization`` header only.

    Raises ``HTTPError(400)`` if the URL has a ``token`` parameter (whatever
    the header says: the request is refused, the token not used),
    ``HTTPError(401)`` for a malformed header, and for a missing one when
    ``required``; returns None for a missing header otherwise.
    """
    if "token" in request.query_arguments:
        raise web.HTTPError(400, URL_TOKEN_REFUSED)
    header = request.headers.get("Authorization", "")
    if not header:
        if required:
            raise web.HTTPError(401, "Missing Authorization header (expected 'token <JupyterHub API token>')")
        return None
    m = _AUTH_HEADER.match(header)
    if not m:
        raise web.HTTPError(401, "Malformed Authorization header (expected 'token <JupyterHub API token>')")
    return m.group(1)


class TokenAuthMixin:
    """Handler mixin: the one token check of labdeck's services (see :func:`request_token`).

    Put it first in the bases. Handlers that identify callers themselves call
    :meth:`api_token`; on ``HubAuthenticated`` handlers it runs before the
    hub's own lookup in ``get_current_user``, so a URL token is refused before
    ``HubAuth`` could read it (the viewer's pages keep their OAuth cookie).
    """

    def api_token(self, required: bool = True) -> str | None:
        return request_token(self.request, required=required)

    def get_current_user(self):
        self.api_token(required=False)
        return super().get_current_user()


def json_body(request, allowed=None) -> dict:
    """The JSON object in a tornado ``request``'s body (empty body: ``{}``).

    Raises ``HTTPError(400)`` with a message for the caller when the body is not
    JSON, not an object, or (with ``allowed``) names a field outside ``allowed``.
    """
    import json

    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        raise web.HTTPError(400, "The request body must be JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPError(400, "The request body must be a JSON object")
    unknown = set(data) - set(allowed) if allowed is not None else set()
    if unknown:
        raise web.HTTPError(400, f"Unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    return data
