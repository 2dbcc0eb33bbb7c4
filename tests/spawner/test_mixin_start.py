"""``LabdeckSpawnerMixin.start()`` against real brokers: failing, slow, refusing a cloud, and forged profiles.

The spawner is the mixin over the smallest real backend (``RecordingBackend``,
a ``jupyterhub.spawner.Spawner`` whose ``start()`` records what it was given
and returns a URL), built by JupyterHub's own ``User`` over a real sqlite ORM,
as the hub builds it. The broker is labdeck's ``BrokerApp`` on 127.0.0.1 (with
the moto server as its STS and a real HTTP stand-in for the hub's token API),
or, for the failure modes a healthy broker cannot show, a real HTTP server on
127.0.0.1 standing in for it (``SlowBroker``, ``DenyingBroker``). Nothing of
the mixin is mocked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import pytest
from jupyterhub import orm, roles
from jupyterhub.objects import Hub
from jupyterhub.spawner import Spawner
from jupyterhub.user import User
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from traitlets.config import Config

from labdeck.credentials.app import BrokerApp
from labdeck.spawner.mixin import LabdeckSpawnerMixin

TOKEN = "alice-server-token-0f9e8d7c6b5a"  # the server's own JupyterHub API token
BROKER_PREFIX = "/services/broker/"
PROFILES = [
    {"slug": "jupyterlab", "display_name": "JupyterLab (Python)", "default": True},
    {"slug": "gpu", "display_name": "GPU", "groups": ["ml"]},
]
ACCEPTED = {"profile": "jupyterlab", "size": "small"}
BACKEND_EVENT = "Spawning server..."  # jupyterhub Spawner.progress's own event


class RecordingBackend(Spawner):
    """A backend of the smallest kind: no process, ``start()`` records its env and returns a URL."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []
        self.started_env: dict | None = None
        self.running = False
        self.backend_started = asyncio.Event()

    async def start(self):
        self.calls.append("start")
        self.started_env = self.get_env()
        self.running = True
        self.backend_started.set()
        return "http://127.0.0.1:12345"

    async def stop(self, now=False):
        self.calls.append("stop")
        self.running = False

    #: a session to treat as another request would while the hub awaits poll(): JupyterHub's
    #: BaseHandler.finish rolls back the shared session's uncommitted changes
    other_request_db = None

    async def poll(self):
        db = self.other_request_db
        if db is not None and db.dirty:
            db.rollback()
        return None if self.running else 0


class LabdeckRecordingSpawner(LabdeckSpawnerMixin, RecordingBackend):
    """The mixin first in the MRO, as in LabdeckLocalProcessSpawner and LabdeckKubeSpawner."""

    labdeck_files_dir = "/etc/labdeck"

    async def labdeck_write_files(self, files):
        self.calls.append("write_files")
        self.written = dict(files)


# ---------------------------------------------------------------- servers


async def serve(app: web.Application) -> tuple[HTTPServer, int]:
    sock, port = bind_unused_port()  # 127.0.0.1, a free port
    server = HTTPServer(app)
    server.add_sockets([sock])
    return server, port


class HubUserHandler(web.RequestHandler):
    """The hub's ``GET /hub/api/user`` for the broker's token lookup: TOKEN is alice's server."""

    def get(self):
        if self.request.headers.get("Authorization") != f"token {TOKEN}":
            raise web.HTTPError(403)
        self.finish({"kind": "user", "name": "alice", "groups": [], "scopes": ["access:servers!user=alice"]})


