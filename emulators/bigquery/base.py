"""Shared parts of the emulator's handlers: routes' prefixes, authentication, JSON replies, logging.

Every request needs ``Authorization: Bearer <labdeck local token>``
(:mod:`labdeck.emulators.bigquery.tokens`); missing, forged or expired -> 401.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

import tornado.web
from tornado.ioloop import IOLoop

from .tokens import TokenError, verify
from .engine import Engine
from .errors import ApiError
from .jobs import (
    JobStore,
)

log = logging.getLogger("labdeck.bigquery")

API = r"/bigquery/v2/projects/([^/]+)"
UPLOAD = r"/upload/bigquery/v2/projects/([^/]+)/jobs"

def _log_request(handler: tornado.web.RequestHandler) -> None:
    request = handler.request
    sub = (getattr(handler, "claims", None) or {}).get("sub", "-")
    log.info(
        "%s %s %d %.1fms sub=%s",
        request.method,
        request.path,
        handler.get_status(),
        1000.0 * request.request_time(),
        sub,
    )

class BaseHandler(tornado.web.RequestHandler):
    """Authentication, JSON bodies, BigQuery-shaped errors, thread-pool execution."""

    claims: dict[str, Any]

    @property
    def engine(self) -> Engine:
        return self.settings["bq_engine"]

    @property
    def jobs(self) -> JobStore:
        return self.settings["bq_jobs"]

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")

    def compute_etag(self) -> None:
        return None

    def prepare(self) -> None:
        self.claims = {}
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError("unauthorized", "Request is missing required authentication credential. "
                           "Expected a labdeck bearer token.")
        try:
            self.claims = verify(self.settings["bq_key"], token.strip())
        except TokenError as err:
            raise ApiError("unauthorized", f"Request had invalid authentication credentials: {err}") from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            error = exc
        elif isinstance(exc, tornado.web.HTTPError) and exc.status_code < 500:
            reason = {401: "unauthorized", 403: "accessDenied", 404: "notFound", 409: "duplicate"}
            error = ApiError(reason.get(exc.status_code, "invalid"), exc.log_message or self._reason)
        else:
            error = ApiError("backendError", "Internal error in the local BigQuery endpoint")
        self.set_status(error.code)
        if error.code == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="labdeck-bigquery"')
        self.finish(json.dumps(error.body()))

    def log_exception(self, typ, value, tb) -> None:  # noqa: ANN001
        if isinstance(value, ApiError):
            return  # an expected, client-facing error; the access log line has the status
        if isinstance(value, tornado.web.HTTPError):
            return
        log.error("unexpected error handling %s %s: %s", self.request.method, self.request.path,
                  type(value).__name__, exc_info=(typ, value, tb))

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            status_code = exc.code
        super().send_error(status_code, **kwargs)

    def body_json(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except ValueError:
            raise ApiError("invalid", "Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError("invalid", "Request body must be a JSON object")
        return body

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.get_query_argument(name, None)
        if value is None or value == "":
            return default
        try:
            return max(0, int(value))
        except ValueError:
            raise ApiError("invalid", f"Invalid value for {name}: expected an integer") from None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await IOLoop.current().run_in_executor(self.settings["bq_executor"], fn, *args)

    def reply(self, body: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body))
