"""Which uid owns the other end of a loopback TCP connection (Linux ``/proc/net/tcp``).

An endpoint on a shared loopback (a team VM: everybody's processes reach
``127.0.0.1``) authenticates a request by the uid of the process that opened
the connection: the kernel lists every socket of the network namespace in
``/proc/net/tcp`` and ``/proc/net/tcp6`` with its owner's uid, so the client's
socket is the row whose local address is the request's peer address and whose
remote address is the endpoint's own. Nothing the client sends can change it.

:func:`parse_table` is pure (tested on sample text); :func:`peer_uid` reads the files.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def _decode(hexaddr: str) -> tuple[str, int]:
    """``0100007F:1F90`` → ``("127.0.0.1", 8080)`` (addresses are 32-bit words in host byte order)."""
    addr, port = hexaddr.split(":")
    raw = bytes.fromhex(addr)
    words = [raw[i : i + 4] for i in range(0, len(raw), 4)]
    packed = b"".join(struct.pack("=I", struct.unpack(">I", w)[0]) for w in words)
    ip = ipaddress.ip_address(packed)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(port, 16)


def parse_table(text: str) -> list[tuple[tuple[str, int], tuple[str, int], int]]:
    """Rows of a ``/proc/net/tcp{,6}`` text as ``(local, remote, uid)``."""
    rows = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            rows.append((_decode(fields[1]), _decode(fields[2]), int(fields[7])))
        except (ValueError, struct.error):
            continue
    return rows


def _normal(addr: tuple) -> tuple[str, int]:
    ip = ipaddress.ip_address(addr[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(addr[1])


def peer_uid(sock: socket.socket, tables=TABLES) -> int | None:
    """The uid owning the client end of ``sock`` (an accepted loopback connection), or None if unknown."""
    try:
        ours, theirs = _normal(sock.getsockname()), _normal(sock.getpeername())
    except OSError:
        return None
    for path in tables:
        try:
            with open(path) as f:
                rows = parse_table(f.read())
        except OSError:
            continue
        for local, remote, uid in rows:
            if local == theirs and remote == ours:
                return uid
    return None
