"""The Lab's share dialog, server side: ``/user/<name>/labdeck/shares`` in the person's own server.

A jupyter_server extension (enabled by the single-user image's
``jupyter_server_config.d/labdeck.json``). The browser talks to its own
server (Jupyter's token/cookie and XSRF rules); the server talks to the
viewer's share API with its own JupyterHub token (``LABDECK_VIEWER_URL``),
so no viewer cookie is needed in the Lab.

- ``POST labdeck/shares`` ``{"path", "user"|"group"|"everyone": true,
  "expires"?}``: the notebook at ``path`` (in the home) is copied as it is
  now into ``shares/<stamp>-<id>/<name>.ipynb`` of the person's S3 home — a
  read-only *snapshot*: later edits, and the live server, are never shared —
  and the viewer is asked to share that snapshot;
- ``GET labdeck/shares`` (mine) and ``GET labdeck/shares?to=me`` ("Shared
  with me"); ``DELETE labdeck/shares/<id>`` revokes.

Viewer refusals pass through with their status and message.
"""

from __future__ import annotations

import asyncio
import json
import os
import posixpath
import secrets
import time
from pathlib import Path
from urllib.parse import quote

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from labdeck.hub import contract
from labdeck.hub.service import json_body

from .paths import InvalidPath, home_prefix, utc_stamp, validate_notebook_path

SNAPSHOT_DIR = "shares"
_FIELDS = {"path", "user", "group", "everyone", "expires"}


def snapshot_key(path: str, now: float, token: str) -> str:
    """Where a shared snapshot goes, relative to the S3 home."""
    return f"{SNAPSHOT_DIR}/{utc_stamp(now)}-{token}/{posixpath.basename(path)}"


class SharesHandler(APIHandler):
    @property
    def viewer_url(self) -> str:
        url = os.environ.get(contract.ENV_VIEWER_URL, "")
        if not url:
            raise web.HTTPError(503, "This server has no LABDECK_VIEWER_URL: sharing is not configured on this hub")
        return url.rstrip("/") + "/"

    async def viewer(self, method: str, path: str, body=None):
        req = HTTPRequest(
            self.viewer_url + contract.VIEWER_SHARES_API_ROUTE + path, method=method,
            headers={"Authorization": f"token {os.environ.get('JUPYTERHUB_API_TOKEN', '')}", "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body), allow_nonstandard_methods=True, request_timeout=30,
            follow_redirects=False,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except OSError as e:
            raise web.HTTPError(503, f"The viewer service is unreachable ({type(e).__name__})") from None
        data = {}
        if resp.body:
            try:
                data = json.loads(resp.body)
            except ValueError:
                data = {}
        if resp.code >= 400 or resp.code == 599 or resp.code in (301, 302):
            message = data.get("error") or f"the viewer answered HTTP {resp.code}"
            raise web.HTTPError(resp.code if 400 <= resp.code < 500 else 503, message)
        return resp.code, data

    def notebook(self, path) -> tuple[str, bytes]:
        try:
            rel = validate_notebook_path(path)
        except InvalidPath as e:
            raise web.HTTPError(400, f"{e} (share a notebook inside your home)") from None
        root = Path(self.settings["server_root_dir"]).expanduser().resolve()
        target = (root / rel).resolve()
        if root not in target.parents:
            raise web.HTTPError(400, f"{path} is outside your home")
        if not target.is_file():
            raise web.HTTPError(404, f"No notebook {path} in your home")
        return rel, target.read_bytes()

    async def snapshot(self, rel: str, body: bytes) -> str:
        bucket, user = os.environ.get(contract.ENV_S3_BUCKET, ""), os.environ.get("JUPYTERHUB_USER", "")
        if not bucket or not user:
            raise web.HTTPError(503, "This server has no S3 home (LABDECK_S3_BUCKET), so nothing can be shared")
        key = snapshot_key(rel, time.time(), secrets.token_hex(4))

        def put():
            import boto3

            boto3.client("s3").put_object(
                Bucket=bucket, Key=home_prefix(user) + key, Body=body, ContentType="application/x-ipynb+json", IfNoneMatch="*"
            )

        try:
            await asyncio.get_running_loop().run_in_executor(None, put)
        except Exception as e:  # noqa: BLE001 - botocore errors: the step and code, no secrets
            code = getattr(e, "response", {}).get("Error", {}).get("Code", type(e).__name__)
            raise web.HTTPError(503, f"Could not copy the notebook to your S3 home ({code})") from None
        return key

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else "Sharing failed (see the server log)"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message, "reason": self._reason}))

    @web.authenticated
    async def get(self):
        to = self.get_query_argument("to", None)
        _, data = await self.viewer("GET", "?to=me" if to == "me" else "")
        self.finish(json.dumps(data))

    @web.authenticated
    async def post(self):
        body = json_body(self.request, _FIELDS)
        rel, data = self.notebook(body.get("path"))
        key = await self.snapshot(rel, data)
        request = {k: v for k, v in body.items() if k != "path"}
        request["path"] = key
        code, share = await self.viewer("POST", "", request)
        share["source"] = rel
        self.log.info("labdeck: shared a snapshot of %s (%s)", rel, share.get("kind"))
        self.set_status(201)
        self.finish(json.dumps(share))


class ShareHandler(SharesHandler):
    @web.authenticated
    async def delete(self, share_id):
        await self.viewer("DELETE", "/" + quote(share_id, safe=""))
        self.set_status(204)
        self.finish()


def _load_jupyter_server_extension(serverapp):
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "labdeck/shares"), SharesHandler),
            (url_path_join(base, "labdeck/shares/([^/]+)"), ShareHandler),
        ],
    )
    serverapp.log.info("labdeck: share dialog API at %slabdeck/shares", base)


def _jupyter_server_extension_points():
    return [{"module": "labdeck.runs.lab_shares"}]
