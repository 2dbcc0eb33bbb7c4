"""What the person may browse, asked of the credential broker with the server's own token.

``GET <LABDECK_BROKER_URL>grants`` (labdeck.credentials.handlers.GrantsHandler)
answers for the token's user only. The answer is cached for ``ttl`` seconds,
so a grant change shows in the drive and the panel within that time, as it
reaches the credentials at their next refresh.
"""

from __future__ import annotations

import json
import os
import time

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.web import HTTPError

from labdeck.hub import contract


class BrokerGrants:
    """An async callable: the caller's grants view (``{"name", "s3"?, "bigquery"?}``)."""

    def __init__(self, broker_url: str | None = None, token: str | None = None, ttl: float = 30.0):
        self.broker_url = broker_url if broker_url is not None else os.environ.get(contract.ENV_BROKER_URL, "")
        self._token = token if token is not None else os.environ.get("JUPYTERHUB_API_TOKEN", "")
        self.ttl = ttl
        self._cached: tuple[float, dict] | None = None

    async def __call__(self) -> dict:
        if self._cached and time.monotonic() - self._cached[0] < self.ttl:
            return self._cached[1]
        if not self.broker_url:
            raise HTTPError(503, f"This server has no {contract.ENV_BROKER_URL}: the data browser needs the credential broker")
        req = HTTPRequest(self.broker_url.rstrip("/") + "/grants", headers={"Authorization": f"token {self._token}"},
                          request_timeout=20, follow_redirects=False)
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except OSError as e:
            raise HTTPError(503, f"The credential broker is unreachable ({type(e).__name__})") from None
        if resp.code != 200:
            try:
                why = json.loads(resp.body).get("error", "")
            except (ValueError, TypeError, AttributeError):
                why = ""
            raise HTTPError(503, f"The credential broker did not say what you may browse (HTTP {resp.code}{': ' + why if why else ''})")
        view = json.loads(resp.body)
        self._cached = (time.monotonic(), view)
        return view
