"""Run the local BigQuery endpoint.

``python -m labdeck.emulators.bigquery --port P --bind 127.0.0.1
--data-dir DIR --key-file FILE --project PROJECT [--seed]``

The key file holds the HMAC key shared with the local credential broker; it is
read, never printed. The data directory holds ``bigquery.duckdb`` and a private
``uploads/`` scratch directory. Prints one ``listening on`` line (with the real
port when ``--port 0``) and stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from labdeck.hub import contract
from .app import make_app
from .engine import Engine
from .seed import DEMO_DATASET, seed

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
MAX_BODY = 256 * 1024 * 1024


def read_key(path: str) -> bytes:
    """Read the shared HMAC key (surrounding whitespace stripped, at least 16 bytes)."""
    with open(path, "rb") as fh:
        key = fh.read().strip()
    if len(key) < 16:
        raise SystemExit(f"key file {path} must hold at least 16 bytes")
    return key


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m labdeck.emulators.bigquery",
                                     description="labdeck's local BigQuery REST endpoint")
    parser.add_argument("--port", type=int, default=9050, help="TCP port (0: pick a free one)")
    parser.add_argument("--bind", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--data-dir", required=True, help="directory for the DuckDB file")
    parser.add_argument("--key-file", required=True, help="file with the shared token key")
    parser.add_argument("--project", default=contract.LOCAL_GCP_PROJECT, help="the default project")
    parser.add_argument("--seed", action="store_true",
                        help=f"create the demo dataset {{project}}.{DEMO_DATASET} (idempotent)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Start the server and run until SIGINT/SIGTERM."""
    if args.bind not in LOOPBACK:
        raise SystemExit(f"--bind must be a loopback address, not {args.bind}")
    os.makedirs(args.data_dir, mode=0o700, exist_ok=True)
    key = read_key(args.key_file)
    engine = Engine(os.path.join(args.data_dir, "bigquery.duckdb"))
    if args.seed:
        counts = seed(engine, args.project)
        logging.getLogger("labdeck.bigquery").info("seeded %s.%s: %s", args.project, DEMO_DATASET, counts)
    app = make_app(engine, key, args.project, scratch_dir=os.path.join(args.data_dir, "uploads"))
    sockets = bind_sockets(args.port, address=args.bind)
    server = HTTPServer(app, max_body_size=MAX_BODY)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    print(f"labdeck local BigQuery listening on http://{args.bind}:{port} (project {args.project})",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    await server.close_all_connections()
    app.settings["bq_runner"].shutdown()
    app.settings["bq_executor"].shutdown(wait=True)
    engine.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
