"""A small client for a running hub, the way a person (or a script) uses it.

Logs in through the real login form (with its XSRF token), creates API tokens
through the REST API, starts/stops servers, and executes code in a real kernel
of a user server over the Jupyter websocket protocol. Tokens travel in
headers, never in URLs.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import requests
import websocket


class HubError(AssertionError):
    pass


@dataclass
class ExecResult:
    stdout: str
    stderr: str
    error: dict | None
    result: str | None

    def check(self) -> "ExecResult":
        if self.error:
            raise HubError(f"cell failed: {self.error.get('ename')}: {self.error.get('evalue')}\n{self.stderr}")
        return self


class HubClient:
    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")
        self.http = requests.Session()
        self.token: str | None = None
        self.name: str | None = None

    # ---------------------------------------------------------------- login
    def login_form(self, username: str, password: str) -> requests.Response:
        r = self.http.get(f"{self.base}/hub/login", timeout=10)
        r.raise_for_status()
        xsrf = self.http.cookies.get("_xsrf")
        return self.http.post(
            f"{self.base}/hub/login",
            data={"username": username, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=30,
        )

    def login(self, username: str, password: str) -> "HubClient":
        r = self.login_form(username, password)
        if r.status_code != 302:
            raise HubError(f"login of {username!r} failed: HTTP {r.status_code}")
        self.name = username
        xsrf = self.http.cookies.get("_xsrf")
        r = self.http.post(
            f"{self.base}/hub/api/users/{username}/tokens",
            json={"note": "labdeck tests", "expires_in": 3600},
            headers={"X-XSRFToken": xsrf, "Referer": f"{self.base}/hub/token"},
            timeout=10,
        )
        if r.status_code != 201:
            raise HubError(f"token creation failed: HTTP {r.status_code} {r.text[:200]}")
        self.token = r.json()["token"]
        return self

    # ------------------------------------------------------------------ api
    def headers(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    def api(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        return requests.request(method, f"{self.base}/hub/api{path}", headers=self.headers(), **kw)

    def server_path(self, server: str = "") -> str:
        return f"/users/{self.name}/servers/{server}" if server else f"/users/{self.name}/server"

    def start_server(self, server: str = "", options: dict | None = None, timeout: float = 120) -> dict:
        r = self.api("POST", self.server_path(server), json=options or {})
        if r.status_code not in (201, 202):
            raise HubError(f"spawn failed: HTTP {r.status_code} {r.text[:300]}")
        return self.wait_ready(server, timeout)

    def wait_ready(self, server: str = "", timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{self.name}").json()
            srv = (model.get("servers") or {}).get(server)
            if srv and srv.get("ready"):
                return srv
            if srv is None and model.get("servers") is not None and time.monotonic() > deadline - timeout + 5:
                raise HubError(f"server {server!r} of {self.name} is gone (spawn failed?)")
            time.sleep(0.25)
        raise HubError(f"server {server!r} of {self.name} not ready after {timeout}s")

    def stop_server(self, server: str = "", timeout: float = 60) -> None:
        r = self.api("DELETE", self.server_path(server))
        if r.status_code not in (202, 204):
            raise HubError(f"stop failed: HTTP {r.status_code} {r.text[:200]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            servers = self.api("GET", f"/users/{self.name}").json().get("servers") or {}
            if server not in servers:
                return
            time.sleep(0.25)
        raise HubError("server did not stop")

    # --------------------------------------------------------------- kernel
    def server_url(self, server: str = "") -> str:
        return f"{self.base}/user/{self.name}/{server + '/' if server else ''}"

    def start_kernel(self, server: str = "", name: str = "python3") -> str:
        r = requests.post(self.server_url(server) + "api/kernels", headers=self.headers(), json={"name": name}, timeout=60)
        if r.status_code != 201:
            raise HubError(f"kernel start failed: HTTP {r.status_code} {r.text[:200]}")
        return r.json()["id"]

    def execute(self, code: str, kernel_id: str, server: str = "", timeout: float = 120) -> ExecResult:
        url = (self.server_url(server) + f"api/kernels/{kernel_id}/channels").replace("http://", "ws://", 1)
        ws = websocket.create_connection(url, header=[f"Authorization: token {self.token}"], timeout=timeout)
        try:
            msg_id = uuid.uuid4().hex
            ws.send(
                json.dumps(
                    {
                        "header": {"msg_id": msg_id, "username": self.name, "session": uuid.uuid4().hex, "msg_type": "execute_request", "version": "5.3"},
                        "parent_header": {},
                        "metadata": {},
                        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False},
                        "channel": "shell",
                    }
                )
            )
            out, err, error, result = [], [], None, None
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                t = msg["msg_type"]
                c = msg["content"]
                if t == "stream":
                    (out if c["name"] == "stdout" else err).append(c["text"])
                elif t == "execute_result":
                    result = c["data"].get("text/plain")
                elif t == "error":
                    error = c
                elif t == "status" and c["execution_state"] == "idle":
                    return ExecResult("".join(out), "".join(err), error, result)
            raise HubError("cell did not finish in time")
        finally:
            ws.close()
