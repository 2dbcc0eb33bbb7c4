"""BigQuery-shaped API errors: one exception class and the JSON body it becomes."""

from __future__ import annotations

from typing import Any

#: reason -> (HTTP status, google.rpc status name), as the real API pairs them
REASONS: dict[str, tuple[int, str]] = {
    "invalid": (400, "INVALID_ARGUMENT"),
    "invalidQuery": (400, "INVALID_ARGUMENT"),
    "resourceInUse": (400, "FAILED_PRECONDITION"),
    # a cancelled job: getQueryResults answers 400 with it, as BigQuery does
    "stopped": (400, "CANCELLED"),
    "unauthorized": (401, "UNAUTHENTICATED"),
    "accessDenied": (403, "PERMISSION_DENIED"),
    "notFound": (404, "NOT_FOUND"),
    "duplicate": (409, "ALREADY_EXISTS"),
    "backendError": (500, "INTERNAL"),
}


class ApiError(Exception):
    """An error the emulator reports to the client in BigQuery's shape.

    Parameters
    ----------
    reason : str
        A BigQuery error reason, a key of :data:`REASONS`.
    message : str
        Human-readable; must never contain a token or key.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.code, self.status = REASONS[reason]

    def error_proto(self) -> dict[str, str]:
        """The ``ErrorProto`` used in a job's ``status.errorResult``."""
        return {"reason": self.reason, "message": self.message}

    def body(self) -> dict[str, Any]:
        """The HTTP error body, as ``google.api_core.exceptions`` parses it."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{**self.error_proto(), "domain": "global"}],
                "status": self.status,
            }
        }


def invalid_query(message: str) -> ApiError:
    """Shorthand for a 400 ``invalidQuery``."""
    return ApiError("invalidQuery", message)


def not_found(what: str) -> ApiError:
    """Shorthand for a 404 ``notFound`` ("Not found: Table p:d.t")."""
    return ApiError("notFound", f"Not found: {what}")


def access_denied(message: str) -> ApiError:
    """Shorthand for a 403 ``accessDenied``."""
    return ApiError("accessDenied", f"Access Denied: {message}")


#: BigQuery's message for a job cancelled through jobs.cancel
CANCELLED_MESSAGE = "Job execution was cancelled: User requested cancellation"


def stopped() -> ApiError:
    """A job cancelled by ``jobs.cancel``: reason ``stopped``, as BigQuery reports it."""
    return ApiError("stopped", CANCELLED_MESSAGE)
