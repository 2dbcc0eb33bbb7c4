"""OIDC usernames follow the same rules as local ones."""

import pytest

from labdeck.hub.oidc import LabdeckOIDCAuthenticator


@pytest.mark.parametrize("claim, ok", [("Alice@Example.com", True), ("bob", True), ("../bob", False), ("a b", False), ("x" * 65, False)])
def test_oidc_usernames_are_normalized_and_validated(claim, ok):
    auth = LabdeckOIDCAuthenticator(client_id="x", client_secret="y", authorize_url="https://idp/a", token_url="https://idp/t", userdata_url="https://idp/u")
    name = auth.normalize_username(claim)
    assert name == name.lower()
    assert auth.validate_username(name) is ok


def test_entry_point_is_registered():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="jupyterhub.authenticators")}
    assert eps["labdeck-oidc"] == "labdeck.hub.oidc:LabdeckOIDCAuthenticator"


# ------------------------------------------------------------- discovery and ID tokens

from tornado import web  # noqa: E402

from labdeck.hub.oidc import DiscoveryError, discovered_endpoints  # noqa: E402

DOC = {
    "issuer": "https://idp.example.com/realms/co",
    "authorization_endpoint": "https://idp.example.com/auth",
    "token_endpoint": "https://idp.example.com/token",
    "userinfo_endpoint": "https://idp.example.com/userinfo",
    "jwks_uri": "https://idp.example.com/jwks",
}


def test_discovered_endpoints():
    assert discovered_endpoints(DOC, "https://idp.example.com/realms/co/") == {
        "authorize_url": "https://idp.example.com/auth",
        "token_url": "https://idp.example.com/token",
        "userdata_url": "https://idp.example.com/userinfo",
        "jwks_url": "https://idp.example.com/jwks",
    }


@pytest.mark.parametrize(
    "doc, message",
    [
        ({**DOC, "issuer": "https://evil.example.com"}, "names issuer"),
        ({k: v for k, v in DOC.items() if k != "jwks_uri"}, "jwks_uri"),
        ({**DOC, "token_endpoint": "javascript:x"}, "token_endpoint"),
        (["not", "a", "dict"], "not a JSON object"),
    ],
    ids=["00", "01", "02", "03"],
)
def test_unusable_discovery_documents(doc, message):
    with pytest.raises(DiscoveryError, match=message):
        discovered_endpoints(doc, DOC["issuer"])


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    from tests.helpers.oidc import OIDCProvider

    provider = OIDCProvider.start(tmp_path_factory.mktemp("idp"))
    try:
        yield provider
    finally:
        provider.stop()


async def test_discovery_against_a_real_provider_fills_only_empty_urls(idp):
    auth = LabdeckOIDCAuthenticator(issuer=idp.issuer, client_id="hub", client_secret="s", token_url="http://127.0.0.1:1/mine")
    await auth.discover()
    assert auth.authorize_url == idp.url + "/oauth2/authorize"
    assert auth.userdata_url == idp.url + "/userinfo"
    assert auth.token_url == "http://127.0.0.1:1/mine"


async def test_id_tokens_are_verified_for_audience_and_signature(idp):
    idp.set_user("u1", preferred_username="u1")
    auth = LabdeckOIDCAuthenticator(issuer=idp.issuer, client_id="hub", client_secret="s")
    await auth.discover()
    good = idp.token_for("u1", client_id="hub")["id_token"]
    assert (await auth.check_id_token(good))["sub"] == "u1"
    other = idp.token_for("u1", client_id="another-app")["id_token"]
    with pytest.raises(web.HTTPError) as e:
        await auth.check_id_token(other)
    assert e.value.status_code == 403 and "another application" in e.value.log_message
    # a token whose payload was edited no longer matches its signature
    head, payload, sig = good.split(".")
    import base64
    import json

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "admin"
    forged = ".".join([head, base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("="), sig])
    with pytest.raises(web.HTTPError) as e:
        await auth.check_id_token(forged)
    assert e.value.status_code == 403 and "InvalidSignatureError" in e.value.log_message


async def test_unreachable_or_mismatched_provider_is_a_clear_error(idp):
    from tests.helpers.platform import free_port

    auth = LabdeckOIDCAuthenticator(issuer=f"http://127.0.0.1:{free_port()}", client_id="hub", client_secret="s", provider_timeout=3)
    with pytest.raises(web.HTTPError) as e:
        await auth.discover()
    assert e.value.status_code == 503 and "unreachable" in e.value.log_message
    # a discovery document that names another issuer is never used
    import http.server
    import json
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = json.dumps({**DOC, "issuer": "https://evil.example.com"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        auth = LabdeckOIDCAuthenticator(issuer=f"http://127.0.0.1:{server.server_address[1]}", client_id="hub", client_secret="s")
        with pytest.raises(web.HTTPError) as e:
            await auth.discover()
    finally:
        server.shutdown()
        server.server_close()
    assert e.value.status_code == 502 and "names issuer" in e.value.log_message
    assert not auth.authorize_url
