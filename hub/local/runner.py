"""``labdeck up``: run the embedded default and watch it.

Starts, on 127.0.0.1 only, each in its own process group with its own log:
the local AWS endpoint (moto, seeded, IAM enforced), configurable-http-proxy,
the hub, and the credential broker. A component that dies is restarted
(the AWS emulator is re-seeded). SIGINT/SIGTERM stop user servers through the
hub API, then every component, and remove the pid files.

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
import time
import urllib.error
import urllib.request
from pathlib import Path

from .plan import ORDER as COMPONENT_ORDER
from .plan import Component, plan
from .settings import DEFAULT_GRANTS, SettingsError, broker_config, env_settings, kube_settings
from .settings import load_profiles_file as load_profiles_file  # noqa: F401 - kept importable here
from . import team
from .. import status
from .state import SECRET_NAMES, StateDir, state_dir

ROOT = Path(__file__).resolve().parents[2]

STOP_GRACE_S = 10
READY_TIMEOUT_S = 90
MAX_RESTARTS = 5
SupervisorError = SettingsError


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


def wait_http(url: str, timeout: float, ok=(200,), proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    context = loopback_tls_context(url)
    while time.monotonic() < deadline:
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
        time.sleep(0.2)
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
        self.generated_password = False

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

    def _after_start(self, comp: Component) -> None:
        if comp.ready_url:
            # an endpoint that answers 401 without a token is up
            wait_http(comp.ready_url, READY_TIMEOUT_S, ok=(200, 401), proc=comp.proc)
        if comp.name == "aws":
            from labdeck.emulators.aws import seed

            seed(
                self.settings["aws_endpoint"],
                self.settings["bucket"],
                self.settings["region"],
                str(self.state.secret_path("broker_aws_credentials")),
                viewer_credentials_file=str(self.state.secret_path("viewer_aws_credentials")),
            )

    def start_component(self, name: str) -> None:
        comp = self.components[name]
        self._spawn(comp)
        self._after_start(comp)

    def start_all(self) -> None:
        (self.state.run / "supervisor.pid").write_text(str(os.getpid()))
        for name in COMPONENT_ORDER:
            self.start_component(name)

    def _terminate(self, comp: Component, grace: float = STOP_GRACE_S) -> None:
        proc = comp.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        (self.state.run / f"{comp.name}.pid").unlink(missing_ok=True)
        comp.proc = None

    def stop_user_servers(self) -> None:
        """Ask the hub to stop every running user server (named ones too)."""
        s = self.settings
        api = f"http://127.0.0.1:{s['hub_port']}/hub/api"
        headers = {"Authorization": f"token {self.state.read_secret('supervisor_token')}"}
        try:
            req = urllib.request.Request(f"{api}/users?state=active", headers=headers)
            with urllib.request.urlopen(req, timeout=10) as resp:
                users = json.loads(resp.read())
        except (OSError, ValueError):
            return
        pending = []
        for user in users:
            for server_name in (user.get("servers") or {}):
                path = f"{api}/users/{user['name']}/servers/{server_name}" if server_name else f"{api}/users/{user['name']}/server"
                try:
                    req = urllib.request.Request(path, method="DELETE", headers=headers)
                    urllib.request.urlopen(req, timeout=10).close()
                    pending.append(user["name"])
                except OSError:
                    pass
        deadline = time.monotonic() + 20
        while pending and time.monotonic() < deadline:
            try:
                req = urllib.request.Request(f"{api}/users?state=active", headers=headers)
                with urllib.request.urlopen(req, timeout=5) as resp:
                    if not json.loads(resp.read()):
                        return
            except (OSError, ValueError):
                return
            time.sleep(0.3)

    def stop_all(self) -> None:
        self.stopping = True
        hub = self.components.get("hub")
        if hub and hub.proc and hub.proc.poll() is None:
            self.stop_user_servers()
        for name in reversed(COMPONENT_ORDER):
            if name in self.components:
                self._terminate(self.components[name])
        (self.state.run / "supervisor.pid").unlink(missing_ok=True)

    def watch_once(self) -> None:
        """Restart any component that died (bounded: MAX_RESTARTS per minute)."""
        for name in COMPONENT_ORDER:
            comp = self.components[name]
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

    def banner(self) -> str:
        s = self.settings
        from .values import local_public_url

        lines = [
            "",
            f"  labdeck is running: {local_public_url(s)}",
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
            "  Press Ctrl-C to stop everything.",
            "",
        ]
        return "\n".join(lines)

    def run(self) -> int:
        stop = {"flag": False}

        def on_signal(signum, frame):
            stop["flag"] = True

        old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.prepare()
            self.build_components()
            self.start_all()
            print(self.banner(), flush=True)
            while not stop["flag"]:
                self.watch_once()
                time.sleep(0.5)
            print("labdeck: stopping...", flush=True)
            return 0
        except SupervisorError as e:
            print(f"labdeck: {e}", file=sys.stderr, flush=True)
            return 1
        finally:
            self.stop_all()
            for sig, handler in old.items():
                signal.signal(sig, handler)
            print("labdeck: stopped", flush=True)
