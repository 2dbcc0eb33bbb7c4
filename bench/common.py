"""Shared pieces of labdeck's benchmarks: the two systems, a user client, cleanup, tables.

Both systems run side by side in one process tree on 127.0.0.1 only:

- ``labdeck``: ``labdeck up`` in a temporary state directory (moto, proxy, hub, broker);
- ``vanilla``: ``jupyterhub -f bench/vanilla_config.py`` (same JupyterHub, same
  configurable-http-proxy, ``SimpleLocalProcessSpawner`` + ``DummyAuthenticator``).

Every process started here is remembered with all its descendants (user servers
run in their own sessions, so killing a process group is not enough) and
stopped by PID on exit, on failure and on Ctrl-C. Every wait has a deadline.
Passwords and tokens travel in the environment, form bodies and headers only.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vanilla_venv  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHP = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
RESULTS = ROOT / "bench" / "results"
SINGLEUSER = "jupyterhub-singleuser"


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
        from labdeck.spawner.osusers import system_username
    except ImportError:
        return
    for name in sorted(_PEOPLE):
        subprocess.run(["userdel", system_username(name)], capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import jupyterhub

    return {
        "nproc": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "cpu_model": model,
        "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "jupyterhub": jupyterhub.__version__,
        "python": sys.version.split()[0],
        "vanilla": {"venv": str(vanilla_venv.venv_dir()), "pins": vanilla_venv.PINS},
    }


# ------------------------------------------------------------------ processes

_STARTED: list["System"] = []
_LOCK = threading.Lock()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


def _kill_all(procs: list[psutil.Process], grace: float = 10) -> None:
    """SIGTERM, wait (bounded), then SIGKILL whatever is left: by PID only."""
    alive = []
    for p in procs:
        try:
            p.terminate()
            alive.append(p)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def cleanup_all() -> None:
    with _LOCK:
        systems = list(_STARTED)
    for s in systems:
        try:
            s.stop()
        except Exception as e:  # keep cleaning the others
            print(f"bench: cleanup of {s.name} failed: {e}", file=sys.stderr)
    remove_os_users()


def install_cleanup() -> None:
    """Stop everything we started on normal exit, on SIGTERM and on Ctrl-C."""
    atexit.register(cleanup_all)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)


class System:
    """A running hub (labdeck or vanilla) and everything it started."""

    name = ""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-"))
        # as root, labdeck runs each person's server as their own OS user: they must reach their homes
        os.chmod(self.tmp, 0o711)
        self.password = secrets.token_urlsafe(12)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._known: dict[int, psutil.Process] = {}
        self._stopped = False
        self.keep_logs: Path | None = None  # copy logs here before the temp dir goes
        self.experiments: list[str] = []

    # subclasses: start(), hub_pid(), hub_log()

    def remember(self) -> None:
        """Record every descendant now (user servers outlive their group; we still find them)."""
        if self.proc is None:
            return
        for p in _tree(self.proc.pid):
            self._known.setdefault(p.pid, p)

    def _popen(self, argv: list[str], env: dict, log: Path) -> None:
        with open(log, "wb") as f:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=str(self.tmp), stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with _LOCK:
            _STARTED.append(self)

    def wait_health(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                if requests.get(self.url + "/hub/health", timeout=2).status_code == 200 and self.ready_extra():
                    self.remember()
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not healthy after {timeout}s; log: {self.log_path}")

    def ready_extra(self) -> bool:
        return True

    def tree_cpu(self) -> float:
        """CPU seconds of everything this system runs now (supervisor, hub, proxy, servers…)."""
        total = 0.0
        for p in _tree(self.proc.pid) if self.proc else []:
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        return total

    def hub_process(self) -> psutil.Process:
        return psutil.Process(self.hub_pid())

    def hub_cpu(self) -> float:
        t = self.hub_process().cpu_times()
        return t.user + t.system

    db_path: Path | None = None

    def server_pid(self, username: str) -> int | None:
        """The user's server pid as the hub recorded it (LocalProcessSpawner state in the hub's sqlite)."""
        import sqlite3

        if self.db_path is None or not self.db_path.exists():
            return None
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            row = con.execute(
                "select s.state from spawners s join users u on s.user_id = u.id where u.name = ? and s.name = ''",
                (username,),
            ).fetchone()
        except sqlite3.Error:
            return None
        finally:
            con.close()
        if not row or not row[0]:
            return None
        state = json.loads(row[0]) if isinstance(row[0], str) else row[0]
        return state.get("pid") or None

    def server_process(self, username: str) -> psutil.Process | None:
        """The user's server process (a child of the hub, or of the warm pool's zygote)."""
        pid = self.server_pid(username)
        if not pid:
            return None
        try:
            return psutil.Process(pid)
        except psutil.Error:
            return None

    def stop(self) -> None:
        if self._stopped or self.proc is None:
            return
        self._stopped = True
        self.remember()
        try:
            self.graceful_stop()
        finally:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
            leftovers = [p for p in self._known.values() if p.is_running()]
            _kill_all(leftovers, grace=3)
            if self.keep_logs:
                self.keep_logs.mkdir(parents=True, exist_ok=True)
                for f in self.tmp.rglob("*.log"):
                    shutil.copy(f, self.keep_logs / f.name)
            shutil.rmtree(self.tmp, ignore_errors=True)
            with _LOCK:
                if self in _STARTED:
                    _STARTED.remove(self)

    def graceful_stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass


#: labdeck configurations, each turning on one more optimisation of issue 18 (README, Performance):
#: passed as an admin's values file (``hub.config`` pass-through), nothing else differs
VARIANTS = {
    # as before issue 18: cold Popen of jupyterhub-singleuser, the hub's polling back-off
    "before": {"warm_pool_size": 0, "wait_ready_in_start": False, "start_concurrency": 0,
               "cmd": ["jupyterhub-singleuser"]},
    # + start() waits on the server's own answer (no back-off)
    "ready": {"warm_pool_size": 0, "start_concurrency": 0, "cmd": ["jupyterhub-singleuser"]},
    # + no rfc3987_syntax grammar at import (labdeck-server): labdeck's cold start
    "cold": {"warm_pool_size": 0},
    # + the warm pool (the default)
    "warm": {},
}


class Labdeck(System):
    name = "labdeck"

    def __init__(self, variant: str = "warm"):
        if variant not in VARIANTS:
            raise SystemExit(f"unknown labdeck variant {variant!r}; one of {sorted(VARIANTS)}")
        self.variant = variant
        self.name = "labdeck" if variant == "warm" else f"labdeck-{variant}"
        super().__init__()

    def start(self) -> "Labdeck":
        self.state = self.tmp / "state"
        self.db_path = self.state / "jupyterhub.sqlite"
        self.log_path = self.tmp / "supervisor.log"
        values = self.tmp / "values.json"
        values.write_text(json.dumps({"hub": {"config": {"LabdeckLocalProcessSpawner": VARIANTS[self.variant]}}}))
        env = {
            **os.environ,
            "LABDECK_STATE_DIR": str(self.state),
            "LABDECK_PORT": str(self.port),
            "LABDECK_DEV_PASSWORD": self.password,
            "LABDECK_VALUES_FILE": str(values),
            **experiment_env(self.tmp, self.experiments),
        }
        self._popen([str(BIN / "labdeck"), "up"], env, self.log_path)
        self.wait_health()
        return self

    def ready_extra(self) -> bool:
        return "labdeck is running" in self.log_path.read_text(errors="replace")

    def settings(self) -> dict:
        return json.loads((self.state / "settings.json").read_text())

    def hub_pid(self) -> int:
        return int((self.state / "run" / "hub.pid").read_text().strip())

    def hub_log(self) -> str:
        return (self.state / "logs" / "hub.log").read_text(errors="replace")

    def broker_health(self) -> dict:
        s = self.settings()
        return requests.get(f"http://127.0.0.1:{s['broker_port']}/services/broker/health", timeout=10).json()

    def hook_ms(self, username: str) -> float | None:
        """labdeck's own start steps for this user, from the hub log (last start)."""
        found = re.findall(rf"labdeck start steps for {re.escape(username)} took (\d+) ms", self.hub_log())
        return float(found[-1]) if found else None


