"""The ``labdeck`` command: ``labdeck up``, ``labdeck status``, ``labdeck run`` and ``labdeck broker``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="labdeck", description="labdeck: JupyterHub for data teams")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the embedded default on 127.0.0.1 (state in $LABDECK_STATE_DIR or .labdeck/)")
    sub.add_parser("status", help="components, health, running servers and key figures of the embedded default in the state dir")
    broker = sub.add_parser("broker", help="run the credential broker service")
    broker.add_argument("--config", required=True, help="broker config file (.py or .json)")
    sub.add_parser("run", help="run or schedule a notebook (labdeck run NOTEBOOK -p key value ...; see labdeck run -h)", add_help=False)
    sub.add_parser("systemd-unit", help="print a systemd unit that runs labdeck up at boot (see labdeck systemd-unit -h)", add_help=False)
    if argv[:1] == ["run"]:
        from labdeck.runs.client import main as run_main

        return run_main(argv[1:])
    if argv[:1] == ["systemd-unit"]:
        from .local.systemd import main as unit_main

        return unit_main(argv[1:])
    args, rest = parser.parse_known_args(argv)
    if args.command == "up":
        from .local.runner import Supervisor

        return Supervisor().run()
    if args.command == "status":
        from .status import main as status_main

        return status_main()
    if args.command == "broker":
        from labdeck.credentials.app import main as broker_main

        broker_main([f"--config={args.config}", *rest])
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
