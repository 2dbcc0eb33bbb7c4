"""``labdeck systemd-unit``: a systemd unit that runs ``labdeck up`` on a team VM at boot.

Pure: :func:`render_unit` takes paths and returns the unit's text. Choices:

- ``Restart=on-failure``: a crash (or a component that keeps dying) restarts
  everything; a clean stop (``systemctl stop``) stays stopped.
- ``KillMode=mixed``: ``systemctl stop`` sends SIGTERM to the supervisor only,
  which stops the user servers through the hub, then every component and
  every other process below it (it is their subreaper; user servers in their
  own scopes included), within ``labdeck.hub.local.runner.STOP_BUDGET_S``;
  systemd then SIGKILLs whatever is still in the unit's cgroup.
  ``TimeoutStopSec=20`` leaves that stop twice its budget before systemd
  kills the supervisor itself (which leaves nothing either: the unit's
  cgroup holds every component).
- the state directory is outside the checkout (``/var/lib/labdeck``), given as
  ``LABDECK_STATE_DIR``; ``UMask=0077`` so nothing the platform writes is
  readable by the people's accounts (labdeck opens up only ``homes/``).
- settings such as ``LABDECK_OIDC_*``, ``LABDECK_PUBLIC_URL`` and ``LABDECK_TLS_*``
  come from an optional ``EnvironmentFile`` (keep it 0600: it may hold the OIDC
  client secret until the first start has stored it in ``secrets/``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class UnitError(ValueError):
    """The unit cannot be rendered as asked; the message is for an admin."""


def _check_path(name: str, value: str) -> str:
    if not os.path.isabs(value):
        raise UnitError(f"{name} must be an absolute path, not {value!r}")
    if any(c in value for c in "\n\r\0\"'\\%$ ") or any(ord(c) < 32 for c in value):
        raise UnitError(f"{name} must not contain spaces, quotes, '%', '$', backslashes or control characters")
    return os.path.normpath(value)


def render_unit(state_dir: str, labdeck: str, env_file: str = "/etc/labdeck/labdeck.env", checkout: Path | None = ROOT) -> str:
    """The unit file's text (see the module docstring)."""
    state_dir = _check_path("--state-dir", state_dir)
    labdeck = _check_path("--labdeck", labdeck)
    env_file = _check_path("--env-file", env_file)
    if checkout is not None:
        inside = Path(state_dir).resolve()
        if inside == checkout.resolve() or checkout.resolve() in inside.parents:
            raise UnitError(f"the state directory {state_dir} is inside the checkout {checkout}; use one outside it, e.g. /var/lib/labdeck")
    lines = [
        "[Unit]",
        "Description=labdeck: JupyterHub for data teams (labdeck up)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"Environment=LABDECK_STATE_DIR={state_dir}",
        f"EnvironmentFile=-{env_file}",
        f"ExecStart={labdeck} up",
        "Restart=on-failure",
        "RestartSec=5",
        "KillMode=mixed",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=20",
        "UMask=0077",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def default_labdeck() -> str:
    """The ``labdeck`` command of this installation."""
    here = Path(sys.executable).with_name("labdeck")
    return str(here) if here.exists() else (shutil.which("labdeck") or str(here))


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="labdeck systemd-unit", description="print a systemd unit that runs labdeck up at boot")
    parser.add_argument("--state-dir", default="/var/lib/labdeck", help="LABDECK_STATE_DIR of the service (outside the checkout)")
    parser.add_argument("--env-file", default="/etc/labdeck/labdeck.env", help="optional file of LABDECK_* settings (mode 0600)")
    parser.add_argument("--labdeck", default=default_labdeck(), help="path of the labdeck command")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render_unit(args.state_dir, args.labdeck, args.env_file))
    except UnitError as e:
        print(f"labdeck systemd-unit: {e}", file=sys.stderr)
        return 2
    return 0