class Vanilla(System):
    name = "vanilla"

    def start(self) -> "Vanilla":
        self.log_path = self.tmp / "jupyterhub.log"
        self.db_path = self.tmp / "jupyterhub.sqlite"
        vbin = vanilla_venv.ensure()  # a clean `pip install jupyterhub jupyterlab`, its own venv
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")},
            "VIRTUAL_ENV": str(vbin.parent),
            "BENCH_VANILLA_DIR": str(self.tmp),
            "BENCH_VANILLA_PORT": str(self.port),
            "BENCH_VANILLA_HUB_PORT": str(free_port()),
            "BENCH_VANILLA_API_PORT": str(free_port()),
            "BENCH_VANILLA_PASSWORD": self.password,
            "BENCH_CHP": str(CHP),
            "PATH": f"{vbin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        }
        self._popen([str(vbin / "python"), "-m", "jupyterhub", "-f", str(ROOT / "bench" / "vanilla_config.py")], env, self.log_path)
        self.wait_health()
        return self

    def hub_pid(self) -> int:
        return self.proc.pid

    def hub_log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def hook_ms(self, username: str) -> float | None:
        return None


SYSTEMS = {"labdeck": Labdeck, "vanilla": Vanilla}


def make_system(name: str) -> System:
    """``vanilla``, ``labdeck`` (all optimisations) or ``labdeck-<variant>`` (see VARIANTS)."""
    if name == "vanilla":
        return Vanilla()
    if name == "labdeck":
        return Labdeck("warm")
    if name.startswith("labdeck-"):
        return Labdeck(name[len("labdeck-"):])
    raise SystemExit(f"unknown system {name!r}")

