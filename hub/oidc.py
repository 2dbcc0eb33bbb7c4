"""labdeck's OIDC login: OAuthenticator's ``GenericOAuthenticator`` with discovery, ID-token checks and labdeck's username rules.

Usernames from the identity provider's claim are lowercased and validated
exactly like local ones (:mod:`labdeck.hub.usernames`), so a hostile claim
cannot become a path, an S3 prefix or an object name. Configure it through the
``GenericOAuthenticator`` section (client, URLs, ``claim_groups_key``,
``manage_groups``, ``admin_groups``…), as OAuthenticator documents, plus
``LabdeckOIDCAuthenticator.issuer``: with an issuer, the provider's
``/.well-known/openid-configuration`` fills the endpoint URLs left empty and
every ID token is verified (signature from the provider's JWKS, ``iss``,
``aud`` = this hub's client id, expiry, and ``sub`` equal to the userinfo's).

The flow is OAuthenticator's authorization-code flow: ``state`` in a cookie
and in the URL (checked at the callback), PKCE (``enable_pkce``, on by
default, S256). labdeck adds: the state cookie is cleared after a successful
callback, so a replayed callback URL fails; failures of the provider
(unreachable, refused code, bad ID token) become error pages that say what
happened without echoing tokens, and log nobody in.
"""

from __future__ import annotations

import json
import time

import jwt
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import STATE_COOKIE_NAME, OAuthCallbackHandler, OAuthLoginHandler, _deserialize_state
from tornado import web
from tornado.httpclient import HTTPClientError, HTTPRequest
from traitlets import Bool, Float, Unicode

from .auth import LabdeckUsernameMixin

#: ID token signature algorithms accepted (asymmetric only: a client secret never verifies a token)
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"]


