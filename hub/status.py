"""``labdeck status``: the embedded default at a glance, in a terminal.

Reads the state directory (``$LABDECK_STATE_DIR`` or ``.labdeck/``): which
components run (pid files) and answer their health URL, the running servers
(hub REST API) and the key figures from the hub's and the services'
Prometheus metrics: credential issuances, their latency and errors, the
broker's cache hit ratio, runs by status, schedules and shares. It asks with
the runner's own token (``secrets/supervisor_token``, role with
``read:metrics``), in a header, on 127.0.0.1 only; nothing secret is printed.

:func:`figures` and :func:`render` are pure (metrics text in, lines out);
:func:`collect` does the I/O.
"""

from __future__ import annotations

import json
import math
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from . import contract
from .local.plan import ORDER
from .local.state import StateDir, state_dir

TIMEOUT_S = 3


@dataclass
class Component:
    name: str
    pid: int | None
    alive: bool
    health: str  # "ok", "down", or "HTTP <code>" / a short reason


@dataclass
class Status:
    state_dir: str
    public_url: str
    components: list[Component]
    servers: list[str] | None  # "user" or "user/server"; None if the hub could not be asked
    figures: dict = field(default_factory=dict)
    #: services whose metrics could not be read, with why
    unread: dict = field(default_factory=dict)


# ------------------------------------------------------------------ pure part


def _samples(text: str) -> Iterable[tuple[str, dict, float]]:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            yield s.name, s.labels, s.value


def _sum(samples, name: str, **match) -> float:
    return sum(v for n, labels, v in samples if n == name and all(labels.get(k) == want for k, want in match.items()))


def quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """Upper bound of the bucket holding quantile ``q`` of a cumulative histogram (None when empty)."""
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return None
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return le
    return math.inf


def figures(metrics: Mapping[str, str]) -> dict:
    """The key figures from each service's metrics text (``hub``, ``broker``, ``runs``, ``viewer``)."""
    out: dict = {}
    if "hub" in metrics:
        s = list(_samples(metrics["hub"]))
        out["running_servers"] = int(_sum(s, "jupyterhub_running_servers"))
        out["spawns_ok"] = int(_sum(s, "jupyterhub_server_spawn_duration_seconds_count", status="success"))
        out["spawns_failed"] = int(_sum(s, "jupyterhub_server_spawn_duration_seconds_count")) - out["spawns_ok"]
        n, total = out["spawns_ok"], _sum(s, "jupyterhub_server_spawn_duration_seconds_sum", status="success")
        out["spawn_mean_s"] = total / n if n else None
    if "broker" in metrics:
        s = list(_samples(metrics["broker"]))
        ok = _sum(s, "labdeck_broker_credentials_issued_total", result="success")
        err = _sum(s, "labdeck_broker_credentials_issued_total", result="error")
        hits = _sum(s, "labdeck_broker_cache_hits_total")
        count = _sum(s, "labdeck_broker_issue_duration_seconds_count")
        buckets: dict[float, float] = {}
        for name, labels, value in s:
            if name == "labdeck_broker_issue_duration_seconds_bucket":
                le = float(labels["le"])
                buckets[le] = buckets.get(le, 0.0) + value
        errors = {}
        for name, labels, value in s:
            if name == "labdeck_broker_upstream_errors_total" and value:
                key = f"{labels['provider']} {labels['kind']}"
                errors[key] = errors.get(key, 0) + int(value)
        out.update(
            issued=int(ok),
            issue_errors=int(err),
            issue_mean_s=_sum(s, "labdeck_broker_issue_duration_seconds_sum") / count if count else None,
            issue_p95_le_s=quantile(buckets, 0.95),
            cache_hits=int(hits),
            cache_hit_ratio=hits / (hits + ok + err) if hits + ok + err else None,
            upstream_errors=errors,
        )
    if "runs" in metrics:
        s = list(_samples(metrics["runs"]))
        out["runs"] = {labels["status"]: int(v) for n, labels, v in s if n == "labdeck_runs_total"}
        out["runs_running"] = int(_sum(s, "labdeck_runs_running"))
        out["runs_queued"] = int(_sum(s, "labdeck_runs_queued"))
        out["schedules"] = {labels["state"]: int(v) for n, labels, v in s if n == "labdeck_schedules"}
        out["schedules_overdue"] = int(_sum(s, "labdeck_schedules_overdue"))
    if "viewer" in metrics:
        s = list(_samples(metrics["viewer"]))
        out["shares"] = {labels["kind"]: int(v) for n, labels, v in s if n == "labdeck_shares"}
        views = {}
        for name, labels, value in s:
            if name == "labdeck_viewer_views_total" and labels["kind"] == "share" and value:
                views[labels["result"]] = views.get(labels["result"], 0) + int(value)
        out["share_views"] = views
    return out


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "> 30 s"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _counts(d: Mapping[str, int]) -> str:
    return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in d.items()) or "none"


