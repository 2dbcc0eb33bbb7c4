"""The shared token check of labdeck's services (labdeck.hub.service), on a real tornado server."""

import json

import pytest
from tornado import web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from labdeck.hub.service import URL_TOKEN_REFUSED, JSONErrorsMixin, TokenAuthMixin


class EchoHandler(TokenAuthMixin, JSONErrorsMixin, web.RequestHandler):
    """Says whether it got a token, never what it was."""

    def get(self):
        token = self.api_token(required=self.get_query_argument("optional", "") != "1")
        self.finish(json.dumps({"has_token": token is not None, "length": len(token or "")}))


@pytest.fixture
async def base():
    sock, port = bind_unused_port()
    server = HTTPServer(web.Application([(r"/api", EchoHandler)]))
    server.add_sockets([sock])
    yield f"http://127.0.0.1:{port}/api"
    server.stop()


async def fetch(url, headers=None):
    resp = await AsyncHTTPClient().fetch(url, headers=headers or {}, raise_error=False)
    return resp.code, json.loads(resp.body)


@pytest.mark.parametrize("header", ["token abc123", "Bearer abc123", "TOKEN abc123", "bearer   abc123  "])
async def test_header_token_is_read(base, header):
    code, body = await fetch(base, {"Authorization": header})
    assert code == 200 and body == {"has_token": True, "length": 6}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "token abc123"}])
async def test_token_in_the_query_string_is_refused_and_not_used(base, headers):
    code, body = await fetch(base + "?token=url-secret-1", headers)
    assert code == 400
    assert body == {"error": URL_TOKEN_REFUSED, "status": 400}
    # empty and repeated values too
    assert (await fetch(base + "?token=", headers))[0] == 400
    assert (await fetch(base + "?a=1&token=x&token=y", headers))[0] == 400


@pytest.mark.parametrize("header", ["Basic YWxpY2U6eA==", "token", "token a b", "abc123"])
async def test_malformed_header_is_401_and_not_echoed(base, header):
    code, body = await fetch(base, {"Authorization": header})
    assert code == 401 and "Malformed Authorization header" in body["error"]
    assert "YWxp" not in body["error"]


async def test_missing_header(base):
    code, body = await fetch(base)
    assert code == 401 and "Missing Authorization header" in body["error"]
    assert await fetch(base + "?optional=1") == (200, {"has_token": False, "length": 0})


# ---------------------------------------------------------------- the service base

from labdeck.hub.service import LabdeckServiceApp  # noqa: E402


class FakeHubAPI(web.RequestHandler):
    """The two hub API calls of the base: ``GET user`` (whose token?) and ``GET users/<name>`` (groups).

    A fake at the HTTP boundary (the real hub answers them in tests/integration);
    it counts the group lookups per user so caching can be observed.
    """

    USERS = {"alice-token": {"kind": "user", "name": "alice"}, "bob-token": {"kind": "user", "name": "bob", "groups": ["z", "a"]},
             "svc-token": {"kind": "service", "name": "other"}}  # fmt: skip
    GROUPS = {"alice": ["zeta", "analysts"], "a/b": ["slash"]}

    def initialize(self, calls):
        self.calls = calls

    def get(self, path):
        auth = self.request.headers.get("Authorization", "")
        if path == "user":
            model = self.USERS.get(auth.removeprefix("token "))
            if model is None:
                raise web.HTTPError(403)
            return self.finish(json.dumps(model))
        assert auth == "token service-token", "group lookups use the service's own token"
        name = path.removeprefix("users/")
        self.calls.append(self.request.path.removeprefix("/hub/api/users/"))  # as sent
        if name not in self.GROUPS:
            raise web.HTTPError(404)
        self.finish(json.dumps({"name": name, "groups": self.GROUPS[name]}))


@pytest.fixture
async def hub(monkeypatch):
    calls = []
    sock, port = bind_unused_port()
    server = HTTPServer(web.Application([(r"/hub/api/(user|users/.+)", FakeHubAPI, {"calls": calls})]))
    server.add_sockets([sock])
    monkeypatch.setenv("JUPYTERHUB_API_URL", f"http://127.0.0.1:{port}/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "service-token")
    yield calls
    server.stop()


class SomeService(LabdeckServiceApp):
    name = "some-service"
    default_port = 1234

    def make_app(self):
        return web.Application(self.base_handlers())

    def health(self):
        return {**super().health(), "answered": 7}


class QuietService(SomeService):
    default_hub_cache_seconds = 0


def new_app(cls, argv=()):
    cls.clear_instance()
    app = cls()
    app.initialize(list(argv))
    return app


def test_config_file_and_aliases_come_from_the_base(tmp_path):
    (tmp_path / "some.py").write_text("c.SomeService.base_url = '/x'\nc.LabdeckServiceApp.hub_cache_seconds = 3\n")
    app = new_app(SomeService, ["--config", str(tmp_path / "some.py"), "--port=4321", "--ip=0.0.0.0"])
    assert (app.ip, app.port, app.base_url, app.hub_cache_seconds) == ("0.0.0.0", 4321, "/x/", 3)
    assert new_app(SomeService).port == 1234 and new_app(SomeService).hub_cache_seconds == 10
    assert new_app(QuietService).hub_cache_seconds == 0


async def test_health_is_served_by_the_base_with_the_services_figures():
    app = new_app(SomeService, ["--SomeService.base_url=/services/some/"])
    sock, port = bind_unused_port()
    server = HTTPServer(app.make_app())
    server.add_sockets([sock])
    try:
        resp = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/services/some/health", raise_error=False)
        assert (resp.code, json.loads(resp.body)) == (200, {"status": "ok", "answered": 7})
        assert resp.headers["Content-Type"] == "application/json"
    finally:
        server.stop()


async def test_groups_are_cached_for_hub_cache_seconds(hub):
    app = new_app(SomeService)
    assert await app.groups_of("alice") == ("analysts", "zeta")
    assert await app.groups_of("alice") == ("analysts", "zeta")
    assert hub == ["alice"]
    quiet = new_app(QuietService)
    assert await quiet.groups_of("alice") == ("analysts", "zeta")
    assert await quiet.groups_of("alice") == ("analysts", "zeta")
    assert hub == ["alice", "alice", "alice"]


async def test_unknown_users_have_no_groups_and_names_are_quoted(hub):
    app = new_app(QuietService)
    assert await app.groups_of("nobody") == ()
    assert await app.groups_of("a/b") == ("slash",)
    assert hub == ["nobody", "a%2Fb"]


async def test_hub_user_is_a_users_model_with_groups(hub):
    app = new_app(QuietService)
    assert await app.hub_user("alice-token") == {"kind": "user", "name": "alice", "groups": ["analysts", "zeta"]}
    # the hub's own groups are kept as given (no lookup)
    assert await app.hub_user("bob-token") == {"kind": "user", "name": "bob", "groups": ["z", "a"]}
    assert await app.hub_user("svc-token") is None
    assert await app.hub_user("forged-token") is None
    assert hub == ["alice"]