class DiscoveryError(ValueError):
    """The provider's discovery document is unusable; the message is for an admin."""


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def discovered_endpoints(doc: dict, issuer: str) -> dict[str, str]:
    """The URLs labdeck takes from a discovery document (OpenID Connect Discovery 1.0, section 3).

    Pure. Raises :class:`DiscoveryError` if the document's ``issuer`` is not
    ``issuer`` (section 4.3: a document for another issuer must not be used)
    or an endpoint is missing.
    """
    if not isinstance(doc, dict):
        raise DiscoveryError("the discovery document is not a JSON object")
    if str(doc.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        raise DiscoveryError(f"the discovery document names issuer {str(doc.get('issuer'))[:200]!r}, not {issuer!r}")
    out = {}
    for key, name in (
        ("authorization_endpoint", "authorize_url"),
        ("token_endpoint", "token_url"),
        ("userinfo_endpoint", "userdata_url"),
        ("jwks_uri", "jwks_url"),
    ):
        value = doc.get(key)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise DiscoveryError(f"the discovery document has no usable {key}")
        out[name] = value
    return out


def unavailable(what: str) -> web.HTTPError:
    return web.HTTPError(
        503, f"The identity provider is unreachable ({what}). Nobody was logged in; try again later or contact your admin."
    )


class LabdeckOIDCLoginHandler(OAuthLoginHandler):
    """OAuthenticator's login redirect, after discovery (an unreachable provider gets an error page)."""

    async def get(self):
        await self.authenticator.discover()
        super().get()


class LabdeckOIDCCallbackHandler(OAuthCallbackHandler):
    """OAuthenticator's callback; clearer state errors, and the state cookie is single-use."""

    def check_state(self):
        cookie_state = self.get_state_cookie()
        url_state = self.get_state_url()
        if not cookie_state or not url_state:
            raise web.HTTPError(400, "This login link has no matching login in this browser (expired, replayed or forged). Log in again.")
        cookie_id = (_deserialize_state(cookie_state) or {}).get("state_id")
        url_id = (_deserialize_state(url_state) or {}).get("state_id")
        if not cookie_id or cookie_id != url_id:
            self.log.warning("OAuth callback with a state that does not match this browser's login")
            raise web.HTTPError(400, "This login link does not match the login started in this browser (forged or replayed). Log in again.")

    async def get(self):
        await super().get()
        # a successful login consumes the state: the same callback URL cannot be used again
        self.clear_cookie(STATE_COOKIE_NAME)


class LabdeckOIDCAuthenticator(LabdeckUsernameMixin, GenericOAuthenticator):
    """GenericOAuthenticator with OIDC discovery, verified ID tokens and labdeck's username rules."""

    login_handler = LabdeckOIDCLoginHandler
    callback_handler = LabdeckOIDCCallbackHandler

    issuer = Unicode(
        config=True,
        help="""The OpenID Connect issuer, e.g. ``https://login.example.com/realms/company``.

        When set, ``<issuer>/.well-known/openid-configuration`` is fetched at the
        first login (and again after a failure) and fills ``authorize_url``,
        ``token_url`` and ``userdata_url`` where they are empty; its ``jwks_uri``
        verifies ID tokens (see ``verify_id_token``). The document must name this
        issuer exactly. Chart value ``auth.oauth.issuer``; ``LABDECK_OIDC_ISSUER``
        in the embedded default.

        .. versionadded:: 0.2
        """,
    )

    verify_id_token = Bool(
        True,
        config=True,
        help="""Require and verify the ID token of every login when ``issuer`` is set.

        The token's signature is checked against the provider's JWKS, ``iss``
        must be ``issuer``, ``aud`` must contain ``client_id``, it must not be
        expired, and its ``sub`` must equal the userinfo's ``sub``. A token
        that fails any check gets an error page and logs nobody in. Without
        ``issuer`` there is no key to check against and nothing is verified
        beyond what OAuthenticator does.

        .. versionadded:: 0.2
        """,
    )

    provider_timeout = Float(
        10,
        config=True,
        help="""Seconds to wait for the identity provider (discovery, keys, token and userinfo requests).

        .. versionadded:: 0.2
        """,
    )

    id_token_leeway = Float(
        60,
        config=True,
        help="""Seconds of clock skew tolerated when checking an ID token's ``exp``, ``iat`` and ``nbf``.

        .. versionadded:: 0.2
        """,
    )

    _discovered: dict | None = None
    _jwks: dict | None = None
    _jwks_at: float = 0.0

    async def _get_json(self, url: str, what: str) -> dict:
        req = HTTPRequest(
            url,
            connect_timeout=self.provider_timeout,
            request_timeout=self.provider_timeout,
            validate_cert=self.validate_server_cert,
            headers={"Accept": "application/json"},
            **{k: v for k, v in self.http_request_kwargs.items() if k not in ("connect_timeout", "request_timeout")},
        )
        try:
            resp = await self.http_client.fetch(req)
        except HTTPClientError as e:
            if e.code == 599:
                self.log.error("Identity provider unreachable for %s: %s", what, e.message)
                raise unavailable(what) from None
            self.log.error("Identity provider answered HTTP %s for %s", e.code, what)
            raise web.HTTPError(502, f"The identity provider answered HTTP {e.code} for {what}. Nobody was logged in.") from None
        except OSError as e:
            self.log.error("Identity provider unreachable for %s: %s", what, e)
            raise unavailable(what) from None
        try:
            return json.loads(resp.body)
        except ValueError:
            raise web.HTTPError(502, f"The identity provider's {what} is not JSON. Nobody was logged in.") from None

    async def discover(self) -> dict:
        """Fetch the issuer's discovery document once; fill the endpoint traits that are empty."""
        if not self.issuer or self._discovered is not None:
            return self._discovered or {}
        doc = await self._get_json(discovery_url(self.issuer), "discovery document")
        try:
            found = discovered_endpoints(doc, self.issuer)
        except DiscoveryError as e:
            self.log.error("OIDC discovery for %s failed: %s", self.issuer, e)
            raise web.HTTPError(502, f"The identity provider's configuration is unusable: {e}. Nobody was logged in.") from None
        for trait in ("authorize_url", "token_url", "userdata_url"):
            if not getattr(self, trait):
                setattr(self, trait, found[trait])
        self._discovered = found
        self.log.info("OIDC discovery for %s: authorize %s, token %s", self.issuer, self.authorize_url, self.token_url)
        return found

    async def _signing_key(self, id_token: str):
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise web.HTTPError(403, "The identity provider's ID token is malformed. Nobody was logged in.") from None
        kid = header.get("kid")
        for attempt in range(2):
            # keys are cached; an unknown kid refetches them once (the provider rotated its keys)
            if self._jwks is None or attempt == 1:
                if attempt == 1 and time.monotonic() - self._jwks_at < 10:
                    break
                self._jwks = await self._get_json(self._discovered["jwks_url"], "signing keys")
                self._jwks_at = time.monotonic()
            try:
                keys = jwt.PyJWKSet.from_dict(self._jwks).keys
            except jwt.PyJWTError:
                raise web.HTTPError(502, "The identity provider's signing keys are unusable. Nobody was logged in.") from None
            for key in keys:
                if kid is None or key.key_id == kid:
                    return key
        raise web.HTTPError(403, "The ID token is not signed by a key of the identity provider. Nobody was logged in.")

    async def check_id_token(self, id_token: str) -> dict:
        """The verified claims of ``id_token`` (see ``verify_id_token``), or an error page."""
        key = await self._signing_key(id_token)
        try:
            return jwt.decode(
                id_token,
                key=key.key,
                algorithms=ID_TOKEN_ALGORITHMS,
                audience=self.client_id,
                issuer=self.issuer.rstrip("/"),
                leeway=self.id_token_leeway,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.InvalidAudienceError:
            self.log.warning("Refused an ID token issued for another client")
            raise web.HTTPError(403, "The ID token was issued for another application, not this hub. Nobody was logged in.") from None
        except jwt.InvalidIssuerError:
            self.log.warning("Refused an ID token from another issuer")
            raise web.HTTPError(403, "The ID token comes from another identity provider. Nobody was logged in.") from None
        except jwt.ExpiredSignatureError:
            raise web.HTTPError(403, "The ID token has expired. Log in again.") from None
        except jwt.PyJWTError as e:
            self.log.warning("Refused an ID token: %s", type(e).__name__)
            raise web.HTTPError(403, f"The ID token is not valid ({type(e).__name__}). Nobody was logged in.") from None

    async def get_token_info(self, handler, params):
        await self.discover()
        try:
            return await super().get_token_info(handler, params)
        except HTTPClientError as e:
            if e.code == 599:
                raise unavailable("token endpoint") from None
            # 400 invalid_grant: the code was used already, expired or belongs to another client
            self.log.warning("Token endpoint refused the login code: HTTP %s", e.code)
            raise web.HTTPError(
                403, "The identity provider refused this login (the link was already used, expired or not issued to this hub). Log in again."
            ) from None
        except OSError:
            raise unavailable("token endpoint") from None

    async def token_to_user(self, token_info):
        await self.discover()
        claims = None
        if self.issuer and self.verify_id_token:
            id_token = token_info.get("id_token")
            if not id_token:
                raise web.HTTPError(403, "The identity provider returned no ID token (is the 'openid' scope requested?). Nobody was logged in.")
            claims = await self.check_id_token(id_token)
        try:
            user_info = await super().token_to_user(token_info)
        except HTTPClientError as e:
            if e.code == 599:
                raise unavailable("userinfo endpoint") from None
            raise web.HTTPError(502, f"The identity provider answered HTTP {e.code} for the user's details. Nobody was logged in.") from None
        except OSError:
            raise unavailable("userinfo endpoint") from None
        if claims is not None and "sub" in user_info and user_info["sub"] != claims["sub"]:
            self.log.warning("Refused a login whose userinfo subject differs from the ID token's")
            raise web.HTTPError(403, "The identity provider's user details do not belong to the ID token. Nobody was logged in.")
        return user_info
