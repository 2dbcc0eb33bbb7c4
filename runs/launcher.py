"""Starting, using and stopping a user's named server through the hub, for the scheduler.

Everything goes through the JupyterHub REST API and the proxy, so it works
the same with the local process spawner and KubeSpawner. The service token
travels only in ``Authorization`` headers. :class:`Launcher` is the seam the
scheduler uses; tests swap in named fakes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect


class LaunchError(Exception):
    """The hub or the server refused or failed; the message is for the run's owner (no secrets)."""


class ExecTimeout(Exception):
    """The kernel did not finish in time."""


class Launcher:
    """What the scheduler needs from the platform. Subclasses override all three coroutines."""

    async def start_server(self, user: str, server: str, options: dict, timeout: float) -> None:
        raise NotImplementedError("Override in subclass. Must be a coroutine.")

    async def execute(self, user: str, server: str, code: str, timeout: float) -> str:
        """Run ``code`` in a fresh kernel of the server; return its stdout."""
        raise NotImplementedError("Override in subclass. Must be a coroutine.")

    async def stop_server(self, user: str, server: str, timeout: float) -> None:
        raise NotImplementedError("Override in subclass. Must be a coroutine.")


class HubLauncher(Launcher):
    """The real thing: hub REST API + Jupyter server kernels over the proxy.

    While a run executes, the launcher reports activity for its server to the
    hub every ``activity_interval`` seconds (``POST /users/<name>/activity``,
    scope ``users:activity``): a run may sit in one silent cell for longer
    than the idle culler's timeout, and must not be culled for it. A run is
    bounded by its own timeout instead.
    """

    #: seconds between activity reports while a run executes (well below any sane culler timeout)
    activity_interval = 60.0

    def __init__(self, api_url: str, proxy_url: str, token: str, log, activity_interval: float | None = None):
        self.api_url = api_url.rstrip("/")
        self.proxy_url = proxy_url.rstrip("/")
        self._token = token
        self.log = log
        self.http = AsyncHTTPClient()
        # the embedded default's proxy on this machine may serve HTTPS with a certificate for the public
        # name (LABDECK_TLS_CERT): the connection never leaves loopback, so its name is not checked
        parts = urlsplit(self.proxy_url)
        self._proxy_tls = {"validate_cert": False} if parts.scheme == "https" and parts.hostname in ("127.0.0.1", "::1", "localhost") else {}
        if activity_interval is not None:
            self.activity_interval = activity_interval

    async def report_activity(self, user: str, server: str) -> None:
        """Tell the hub the run's server is active now (never raises: a missed report only risks a cull)."""
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        body = {"last_activity": now, "servers": {server: {"last_activity": now}}}
        try:
            code, _ = await self._api("POST", f"/users/{quote(user, safe='')}/activity", body, timeout=10)
        except Exception as e:  # noqa: BLE001 - hub restarting, network blip
            self.log.warning("Could not report activity of %s/%s: %s", user, server, type(e).__name__)
            return
        if code >= 300:
            self.log.warning("Reporting activity of %s/%s: hub said HTTP %s", user, server, code)

    async def _keep_active(self, user: str, server: str) -> None:
        while True:
            await self.report_activity(user, server)
            await asyncio.sleep(self.activity_interval)

    def _headers(self) -> dict:
        return {"Authorization": f"token {self._token}", "Content-Type": "application/json"}

    async def _api(self, method: str, path: str, body=None, timeout: float = 30):
        req = HTTPRequest(
            self.api_url + path, method=method, headers=self._headers(),
            body=None if body is None else json.dumps(body), allow_nonstandard_methods=True, request_timeout=timeout,
        )
        resp = await self.http.fetch(req, raise_error=False)
        data = None
        if resp.body:
            try:
                data = json.loads(resp.body)
            except ValueError:
                data = None
        return resp.code, data

    def _server_path(self, user: str, server: str) -> str:
        return f"/users/{quote(user, safe='')}/servers/{quote(server, safe='')}"

    async def _server_model(self, user: str, server: str) -> dict | None:
        code, model = await self._api("GET", f"/users/{quote(user, safe='')}")
        if code != 200 or not model:
            raise LaunchError(f"could not read {user}'s servers from the hub (HTTP {code})")
        return (model.get("servers") or {}).get(server)

    async def start_server(self, user, server, options, timeout):
        code, data = await self._api("POST", self._server_path(user, server), options or {})
        if code not in (201, 202):
            message = (data or {}).get("message") or f"HTTP {code}"
            raise LaunchError(f"the hub refused to start the run's server: {message}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = await self._server_model(user, server)
            if model and model.get("ready"):
                return
            if model is None:
                raise LaunchError("the run's server failed to start (see the hub log)")
            await asyncio.sleep(0.25)
        raise LaunchError(f"the run's server was not ready within {timeout:g}s")

    def _server_url(self, user: str, server: str) -> str:
        return f"{self.proxy_url}/user/{quote(user, safe='')}/{quote(server, safe='')}/"

    async def execute(self, user, server, code, timeout):
        heartbeat = asyncio.ensure_future(self._keep_active(user, server))
        try:
            return await self._execute(user, server, code, timeout)
        finally:
            heartbeat.cancel()

    async def _execute(self, user, server, code, timeout):
        base = self._server_url(user, server)
        req = HTTPRequest(base + "api/kernels", method="POST", headers=self._headers(), body=json.dumps({}), request_timeout=60, **self._proxy_tls)
        resp = await self.http.fetch(req, raise_error=False)
        if resp.code != 201:
            raise LaunchError(f"could not start a kernel in the run's server (HTTP {resp.code})")
        kernel_id = json.loads(resp.body)["id"]
        ws_url = base.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + f"api/kernels/{kernel_id}/channels"
        ws = await websocket_connect(
            HTTPRequest(ws_url, headers=self._headers(), request_timeout=30, **self._proxy_tls), max_message_size=64 * 1024 * 1024
        )
        try:
            return await asyncio.wait_for(self._run_code(ws, code, user), timeout)
        except asyncio.TimeoutError:
            raise ExecTimeout() from None
        finally:
            ws.close()
            await self._delete_kernel(base, kernel_id)

    async def _delete_kernel(self, base: str, kernel_id: str) -> None:
        """Shut the run's kernel down (its server may live on: a run never leaves a kernel behind)."""
        req = HTTPRequest(base + f"api/kernels/{kernel_id}", method="DELETE", headers=self._headers(), request_timeout=30, **self._proxy_tls)
        try:
            resp = await self.http.fetch(req, raise_error=False)
        except Exception as e:  # noqa: BLE001 - the server stopping: its kernels go with it
            self.log.warning("Could not shut down the run's kernel: %s", type(e).__name__)
            return
        if resp.code not in (204, 404):
            self.log.warning("Shutting down the run's kernel: server said HTTP %s", resp.code)

    async def _run_code(self, ws, code: str, user: str) -> str:
        msg_id = uuid.uuid4().hex
        session = uuid.uuid4().hex
        ws.write_message(
            json.dumps(
                {
                    "header": {"msg_id": msg_id, "username": user, "session": session, "msg_type": "execute_request", "version": "5.3"},
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False},
                    "channel": "shell",
                }
            )
        )
        out: list[str] = []
        error = None
        while True:
            raw = await ws.read_message()
            if raw is None:
                raise LaunchError("the run's kernel connection closed before the run finished")
            if isinstance(raw, bytes):
                continue
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg.get("msg_type"), msg.get("content", {})
            if kind == "stream" and content.get("name") == "stdout":
                out.append(content.get("text", ""))
            elif kind == "error":
                error = f"{content.get('ename')}: {content.get('evalue')}"
            elif kind == "status" and content.get("execution_state") == "idle":
                if error and not out:
                    raise LaunchError(f"the run driver failed in the kernel: {error[:300]}")
                return "".join(out)

    async def stop_server(self, user, server, timeout):
        code, data = await self._api("DELETE", self._server_path(user, server), {"remove": True})
        if code not in (202, 204, 404):
            self.log.warning("Stopping %s/%s: hub said HTTP %s", user, server, code)
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if await self._server_model(user, server) is None:
                    return
            except LaunchError:
                return
            await asyncio.sleep(0.25)
        self.log.warning("Server %s/%s still present %gs after stop", user, server, timeout)