@pytest.fixture(scope="module")
def moto_sts():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
async def real_broker(moto_sts, monkeypatch):
    """Start labdeck's BrokerApp on 127.0.0.1: ``await real_broker(providers=..., role_arn=...)`` → its URL and app."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "broker-own-key")  # the broker's identity at the local STS
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "broker-own-secret")
    servers = []
    hub, hub_port = await serve(web.Application([(r"/hub/api/user", HubUserHandler)]))
    servers.append(hub)

    async def start(providers=("aws",), role_arn="arn:aws:iam::123456789012:role/labdeck-users"):
        c = Config()
        c.BrokerApp.providers = list(providers)
        c.BrokerApp.base_url = BROKER_PREFIX
        c.HubAuth.api_url = f"http://127.0.0.1:{hub_port}/hub/api"
        c.HubAuth.api_token = "broker-service-token"
        c.AWSProvider.endpoint_url = moto_sts
        c.AWSProvider.bucket = "labdeck-data"
        c.AWSProvider.role_arn = role_arn
        app = BrokerApp(config=c)
        app.initialize([])
        server, port = await serve(app.make_app())
        servers.append(server)
        return f"http://127.0.0.1:{port}{BROKER_PREFIX}", app

    yield start
    for s in servers:
        s.stop()


class StandInBroker(web.RequestHandler):
    """``POST <prefix><provider>/credentials`` of a broker that misbehaves as ``behaviour`` says."""

    def initialize(self, behaviour):
        self.behaviour = behaviour

    async def post(self, provider):
        b = self.behaviour
        b["seen"].append((provider, self.request.headers.get("Authorization")))
        b["arrived"].set()
        await b["release"].wait()
        self.set_status(b["status"])
        self.finish(b["body"])


@pytest.fixture
async def stand_in():
    """A real HTTP server standing in for the broker; the test sets its status, body and release event."""
    behaviour = {"seen": [], "arrived": asyncio.Event(), "release": asyncio.Event(), "status": 200, "body": ""}
    server, port = await serve(web.Application([(BROKER_PREFIX + r"([a-z]+)/credentials", StandInBroker, {"behaviour": behaviour})]))
    behaviour["url"] = f"http://127.0.0.1:{port}{BROKER_PREFIX}"
    yield behaviour
    behaviour["release"].set()  # a handler still waiting finishes
    server.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: connections are refused


# ---------------------------------------------------------------- the hub side


@pytest.fixture
def hub_db(tmp_path):
    """JupyterHub's ORM on a sqlite file, with what ``User.spawn`` needs (default roles, the hub's OAuth client)."""
    url = f"sqlite:///{tmp_path}/jupyterhub.sqlite"
    db = orm.new_session_factory(url)()
    for role in roles.get_default_roles():
        roles.create_role(db, role)
    db.add(orm.OAuthClient(identifier="jupyterhub"))
    db.add(orm.User(name="alice"))
    db.commit()
    yield url, db
    db.close()


@pytest.fixture
def make_user(hub_db):
    """JupyterHub's own ``User`` for alice, spawning ``LabdeckRecordingSpawner`` with ``config``.

    Her default server's last accepted options are ``ACCEPTED`` (committed), as after an earlier start.
    """
    _, db = hub_db

    def make(**spawner_config) -> User:
        c = Config()
        c.LabdeckSpawnerMixin.profiles = PROFILES
        for key, value in spawner_config.items():
            setattr(c.LabdeckSpawnerMixin, key, value)
        orm_user = db.query(orm.User).filter_by(name="alice").one()
        user = User(orm_user, {"spawner_class": LabdeckRecordingSpawner, "config": c, "hub": Hub(ip="127.0.0.1", port=8081, base_url="/hub/")})
        user.orm_spawners[""].user_options = dict(ACCEPTED)
        db.commit()
        return user

    return make


def ready_spawner(user: User) -> LabdeckRecordingSpawner:
    """Alice's default spawner as the hub hands it to ``start()``: token set, options applied by the hook."""
    spawner = user.spawners[""]
    spawner.api_token = TOKEN
    spawner.user_options = dict(ACCEPTED)
    spawner.labdeck_choose(spawner.user_options)
    return spawner


async def messages(spawner) -> list[str]:
    """Every progress message of the finished start, the backend's own event checked and set aside."""
    seen = [e["message"] async for e in spawner.progress()]
    assert seen.count(BACKEND_EVENT) == 1  # never swallowed
    return [m for m in seen if m != BACKEND_EVENT]


def assert_no_secret(*texts):
    for text in texts:
        assert TOKEN not in text


# ---------------------------------------------------------------- a working broker (the baseline)


async def test_a_real_broker_issues_s3_credentials_while_the_server_starts(real_broker, make_user, caplog):
    url, broker = await real_broker()
    spawner = ready_spawner(make_user(broker_url=url, s3_bucket="labdeck-data"))
    with caplog.at_level(logging.INFO):
        assert await spawner.start() == "http://127.0.0.1:12345"
    assert spawner.calls == ["write_files", "start"]
    assert spawner.started_env["LABDECK_S3_HOME"] == "s3://labdeck-data/home/alice/"
    assert spawner.started_env["LABDECK_PROFILE"] == "jupyterlab"
    # the broker really issued alice's credentials (its cache is warm for her first cell)
    assert broker.requests_served == 1 and broker.cache.upstream_calls == 1
    assert await messages(spawner) == [
        "Checking profile: JupyterLab (Python)",
        "Issuing S3 credentials",
        "Preparing home",
        "Starting server",
        "Cloud credentials ready",
    ]
    assert_no_secret(caplog.text)


