"""A server's size is a limit on a team VM: one person's runaway kernel never takes anyone else down.

As root, `labdeck up` puts each server (and its kernels) in a cgroup with the
size's memory and CPU limits. A kernel in alice's small server that
allocates past the limit is stopped - the server's log says why - while
bob's kernel, alice's server itself, the hub and the broker keep answering.
The cgroups go when the servers stop and when the platform stops.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid

import pytest
import requests
import websocket

from tests.helpers.hubclient import HubClient
from tests.helpers.platform import start_platform

pytestmark = pytest.mark.integration


def _enforceable() -> bool:
    from labdeck.spawner.local.cgroups import detect

    return detect().backend in ("v1", "v2")


pytestmark = [pytestmark, pytest.mark.skipif(os.geteuid() != 0 or not _enforceable(), reason="needs root and writable cgroups")]

#: the server itself takes ~150 MB: the kernel past this limit is by far the largest process in the cgroup
TINY = 600 * 1024 * 1024
VALUES = f"""
singleuser:
  sizes:
    - {{slug: tiny, display_name: Tiny, mem_limit: {TINY}, cpu_limit: 0.5, default: true}}
    - {{slug: small, display_name: Small, mem_limit: 2G, cpu_limit: 1, cpu_guarantee: 0.25}}
"""


@pytest.fixture(scope="module")
def plat(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits")
    (root / "values.yaml").write_text(VALUES)
    plat = start_platform(root / "state", extra_env={"LABDECK_VALUES_FILE": str(root / "values.yaml")})
    try:
        yield plat
    finally:
        plat.stop()


@pytest.fixture(scope="module")
def alice(plat):
    client = HubClient(plat.url).login("alice", plat.password)
    client.start_server()
    return client


@pytest.fixture(scope="module")
def bob(plat):
    client = HubClient(plat.url).login("bob", plat.password)
    client.start_server(options={"size": "small"})
    return client


def cgroup_dirs(pid: int) -> dict[str, str]:
    """controller → directory of ``pid``'s cgroup (v1 memory and cpu, or v2 "")."""
    from labdeck.spawner.local.cgroups import CGROUP_ROOT, own_cgroups

    mine = own_cgroups(open(f"/proc/{pid}/cgroup").read())
    if "memory" in mine:
        return {c: os.path.join(CGROUP_ROOT, c, mine[c].lstrip("/")) for c in ("memory", "cpu")}
    return {"": os.path.join(CGROUP_ROOT, mine[""].lstrip("/"))}


def read(path: str) -> str:
    return open(path).read().strip()


def run_until_kernel_dies(client: HubClient, kernel: str, code: str, timeout: float = 120) -> list[str]:
    """Execute ``code``; the kernel states seen until it restarts (or the cell ends)."""
    url = (client.server_url() + f"api/kernels/{kernel}/channels").replace("http://", "ws://", 1)
    ws = websocket.create_connection(url, header=[f"Authorization: token {client.token}"], timeout=5)
    states = []
    try:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "username": client.name, "session": uuid.uuid4().hex, "msg_type": "execute_request", "version": "5.3"}
        content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
        ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = json.loads(ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            except websocket.WebSocketConnectionClosedException:
                return [*states, "closed"]  # jupyter-server may close the kernel's channels when it dies
            if msg["msg_type"] == "status":
                state = msg["content"]["execution_state"]
                states.append(state)
                if state in ("restarting", "dead") or (state == "idle" and msg.get("parent_header", {}).get("msg_id") == msg_id):
                    return states
        return states
    finally:
        ws.close()


def test_each_server_runs_in_a_cgroup_with_its_sizes_limits(plat, alice, bob):
    dirs = {}
    for client in (alice, bob):
        kernel = client.start_kernel()
        pid = int(client.execute("import os; print(os.getpid())", kernel).check().stdout)
        dirs[client.name] = cgroup_dirs(pid)
    assert dirs["alice"] != dirs["bob"]
    a, b = dirs["alice"], dirs["bob"]
    if "memory" in a:
        assert int(read(f"{a['memory']}/memory.limit_in_bytes")) == TINY
        assert int(read(f"{b['memory']}/memory.limit_in_bytes")) == 2 * 1024**3
        assert read(f"{a['cpu']}/cpu.cfs_quota_us") == "50000" and read(f"{a['cpu']}/cpu.cfs_period_us") == "100000"
        assert read(f"{b['cpu']}/cpu.cfs_quota_us") == "100000" and read(f"{b['cpu']}/cpu.shares") == "256"
    else:
        assert int(read(f"{a['']}/memory.max")) == TINY and read(f"{a['']}/cpu.max") == "50000 100000"
    # the server process is in the same cgroup as its kernel
    server_pid = int(alice.execute("import os; print(os.getppid())", alice.start_kernel()).check().stdout)
    assert cgroup_dirs(server_pid) == a


def test_a_kernel_past_its_limit_is_stopped_and_nobody_else_notices(plat, alice, bob):
    bob_kernel = bob.start_kernel()
    assert bob.execute("x = 1; print('bob before')", bob_kernel).check().stdout.strip() == "bob before"
    hub_log = plat.state_dir / "logs" / "hub.log"
    kernel = alice.start_kernel()

    states = run_until_kernel_dies(alice, kernel, "chunks = [b'x' * (64 * 2**20) for _ in range(24)]  # 1.5 GB, past 600 MB")
    assert states[-1] in ("restarting", "dead", "closed"), states
    # the server's log says why, with the limit and the size
    deadline = time.monotonic() + 30
    while "past its memory limit" not in hub_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert "went past its memory limit of 600 MB (size 'tiny')" in hub_log.read_text()

    # bob's kernel kept its state, the hub, the broker and alice's own server still answer
    assert bob.execute("print(x, 'bob after')", bob_kernel).check().stdout.strip() == "1 bob after"
    assert requests.get(f"{plat.url}/hub/health", timeout=10).status_code == 200
    broker = plat.settings()["broker_port"]
    assert requests.get(f"http://127.0.0.1:{broker}/services/broker/health", timeout=10).status_code in (200, 401)
    assert alice.execute("print('alice again')", alice.start_kernel()).check().stdout.strip() == "alice again"


def test_a_stopped_server_loses_its_cgroup_and_so_does_the_platform(plat):
    hub_log = plat.state_dir / "logs" / "hub.log"
    deadline = time.monotonic() + 60
    while "warm pool: zygote" not in hub_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.25)
    carol = HubClient(plat.url).login("carol", plat.password)
    carol.start_server()
    # a warm-pool member joined carol's cgroup before it became hers
    assert re.search(r"Claimed warm server \d+ for carol\n", hub_log.read_text())
    kernel = carol.start_kernel()
    dirs = cgroup_dirs(int(carol.execute("import os; print(os.getpid())", kernel).check().stdout))
    assert all(os.path.isdir(d) and os.path.basename(d) == "carol" for d in dirs.values())
    carol.stop_server()
    assert not any(os.path.isdir(d) for d in dirs.values())
    group = {os.path.dirname(d) for d in dirs.values()}
    assert all(os.path.basename(g) == plat.settings()["limits"]["group"] for g in group)
    plat.stop()
    assert not any(os.path.isdir(g) for g in group)
