"""What ``labdeck up`` prints once the whole platform is ready: the start timings and the banner."""

from __future__ import annotations

from collections.abc import Iterable

from .. import status
from . import team
from .values import local_public_url


def timings(components: Iterable, t_start: float) -> str:
    """One line: when each component was started and ready, in seconds after ``labdeck up`` began."""
    parts = [
        f"{c.name} {c.started_at - t_start:.1f}->{c.ready_at - t_start:.1f}"
        for c in sorted(components, key=lambda c: c.ready_at or 0)
        if c.started_at and c.ready_at
    ]
    return "labdeck: started (s after start -> ready): " + ", ".join(parts)


def text(s: dict, state, env: dict, ready_after: float, generated_password: bool, password: str) -> str:
    """The banner: where to go, how to log in, where things are, what is not enforced."""
    lines = [
        "",
        f"  labdeck is running: {local_public_url(s)}   (ready in {ready_after:.1f} s)",
        "",
    ]
    if s.get("oidc"):
        lines += team.login_lines(s, local_public_url(s))
    else:
        lines.append("  Log in with any username (lowercase letters, digits, . _ @ -) and the password")
        if generated_password:
            lines.append(f"      {password}")
            lines.append(f"  (generated once; stored in {state.secret_path('dev_password')}, mode 0600)")
        elif env.get("LABDECK_DEV_PASSWORD"):
            lines.append("      from LABDECK_DEV_PASSWORD")
        else:
            lines.append(f"      stored in {state.secret_path('dev_password')}")
    lines += [
        "",
        f"  State: {state.root}   Logs: {state.logs}",
        f"  Local S3/STS/IAM (moto): {s['aws_endpoint']}  bucket: {s['bucket']}",
        f"  Local BigQuery: {s['bq_endpoint']}  project: {s['gcp_project']}",
        f"  Grants (edit live): {state.root / 'grants.json'}",
        *status.banner_lines(s),
        *team.isolation_lines(s),
        *team.limits_lines(s),
        "  Press Ctrl-C to stop everything.",
        "",
    ]
    return "\n".join(lines)
