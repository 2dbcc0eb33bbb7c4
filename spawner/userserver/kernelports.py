"""Kernel ports chosen outside the kernel's ephemeral port range.

jupyter_client picks a kernel's five TCP ports by binding port 0 and closing
the socket; the kernel binds them a moment later. Port 0 comes from the range
outgoing connections take their local ports from, and a busy server (its
activity reports, broker calls, the proxy's connections) opens many: one of
them can take a port in that moment, and the kernel dies with "Address already
in use" (seen with four people starting kernels at once, every restart of the
kernel hitting it again). The ports here come from outside that range, as
``labdeck up`` picks its own listening ports (:func:`labdeck.hub.ports.free_port`),
where only other listeners can meet them. Installed by :func:`install` in
every user server (:func:`labdeck.spawner.userserver.singleuser.run`).
"""

from __future__ import annotations

from jupyter_client.connect import LocalPortCache

from labdeck.hub.ports import free_port

TRIES = 100


class OutsideEphemeralPortCache(LocalPortCache):
    """jupyter_client's port cache, with ports from outside the ephemeral range (any free port as a last resort)."""

    def find_available_port(self, ip: str) -> int:
        for _ in range(TRIES):
            port = free_port(ip or "127.0.0.1")
            if port not in self.currently_used_ports:
                self.currently_used_ports.add(port)
                return port
        return super().find_available_port(ip)


def install() -> LocalPortCache:
    """Make :class:`OutsideEphemeralPortCache` the process's ``LocalPortCache.instance()``."""
    if LocalPortCache.initialized() and not isinstance(LocalPortCache.instance(), OutsideEphemeralPortCache):
        LocalPortCache.clear_instance()
    return OutsideEphemeralPortCache.instance()