#: Opt-in *measurements* of fixes proposed to other parts of labdeck, injected
#: through a ``sitecustomize`` on PYTHONPATH (the supervisor passes PYTHONPATH to
#: the hub, the hub to user servers). They are not product code; they answer
#: "what would this change buy" in the same run. See README "Performance".
EXPERIMENTS = {
    # spawner/mixin.py: credential requests must not wait in the hub's shared
    # tornado HTTP client queue (10 at a time; queue time > 20 s fails the spawn)
    "http-clients": (
        "try:\n"
        "    from tornado.httpclient import AsyncHTTPClient\n"
        "    AsyncHTTPClient.configure(None, max_clients=256)\n"
        "except Exception:\n"
        "    pass\n"
    ),
}
#: images/: jsonschema imports rfc3987_syntax, which compiles an Earley grammar at
#: import (~1.4 CPU s of every server start); without it jsonschema skips only the "iri" format
LAZY_RFC3987_STUB = 'raise ImportError("rfc3987_syntax disabled by the lazy-rfc3987 bench experiment")\n'


def experiment_env(tmp: Path, names: list[str]) -> dict:
    if not names:
        return {}
    d = tmp / "experiments"
    d.mkdir(exist_ok=True)
    code = "".join(EXPERIMENTS[n] for n in names if n in EXPERIMENTS)
    (d / "sitecustomize.py").write_text(code)
    if "lazy-rfc3987" in names:
        (d / "rfc3987_syntax.py").write_text(LAZY_RFC3987_STUB)
    unknown = [n for n in names if n not in EXPERIMENTS and n != "lazy-rfc3987"]
    if unknown:
        raise SystemExit(f"unknown experiment(s): {unknown}")
    old = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(d) + (os.pathsep + old if old else "")}


# --------------------------------------------------------------------- client


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


# ---------------------------------------------------------------------- output


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, unit="", nd=2):
    if x is None:
        return "-"
    return f"{x:.{nd}f}{unit}"


def table(rows: list[list], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def write_json(out: Path, name: str, data) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps(data, indent=2))
    return path
