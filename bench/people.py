"""One person of a benchmark: logs in through the form, then drives the hub REST API, a kernel and a cell.

Works against both systems (labdeck and vanilla JupyterHub); passwords and tokens travel in
form bodies and headers only. Every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field

import requests
import websocket

#: hub user names of one benchmark run carry this, so that the OS accounts labdeck creates
#: for them as root (``labdeck-<name>``, kept by labdeck) never meet a previous run's
RUN_ID = secrets.token_hex(2)
_PEOPLE: set[str] = set()


def person(name: str) -> str:
    """A hub user name unique to this run (remembered for :func:`remove_os_users`)."""
    full = f"{name}-{RUN_ID}"
    _PEOPLE.add(full)
    return full


def remove_os_users() -> None:
    """Delete the OS accounts labdeck created for this run's people (root only; labdeck itself keeps them)."""
    if os.geteuid() != 0 or not shutil.which("userdel"):
        return
    try:
        from labdeck.spawner.local.accounts import system_username
    except ImportError:
        return
    for name in sorted(_PEOPLE):
        subprocess.run(["userdel", system_username(name)], capture_output=True)


class SpawnError(Exception):
    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


@dataclass
class User:
    """One person: logs in through the form, then uses an API token (headers only)."""

    base: str
    name: str
    http: requests.Session = field(default_factory=requests.Session)
    token: str = ""

    def login(self, password: str, timeout: float = 60) -> None:
        r = self.http.get(f"{self.base}/hub/login", timeout=timeout)
        r.raise_for_status()
        xsrf = self.http.cookies.get("_xsrf")
        r = self.http.post(
            f"{self.base}/hub/login",
            data={"username": self.name, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=timeout,
        )
        if r.status_code != 302:
            raise SpawnError(f"login failed: HTTP {r.status_code}", r.status_code)
        r = self.http.post(
            f"{self.base}/hub/api/users/{self.name}/tokens",
            json={"note": "labdeck bench", "expires_in": 3600},
            headers={"X-XSRFToken": self.http.cookies.get("_xsrf"), "Referer": f"{self.base}/hub/token"},
            timeout=timeout,
        )
        if r.status_code != 201:
            raise SpawnError(f"token creation failed: HTTP {r.status_code}", r.status_code)
        self.token = r.json()["token"]

    def headers(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    def request_spawn(self, timeout: float = 120) -> int:
        r = requests.post(f"{self.base}/hub/api/users/{self.name}/server", json={}, headers=self.headers(), timeout=timeout)
        if r.status_code not in (201, 202):
            try:
                msg = r.json().get("message", "")
            except ValueError:
                msg = r.text[:200]
            raise SpawnError(f"POST server: HTTP {r.status_code} {msg}", r.status_code)
        return r.status_code

    def follow_progress(self, deadline: float) -> list[dict]:
        """Read the spawn's progress stream (what the spawn page shows) until ready or failed."""
        events: list[dict] = []
        url = f"{self.base}/hub/api/users/{self.name}/server/progress"
        while time.monotonic() < deadline:
            try:
                with requests.get(url, headers=self.headers(), stream=True, timeout=(10, 30)) as r:
                    if r.status_code != 200:
                        raise SpawnError(f"progress: HTTP {r.status_code}", r.status_code)
                    for line in r.iter_lines(decode_unicode=True):
                        if time.monotonic() > deadline:
                            break
                        if not line or not line.startswith("data:"):
                            continue
                        ev = json.loads(line[5:])
                        ev["t"] = time.monotonic()
                        events.append(ev)
                        if ev.get("ready"):
                            return events
                        if ev.get("failed"):
                            raise SpawnError(f"spawn failed: {ev.get('message', '')}")
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.5)  # the hub is busy or restarting: reconnect until the deadline
                continue
            # stream ended without ready: is the server up already?
            if self.ready():
                events.append({"ready": True, "t": time.monotonic(), "message": "(polled)"})
                return events
            time.sleep(0.2)
        raise SpawnError("not ready before the benchmark's deadline")

    def ready(self) -> bool:
        model = requests.get(f"{self.base}/hub/api/users/{self.name}", headers=self.headers(), timeout=30).json()
        srv = (model.get("servers") or {}).get("")
        return bool(srv and srv.get("ready"))

    def stop_server(self, timeout: float = 60) -> None:
        requests.delete(f"{self.base}/hub/api/users/{self.name}/server", headers=self.headers(), timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = requests.get(f"{self.base}/hub/api/users/{self.name}", headers=self.headers(), timeout=30).json()
            if "" not in (model.get("servers") or {}):
                return
            time.sleep(0.2)

    def server_url(self) -> str:
        return f"{self.base}/user/{self.name}/"

    def start_kernel(self, timeout: float = 60) -> str:
        r = requests.post(self.server_url() + "api/kernels", headers=self.headers(), json={"name": "python3"}, timeout=timeout)
        if r.status_code != 201:
            raise SpawnError(f"kernel start: HTTP {r.status_code}", r.status_code)
        return r.json()["id"]

    def execute(self, code: str, kernel_id: str, timeout: float = 60) -> str:
        """Run one cell; return its text result. The first reply also waits for the kernel to be up."""
        url = (self.server_url() + f"api/kernels/{kernel_id}/channels").replace("http://", "ws://", 1)
        ws = websocket.create_connection(url, header=[f"Authorization: token {self.token}"], timeout=timeout)
        try:
            msg_id = uuid.uuid4().hex
            ws.send(json.dumps({
                "header": {"msg_id": msg_id, "username": self.name, "session": uuid.uuid4().hex,
                           "msg_type": "execute_request", "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False},
            }))
            deadline = time.monotonic() + timeout
            result = None
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                t, c = msg["msg_type"], msg["content"]
                if t == "execute_result":
                    result = c["data"].get("text/plain")
                elif t == "error":
                    raise SpawnError(f"cell failed: {c.get('ename')}: {c.get('evalue')}")
                elif t == "status" and c["execution_state"] == "idle":
                    return result or ""
            raise SpawnError("cell did not finish in time")
        finally:
            ws.close()
