"""Spawn performance and reliability settings for the hub (embedded default).

Pure: settings in, ``Config`` out; merged by :func:`labdeck.hub.config.local_config`.
"""

from __future__ import annotations

from traitlets.config import Config


def performance_config(settings: dict) -> Config:
    """Timeouts and spawn limits; see bench/ for how they were chosen."""
    c = Config()
    c.JupyterHub.concurrent_spawn_limit = settings.get("concurrent_spawn_limit", 100)
    c.Spawner.http_timeout = settings.get("http_timeout", 60)
    c.Spawner.start_timeout = settings.get("start_timeout", 120)
    return c
