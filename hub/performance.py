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

The other half is priority. On a machine where 40 servers start at once, the
kernel's scheduler gives every runnable process the same share, so the hub,
the proxy, the credential broker and the AWS emulator - four processes that
every one of those 40 people waits on - would get 4/44 of the CPU. User
servers (and the kernels they start) therefore run with a lower priority
(``nice``) when ``server_nice`` is set: the platform stays responsive, the
total work is unchanged.

Settings keys (all optional): ``cpu_count``, ``spawn_cpu_seconds``,
``concurrent_spawn_limit``, ``http_timeout``, ``start_timeout``,
``credential_timeout``, ``server_nice``, ``singleuser_cmd``.
"""

from __future__ import annotations

import json
import math
import os
import sys

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
    uses in the embedded default. ``server_prefix`` (default: this Python's
    prefix, which the local spawner's servers share) is where they are installed.
    """
    prefix = settings.get("server_prefix") or sys.prefix
    node_roots = [os.path.join(prefix, "lib"), prefix, os.path.join(prefix, "share", "jupyter", "lab", "staging")]
    return [
        # The extension manager's default ("pypi") queries PyPI from every server;
        # the embedded default installs extensions through the image/venv, not the UI.
        "--LabApp.extension_manager=readonly",
        # No announcements feed fetch from jupyterlab.github.io (None turns it off).
        "--LabApp.news_url=None",
        # No "is there a newer JupyterLab" request from every server: versions are pinned.
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        # jupyter-lsp computes where node-based language servers may live by running
        # `npm prefix -g` (a node process) in every server. Name the roots it would
        # search anyway - the environment's own - so servers installed there are still found.
        f"--LanguageServerManager.node_roots={json.dumps(node_roots)}",
        # jupyter-lsp's detection at every start (entry points, an R start-up for the R server's
        # probe, twice: ~0.15 CPU s, the largest part of a warm start) is done once when the
        # environment is built; the servers found are in its conf.d (spawner/userserver/lspdetect.py)
        "--LanguageServerManager.autodetect=False",
    ]


def server_cmd(settings: dict) -> list[str]:
    """``Spawner.cmd``: jupyterhub-singleuser at a lower CPU priority (``nice`` execs it: same pid)."""
    cmd = settings.get("singleuser_cmd") or os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")
    # Off by default: measured in bench/spawn.py on a shared machine, nice 10 made
    # a single spawn ~30% slower whenever *other* programs were busy (the server
    # yields to all of them), a bad trade on a laptop. Worth turning on
    # (``server_nice: 10``) on a machine dedicated to a many-user demo.
    nice = int(settings.get("server_nice", 0))
    return ["nice", "-n", str(nice), cmd] if nice else [cmd]


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


    # The spawner asks the broker for credentials while the server starts. In a
    # storm those requests queue in the hub's HTTP client (tornado's simple
    # client runs 10 at a time and counts queueing time against the timeout)
    # and wait on a busy emulator: 30 s failed 35 of 40 spawns in bench/storm.py.
    # Waiting longer costs nothing - the server is still starting meanwhile.
    c.LabdeckSpawnerMixin.credential_timeout = float(settings.get("credential_timeout", c.Spawner.http_timeout))

    # Time for Spawner.start() to return: labdeck's start waits for that
    # credential request before returning, so it must outlast it.
    c.Spawner.start_timeout = settings.get("start_timeout", int(c.LabdeckSpawnerMixin.credential_timeout) + 30)

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

    if settings.get("server_nice"):
        c.Spawner.cmd = server_cmd(settings)
    c.Spawner.args = server_args(settings)
    return c
