"""The shared base of labdeck's own JupyterHub services (broker, runs, viewer).

Each is a traitlets ``Application`` that listens on ``ip:port`` under a URL
prefix (``JUPYTERHUB_SERVICE_PREFIX`` by default), logs one line per request
with the path only (never a query string, header or token), and serves until
SIGINT/SIGTERM. Subclasses set ``default_port`` and ``default_prefix`` and
implement ``make_app()``; they may override ``serve(stop)`` to run background
work next to the HTTP server.

Handlers share one token check (:class:`TokenAuthMixin`): the JupyterHub API
token comes from the ``Authorization: token <t>`` (or ``Bearer <t>``) header
only; a ``?token=`` in the URL is refused with a 400 and never used, so no
token lands in a proxy log, browser history or ``Referer``.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal

from tornado import httpserver, web
from traitlets import Integer, Unicode, default, validate
from traitlets.config import Application


class LabdeckServiceApp(Application):
    """A labdeck HTTP service registered with the hub."""

    #: port and prefix when nothing is configured
    default_port = 8090
    default_prefix = "/services/labdeck/"

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

    def make_app(self) -> web.Application:
        raise NotImplementedError("Override in subclass.")

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
        """Routes every labdeck service serves under its prefix: ``metrics``."""
        from .metrics import MetricsHandler

        from .contract import METRICS_ROUTE

        return [(self.base_url + METRICS_ROUTE, MetricsHandler, {"app": self})]

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
