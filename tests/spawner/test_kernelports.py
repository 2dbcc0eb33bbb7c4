"""Kernel ports come from outside the ephemeral range (labdeck.spawner.userserver.kernelports)."""

from __future__ import annotations

import subprocess
import sys

from jupyter_client.connect import LocalPortCache

from labdeck.hub.ports import _ephemeral_range
from labdeck.spawner.userserver import kernelports


def test_ports_are_outside_the_ephemeral_range_distinct_and_returnable():
    cache = kernelports.OutsideEphemeralPortCache()
    lo, hi = _ephemeral_range()
    ports = [cache.find_available_port("127.0.0.1") for _ in range(25)]
    assert len(set(ports)) == 25
    assert all(not lo <= p <= hi for p in ports), ports
    cache.return_port(ports[0])
    assert ports[0] not in cache.currently_used_ports


def test_installed_it_is_what_jupyter_client_asks_for_even_after_a_plain_instance():
    code = (
        "from jupyter_client.connect import LocalPortCache\n"
        "LocalPortCache.instance()\n"  # something made the plain one first
        "from labdeck.spawner.userserver import kernelports\n"
        "kernelports.install()\n"
        "print(type(LocalPortCache.instance()).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "OutsideEphemeralPortCache"


def test_a_kernel_manager_gets_its_ports_from_it():
    from jupyter_client.manager import KernelManager
    from jupyter_client.provisioning.local_provisioner import LocalProvisioner

    kernelports.install()
    try:
        km = KernelManager(kernel_name="python3")
        km.provisioner = LocalProvisioner(kernel_id="k", kernel_spec=km.kernel_spec, parent=km)
        import asyncio

        asyncio.run(km.provisioner.pre_launch())
        lo, hi = _ephemeral_range()
        ports = [km.shell_port, km.iopub_port, km.stdin_port, km.hb_port, km.control_port]
        assert all(p and not lo <= p <= hi for p in ports), ports
    finally:
        LocalPortCache.clear_instance()
