"""``labdeck run``: queue or schedule a notebook run through the ``runs`` service.

Examples::

    labdeck run analysis.ipynb -p day 2026-11-23 -p n 3
    labdeck run analysis.ipynb --profile jupyterlab --schedule "0 6 * * *"
    labdeck run analysis.ipynb --wait        # until it finishes; exit 1 unless it succeeded

The token comes from ``LABDECK_TOKEN`` or, inside a user server,
``JUPYTERHUB_API_TOKEN``; it is sent in the ``Authorization`` header only.
The service URL is ``LABDECK_RUNS_URL``, else ``LABDECK_URL`` (the public
hub URL) + ``/services/runs/``, else derived from ``JUPYTERHUB_PUBLIC_HUB_URL``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from labdeck.hub import contract

from .params import InvalidParameters, parse_cli_parameters

FINISHED = ("succeeded", "failed", "timed_out")


class ClientError(Exception):
    """A reason the command failed, for a person."""


def service_url(env) -> str:
    if env.get(contract.ENV_RUNS_URL):
        return env[contract.ENV_RUNS_URL].rstrip("/") + "/"
    base = env.get(contract.ENV_URL)
    if not base and env.get("JUPYTERHUB_PUBLIC_HUB_URL"):
        base = env["JUPYTERHUB_PUBLIC_HUB_URL"].rstrip("/").removesuffix("/hub")
    if not base:
        raise ClientError("Set LABDECK_URL to the hub's URL (e.g. http://127.0.0.1:8000) or LABDECK_RUNS_URL")
    return contract.service_url(base, contract.RUNS)


def token_from(env) -> str:
    token = env.get(contract.ENV_TOKEN) or env.get("JUPYTERHUB_API_TOKEN")
    if not token:
        raise ClientError("Set LABDECK_TOKEN to a JupyterHub API token (create one at /hub/token)")
    return token


def notebook_arg(path: str, home: Path) -> str:
    """A path given on the command line → a path relative to the home (absolute paths inside it are accepted)."""
    p = Path(path)
    if p.is_absolute():
        try:
            return str(p.resolve().relative_to(home.resolve()))
        except ValueError:
            raise ClientError(f"{path} is not inside your home ({home})") from None
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labdeck run", description="Run a notebook as a parameterized, recorded run.")
    parser.add_argument("notebook", help="notebook path relative to your home, e.g. reports/daily.ipynb")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"), default=[], help="a parameter (repeatable)")
    parser.add_argument("--profile", help="server profile to run in (default: the hub's default profile)")
    parser.add_argument("--schedule", metavar="CRON", help="create a schedule instead of running now (5-field cron, UTC)")
    parser.add_argument("--timeout", type=int, help="seconds before the run is stopped and recorded timed_out")
    parser.add_argument("--wait", action="store_true", help="wait for the run to finish and print its record")
    return parser


def main(argv=None, env=None) -> int:
    import requests

    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    try:
        params = parse_cli_parameters(args.parameter)
        url = service_url(env)
        headers = {"Authorization": f"token {token_from(env)}"}
        body = {"notebook": notebook_arg(args.notebook, Path(env.get("HOME") or Path.home())), "parameters": params}
        if args.profile:
            body["profile"] = args.profile
        if args.timeout is not None:
            body["timeout"] = args.timeout
        if args.schedule:
            body["cron"] = args.schedule
        endpoint = url + (contract.SCHEDULES_API_ROUTE if args.schedule else contract.RUNS_API_ROUTE)
        resp = requests.post(endpoint, json=body, headers=headers, timeout=30)
        if resp.status_code != 201:
            raise ClientError(_error(resp))
        record = resp.json()
        if args.wait and not args.schedule:
            record = _wait(requests, url + f"{contract.RUNS_API_ROUTE}/{record['id']}", headers)
        print(json.dumps(record, indent=2))
        if args.wait and not args.schedule and record.get("status") != "succeeded":
            return 1
        return 0
    except (ClientError, InvalidParameters) as e:
        print(f"labdeck run: {e}", file=sys.stderr)
        return 2
    except requests.RequestException as e:
        print(f"labdeck run: could not reach the runs service: {type(e).__name__}", file=sys.stderr)
        return 2


def _error(resp) -> str:
    try:
        return f"HTTP {resp.status_code}: {resp.json().get('error')}"
    except ValueError:
        return f"HTTP {resp.status_code}"


def _wait(requests, url: str, headers: dict, limit_s: float = 24 * 3600) -> dict:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        resp = requests.get(url, headers=headers, timeout=30)
        if resp.status_code != 200:
            raise ClientError(_error(resp))
        record = resp.json()
        if record.get("status") in FINISHED:
            return record
        time.sleep(1)
    raise ClientError("gave up waiting for the run")
