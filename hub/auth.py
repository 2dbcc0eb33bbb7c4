"""The local development authenticator: any valid username, one shared password.

For the embedded default only (``make up``). The Helm chart refuses to enable
it unless a loudly named value is set. The password comes from the
environment variable named by ``password_env`` (``LABDECK_DEV_PASSWORD``);
it is never logged, and an empty password is never accepted.
"""

from __future__ import annotations

import hmac
import os

from jupyterhub.auth import Authenticator
from tornado import web
from traitlets import Unicode, default

from .usernames import InvalidUsername, check_username, normalize_username


class LabdeckUsernameMixin:
    """Normalization and validation of usernames for any labdeck authenticator."""

    def normalize_username(self, username):
        return normalize_username(super().normalize_username(username))

    def validate_username(self, username):
        try:
            check_username(username)
        except InvalidUsername:
            return False
        return super().validate_username(username)


class LabdeckDevAuthenticator(LabdeckUsernameMixin, Authenticator):
    """Log in with any valid username and the shared development password."""

    password_env = "LABDECK_DEV_PASSWORD"

    password = Unicode(
        config=True,
        help="""The shared password every local user logs in with.

        Defaults to the environment variable ``LABDECK_DEV_PASSWORD``; ``labdeck up``
        generates one (stored 0600 in the state directory) when it is unset.
        An empty password disables login entirely: it is never accepted.

        .. versionadded:: 0.1
        """,
    )

    @default("password")
    def _password_default(self):
        return os.environ.get(self.password_env, "")

    @default("allow_all")
    def _allow_all_default(self):
        # Any valid username may log in locally; admins come from admin_users.
        return True

    @staticmethod
    def _raw_username(handler, data) -> str:
        """The username as sent: tornado's get_argument strips control characters and whitespace."""
        raw = getattr(getattr(handler, "request", None), "body_arguments", {}).get("username")
        if raw:
            return raw[0].decode("utf-8", "replace")
        return (data or {}).get("username", "")

    async def authenticate(self, handler, data):
        username = normalize_username(self._raw_username(handler, data))
        password = (data or {}).get("password", "")
        try:
            check_username(username)
        except InvalidUsername as e:
            raise web.HTTPError(400, f"Invalid username: {e}") from None
        if not self.password:
            self.log.error("Login refused: no development password is configured (%s)", self.password_env)
            return None
        if not password or not hmac.compare_digest(password.encode(), self.password.encode()):
            self.log.warning("Failed login for %s", username)
            return None
        return {"name": username}
