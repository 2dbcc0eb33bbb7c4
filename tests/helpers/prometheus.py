"""Debian's Prometheus and promtool for the tests (``make prometheus-deps`` installs them).

:func:`start_prometheus` runs a real Prometheus on a free 127.0.0.1 port with
its data in a temporary directory, bounded in time and retention, and
:class:`PrometheusServer` queries its HTTP API. Scrape tokens go into 0600
files (``authorization.credentials_file``), never into the config or argv.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers.platform import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def require(binary: str) -> str:
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is missing: run `make prometheus-deps` (installs Debian's prometheus package, which has promtool)")
    return binary


@dataclass
class PrometheusServer:
    url: str
    proc: subprocess.Popen
    log_path: Path

    def api(self, path: str, **params) -> dict:
        r = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def metric_names(self) -> set[str]:
        return set(self.api("label/__name__/values"))

    def targets(self) -> list[dict]:
        return self.api("targets")["activeTargets"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_prometheus(workdir: Path, jobs: list[dict], scrape_interval: str = "1s", timeout: float = 60) -> PrometheusServer:
    """Prometheus scraping ``jobs`` (``{"name", "target" "host:port", "path", "token"}``) until stopped."""
    require(PROMETHEUS)
    workdir.mkdir(parents=True, exist_ok=True)
    scrape_configs = []
    for job in jobs:
        token_file = workdir / f"{job['name']}.token"
        token_file.write_text(job["token"])
        token_file.chmod(0o600)
        scrape_configs.append({
            "job_name": job["name"],
            "metrics_path": job["path"],
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
            "static_configs": [{"targets": [job["target"]]}],
        })  # fmt: skip
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": scrape_interval}, "scrape_configs": scrape_configs}))
    port = free_port()
    log_path = workdir / "prometheus.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                "--storage.tsdb.retention.time=1h",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = PrometheusServer(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{server.url}/-/ready", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"prometheus not ready after {timeout}s:\n{log_path.read_text()[-3000:]}")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([require(PROMTOOL), *args], capture_output=True, text=True, cwd=cwd, timeout=120)