# ---------------------------------------------------------------- (a) a failing broker


@pytest.mark.parametrize(
    "status, body, message",
    [
        (500, "<html><body>500: Internal Server Error</body></html>", "Could not issue S3 credentials: HTTP 500"),
        (500, json.dumps({"error": "The grant configuration is invalid (users.alice: bad); contact your admin", "status": 500}),
         "Could not issue S3 credentials: The grant configuration is invalid (users.alice: bad); contact your admin"),
        (503, json.dumps({"error": "The AWS credential service did not answer within 30 s; try again shortly", "status": 503}),
         "Could not issue S3 credentials: The AWS credential service did not answer within 30 s; try again shortly"),
    ],
    ids=["500-html", "500-json", "503-upstream"],
)
async def test_a_broker_error_fails_the_start_readably_and_leaves_nothing_running(stand_in, make_user, caplog, status, body, message):
    stand_in.update(status=status, body=body)
    stand_in["release"].set()
    spawner = ready_spawner(make_user(broker_url=stand_in["url"]))
    with caplog.at_level(logging.INFO), pytest.raises(RuntimeError) as e:
        await spawner.start()
    assert str(e.value) == message
    # the token went to the broker in its header only, and the server started with it is stopped again
    assert stand_in["seen"] == [("aws", f"token {TOKEN}")]
    assert spawner.calls == ["write_files", "start", "stop"] and await spawner.poll() == 0
    assert (await messages(spawner))[-1] == f"Spawn failed: {message}"
    assert_no_secret(str(e.value), caplog.text)


async def test_a_refused_connection_fails_after_the_credential_timeout(make_user, caplog):
    spawner = ready_spawner(make_user(broker_url=f"http://127.0.0.1:{closed_port()}{BROKER_PREFIX}", credential_timeout=0.5))
    with caplog.at_level(logging.INFO), pytest.raises(RuntimeError) as e:
        await spawner.start()
    assert str(e.value) == "The credential broker is unreachable (ConnectionRefusedError); contact your admin"
    assert spawner.calls == ["write_files", "start", "stop"] and await spawner.poll() == 0
    assert (await messages(spawner))[-1] == f"Spawn failed: {e.value}"
    assert_no_secret(caplog.text)


# ---------------------------------------------------------------- (b) a slow broker


