"""A GCE-metadata-compatible endpoint in the user's server, for SDKs that read only that.

R's gargle (bigrquery, googledrive, googlesheets4) takes application-default
credentials only of type ``authorized_user``, ``service_account`` or an AWS-sourced
``external_account``, so it skips labdeck's broker-backed files; its other
source is the GCE metadata server, found through ``GCE_METADATA_URL``
(``host:port``; google-auth reads ``GCE_METADATA_HOST``). This endpoint answers
the paths those clients call (gargle 1.3 to 1.6, google-auth's
``compute_engine``) with the person's own broker-issued access token:

- ``GET /`` and ``/computeMetadata/v1/`` — the "am I on GCE" ping;
- ``GET /computeMetadata/v1/instance/service-accounts[/]`` (``?recursive=true``:
  the JSON directory newer gargle reads) and ``.../service-accounts/default/``
  (``?recursive=true``), ``.../email``, ``.../scopes``;
- ``GET .../service-accounts/default/token`` — ``{"access_token", "expires_in",
  "token_type": "Bearer"}`` from the broker's ``gcp/credentials``;
- ``GET /computeMetadata/v1/project/project-id``.

Every answer carries ``Metadata-Flavor: Google``, every request must send it
(as on GCE) and must not carry ``X-Forwarded-For``. **Every request is
authenticated by the uid of the connecting process**
(:mod:`labdeck.credentials.peeruid`): only the server's own uid is served.
On a team VM loopback is shared by everybody; in a Kubernetes pod the check
passes for every process of the pod, which all run as the person.

It runs inside the server process as a jupyter_server extension (enabled by
``jupyter_server_config.d/labdeck.json``), listening on ``127.0.0.1`` at
``LABDECK_METADATA_PORT``, which the spawner sets and writes into the person's
``~/.Renviron`` as ``GCE_METADATA_URL``. No port, no endpoint.
``python -m labdeck.credentials.metadata PORT`` runs it on its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from tornado import web

from labdeck.hub import contract

from . import client, peeruid
from .gcp_requests import BIGQUERY_SCOPES

FLAVOR = ("Metadata-Flavor", "Google")
SA = r"(?:default|[^/]+@[^/]+)"


def account(username: str, project: str) -> dict:
    """The one service account this endpoint knows: the person, under the alias ``default``."""
    return {"aliases": ["default"], "email": f"{username}@{project or 'labdeck'}.labdeck", "scopes": list(BIGQUERY_SCOPES)}


def token_reply(broker_reply: dict) -> dict:
    """The metadata server's token JSON from the broker's ``gcp/credentials`` reply."""
    return {"access_token": broker_reply["access_token"], "expires_in": int(broker_reply.get("expires_in", 0)), "token_type": "Bearer"}


class MetadataHandler(web.RequestHandler):
    """Common parts: the peer-uid check, the flavor header, plain-text or JSON answers."""

    def set_default_headers(self):
        self.set_header(*FLAVOR)
        self.set_header("Server", "Metadata Server for labdeck")
        self.set_header("Cache-Control", "no-store")

    def prepare(self):
        sock = self.request.connection.stream.socket
        uid = peeruid.peer_uid(sock) if sock is not None else None
        if uid is None or uid != self.settings["uid"]:
            raise web.HTTPError(403, "Only the server's own user may use this metadata endpoint")
        if "X-Forwarded-For" in self.request.headers:
            raise web.HTTPError(403, "Requests through a proxy are refused")
        if self.request.headers.get("Metadata-Flavor") != "Google":
            raise web.HTTPError(403, "Missing Metadata-Flavor: Google header")

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else "error"
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(message + "\n")

    def log_exception(self, typ, value, tb):
        # never the request (it may hold a token in a header on other endpoints); one line
        if isinstance(value, web.HTTPError):
            return
        self.settings["log"](f"labdeck metadata endpoint: {typ.__name__}")

    def text(self, body: str):
        self.set_header("Content-Type", "application/text")
        self.finish(body)

    def json(self, body):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    @property
    def account(self) -> dict:
        return account(self.settings["username"], self.settings["project"])

    def recursive(self) -> bool:
        return self.get_argument("recursive", "").lower() == "true"


class RootHandler(MetadataHandler):
    def get(self):
        self.text("computeMetadata/\n")


class V1Handler(MetadataHandler):
    def get(self):
        self.text("instance/\nproject/\n")


class AccountsHandler(MetadataHandler):
    def get(self):
        acct = self.account
        if self.recursive():
            self.json({"default": acct, acct["email"]: acct})
        else:
            self.text(f"default/\n{acct['email']}/\n")


class AccountHandler(MetadataHandler):
    def get(self, _sa):
        acct = self.account
        if self.recursive():
            self.json(acct)
        else:
            self.text("aliases\nemail\nidentity\nscopes\ntoken\n")


class AccountFieldHandler(MetadataHandler):
    def get(self, _sa, field):
        acct = self.account
        if field == "email":
            self.text(acct["email"])
        elif field == "scopes":
            self.text("\n".join(acct["scopes"]) + "\n")
        elif field == "aliases":
            self.text("default\n")
        else:
            raise web.HTTPError(404, "Not found")


class TokenHandler(MetadataHandler):
    async def get(self, _sa):
        try:
            reply = await asyncio.to_thread(self.settings["fetch"], "gcp")
        except client.ClientError as e:
            raise web.HTTPError(503, str(e)) from None
        self.json(token_reply(reply))


class ProjectIdHandler(MetadataHandler):
    def get(self):
        if not self.settings["project"]:
            raise web.HTTPError(404, "No project configured")
        self.text(self.settings["project"])


def make_app(*, username: str, project: str, uid: int | None = None, fetch=None, log=None) -> web.Application:
    base = "/computeMetadata/v1"
    sa = f"{base}/instance/service-accounts/({SA})"
    return web.Application(
        [
            (r"/", RootHandler),
            (rf"{base}/?", V1Handler),
            (rf"{base}/instance/service-accounts/?", AccountsHandler),
            (rf"{sa}/token", TokenHandler),
            (rf"{sa}/(email|scopes|aliases)", AccountFieldHandler),
            (rf"{sa}/?", AccountHandler),
            (rf"{base}/project/project-id", ProjectIdHandler),
        ],
        uid=os.getuid() if uid is None else uid,
        username=username,
        project=project,
        fetch=fetch or client.fetch,
        log=log or (lambda message: print(message, file=sys.stderr)),
    )


def listen(port: int, *, log=None):
    """Serve on ``127.0.0.1:port`` in the running IOLoop, as the server's identity (its environment)."""
    app = make_app(
        username=os.environ.get("JUPYTERHUB_USER", ""),
        project=os.environ.get("GOOGLE_CLOUD_PROJECT", ""),
        log=log,
    )
    return app.listen(port, address="127.0.0.1", xheaders=False)


# ------------------------------------------------------------ jupyter_server extension


def _jupyter_server_extension_points():
    return [{"module": "labdeck.credentials.metadata"}]


def _load_jupyter_server_extension(serverapp):
    port = os.environ.get(contract.ENV_METADATA_PORT, "")
    if not port:
        return
    try:
        listen(int(port), log=serverapp.log.warning)
    except (OSError, ValueError) as e:
        # the server itself must still start; R's BigQuery then says it found no token
        serverapp.log.warning("labdeck: the metadata endpoint for R could not listen on 127.0.0.1:%s: %s", port, e)
        return
    serverapp.log.info("labdeck: metadata endpoint for R's gargle on 127.0.0.1:%s", port)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m labdeck.credentials.metadata PORT", file=sys.stderr)
        return 2
    from tornado.ioloop import IOLoop

    listen(int(argv[0]))
    print(f"labdeck metadata endpoint on 127.0.0.1:{argv[0]}", flush=True)
    IOLoop.current().start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
