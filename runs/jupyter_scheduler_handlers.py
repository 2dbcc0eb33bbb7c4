"""jupyter-scheduler's REST handlers with labdeck's error statuses.

jupyter-scheduler's handlers turn every exception into HTTP 500. labdeck's
scheduler raises errors that know their status (another person's job: 404;
bad input: 400; a job still running: 409; too many: 429; the runs service
down: 503), and pydantic rejects malformed bodies; this mixin answers those
as their status, ``{"message": ..., "reason": ...}`` like jupyter_server's
``APIHandler``, and keeps 500 for real faults. Routes and shapes are
jupyter-scheduler's own.
"""

from __future__ import annotations

import json

from tornado import web


def _status_and_message(status_code: int, exc) -> tuple[int, str | None]:
    from jupyter_scheduler.pydantic_v1 import ValidationError

    from .job_mapping import MappingError

    seen = set()
    cause = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        status = getattr(cause, "status", None)
        if isinstance(status, int) and 400 <= status < 600 and hasattr(cause, "args"):
            return status, str(cause)
        if isinstance(cause, MappingError):
            return cause.status, str(cause)
        if isinstance(cause, ValidationError):
            fields = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in cause.errors()[:5])
            return 400, f"Invalid request: {fields}"
        if isinstance(cause, KeyError) and isinstance(exc, web.HTTPError):
            # jupyter-scheduler's root validators index the body: a missing required field surfaces as KeyError
            return 400, f"Invalid request: {cause.args[0] if cause.args else '?'}: field required"
        cause = cause.__cause__
    if isinstance(exc, web.HTTPError) and exc.status_code < 500:
        return exc.status_code, exc.log_message
    return status_code, None


class LabdeckErrorsMixin:
    def get_json_body(self):
        body = super().get_json_body()
        if not isinstance(body, dict):
            raise web.HTTPError(400, "The request body must be a JSON object")
        return body

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        status, message = _status_and_message(status_code, exc)
        if message is None:
            return super().write_error(status_code, **kwargs)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message, "reason": self._reason}))


def labdeck_handlers(handlers: list) -> list:
    """The same routes, each handler class with :class:`LabdeckErrorsMixin` in front."""
    return [(route, type(f"Labdeck{cls.__name__}", (LabdeckErrorsMixin, cls), {})) for route, cls in handlers]
