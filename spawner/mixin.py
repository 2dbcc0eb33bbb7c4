"""``LabdeckSpawnerMixin``: labdeck's behaviour on top of any JupyterHub spawner.

What it adds, without calling any backend API itself:

- the environment and files that point the standard SDK credential chains at
  the credential broker (built by :mod:`labdeck.spawner.builders`);
- credential issuance *concurrently* with the backend's start, so the broker
  cache is warm when the first cell runs and a misconfigured grant fails the
  spawn with a message a person can act on;
- progress events for its own steps, merged with the backend's.

Backends (``local.py``, ``kube.py``) implement one hook:
``async labdeck_write_files(files: dict[str, str]) -> None``, and set
``labdeck_files_dir`` (where the server sees those files).

The mixin comes first in the MRO and always calls ``super()``.
"""

from __future__ import annotations

import asyncio
import json
import time

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets import Bool, Float, List, Unicode
from traitlets.config import Configurable

from . import builders


class LabdeckSpawnerMixin(Configurable):
    """Credential wiring, onboarding and progress for labdeck user servers."""

    broker_url = Unicode(
        config=True,
        help="""Base URL of the credential broker as seen from a user server.

        For example ``http://127.0.0.1:8090/services/broker/`` locally or
        ``http://labdeck-broker:8090/services/broker/`` on Kubernetes. Set as
        ``LABDECK_BROKER_URL`` in the server, where the in-server client uses it.

        .. versionadded:: 0.1
        """,
    )

    broker_hub_url = Unicode(
        config=True,
        help="""Base URL of the credential broker as seen from the hub (defaults to ``broker_url``).

        .. versionadded:: 0.1
        """,
    )

    aws_region = Unicode("us-east-1", config=True, help="``AWS_DEFAULT_REGION`` of user servers.\n\n.. versionadded:: 0.1")

    s3_bucket = Unicode(
        config=True,
        help="""The data bucket; ``LABDECK_S3_HOME`` becomes ``s3://<bucket>/home/<user>/``.

        .. versionadded:: 0.1
        """,
    )

    aws_endpoint_url = Unicode(
        config=True,
        help="""``AWS_ENDPOINT_URL`` for user servers: the local S3/STS emulator. Empty on real AWS.

        .. versionadded:: 0.1
        """,
    )

    credential_command = List(
        Unicode(),
        ["labdeck-credentials"],
        config=True,
        help="""Command (argv) of the in-server credential client, as the server can run it.

        ``aws`` is appended for the AWS ``credential_process``.

        .. versionadded:: 0.1
        """,
    )

    issue_credentials_at_start = Bool(
        True,
        config=True,
        help="""Ask the broker for the user's credentials while the server starts.

        This warms the broker's cache (the first SDK call is then fast) and makes
        a misconfigured grant fail the spawn with a readable reason instead of
        failing the user's first cell.

        .. versionadded:: 0.1
        """,
    )

    credential_timeout = Float(
        30,
        config=True,
        help="""Seconds to wait for the broker during a spawn before failing it.

        .. versionadded:: 0.1
        """,
    )

    #: set by the backend: where the server sees labdeck's files
    labdeck_files_dir = ""

    # ---------------------------------------------------------------- builders

    def _broker_hub_url(self) -> str:
        return self.broker_hub_url or self.broker_url

    def labdeck_env(self) -> dict[str, str]:
        return builders.server_env(
            username=self.user.name,
            files_dir=self.labdeck_files_dir,
            broker_url=self.broker_url,
            aws_region=self.aws_region,
            s3_bucket=self.s3_bucket,
            aws_endpoint_url=self.aws_endpoint_url,
        )

    def labdeck_files(self) -> dict[str, str]:
        return builders.server_files(region=self.aws_region, credential_command=[*self.credential_command, "aws"])

    def get_env(self):
        env = super().get_env()
        env.update(self.labdeck_env())
        return env

    # --------------------------------------------------------------- progress

    def _progress_reset(self):
        self._labdeck_events: list[dict] = []
        self._labdeck_done = False

    def _progress(self, progress: int, message: str):
        if not hasattr(self, "_labdeck_events"):
            self._progress_reset()
        self._labdeck_events.append({"progress": progress, "message": message})
        self.log.info("[%s] %s", self._log_name, message)

    async def progress(self):
        """labdeck's own steps merged with the backend's events (never swallowed)."""
        if not hasattr(self, "_labdeck_events"):
            self._progress_reset()
        backend = super().progress()
        queue: asyncio.Queue = asyncio.Queue()
        finished = object()

        async def pump():
            try:
                async for event in backend:
                    await queue.put(event)
            finally:
                await queue.put(finished)

        pump_task = asyncio.ensure_future(pump())
        sent = 0
        backend_done = False
        try:
            while True:
                while sent < len(self._labdeck_events):
                    yield self._labdeck_events[sent]
                    sent += 1
                if self._labdeck_done and backend_done:
                    return
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=0.25)
                except asyncio.TimeoutError:
                    continue
                if event is finished:
                    backend_done = True
                else:
                    yield event
        finally:
            pump_task.cancel()

    # ----------------------------------------------------------------- start

    async def labdeck_write_files(self, files: dict[str, str]) -> None:
        raise NotImplementedError("Override in the backend subclass. Must be a coroutine.")

    async def _issue_credentials(self, provider: str = "aws") -> None:
        """Ask the broker for this user's credentials with the server's own token."""
        url = self._broker_hub_url().rstrip("/") + f"/{provider}/credentials"
        req = HTTPRequest(
            url,
            method="POST",
            body=b"",
            headers={"Authorization": f"token {self.api_token}"},
            request_timeout=self.credential_timeout,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except Exception as e:  # connection refused, DNS, timeout
            raise RuntimeError(f"The credential broker is unreachable ({type(e).__name__}); contact your admin") from None
        if resp.code != 200:
            try:
                reason = json.loads(resp.body).get("error", "")
            except Exception:
                reason = ""
            raise RuntimeError(f"Could not issue {provider.upper()} credentials: {reason or f'HTTP {resp.code}'}")

    async def start(self):
        self._progress_reset()
        t0 = time.monotonic()
        try:
            self._progress(10, "Preparing your server's cloud configuration")
            await self.labdeck_write_files(self.labdeck_files())
            issuing = None
            if self.issue_credentials_at_start and self.broker_url:
                self._progress(20, "Issuing S3 credentials")
                issuing = asyncio.ensure_future(self._issue_credentials("aws"))
            self._progress(30, "Starting server")
            try:
                result = await super().start()
            except BaseException:
                if issuing:
                    issuing.cancel()
                raise
            if issuing:
                try:
                    await issuing
                except Exception as e:
                    self._progress(95, f"Spawn failed: {e}")
                    await self.stop(now=True)
                    raise RuntimeError(str(e)) from None
                self._progress(80, "S3 credentials ready")
            self.log.info("labdeck start steps for %s took %.0f ms", self._log_name, 1000 * (time.monotonic() - t0))
            return result
        finally:
            self._labdeck_done = True
