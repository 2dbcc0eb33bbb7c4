"""End-to-end check of a labdeck release on k3s (run by .github/workflows/k3s-e2e.yaml).

Logs in with the dev login, gets an API token, spawns a server through the
REST API, and runs a cell in it that writes to and reads from the user's S3
home through the in-cluster moto server, with credentials from the broker.
"""

import json
import os
import sys
import time
import uuid

import requests
import websocket

HUB = os.environ.get("HUB_URL", "http://127.0.0.1:8080")
USER = os.environ.get("E2E_USER", "alice")
PASSWORD = os.environ["LABDECK_DEV_PASSWORD"]
CELL = """
import boto3, os
home = os.environ["LABDECK_S3_HOME"]
bucket, _, prefix = home.removeprefix("s3://").partition("/")
s3 = boto3.client("s3")
s3.put_object(Bucket=bucket, Key=prefix + "e2e.txt", Body=b"written by the e2e cell")
print(s3.get_object(Bucket=bucket, Key=prefix + "e2e.txt")["Body"].read().decode())
"""


def main() -> int:
    s = requests.Session()
    s.get(f"{HUB}/hub/login").raise_for_status()
    xsrf = s.cookies.get("_xsrf")
    r = s.post(f"{HUB}/hub/login", data={"username": USER, "password": PASSWORD, "_xsrf": xsrf}, allow_redirects=False)
    assert r.status_code == 302, f"login failed: HTTP {r.status_code}"
    r = s.post(f"{HUB}/hub/api/users/{USER}/tokens", json={"note": "e2e"}, headers={"X-XSRFToken": xsrf})
    r.raise_for_status()
    api = requests.Session()
    api.headers["Authorization"] = f"token {r.json()['token']}"

    r = api.post(f"{HUB}/hub/api/users/{USER}/server", json={})
    assert r.status_code in (201, 202), f"spawn: HTTP {r.status_code} {r.text}"
    deadline = time.monotonic() + 600
    while True:
        model = api.get(f"{HUB}/hub/api/users/{USER}").json()
        server = model["servers"].get("", {})
        if server.get("ready"):
            break
        assert time.monotonic() < deadline, f"server not ready: {server}"
        time.sleep(3)
    print("server ready:", server["url"])

    base = f"{HUB}{server['url']}"
    kernel = api.post(f"{base}api/kernels", json={"name": "python3"}).json()
    ws_url = f"{base.replace('http', 'ws', 1)}api/kernels/{kernel['id']}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: {api.headers['Authorization']}"], timeout=120)
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": USER, "session": uuid.uuid4().hex,
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": CELL, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))  # fmt: skip
    out, status = [], None
    while status is None:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            print("\n".join(msg["content"]["traceback"]), file=sys.stderr)
        elif msg["msg_type"] == "execute_reply":
            status = msg["content"]["status"]
    ws.close()
    print("cell output:", "".join(out).strip())
    assert status == "ok" and "written by the e2e cell" in "".join(out), status

    api.delete(f"{HUB}/hub/api/users/{USER}/server")
    return 0


if __name__ == "__main__":
    sys.exit(main())
