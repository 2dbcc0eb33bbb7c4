"""Fixtures for the local emulators: an in-process BigQuery endpoint on a free 127.0.0.1 port.

The server runs on its own asyncio loop in a thread; tests drive it with the real
``google.cloud.bigquery.Client``. Every test is bounded by a SIGALRM deadline so a
hung request fails the test instead of the run, and the server is stopped even
when a test fails.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from dataclasses import dataclass, field
from typing import Iterator

import google.auth.credentials
import pytest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from labdeck.emulators.bigquery import tokens as localtoken
from labdeck.emulators.bigquery.app import make_app
from labdeck.emulators.bigquery.engine import Engine
from labdeck.emulators.bigquery.seed import seed

PROJECT = "labdeck-local"
KEY = b"test-key-" + b"x" * 32
TEST_DEADLINE = 30


class LocalTokenCredentials(google.auth.credentials.Credentials):
    """google-auth credentials that present a fixed labdeck local token."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def refresh(self, request) -> None:  # noqa: ANN001
        """Nothing to refresh: the token is fixed for the test."""

    @property
    def expired(self) -> bool:
        return False

    @property
    def valid(self) -> bool:
        return True


def token_for(sub: str, datasets: dict[str, str] | None = None, ttl: int = 3600,
              projects: list[str] | None = None, admin: bool = False, now: float | None = None) -> str:
    claims = {
        "sub": sub,
        "projects": [PROJECT] if projects is None else projects,
        "datasets": {f"{PROJECT}.{d}": level for d, level in (datasets or {}).items()},
    }
    if admin:
        claims["admin"] = True
    return localtoken.issue(KEY, claims, ttl=ttl, now=now)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@dataclass
class Emulator:
    url: str
    engine: Engine
    logs: _Records
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str):
        from google.cloud import bigquery

        return bigquery.Client(project=PROJECT, credentials=LocalTokenCredentials(self.tokens[who]))


@pytest.fixture(scope="session")
def bq_emulator(tmp_path_factory) -> Iterator[Emulator]:
    data = tmp_path_factory.mktemp("bq")
    engine = Engine(str(data / "bigquery.duckdb"))
    seed(engine)
    for dataset in ("alice", "bob"):
        engine.create_dataset(PROJECT, dataset)

    records = _Records()
    loggers = [logging.getLogger(n) for n in ("labdeck.bigquery", "tornado.access",
                                              "tornado.application", "tornado.general")]
    for lg in loggers:
        lg.addHandler(records)
        lg.setLevel(logging.INFO)

    started = threading.Event()
    state: dict = {}

    def run() -> None:
        async def main() -> None:
            app = make_app(engine, KEY, PROJECT, scratch_dir=str(data / "uploads"))
            sockets = bind_sockets(0, address="127.0.0.1")
            server = HTTPServer(app, max_body_size=256 * 1024 * 1024)
            server.add_sockets(sockets)
            state["port"] = sockets[0].getsockname()[1]
            state["stop"] = asyncio.Event()
            state["loop"] = asyncio.get_running_loop()
            started.set()
            await state["stop"].wait()
            server.stop()
            await server.close_all_connections()
            app.settings["bq_runner"].shutdown()
            app.settings["bq_executor"].shutdown(wait=True)

        asyncio.run(main())

    thread = threading.Thread(target=run, name="bq-emulator", daemon=True)
    thread.start()
    assert started.wait(10), "emulator did not start"
    emulator = Emulator(f"http://127.0.0.1:{state['port']}", engine, records)
    emulator.tokens = {
        "alice": token_for("alice", {"alice": "rw", "alice_sandbox": "rw", "demo": "ro"}),
        "bob": token_for("bob", {"bob": "rw", "demo": "ro"}),
        "broker": token_for("labdeck-broker", admin=True),
    }
    mp = pytest.MonkeyPatch()
    mp.setenv("BIGQUERY_EMULATOR_HOST", emulator.url)
    try:
        yield emulator
    finally:
        mp.undo()
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)
        engine.close()
        for lg in loggers:
            lg.removeHandler(records)


@pytest.fixture(autouse=True)
def _deadline() -> Iterator[None]:
    """Fail a test that runs longer than TEST_DEADLINE seconds (no unbounded waits)."""

    def expire(signum, frame):  # noqa: ANN001
        raise TimeoutError(f"test exceeded {TEST_DEADLINE}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_DEADLINE)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
