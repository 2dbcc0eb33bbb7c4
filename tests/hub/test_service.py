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
