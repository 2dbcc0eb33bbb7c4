"""The ``viewer`` service: notebooks and run outputs from users' S3 homes, read-only, as HTML.

Browsers log in through hub OAuth (``HubOAuthenticated``); the share API also
accepts a hub token in the ``Authorization`` header. No user server is
started for a viewer: the service reads S3 with its *own* read-only identity
(``s3:GetObject`` on ``home/*``, from the standard AWS credential chain) and
decides itself who may see what, on every request:

- ``view/<path>``: the caller's own ``home/<caller>/<path>``;
- ``s/<id>``: a share — its owner, the named user, a *current* member of
  the named group (asked from the hub on each view), or anyone signed in to
  this hub for an ``everyone`` share; anyone else gets 403. Unknown ids are
  404, revoked and expired links 410, each as a page that says so;
- ``api/shares``: list (GET; ``?to=me`` lists the shares addressed to the
  caller, "Shared with me") and create (POST ``{"path", "user"|"group"|
  "everyone": true, "expires"?}``) the caller's shares; ``api/shares/<id>``
  DELETE revokes at once.

User servers call the API with their own token (the Lab's share dialog).

Needs the scopes ``read:users:groups`` and ``read:users:name``. Users need
``access:services!service=viewer``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from tornado import web
from traitlets import Integer, Unicode, default

from labdeck.hub import contract
from labdeck.hub.service import JSONErrorsMixin, LabdeckServiceApp, TokenAuthMixin

from .metrics import ViewerMetrics
from .paths import InvalidPath, home_prefix, validate_home_key
from .paths import iso as paths_iso
from .render import SECURITY_HEADERS, render_html
from .shares import InvalidShare, Share, can_view, is_for, looks_like_share_id, new_share_id, state, validate_share_request
from .store import ShareStore


class ViewerHandler(TokenAuthMixin, JSONErrorsMixin, HubOAuthenticated, web.RequestHandler):
    """Pages and API: a header token (the shared check) or the viewer's OAuth cookie."""

    @property
    def viewer(self) -> "ViewerApp":
        return self.settings["viewer"]

    @property
    def user_name(self) -> str:
        user = self.current_user
        if not user or user.get("kind", "user") != "user":
            raise web.HTTPError(403, "Only users can view notebooks")
        return user["name"]

    service_label = "viewer"

    #: "own" or "share" on the page handlers: counted in labdeck_viewer_views_total
    view_kind = None

    @property
    def service_log(self):
        return self.viewer.log

    def on_finish(self):
        if self.view_kind:
            self.viewer.metrics.viewed(self.view_kind, self.get_status())

    async def render_object(self, owner: str, path: str) -> None:
        key = home_prefix(owner) + path
        body = await self.viewer.read_object(key)
        if body is None:
            raise web.HTTPError(404, "No such notebook")
        try:
            html = await asyncio.get_running_loop().run_in_executor(None, render_html, body, path.rsplit("/", 1)[-1])
        except Exception:  # noqa: BLE001
            self.viewer.log.exception("Could not render %s", key)
            raise web.HTTPError(422, "This file is not a notebook that can be rendered") from None
        for k, v in SECURITY_HEADERS.items():
            self.set_header(k, v)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(html)


class OwnViewHandler(ViewerHandler):
    view_kind = "own"

    @web.authenticated
    async def get(self, path):
        try:
            path = validate_home_key(path)
        except InvalidPath as e:
            raise web.HTTPError(400, str(e)) from None
        await self.render_object(self.user_name, path)


class ShareViewHandler(ViewerHandler):
    view_kind = "share"

    def write_error(self, status_code, **kwargs):
        """A person opened a link: errors are a short page that says what happened, not JSON."""
        import html

        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = (
            exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message and status_code < 500
            else "The viewer could not show this link."
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        for k, v in SECURITY_HEADERS.items():
            self.set_header(k, v)
        self.finish(
            "<!doctype html><html><head><meta charset='utf-8'><title>labdeck viewer</title></head>"
            "<body style='font-family:sans-serif;max-width:40em;margin:4em auto'>"
            f"<h1 class='labdeck-share-refused'>{html.escape(message)}</h1>"
            f"<p>HTTP {status_code}. Ask the notebook's owner for a new link if you still need it.</p></body></html>"
        )

    @web.authenticated
    async def get(self, share_id):
        user = self.user_name
        now = time.time()
        share = self.viewer.shares.get(share_id) if looks_like_share_id(share_id) else None
        if share is None:
            raise web.HTTPError(404, "No such shared link")
        current = state(share, now)
        if current == "revoked":
            raise web.HTTPError(410, "This link was revoked by its owner")
        if current == "expired":
            raise web.HTTPError(410, f"This link expired on {paths_iso(share.expires)}")
        groups = await self.viewer.groups_of(user) if share.kind == "group" and user != share.owner else ()
        if not can_view(share, user, groups, now):
            raise web.HTTPError(403, "This notebook was not shared with you")
        await self.render_object(share.owner, share.path)


class SharesAPIHandler(ViewerHandler):
    def set_default_headers(self):
        self.set_header("Cache-Control", "no-store")

    @web.authenticated
    async def get(self):
        self.set_header("Content-Type", "application/json")
        now = time.time()
        to = self.get_argument("to", None)
        if to not in (None, "me"):
            raise web.HTTPError(400, "to must be 'me' (the shares addressed to you)")
        if to == "me":
            user = self.user_name
            groups = await self.viewer.groups_of(user)
            shares = [s for s in self.viewer.shares.active(now) if is_for(s, user, groups)]
        else:
            shares = self.viewer.shares.list(self.user_name)
        self.finish(json.dumps({"shares": [s.to_api(self.viewer.base_url, now) for s in shares]}))

    @web.authenticated
    async def post(self):
        now = time.time()
        try:
            body = json.loads(self.request.body or b"{}")
            path, kind, grantee, expires = validate_share_request(body, now)
        except ValueError as e:  # InvalidShare and JSON errors
            raise web.HTTPError(400, str(e) if isinstance(e, InvalidShare) else "Body must be JSON") from None
        owner = self.user_name
        if await self.viewer.read_object(home_prefix(owner) + path, head=True) is None:
            raise web.HTTPError(404, "No such notebook in your S3 home")
        share = Share(id=new_share_id(), owner=owner, path=path, kind=kind, grantee=grantee, created=now, expires=expires)
        self.viewer.shares.add(share)
        self.viewer.log.info("%s shared %s with %s %s", owner, path, kind, grantee)
        self.set_status(201)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(share.to_api(self.viewer.base_url, now)))


