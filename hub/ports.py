"""Listening ports chosen outside the kernel's ephemeral range.

No labdeck imports: ``labdeck up`` (:mod:`labdeck.hub.local.waits`) and every
user server (:mod:`labdeck.spawner.userserver.kernelports`) use it.
"""

from __future__ import annotations

import random
import socket


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, chosen *outside* the kernel's ephemeral range.

    Port 0 would hand out a port from the range outgoing connections take their
    local ports from; on a busy machine one of those can take it between this
    check and the component's bind ("Address already in use"). Listening ports
    picked at random below (or above) that range meet only other listeners.
    """
    lo, hi = _ephemeral_range()
    spans = [(max(1024, lo - 12000), lo - 1), (hi + 1, 65535)]
    spans = [(a, b) for a, b in spans if b - a > 100]
    for _ in range(200):
        a, b = random.choice(spans) if spans else (1024, 65535)
        port = random.randint(a, b)
        if port_free(port, host):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a crowded machine: any free port
        s.bind((host, 0))
        return s.getsockname()[1]
