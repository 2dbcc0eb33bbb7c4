"""S3's answers as HTTP errors for a person: what S3 refused, on which ``s3://`` URL, and why.

s3fs turns S3's error codes into Python exceptions (``AccessDenied`` ->
``PermissionError``, ``NoSuchKey``/``404`` -> ``FileNotFoundError``);
:func:`s3_call` turns those into tornado ``HTTPError``\\ s whose message the
JupyterLab file browser shows as it is. No credential is ever part of a
message (S3's own messages carry none).
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from tornado.web import HTTPError


def message_of(err: BaseException) -> str:
    text = str(err.args[0]) if getattr(err, "args", None) else str(err)
    return text.strip() or type(err).__name__


@asynccontextmanager
async def s3_call(action: str, url: str):
    """Run an S3 operation; its refusal becomes a readable 403/404/502 naming ``action`` and ``url``."""
    try:
        yield
    except HTTPError:
        raise
    except PermissionError as e:
        raise HTTPError(403, f"S3 refused to {action} {url}: {message_of(e)}") from None
    except FileNotFoundError:
        raise HTTPError(404, f"{url} does not exist") from None
    except FileExistsError:
        raise HTTPError(409, f"{url} already exists") from None
    except (OSError, ValueError) as e:
        raise HTTPError(502, f"S3 could not {action} {url}: {message_of(e)}") from None
