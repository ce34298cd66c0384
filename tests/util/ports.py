"""Free loopback ports and address helpers for tests.

A port found free can be taken by someone else before it is used; callers that bind it
themselves (rather than passing it to a subprocess) should prefer binding port 0 directly.
"""

from __future__ import annotations

import socket

LOOPBACK_V4 = "127.0.0.1"
LOOPBACK_V6 = "::1"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(kind: socket.SocketKind, host: str = LOOPBACK_V4) -> int:
    """A port number on ``host`` that nothing was bound to a moment ago."""
    with socket.socket(_family(host), kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_udp_port(host: str = LOOPBACK_V4) -> int:
    """A free UDP port on the loopback interface."""
    return free_port(socket.SOCK_DGRAM, host)


def free_tcp_port(host: str = LOOPBACK_V4) -> int:
    """A free TCP port on the loopback interface."""
    return free_port(socket.SOCK_STREAM, host)


def ipv6_loopback_available() -> bool:
    """True if UDP sockets can bind ``::1`` on this host."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind((LOOPBACK_V6, 0))
    except OSError:
        return False
    return True
