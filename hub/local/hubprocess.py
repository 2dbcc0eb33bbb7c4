"""The hub process of the embedded default: JupyterHub, warm from its first second.

``python -m labdeck.hub.local.hubprocess -f <config>`` runs :class:`LabdeckLocalHub`,
JupyterHub with three additions for ``labdeck up``:

- the user server's lazy imports (:mod:`labdeck.spawner.userserver.lazyimports`):
  JupyterHub imports ``jupyter_events`` → ``jsonschema`` → ``rfc3987_syntax``,
  which compiles a grammar at import time (~1 CPU s, the largest single cost
  of the hub's start); it is deferred to the first IRI validation, with the
  same answers;
- the warm pool starts with the hub (the spawner class's ``start_warm_pools``),
  not at the first login, and ``GET <hub>/labdeck/ready`` answers 200 only
  once it is warm (or has failed, or ``WARM_WAIT_S`` passed): ``labdeck up``
  waits on it before its banner, so the first person after a start gets a
  warm server. The answer holds no more than that;
- its sqlite database in write-ahead-log mode with ``synchronous=NORMAL``
  (:func:`tune_sqlite`): a commit no longer waits for the disk on the one
  thread that serves everyone (commits were a fifth of the hub's profile
  samples in a storm of 40; the storm's times did not measurably change). A crash of the machine can lose the last commits,
  never the database's consistency. The state directory is a local disk; the
  chart's hub keeps sqlite's defaults, as its database may be on a network
  volume, where WAL is unsafe. The database file (and so its WAL) is 0600.

The chart's hub image starts JupyterHub as usual (warm pods fill in the
background there: ``spawner/kube/podpool.py``).
"""

from __future__ import annotations

import json
import os
import time

#: the longest ``labdeck/ready`` waits for the warm pool after the hub's start
WARM_WAIT_S = 60
READY_PATH = "labdeck/ready"


def tune_sqlite(engine) -> None:
    """WAL and ``synchronous=NORMAL`` on every connection of ``engine`` (a sqlite file), from now on."""
    from sqlalchemy import event

    def pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections made before the listener reconnect with it


def hub_class():
    from jupyterhub.app import JupyterHub
    from jupyterhub.utils import url_path_join
    from tornado import web

    class ReadyHandler(web.RequestHandler):
        def initialize(self, app):
            self.app = app

        def get(self):
            pools = self.app.labdeck_pools
            waiting = pools is None or not all(p.settled for p in pools)
            self.set_header("Cache-Control", "no-store")
            if waiting and time.monotonic() < self.app.labdeck_deadline:
                self.set_status(503)
                self.finish(json.dumps({"ready": False, "waiting_for": "warm pool"}))
                return
            self.finish(json.dumps({"ready": True, "warm": bool(pools) and all(p.warm for p in pools)}))

    class LabdeckLocalHub(JupyterHub):
        labdeck_pools = None
        labdeck_deadline = float("inf")

        def init_db(self):
            super().init_db()
            if self.db_url.startswith("sqlite:///"):
                self.db.close()
                # the database holds every user's token hashes and server records: only the hub reads it
                # (sqlite gives its -wal and -shm files the database's mode)
                os.chmod(self.db_url[len("sqlite:///"):], 0o600)
                tune_sqlite(self.db.get_bind())

        def init_handlers(self):
            super().init_handlers()
            self.handlers.insert(0, (url_path_join(self.hub_prefix, READY_PATH), ReadyHandler, {"app": self}))

        async def initialize(self, *args, **kwargs):
            await super().initialize(*args, **kwargs)
            self.labdeck_deadline = time.monotonic() + WARM_WAIT_S
            start = getattr(self.spawner_class, "start_warm_pools", None)
            self.labdeck_pools = start(self.config, self.log) if start else []

    # logs and config read as JupyterHub's own (the log name is the class name)
    LabdeckLocalHub.__name__ = LabdeckLocalHub.__qualname__ = "JupyterHub"
    return LabdeckLocalHub


def main() -> None:
    from labdeck.spawner.userserver import lazyimports

    lazyimports.install()
    hub_class().launch_instance()


if __name__ == "__main__":
    main()
