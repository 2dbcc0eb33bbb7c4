"""Shared pieces of labdeck's benchmarks: the two systems and their cleanup (a person: people.py; tables: report.py).

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
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vanilla_venv  # noqa: E402
from people import remove_os_users  # noqa: E402
from labdeck.hub.local.waits import free_port  # noqa: E402 - outside the ephemeral port range
from procs import _kill_all, _tree  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHP = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
RESULTS = ROOT / "bench" / "results"
SINGLEUSER = "jupyterhub-singleuser"


# ------------------------------------------------------------------ processes

_STARTED: list["System"] = []
_LOCK = threading.Lock()


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
    # the warm pool without same-page merging (labdeck.spawner.local.pagemerge)
    "nomerge": {"page_merging": "off"},
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