class ShareAPIHandler(ViewerHandler):
    @web.authenticated
    def delete(self, share_id):
        share = self.viewer.shares.get(share_id) if looks_like_share_id(share_id) else None
        if share is None or share.owner != self.user_name or share.revoked is not None:
            raise web.HTTPError(404, "No such share")
        self.viewer.shares.revoke(share.id, time.time())
        self.viewer.log.info("%s revoked a share of %s", share.owner, share.path)
        self.set_status(204)
        self.finish()


class ViewerApp(LabdeckServiceApp):
    """Read-only HTML views of notebooks and run outputs, and shares of them."""

    name = "labdeck-viewer"
    description = __doc__

    default_port = contract.SERVICE_PORTS[contract.VIEWER]
    default_prefix = contract.service_prefix(contract.VIEWER)
    #: group shares ask the hub on every view: a removal from the group takes effect at once
    default_hub_cache_seconds = 0

    db_path = Unicode(
        config=True,
        help="""sqlite file holding the shares (created 0600).

        Defaults to ``$LABDECK_STATE_DIR/runs/shares.sqlite``.

        .. versionadded:: 0.1
        """,
    )

    @default("db_path")
    def _db_path_default(self):
        return os.path.join(os.environ.get(contract.ENV_STATE_DIR, ".labdeck"), "runs", "shares.sqlite")

    bucket = Unicode(
        contract.DEFAULT_BUCKET,
        config=True,
        help="""Bucket of the users' homes (``home/<user>/``).

        The service's own AWS identity needs ``s3:GetObject`` on
        ``arn:aws:s3:::<bucket>/home/*`` and nothing else.

        .. versionadded:: 0.1
        """,
    )

    max_bytes = Integer(
        50 * 1024 * 1024,
        config=True,
        help="Largest notebook (bytes) the viewer renders; larger ones are refused.\n\n.. versionadded:: 0.1",
    )

    def initialize(self, argv=None):
        super().initialize(argv)
        self.shares = ShareStore(self.db_path)
        self.metrics = ViewerMetrics(self.registry, self.shares)
        self._s3 = None

    @property
    def s3(self):
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    async def read_object(self, key: str, head: bool = False) -> bytes | None:
        """The object's bytes (or ``b""`` for ``head``), None if it does not exist."""
        from botocore.exceptions import ClientError

        def fetch():
            try:
                if head:
                    meta = self.s3.head_object(Bucket=self.bucket, Key=key)
                    return b"" if meta["ContentLength"] <= self.max_bytes else None
                obj = self.s3.get_object(Bucket=self.bucket, Key=key)
                if obj["ContentLength"] > self.max_bytes:
                    raise web.HTTPError(413, "Notebook too large to render")
                return obj["Body"].read()
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                if code in ("NoSuchKey", "404", "NotFound"):
                    return None
                self.log.warning("S3 refused %s: %s", key, code)
                raise web.HTTPError(502, "Could not read the notebook from storage") from None

        return await asyncio.get_running_loop().run_in_executor(None, fetch)

    def make_app(self) -> web.Application:
        p = self.base_url
        return web.Application(
            [
                (p + r"oauth_callback", HubOAuthCallbackHandler),
                (p + contract.VIEWER_VIEW_ROUTE + r"/(.+)", OwnViewHandler),
                (p + contract.VIEWER_SHARE_ROUTE + r"/([^/]+)", ShareViewHandler),
                (p + contract.VIEWER_SHARES_API_ROUTE, SharesAPIHandler),
                (p + contract.VIEWER_SHARES_API_ROUTE + r"/([^/]+)", ShareAPIHandler),
                *self.base_handlers(),
            ],
            viewer=self,
            cookie_secret=os.urandom(32),
            log_function=self.log_request,  # path only: never the query string (OAuth codes)
        )


def main(argv=None):
    ViewerApp.launch_instance(argv)


if __name__ == "__main__":
    main()
