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
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from .plan import ORDER as COMPONENT_ORDER
from .plan import Component, plan
from .settings import DEFAULT_GRANTS, SettingsError, broker_config, env_settings, kube_settings
from .settings import load_profiles_file as load_profiles_file  # noqa: F401 - kept importable here
from . import proctree, team
from .. import status
from .state import SECRET_NAMES, StateDir, state_dir

ROOT = Path(__file__).resolve().parents[2]

STOP_GRACE_S = 10
#: a stop (Ctrl-C, SIGTERM, ``systemctl stop``) leaves nothing behind within this many seconds
STOP_BUDGET_S = 7
#: of which the hub gets this long to stop the user servers itself
STOP_SERVERS_S = 3
READY_TIMEOUT_S = 90
MAX_RESTARTS = 5
SupervisorError = SettingsError


class Stopping(Exception):
    """A stop was asked for while starting: stop what runs, start nothing more."""


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def loopback_tls_context(url: str):
    """For https to this machine's own proxy: its certificate names the public host, not 127.0.0.1.

    The connection never leaves loopback and carries no secret, so the name is not checked.
    """
    import ssl
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "https" or parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        return None
    return ssl._create_unverified_context()


def wait_http(url: str, timeout: float, ok=(200,), proc: subprocess.Popen | None = None, abort: threading.Event | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    context = loopback_tls_context(url)
    while time.monotonic() < deadline:
        if abort is not None and abort.is_set():
            raise Stopping()
        if proc is not None and proc.poll() is not None:
            raise SupervisorError(f"process exited with {proc.returncode} while waiting for {url}")
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                if resp.status in ok:
                    return
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return
            last = e
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise SupervisorError(f"{url} did not become ready within {timeout:.0f}s ({last})")


def stop_group(pid: int, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group led by ``pid``, SIGKILL it if it outlives ``grace``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


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
        return f"LABDECK_STATE_DIR={self.state.root}".encode() in environ

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

    def plan_ports(self, previous: dict) -> dict:
        public = int(self.env.get("LABDECK_PORT") or 8000)
        if not port_free(public):
            raise SupervisorError(
                f"Port {public} on 127.0.0.1 is in use. Stop what uses it, or choose another port with LABDECK_PORT=<port>."
            )
        ports = {"public_port": public}
        taken = {public}
        for key in ("hub_port", "proxy_api_port", "broker_port", "aws_port", "bq_port", "runs_port", "viewer_port"):
            want = previous.get(key)
            if want and want not in taken and port_free(want):
                ports[key] = want
            else:
                p = free_port()
                while p in taken:
                    p = free_port()
                ports[key] = p
            taken.add(ports[key])
        return ports

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
        ports = self.plan_ports(previous)
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
            self.remove_cgroups(settings)
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
        config = broker_config(settings, str(grants_file), str(self.state.secret_path("bigquery_key")))
        (self.state.root / "broker_config.json").write_text(json.dumps(config, indent=2))
        if settings.get("os_users"):
            team.secure_state_dir(self.state)
        return settings

    def base_env(self) -> dict:
        keep = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
        env = {k: self.env[k] for k in keep if k in self.env}
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        env["LABDECK_STATE_DIR"] = str(self.state.root)
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
            "broker_config": str(st.root / "broker_config.json"),
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
            self.wait_routes(comp.routes, READY_TIMEOUT_S, proc=comp.proc, abort=abort)
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

    def wait_routes(self, routes, timeout: float, proc=None, abort: threading.Event | None = None) -> None:
        """Wait until the proxy's routing table has every path in ``routes`` (asked on its API port)."""
        url = f"http://127.0.0.1:{self.settings['proxy_api_port']}/api/routes"
        headers = {"Authorization": f"token {self.state.read_secret('proxy_token')}"}
        want = {r.rstrip("/") for r in routes}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if abort is not None and abort.is_set():
                raise Stopping()
            if proc is not None and proc.poll() is not None:
                raise SupervisorError(f"process exited with {proc.returncode} while waiting for its routes")
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as resp:
                    have = {k.rstrip("/") for k in json.loads(resp.read())}
                if want <= have:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise SupervisorError(f"the proxy has no route for {', '.join(sorted(want))} after {timeout:.0f}s")

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

    def stop_user_servers(self, deadline: float) -> None:
        """Ask the hub to stop every running user server (named ones too), until ``deadline`` at most.

        The DELETEs go out at once; whatever has not stopped by the deadline
        is stopped by :meth:`stop_all`'s sweep of the process tree.
        """
        s = self.settings
        api = f"http://127.0.0.1:{s['hub_port']}/hub/api"
        headers = {"Authorization": f"token {self.state.read_secret('supervisor_token')}"}

        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())

        try:
            req = urllib.request.Request(f"{api}/users?state=active", headers=headers)
            with urllib.request.urlopen(req, timeout=min(2, remaining())) as resp:
                users = json.loads(resp.read())
        except (OSError, ValueError):
            return
        paths = []
        for user in users:
            for server_name in user.get("servers") or {}:
                paths.append(f"{api}/users/{user['name']}/servers/{server_name}" if server_name else f"{api}/users/{user['name']}/server")

        def delete(path: str) -> None:
            try:
                urllib.request.urlopen(urllib.request.Request(path, method="DELETE", headers=headers), timeout=remaining()).close()
            except OSError:
                pass

        threads = [threading.Thread(target=delete, args=(p,), daemon=True) for p in paths]
        for t in threads:
            t.start()
        while paths and time.monotonic() < deadline and not self.hard_stop:
            try:
                req = urllib.request.Request(f"{api}/users?state=active", headers=headers)
                with urllib.request.urlopen(req, timeout=min(2, remaining())) as resp:
                    if not json.loads(resp.read()):
                        return
            except (OSError, ValueError):
                return
            time.sleep(0.1)

    def stop_all(self) -> None:
        """Stop everything within :data:`STOP_BUDGET_S`: no process, no port, no pid file left.

        1. user servers through the hub API (so the hub records them stopped),
           for at most :data:`STOP_SERVERS_S`;
        2. SIGTERM to every component's process group at once;
        3. SIGTERM to every other descendant (servers, kernels, zygotes: this
           process is their subreaper, :mod:`labdeck.hub.local.proctree`);
        4. SIGKILL to whatever is left at the deadline, then reap.

        A second Ctrl-C (:attr:`hard_stop`) skips to SIGKILL at once.
        """
        self.stopping = True
        self._abort.set()
        t0 = time.monotonic()
        hub = self.components.get("hub")
        if not self.hard_stop and hub and hub.proc and hub.proc.poll() is None and self.hub_ready:
            self.stop_user_servers(t0 + STOP_SERVERS_S)
        procs = [c.proc for c in self.components.values() if c.proc is not None]
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL if self.hard_stop else signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
        term_sent: set[int] = set()
        deadline = t0 + STOP_BUDGET_S
        while time.monotonic() < deadline:
            for proc in procs:
                proc.poll()
            proctree.reap(keep=[p.pid for p in procs])
            left = proctree.living_descendants()
            if not left:
                break
            sig = signal.SIGKILL if self.hard_stop else signal.SIGTERM
            fresh = [p for p in left if p not in term_sent or sig == signal.SIGKILL]
            proctree.signal_all(fresh, sig)
            term_sent.update(fresh)
            time.sleep(0.05)
        # whatever outlived the budget: SIGKILL, until nothing is left
        for _ in range(100):
            left = proctree.living_descendants()
            if not left:
                break
            proctree.signal_all(left, signal.SIGKILL)
            time.sleep(0.02)
            for proc in procs:
                proc.poll()
            proctree.reap(keep=[p.pid for p in procs])
        for proc in procs:
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        proctree.reap()
        for comp in self.components.values():
            comp.proc = None
        self.after_stop()
        for pidfile in self.state.run.glob("*.pid"):
            pidfile.unlink(missing_ok=True)

    def after_stop(self) -> None:
        """Once every process is gone: remove the cgroups of user servers."""
        self.remove_cgroups(getattr(self, "settings", {}))

    @staticmethod
    def remove_cgroups(settings: dict) -> None:
        limits = settings.get("limits") or {}
        if limits.get("backend") not in ("v1", "v2"):
            return  # systemd removes a scope once it is empty
        from labdeck.spawner import cgroups

        try:
            cgroups.Cgroups(cgroups.detect(), limits["group"]).remove_all()
        except (cgroups.CgroupError, OSError) as e:
            print(f"labdeck: could not remove the servers' cgroups: {e}", file=sys.stderr, flush=True)

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
        """One line: when each component was started and ready, in seconds after ``labdeck up`` began."""
        parts = [
            f"{c.name} {c.started_at - self.t_start:.1f}->{c.ready_at - self.t_start:.1f}"
            for c in sorted(self.components.values(), key=lambda c: c.ready_at or 0)
            if c.started_at and c.ready_at
        ]
        return "labdeck: started (s after start -> ready): " + ", ".join(parts)

    def banner(self) -> str:
        s = self.settings
        from .values import local_public_url

        lines = [
            "",
            f"  labdeck is running: {local_public_url(s)}   (ready in {getattr(self, 'ready_after', 0):.1f} s)",
            "",
        ]
        if s.get("oidc"):
            lines += team.login_lines(s, local_public_url(s))
        else:
            lines.append("  Log in with any username (lowercase letters, digits, . _ @ -) and the password")
        if s.get("oidc"):
            pass
        elif self.generated_password:
            lines.append(f"      {self.password}")
            lines.append(f"  (generated once; stored in {self.state.secret_path('dev_password')}, mode 0600)")
        elif "LABDECK_DEV_PASSWORD" in self.env and self.env["LABDECK_DEV_PASSWORD"]:
            lines.append("      from LABDECK_DEV_PASSWORD")
        else:
            lines.append(f"      stored in {self.state.secret_path('dev_password')}")
        lines += [
            "",
            f"  State: {self.state.root}   Logs: {self.state.logs}",
            f"  Local S3/STS/IAM (moto): {s['aws_endpoint']}  bucket: {s['bucket']}",
            f"  Local BigQuery: {s['bq_endpoint']}  project: {s['gcp_project']}",
            f"  Grants (edit live): {self.state.root / 'grants.json'}",
            *status.banner_lines(s),
            *team.isolation_lines(s),
            *team.limits_lines(s),
            "  Press Ctrl-C to stop everything.",
            "",
        ]
        return "\n".join(lines)

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
