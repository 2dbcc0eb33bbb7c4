"""``labdeck up``: run the embedded default and watch it.

Starts, on 127.0.0.1 only, each in its own process group with its own log,
the components of :func:`labdeck.hub.local.plan.plan` - each as soon as what
it needs is ready - and prints the banner once all of them are, routes
included. A component that dies is restarted (the AWS emulator is re-seeded).

Stopping: SIGINT/SIGTERM at any moment (during the start too) stop user
servers through the hub API, then every component, then every other process
below the runner (it is their subreaper, :mod:`labdeck.hub.local.proctree`),
all within :data:`STOP_BUDGET_S`, and remove the pid files; a second
SIGINT/SIGTERM kills everything at once.

Secrets reach children through their environment or 0600 files, never on a
command line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from labdeck.hub import contract
from .plan import ORDER as COMPONENT_ORDER
from .plan import Component, plan
from .settings import DEFAULT_GRANTS, SettingsError, env_settings, kube_settings
from . import banner, proctree, shutdown, team
from .state import SECRET_NAMES, StateDir, state_dir
from .waits import Stopping, pid_alive, plan_ports, stop_group, wait_http, wait_routes

ROOT = Path(__file__).resolve().parents[2]

#: a stop (Ctrl-C, SIGTERM, ``systemctl stop``) leaves nothing behind within this many seconds
STOP_BUDGET_S = 7
#: of which the hub gets this long to stop the user servers itself
STOP_SERVERS_S = 3
READY_TIMEOUT_S = 90
MAX_RESTARTS = 5
SupervisorError = SettingsError

class Supervisor:
    """See the module docstring."""

    def __init__(self, env: dict | None = None):
        self.env = dict(os.environ if env is None else env)
        self.state = StateDir(state_dir(self.env))
        self.components: dict[str, Component] = {}
        self.stopping = False
        #: a second stop request: kill everything now
        self.hard_stop = False
        #: the hub answered and its routes are in place (user servers are stopped through it)
        self.hub_ready = False
        self.generated_password = False
        #: set by the first stop request: every wait of the start ends
        self._abort = threading.Event()
        self._wake = threading.Event()

    # ------------------------------------------------------------ preparation

    def _ours(self, pid: int) -> bool:
        """True if ``pid`` is a component labdeck started for *this* state directory."""
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False
        return f"{contract.ENV_STATE_DIR}={self.state.root}".encode() in environ

    def check_not_running(self) -> None:
        """Refuse to start twice; after a crash, stop the orphaned components of the last run."""
        run = self.state.run
        if not run.exists():
            return
        sup = run / "supervisor.pid"
        try:
            sup_pid = int(sup.read_text().strip() or 0) if sup.exists() else 0
        except ValueError:
            sup_pid = 0
        if sup_pid and sup_pid != os.getpid() and pid_alive(sup_pid):
            raise SupervisorError(
                f"labdeck is already running from {self.state.root} (supervisor pid {sup_pid}); stop it with Ctrl-C or kill {sup_pid}"
            )
        for pidfile in run.glob("*.pid"):
            try:
                pid = int(pidfile.read_text().strip() or 0)
            except ValueError:
                pid = 0
            if pid and pid != os.getpid() and pid_alive(pid) and self._ours(pid):
                # a component orphaned by a crashed supervisor: stop its process group
                print(f"labdeck: stopping {pidfile.stem} (pid {pid}) left over from a previous run", file=sys.stderr, flush=True)
                stop_group(pid)
            pidfile.unlink(missing_ok=True)

    def prepare(self) -> dict:
        os_users = team.os_users_wanted(self.env, os.geteuid())
        if os_users:
            # everything the platform writes is root's alone (homes and the server env are opened up explicitly)
            os.umask(0o077)
        self.state.create()
        self.check_not_running()
        try:
            previous = self.state.read_settings()
        except (OSError, ValueError):
            previous = {}
        ports = plan_ports(self.env, previous)
        settings = {
            **ports,
            "state_dir": str(self.state.root),
            "aws_endpoint": f"http://127.0.0.1:{ports['aws_port']}",
            "bq_endpoint": f"http://127.0.0.1:{ports['bq_port']}",
            **env_settings(self.env),
        }
        if os_users and not settings.get("kube"):
            from .serverenv import ensure_server_env

            team.check_reachable_homes(self.state.root)
            settings["os_users"] = True
            settings["server_bin"] = ensure_server_env(self.state.root / "server-env", error=SupervisorError)
        if not settings.get("kube"):
            settings.update(team.limits_settings(self.env, os.geteuid(), self.state.root))
            # cgroups a crashed run left behind (its processes were stopped above)
            shutdown.remove_cgroups(settings)
        self.state.write_settings(settings)
        for name in SECRET_NAMES:
            self.state.ensure_secret(name)
        team.store_oidc_secret(self.state, self.env, settings)
        password = self.env.get("LABDECK_DEV_PASSWORD", "")
        if not password:
            path = self.state.secret_path("dev_password")
            if path.exists():
                password = self.state.read_secret("dev_password")
            if not password:
                password = self.state.ensure_secret("dev_password", nbytes=9)
                self.generated_password = True
        self.password = password
        self.settings = settings
        grants_file = self.state.root / "grants.json"
        if not grants_file.exists():
            grants_file.write_text(json.dumps(DEFAULT_GRANTS, indent=2))
        if settings.get("os_users"):
            team.secure_state_dir(self.state)
        return settings

    def base_env(self) -> dict:
        keep = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
        env = {k: self.env[k] for k in keep if k in self.env}
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        env[contract.ENV_STATE_DIR] = str(self.state.root)
        # never let the machine's own AWS identity leak into labdeck's processes
        env["AWS_CONFIG_FILE"] = os.devnull
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def find_chp(self) -> str:
        """configurable-http-proxy: ``LABDECK_CHP``, else the checkout's node_modules, else ``PATH``."""
        import shutil

        chp = self.env.get("LABDECK_CHP") or str(ROOT / "node_modules" / ".bin" / "configurable-http-proxy")
        if not os.path.exists(chp):
            chp = shutil.which("configurable-http-proxy", path=self.env.get("PATH")) or chp
        if not os.path.exists(chp):
            raise SupervisorError(f"configurable-http-proxy not found at {chp}; run `make up` (it installs it with npm) or set LABDECK_CHP")
        return chp

    def build_components(self) -> None:
        st = self.state
        secrets = {name: st.read_secret(name) for name in ("proxy_token", "broker_token", "runs_token", "viewer_token")}
        secrets["dev_password"] = self.password
        paths = {
            "state": str(st.root),
            "chp": self.find_chp(),
            "bigquery_data": str(st.emulators / "bigquery"),
            "bigquery_key": str(st.secret_path("bigquery_key")),
            "broker_aws_credentials": str(st.secret_path("broker_aws_credentials")),
            "viewer_aws_credentials": str(st.secret_path("viewer_aws_credentials")),
        }
        self.components = plan(self.settings, secrets, paths, self.base_env())

    def kube_settings(self) -> dict | None:
        return kube_settings(self.env)

    def kube_hub_env(self) -> dict:
        from .plan import kube_hub_env

        return kube_hub_env(self.settings)

    # -------------------------------------------------------------- processes

    def _spawn(self, comp: Component) -> None:
        log = open(self.state.logs / f"{comp.name}.log", "ab", buffering=0)
        comp.proc = subprocess.Popen(
            comp.argv,
            env=comp.env,
            cwd=str(self.state.root),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        (self.state.run / f"{comp.name}.pid").write_text(str(comp.proc.pid))

    def _after_start(self, comp: Component, abort: threading.Event | None = None) -> None:
        comp.started_at = time.monotonic()
        if comp.ready_url:
            # an endpoint that answers 401 or 403 without a token is up
            wait_http(comp.ready_url, READY_TIMEOUT_S, ok=(200, 401, 403), proc=comp.proc, abort=abort)
        if comp.routes:
            api = f"http://127.0.0.1:{self.settings['proxy_api_port']}/api/routes"
            wait_routes(api, self.state.read_secret("proxy_token"), comp.routes, READY_TIMEOUT_S, proc=comp.proc, abort=abort)
        if comp.name == "aws":
            from labdeck.emulators.aws import seed

            seed(
                self.settings["aws_endpoint"],
                self.settings["bucket"],
                self.settings["region"],
                str(self.state.secret_path("broker_aws_credentials")),
                viewer_credentials_file=str(self.state.secret_path("viewer_aws_credentials")),
            )
        comp.ready_at = time.monotonic()

    def start_component(self, name: str) -> None:
        """Start one component and wait until it is ready (a restart)."""
        comp = self.components[name]
        self._spawn(comp)
        self._after_start(comp, abort=self._abort)

    def start_all(self) -> None:
        """Start every component as soon as what it needs is ready; return when all are ready.

        Independent components start in parallel; each one's readiness is
        waited for in its own thread. A stop request (Ctrl-C, SIGTERM) ends
        the wait at once with :class:`Stopping`.
        """
        (self.state.run / "supervisor.pid").write_text(str(os.getpid()))
        ready: set[str] = set()
        errors: dict[str, BaseException] = {}
        threads: dict[str, threading.Thread] = {}
        lock = threading.Lock()

        def wait_ready(comp: Component) -> None:
            try:
                self._after_start(comp, abort=self._abort)
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                with lock:
                    errors[comp.name] = e
                return
            with lock:
                ready.add(comp.name)

        while True:
            if self._abort.is_set():
                raise Stopping()
            with lock:
                if errors:
                    name, error = next(iter(errors.items()))
                    if isinstance(error, Stopping):
                        raise error
                    raise SupervisorError(f"{name}: {error}") from None
                done = set(ready)
            if len(done) == len(self.components):
                return
            for name in COMPONENT_ORDER:
                comp = self.components.get(name)
                if comp is None or name in threads or not set(comp.needs) <= done | (set(comp.needs) - set(self.components)):
                    continue
                self._spawn(comp)
                threads[name] = threading.Thread(target=wait_ready, args=(comp,), name=f"ready-{name}", daemon=True)
                threads[name].start()
            self._wake.wait(0.02)
            self._wake.clear()

    def stop_all(self) -> None:
        """Stop everything within :data:`STOP_BUDGET_S`: no process, no port, no pid file left.

        User servers first, through the hub API (so the hub records them stopped), for at
        most :data:`STOP_SERVERS_S`; then every process (:func:`shutdown.stop_processes`).
        A second Ctrl-C (:attr:`hard_stop`) skips to SIGKILL at once.
        """
        self.stopping = True
        self._abort.set()
        t0 = time.monotonic()
        hub = self.components.get("hub")
        hard = lambda: self.hard_stop  # noqa: E731
        if not self.hard_stop and hub and hub.proc and hub.proc.poll() is None and self.hub_ready:
            api = f"http://127.0.0.1:{self.settings['hub_port']}/hub/api"
            shutdown.stop_user_servers(api, self.state.read_secret("supervisor_token"), t0 + STOP_SERVERS_S, hard)
        shutdown.stop_processes([c.proc for c in self.components.values() if c.proc is not None], hard, t0 + STOP_BUDGET_S)
        for comp in self.components.values():
            comp.proc = None
        self.after_stop()
        for pidfile in self.state.run.glob("*.pid"):
            pidfile.unlink(missing_ok=True)

    def after_stop(self) -> None:
        """Once every process is gone: remove the cgroups of user servers."""
        shutdown.remove_cgroups(getattr(self, "settings", {}))

    def watch_once(self) -> None:
        """Restart any component that died (bounded: MAX_RESTARTS per minute); collect exited orphans."""
        proctree.reap(keep=[c.proc.pid for c in self.components.values() if c.proc is not None])
        for name in COMPONENT_ORDER:
            comp = self.components.get(name)
            if comp is None:
                continue
            if self.stopping or comp.proc is None or comp.proc.poll() is None:
                continue
            code = comp.proc.returncode
            now = time.monotonic()
            comp.restarts = [t for t in comp.restarts if now - t < 60] + [now]
            if len(comp.restarts) > MAX_RESTARTS:
                raise SupervisorError(f"{name} keeps exiting (last exit code {code}); see {self.state.logs / (name + '.log')}")
            print(f"labdeck: {name} exited with {code}; restarting it", file=sys.stderr, flush=True)
            self.start_component(name)
            if name == "proxy":
                self.resync_routes()

    def resync_routes(self, timeout: float = 20) -> None:
        """A restarted proxy has an empty routing table: ask the hub to put every route back."""
        hub = self.components.get("hub")
        if not hub or not hub.proc or hub.proc.poll() is not None:
            return  # a hub that (re)starts syncs the routes itself
        url = f"http://127.0.0.1:{self.settings['hub_port']}/hub/api/proxy"
        headers = {"Authorization": f"token {self.state.read_secret('supervisor_token')}"}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b"", headers=headers), timeout=10).close()
                return
            except OSError:
                time.sleep(0.5)
        print("labdeck: could not re-sync the proxy's routes; restart labdeck if pages do not load", file=sys.stderr, flush=True)

    def timings(self) -> str:
        return banner.timings(self.components.values(), self.t_start)

    def banner(self) -> str:
        return banner.text(self.settings, self.state, self.env, getattr(self, "ready_after", 0), self.generated_password, self.password)

    def request_stop(self, signum=None, frame=None) -> None:
        """SIGINT/SIGTERM: the first stops cleanly (any waiting ends now), the second kills everything."""
        if self._abort.is_set():
            self.hard_stop = True
            if signum is not None:
                print("labdeck: stopping now (killing every process)...", flush=True)
        self._abort.set()
        self._wake.set()

    def run(self) -> int:
        old = {sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        # every process the platform starts stays below this one, even after its parent exits
        proctree.become_subreaper()
        self.t_start = time.monotonic()
        try:
            self.prepare()
            if self._abort.is_set():
                raise Stopping()
            self.build_components()
            self.start_all()
            self.hub_ready = True
            self.ready_after = time.monotonic() - self.t_start
            print(self.timings(), flush=True)
            print(self.banner(), flush=True)
            while not self._abort.is_set():
                self.watch_once()
                self._abort.wait(0.5)
            print("labdeck: stopping...", flush=True)
            return 0
        except Stopping:
            print("labdeck: stopping (start-up interrupted)...", flush=True)
            return 0
        except SupervisorError as e:
            print(f"labdeck: {e}", file=sys.stderr, flush=True)
            return 1
        finally:
            t0 = time.monotonic()
            self.stop_all()
            for sig, handler in old.items():
                signal.signal(sig, handler)
            print(f"labdeck: stopped ({time.monotonic() - t0:.1f} s)", flush=True)