async def test_start_waits_for_a_slow_broker_and_then_succeeds(stand_in, make_user):
    stand_in["body"] = json.dumps({"Version": 1, "AccessKeyId": "ASIA0", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": "2030-01-01T00:00:00Z"})
    spawner = ready_spawner(make_user(broker_url=stand_in["url"]))
    task = asyncio.ensure_future(spawner.start())
    await stand_in["arrived"].wait()
    await spawner.backend_started.wait()
    # the backend's server is up, the broker has not answered: start() has not returned
    assert not task.done()
    stand_in["release"].set()
    assert await task == "http://127.0.0.1:12345"
    assert spawner.calls == ["write_files", "start"] and spawner.running
    assert (await messages(spawner))[-1] == "Cloud credentials ready"


async def test_a_broker_slower_than_the_credential_timeout_fails_the_start_at_that_timeout(stand_in, make_user, caplog):
    spawner = ready_spawner(make_user(broker_url=stand_in["url"], credential_timeout=0.5))
    t0 = time.monotonic()
    with caplog.at_level(logging.INFO), pytest.raises(RuntimeError) as e:
        await spawner.start()
    waited = time.monotonic() - t0
    assert str(e.value) == "The credential broker did not answer within 0.5 s; contact your admin"
    assert waited >= 0.5  # it did wait for the broker, for the configured time (the message names it)
    assert stand_in["seen"] == [("aws", f"token {TOKEN}")]
    assert spawner.calls == ["write_files", "start", "stop"] and await spawner.poll() == 0
    assert_no_secret(str(e.value), caplog.text)


# ---------------------------------------------------------------- (c) forged profiles


FORGED = [
    ({"profile": "gpu"}, 403, "The profile 'GPU' is restricted to the group(s) ml"),
    ({"profile": "../../etc/passwd"}, 400, "Unknown profile '../../etc/passwd'"),
    ({"profile": "jupyterlab", "cmd": "rm -rf /"}, 400, "Unknown server option(s): cmd. Allowed: profile, size."),
    ({"profile": ["jupyterlab"]}, 400, "'profile' must be a string"),
    ({"size": "x" * 10000}, 400, f"Unknown size {'x' * 10000!r}"),
]


@pytest.mark.parametrize("options, status, message", FORGED, ids=["other-group", "path", "extra-key", "not-a-string", "huge"])
async def test_a_forged_choice_through_the_hub_is_refused_and_changes_nothing(stand_in, make_user, hub_db, options, status, message):
    """JupyterHub's own ``User.spawn`` (it stores the options before the hook refuses them)."""
    url, db = hub_db
    user = make_user(broker_url=stand_in["url"])
    spawner = user.spawners[""]
    spawner.other_request_db = db  # User.stop awaits poll() before it commits
    state_before = spawner.orm_spawner.state
    with pytest.raises(web.HTTPError) as e:
        await user.spawn("", options=options)
    assert (e.value.status_code, e.value.log_message) == (status, message)
    assert spawner.calls == [] and stand_in["seen"] == []  # nothing started, no credential asked for
    # the database, read through a connection of its own, still holds the last accepted choice
    other = orm.new_session_factory(url)()
    try:
        stored = other.query(orm.Spawner).join(orm.User).filter(orm.User.name == "alice", orm.Spawner.name == "").one()
        # (the hub's failure path writes get_state() back: an empty state stays empty)
        assert (stored.user_options, stored.state or {}, stored.server) == (ACCEPTED, state_before or {}, None)
    finally:
        other.close()


@pytest.mark.parametrize("options, status, message", FORGED[:2], ids=["other-group", "path"])
async def test_start_itself_refuses_options_the_hook_did_not_check(stand_in, make_user, options, status, message):
    """``c.Spawner.apply_user_options`` replaced by an admin: ``start()`` still checks before anything starts."""
    spawner = make_user(broker_url=stand_in["url"]).spawners[""]
    spawner.api_token = TOKEN
    spawner.user_options = spawner.orm_spawner.user_options = options  # as User.spawn stores them
    with pytest.raises(web.HTTPError) as e:
        await spawner.start()
    assert (e.value.status_code, e.value.log_message) == (status, message)
    assert spawner.calls == [] and stand_in["seen"] == []
    assert spawner.user_options == ACCEPTED and spawner.orm_spawner.user_options == ACCEPTED


# ---------------------------------------------------------------- (d) a missing grant


async def test_a_cloud_the_broker_cannot_issue_fails_the_start_naming_that_cloud(real_broker, make_user, caplog):
    """BigQuery wired for servers, but no ``gcp`` provider on the broker: the person learns which cloud is missing.

    DESIGN: ``issue_credentials_at_start`` makes a misconfigured grant fail the
    spawn with a readable reason instead of failing the user's first cell.
    """
    url, broker = await real_broker(providers=["aws"])
    spawner = ready_spawner(make_user(broker_url=url, gcp_project="labdeck-local"))
    with caplog.at_level(logging.INFO), pytest.raises(RuntimeError) as e:
        await spawner.start()
    assert str(e.value) == "Could not issue BigQuery credentials: No credential provider 'gcp' is configured"
    assert broker.cache.upstream_calls == 1  # S3 was issued; only BigQuery is missing
    assert spawner.calls == ["write_files", "start", "stop"] and await spawner.poll() == 0
    assert await messages(spawner) == [
        "Checking profile: JupyterLab (Python)",
        "Issuing S3 credentials",
        "Issuing BigQuery credentials",
        "Preparing home",
        "Starting server",
        f"Spawn failed: {e.value}",
    ]
    assert_no_secret(caplog.text)


async def test_s3_not_configured_on_the_broker_fails_the_start_with_the_admins_fix(real_broker, make_user, caplog):
    url, broker = await real_broker(role_arn="")
    spawner = ready_spawner(make_user(broker_url=url))
    with caplog.at_level(logging.INFO), pytest.raises(RuntimeError) as e:
        await spawner.start()
    assert str(e.value) == "Could not issue S3 credentials: AWS is not configured: AWSProvider.role_arn is empty"
    assert spawner.calls == ["write_files", "start", "stop"] and await spawner.poll() == 0
    assert_no_secret(caplog.text)