def render(st: Status) -> str:
    """The terminal text of ``labdeck status``."""
    lines = [f"labdeck: {st.public_url}   (state: {st.state_dir})", ""]
    lines.append(f"  {'component':<10} {'process':<16} health")
    for c in st.components:
        proc = f"pid {c.pid}" if c.alive else ("not running" if c.pid is None else f"pid {c.pid} gone")
        lines.append(f"  {c.name:<10} {proc:<16} {c.health}")
    lines.append("")
    if st.servers is None:
        lines.append("  Servers: unknown (the hub did not answer)")
    else:
        shown = ", ".join(st.servers[:10]) + (f", ... ({len(st.servers) - 10} more)" if len(st.servers) > 10 else "")
        lines.append(f"  Servers: {len(st.servers)} running" + (f" ({shown})" if st.servers else ""))
    f = st.figures
    if "spawns_ok" in f:
        lines.append(f"  Spawns: {f['spawns_ok']} succeeded, {f['spawns_failed']} failed; mean {_ms(f['spawn_mean_s'])}")
    if "issued" in f:
        ratio = "-" if f["cache_hit_ratio"] is None else f"{100 * f['cache_hit_ratio']:.0f}%"
        p95 = f["issue_p95_le_s"]
        p95 = "-" if p95 is None else (_ms(p95) if math.isinf(p95) else f"<= {_ms(p95)}")
        lines.append(
            f"  Credentials: {f['issued']} issued, {f['issue_errors']} failed; latency mean {_ms(f['issue_mean_s'])},"
            f" p95 {p95}; cache hits {f['cache_hits']} (hit ratio {ratio})"
        )
        lines.append(f"  Upstream errors: {_counts(f['upstream_errors'])}")
    if "runs" in f:
        lines.append(f"  Runs: {_counts(f['runs'])}; {f['runs_running']} executing, {f['runs_queued']} queued")
        lines.append(f"  Schedules: {_counts(f['schedules'])}; {f['schedules_overdue']} overdue")
    if "shares" in f:
        lines.append(f"  Shares: {_counts(f['shares'])} active; share views: {_counts(f['share_views'])}")
    for name, why in st.unread.items():
        lines.append(f"  ({name} metrics unavailable: {why})")
    return "\n".join(lines)


def banner_lines(s: Mapping) -> list[str]:
    """The lines of ``labdeck up``'s banner that name the metrics URLs (through the proxy) and this command."""
    public = f"{s.get('public_scheme', 'http')}://127.0.0.1:{s['public_port']}"
    urls = [f"{public}/hub/{contract.METRICS_ROUTE}"]
    urls += [
        f"{public}{contract.service_prefix(name)}{contract.METRICS_ROUTE}"
        for name in contract.LABDECK_SERVICES
        if name == contract.BROKER or s.get(f"{name}_port")
    ]
    return [
        "  Prometheus metrics (send a token with read:metrics, e.g. an admin's API token, in the Authorization header):",
        *(f"      {u}" for u in urls),
        "  At a glance: labdeck status",
    ]


# ------------------------------------------------------------------ I/O part


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except OSError as e:
        return 0, type(e).__name__.encode()


def _pid(state: StateDir, name: str) -> tuple[int | None, bool]:
    try:
        pid = int((state.run / f"{name}.pid").read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None, False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid, False
    except PermissionError:
        pass
    return pid, True


def health_urls(s: Mapping) -> dict[str, str]:
    """Each component's health URL on 127.0.0.1 (an answer of 200, or 401 for a token-only endpoint, is healthy)."""
    urls = {
        "aws": f"{s['aws_endpoint']}/moto-api/",
        "bigquery": f"{s['bq_endpoint']}/bigquery/v2/projects/{s.get('gcp_project', contract.LOCAL_GCP_PROJECT)}/datasets",
        "broker": f"http://127.0.0.1:{s['broker_port']}{contract.service_prefix(contract.BROKER)}{contract.HEALTH_ROUTE}",
        "proxy": f"http://127.0.0.1:{s['public_port']}/hub/health",
        "hub": f"http://127.0.0.1:{s['hub_port']}/hub/health",
    }
    for name in (contract.RUNS, contract.VIEWER):
        if s.get(f"{name}_port"):
            urls[name] = f"http://127.0.0.1:{s[name + '_port']}{contract.service_prefix(name)}{contract.HEALTH_ROUTE}"
    return urls


def metrics_urls(s: Mapping) -> dict[str, str]:
    urls = {"hub": f"http://127.0.0.1:{s['hub_port']}/hub/{contract.METRICS_ROUTE}"}
    for name in contract.LABDECK_SERVICES:
        if s.get(f"{name}_port"):
            urls[name] = f"http://127.0.0.1:{s[name + '_port']}{contract.service_prefix(name)}{contract.METRICS_ROUTE}"
    return urls


def collect(state: StateDir) -> Status:
    s = state.read_settings()
    token = state.read_secret("supervisor_token") if state.secret_path("supervisor_token").exists() else None
    components = []
    for name, url in health_urls(s).items():
        pid, alive = _pid(state, name)
        code, _ = _get(url)
        health = "ok" if code in (200, 401) else ("down" if code == 0 else f"HTTP {code}")
        components.append(Component(name, pid, alive, health))
    components.sort(key=lambda c: ORDER.index(c.name) if c.name in ORDER else len(ORDER))
    servers = None
    code, body = _get(f"http://127.0.0.1:{s['hub_port']}/hub/api/users?state=active", token)
    if code == 200:
        servers = []
        for user in json.loads(body):
            for server in sorted(user.get("servers") or {}):
                servers.append(f"{user['name']}/{server}" if server else user["name"])
    texts, unread = {}, {}
    for name, url in metrics_urls(s).items():
        code, body = _get(url, token)
        if code == 200:
            texts[name] = body.decode()
        else:
            unread[name] = "not answering" if code == 0 else f"HTTP {code}"
    public = f"{s.get('public_scheme', 'http')}://127.0.0.1:{s['public_port']}"
    return Status(str(state.root), public, components, servers, figures(texts), unread)


def main(env: Mapping | None = None) -> int:
    state = StateDir(state_dir(dict(os.environ if env is None else env)))
    if not state.settings_file.exists():
        print(f"labdeck: no embedded default in {state.root} (start it with `labdeck up` or `make up`)", file=sys.stderr)
        return 1
    st = collect(state)
    print(render(st))
    return 0 if all(c.alive and c.health == "ok" for c in st.components) else 1
