"""Spawn performance and reliability settings for the hub (embedded default).

Pure: settings in, ``Config`` out; merged by :func:`labdeck.hub.config.local_config`.
The numbers come from ``bench/spawn.py`` and ``bench/storm.py`` (see README,
"Performance"); the comments say why each value is what it is.

The model behind the timeouts: starting a user server is CPU-bound (imports
and extension loading of jupyter-server/JupyterLab). When ``n`` servers start
at once on ``cores`` CPUs, each needs about ``n * spawn_cpu_seconds / cores``
seconds of wall time, and the last one cannot be ready sooner. A timeout
shorter than that turns a busy morning into failed spawns (what vanilla
JupyterHub does at 20 users on 2 cores: "never showed up after 30 seconds").
So the timeouts are derived from the largest storm the hub accepts
(``concurrent_spawn_limit``), the CPU cost of one start and the core count.

Settings keys (all optional): ``cpu_count``, ``spawn_cpu_seconds``,
``concurrent_spawn_limit``, ``http_timeout``, ``start_timeout``.
"""

from __future__ import annotations

import math
import os

from traitlets.config import Config

#: CPU seconds one JupyterLab server start costs (launch → answering /api),
#: measured by bench/storm.py's calibration on the 2-core benchmark machine
#: (~2.3-2.6 s there); rounded up so a slower machine is covered.
DEFAULT_SPAWN_CPU_SECONDS = 3.0

#: the largest number of spawns in flight the hub accepts; beyond it JupyterHub
#: answers 429 with Retry-After. Above the 40-user storm labdeck is tested with.
DEFAULT_CONCURRENT_SPAWN_LIMIT = 64


def _cores(settings: dict) -> int:
    return max(1, int(settings.get("cpu_count") or os.cpu_count() or 1))


def worst_case_start_seconds(settings: dict) -> float:
    """Wall seconds until the last of ``concurrent_spawn_limit`` simultaneous starts is up."""
    limit = settings.get("concurrent_spawn_limit", DEFAULT_CONCURRENT_SPAWN_LIMIT)
    cpu = settings.get("spawn_cpu_seconds", DEFAULT_SPAWN_CPU_SECONDS)
    return limit * cpu / _cores(settings)


def server_args(settings: dict) -> list[str]:
    """Extra ``Spawner.args``: jupyter-server/JupyterLab options that avoid work at every start.

    Each one removes something a user server would otherwise do (and, on a
    machine without internet, wait for) without taking away a feature a person
    uses in the embedded default.
    """
    return [
        # The extension manager's default ("pypi") queries PyPI from every server;
        # the embedded default installs extensions through the image/venv, not the UI.
        "--LabApp.extension_manager=readonly",
        # No announcements feed fetch from jupyterlab.github.io (None turns it off).
        "--LabApp.news_url=None",
        # No "is there a newer JupyterLab" request from every server: versions are pinned.
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    ]


def performance_config(settings: dict) -> Config:
    """Timeouts and spawn limits derived from load; see the module docstring."""
    c = Config()
    worst = worst_case_start_seconds(settings)

    # Queueing is JupyterHub's job only up to a point: over the limit a person
    # gets a 429 "try again in N seconds", which is an error page. The limit is
    # therefore above the largest storm we expect, and the timeouts below are
    # sized so that every spawn *within* the limit can finish.
    c.JupyterHub.concurrent_spawn_limit = settings.get("concurrent_spawn_limit", DEFAULT_CONCURRENT_SPAWN_LIMIT)

    # Time from the process being launched to it answering on /api. Vanilla's
    # 30 s is shorter than a 20-user storm on 2 cores takes; allow the worst
    # case within the limit, 1.5x for scheduling noise, plus one unloaded start.
    c.Spawner.http_timeout = settings.get("http_timeout", int(math.ceil(30 + 1.5 * worst)))

    # Time for Spawner.start() to return: home, files and the credential
    # request (the mixin's own credential_timeout is 30 s) happen before that,
    # on a busy broker and emulator too.
    c.Spawner.start_timeout = settings.get("start_timeout", 120)

    # The REST API answers 202 at once and the spawn continues in the
    # background; the person follows the progress stream. This also keeps API
    # spawns off the slow-spawn branch of BaseHandler.spawn_single_user, which in
    # JupyterHub 6.1.1 can call .exception() on an unfinished future and answer
    # 500 "InvalidStateError: Exception is not set" under load.
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}

    # A hub restart checks every running server before serving requests; do not
    # make people wait for more than a few seconds - checks continue in the background.
    c.JupyterHub.init_spawners_timeout = 5

    # Notice a dead server (crashed, OOM-killed) within ~10 s instead of 30 s;
    # a poll of a local process is one kill(pid, 0), cheap even for hundreds.
    c.Spawner.poll_interval = 10

    # Never let a burst of failed spawns on an overloaded machine stop the hub
    # (JupyterHub exits after this many consecutive failures when > 0).
    c.Spawner.consecutive_failure_limit = 0

    c.Spawner.args = server_args(settings)
    return c
