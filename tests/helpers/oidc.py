"""A real OpenID Connect provider on 127.0.0.1 for login tests, and a person who logs in through it.

The provider is ``oidc-provider-mock`` (PyPI, pinned in the ``test`` extra): a
Flask + Authlib authorization server run as its own process, with discovery,
JWKS-signed ID tokens, a userinfo endpoint and an HTML authorization form.
Any client id/secret is accepted (it does not require registration); a
user's claims (``preferred_username``, ``groups``…) are set through its
``PUT /users/<sub>`` API before they log in.

Reusable from any test that has a hub URL (``make up`` journeys and the
chart-in-harness journey alike)::

    with OIDCProvider.start(tmp_path) as idp:
        idp.set_user("alice", preferred_username="alice", groups=["analysts"])
        session = oidc_login(hub_url, idp, "alice")
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import requests

from .platform import free_port


class LoginFailed(AssertionError):
    def __init__(self, message: str, response: requests.Response | None = None):
        super().__init__(message)
        self.response = response


@dataclass
class OIDCProvider:
    url: str
    proc: subprocess.Popen
    log_path: Path
    client_id: str = "labdeck-hub"
    client_secret: str = field(default_factory=lambda: os.urandom(16).hex())

    @property
    def issuer(self) -> str:
        return self.url

    @classmethod
    def start(cls, workdir: Path, timeout: float = 30) -> "OIDCProvider":
        port = free_port()
        log_path = Path(workdir) / f"oidc-provider-{port}.log"
        log = open(log_path, "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        log.close()
        idp = cls(f"http://127.0.0.1:{port}", proc, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"oidc-provider-mock exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                if requests.get(idp.url + "/.well-known/openid-configuration", timeout=2).status_code == 200:
                    return idp
            except requests.RequestException:
                pass
            time.sleep(0.2)
        idp.stop()
        raise RuntimeError(f"oidc-provider-mock not ready after {timeout}s:\n{log_path.read_text()}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def hub_env(self, public_url: str = "", **extra: str) -> dict[str, str]:
        """The ``LABDECK_OIDC_*`` variables of ``labdeck up`` for this provider."""
        env = {
            "LABDECK_OIDC_ISSUER": self.issuer,
            "LABDECK_OIDC_CLIENT_ID": self.client_id,
            "LABDECK_OIDC_CLIENT_SECRET": self.client_secret,
            **extra,
        }
        if public_url:
            env["LABDECK_PUBLIC_URL"] = public_url
        return env

    def set_user(self, sub: str, **claims) -> None:
        """Create or replace the identity ``sub`` with these claims (seen at its next login)."""
        r = requests.put(f"{self.url}/users/{sub}", json=claims, timeout=10)
        r.raise_for_status()

    def token_for(self, sub: str, client_id: str, redirect_uri: str = "http://127.0.0.1:9/cb") -> dict:
        """Run the code flow as another client (``client_id``) and return its token response (with ``id_token``)."""
        s = requests.Session()
        params = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code", "scope": "openid profile", "state": "x"}
        r = s.post(f"{self.url}/oauth2/authorize", params=params, data={"sub": sub}, allow_redirects=False, timeout=10)
        code = parse_qs(urlparse(r.headers["Location"]).query)["code"][0]
        r = s.post(
            f"{self.url}/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "client_id": client_id, "client_secret": "x"},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()


@dataclass
class OIDCLogin:
    """The steps of one login, kept so tests can replay or tamper with them."""

    session: requests.Session
    authorize_url: str
    callback_url: str = ""
    response: requests.Response | None = None


def start_login(hub_url: str, session: requests.Session | None = None, verify=True) -> OIDCLogin:
    """Open the hub's login: returns the provider's authorize URL the hub redirected to."""
    s = session or requests.Session()
    s.verify = verify
    r = s.get(f"{hub_url.rstrip('/')}/hub/oauth_login", allow_redirects=False, timeout=30)
    if r.status_code != 302:
        raise LoginFailed(f"/hub/oauth_login answered HTTP {r.status_code}", r)
    return OIDCLogin(s, r.headers["Location"])


def authorize(login: OIDCLogin, sub: str) -> OIDCLogin:
    """Submit the provider's form as ``sub``; records the callback URL the provider sends the browser to."""
    s = login.session
    form = s.get(login.authorize_url, timeout=30)
    if form.status_code != 200 or 'name="sub"' not in form.text:
        raise LoginFailed(f"the provider's authorization form did not load (HTTP {form.status_code})", form)
    r = s.post(login.authorize_url, data={"sub": sub}, allow_redirects=False, timeout=30)
    if r.status_code != 302:
        raise LoginFailed(f"the provider did not redirect back (HTTP {r.status_code})", r)
    login.callback_url = urljoin(login.authorize_url, r.headers["Location"])
    return login


def finish(login: OIDCLogin, callback_url: str | None = None) -> requests.Response:
    """Follow the callback (``callback_url`` overrides the provider's, to forge one) to the hub."""
    r = login.session.get(callback_url or login.callback_url, allow_redirects=False, timeout=60)
    login.response = r
    return r


def oidc_login(hub_url: str, sub: str, verify=True) -> requests.Session:
    """Log ``sub`` in through the provider's form; a session holding the hub's login cookie."""
    login = authorize(start_login(hub_url, verify=verify), sub)
    r = finish(login)
    if r.status_code != 302 or "/hub/" not in r.headers.get("Location", ""):
        raise LoginFailed(f"the hub's callback answered HTTP {r.status_code}: {r.text[:300]}", r)
    return login.session


class TokenSwap:
    """A pass-through in front of a provider's token endpoint that can hand back another ID token.

    Point the hub's ``auth.oauth.tokenUrl`` at :attr:`url`. While
    :attr:`id_token` is set, token responses carry it instead of the
    provider's (the attack "an ID token issued to another application").
    """

    def __init__(self, upstream: str):
        import http.server
        import threading

        self.upstream = upstream
        self.id_token: str | None = None
        swap = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type", "accept")}
                r = requests.post(swap.upstream, data=body, headers=headers, timeout=30)
                out = r.content
                if swap.id_token and r.status_code == 200:
                    import json

                    data = r.json()
                    data["id_token"] = swap.id_token
                    out = json.dumps(data).encode()
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hub_client(hub_url: str, session: requests.Session, name: str):
    """A :class:`tests.helpers.hubclient.HubClient` for a person logged in through OIDC (with an API token)."""
    from .hubclient import HubClient, HubError

    client = HubClient(hub_url)
    client.http = session
    client.name = name
    session.get(f"{client.base}/hub/token", timeout=30).raise_for_status()
    xsrf = session.cookies.get("_xsrf")
    r = session.post(
        f"{client.base}/hub/api/users/{name}/tokens",
        json={"note": "labdeck tests", "expires_in": 3600},
        headers={"X-XSRFToken": xsrf or "", "Referer": f"{client.base}/hub/token"},
        timeout=10,
    )
    if r.status_code != 201:
        raise HubError(f"token creation failed: HTTP {r.status_code} {r.text[:200]}")
    client.token = r.json()["token"]
    return client


def journey_login(hub_url: str):
    """The login step of tests/helpers/journey.py through the provider's form (``journey.Target.login``).

    A person's ``sub`` at the provider is their username; give them claims with
    :meth:`OIDCProvider.set_user` first.
    """
    return lambda user: hub_client(hub_url, oidc_login(hub_url, user), user)
