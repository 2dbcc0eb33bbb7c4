"""HTTP handlers of the credential broker.

Every credential endpoint authenticates the caller by the JupyterHub API token
it presents in the ``Authorization`` header (``token <t>`` or ``Bearer <t>``;
never in the URL), asks the hub who that is, and issues credentials for that
user only. Replies are JSON; errors are ``{"error": <message>, "status": <code>}``
with messages meant for a person and free of secrets.
"""

from __future__ import annotations

import json

from tornado import web

from labdeck.hub.service import URL_TOKEN_REFUSED, JSONErrorsMixin, TokenAuthMixin

from .grants import GrantConfigError
from .providers.base import Identity, UpstreamError

class BrokerHandler(TokenAuthMixin, JSONErrorsMixin, web.RequestHandler):
    """Common parts: JSON errors, token → identity."""

    @property
    def broker(self):
        return self.settings["broker"]

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    service_label = "credential broker"

    @property
    def service_log(self):
        return self.broker.log

    def _token(self) -> str:
        if "token" in self.request.body_arguments:
            # a form body is no place for it either
            raise web.HTTPError(400, URL_TOKEN_REFUSED)
        return self.api_token()

    def provider(self, name: str):
        provider = self.broker.providers_by_name.get(name)
        if provider is None:
            raise web.HTTPError(404, f"No credential provider {name!r} is configured")
        return provider

    async def issue(self, provider, ident: Identity) -> dict:
        """The provider's reply for ``ident``; upstream and config failures become readable HTTP errors."""
        try:
            return await self.broker.credentials(provider, ident)
        except UpstreamError as e:
            raise web.HTTPError(503, str(e)) from None
        except GrantConfigError as e:
            raise web.HTTPError(500, f"The grant configuration is invalid ({e}); contact your admin") from None

    async def identity(self) -> Identity:
        ident = await self.broker.identify(self._token())
        if ident is None:
            raise web.HTTPError(401, "Invalid or expired JupyterHub API token")
        asked = self.get_argument("user", None) or self.get_argument("username", None)
        if asked is not None and asked != ident.name:
            raise web.HTTPError(403, "A token can only obtain credentials for its own user")
        return ident


class CredentialsHandler(BrokerHandler):
    """``GET|POST <prefix><provider>/credentials``: fresh or cached credentials for the caller."""

    async def get(self, provider_name):
        provider = self.provider(provider_name)
        ident = await self.identity()
        self.finish(json.dumps(await self.issue(provider, ident)))

    post = get


class WhoAmIHandler(BrokerHandler):
    """``GET <prefix>whoami``: who the broker thinks you are and what you get (no secrets)."""

    async def get(self):
        ident = await self.identity()
        self.finish(json.dumps(self.broker.describe(ident)))


class GrantsHandler(BrokerHandler):
    """``GET <prefix>grants``: the caller's S3 prefixes and BigQuery datasets (no secrets).

    What the data UIs in the person's server (labdeck.data) list: the server
    calls it with its own JupyterHub API token, so it only ever learns its own
    user's grants.
    """

    async def get(self):
        ident = await self.identity()
        try:
            self.finish(json.dumps(self.broker.grants_view(ident)))
        except GrantConfigError as e:
            raise web.HTTPError(500, f"The grant configuration is invalid ({e}); contact your admin") from None


class TokenExchangeHandler(BrokerHandler):
    """``POST <prefix><provider>/token``: an RFC 8693 token exchange for google-auth.

    The server's ``external_account`` credentials file makes google-auth run
    ``labdeck-credentials gcp-subject`` (which prints the server's own hub
    token as the subject token) and POST it here. Errors use the OAuth error
    format, which google-auth shows to the person.
    """

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else "internal error in the credential broker"
        error = {400: "invalid_request", 401: "invalid_grant", 403: "invalid_grant", 503: "temporarily_unavailable"}.get(status_code, "server_error")
        self.finish(json.dumps({"error": error, "error_description": message}))

    async def post(self, provider_name):
        from .gcp_requests import TOKEN_EXCHANGE_GRANT

        provider = self.provider(provider_name)
        if self.get_body_argument("grant_type", "") != TOKEN_EXCHANGE_GRANT:
            raise web.HTTPError(400, "Unsupported grant_type (expected token exchange)")
        subject = self.get_body_argument("subject_token", "")
        if not subject:
            raise web.HTTPError(401, "Missing subject_token (the server's JupyterHub API token)")
        ident = await self.broker.identify(subject)
        if ident is None:
            raise web.HTTPError(401, "Invalid or expired JupyterHub API token")
        self.finish(json.dumps(await self.issue(provider, ident)))
