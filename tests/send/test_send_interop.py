"""Interop: our spead2 sends, the real spead2 4.5.1 receives, over UDP and TCP.

Our sender runs in this process exactly as a spead2 user would write it; the peer receiver
(``tests/peer/recv.py``, or ``recv_ports.py`` for several UDP ports) pushes every heap through
``spead2.ItemGroup.update`` and every value must equal the catalogue's (type, dtype, shape and
bytes). Statistics must equal those of the peer receiving the peer's own packets for the same
catalogue, which also shows that nothing was lost. UDP is rate-limited so loopback loses
nothing.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from util import jobs
from util.ours import import_ours
from util.peer import Peer
from util.ports import LOOPBACK_V4, LOOPBACK_V6, free_tcp_port, free_udp_port
from util.ports import ipv6_loopback_available as _ipv6
from util.reference import PeerReference
from util.send_catalogue import send_all_substreams
from util.send_peer import peer_receiving, peer_receiving_ports

UDP_RATE = 50e6
"""Bytes per second for UDP: far below what loopback carries, so nothing is lost."""
COMPARED_STATS = ("heaps", "packets", "single_packet_heaps")

needs_ipv6 = pytest.mark.skipif(not _ipv6(), reason="no IPv6 loopback on this host")


@pytest.fixture
def spead2() -> ModuleType:
    """Our spead2 with ``send`` imported."""
    return import_ours("send")


def item_group(spead2: ModuleType, bits: int) -> Any:
    return spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, bits, 0))


def assert_received(
    catalogue: ModuleType,
    peer_reference: PeerReference,
    received: Any,
    name: str,
    bits: int,
    packet_size: int = 1472,
    stop_heap_counted: bool = False,
) -> None:
    """Exact values, and the statistics of the peer receiving its own packets (a stream that
    does not stop on the stop heap counts it as a heap too)."""
    problems = catalogue.check_received(catalogue.build(name, bits), received)
    assert not problems, "\n".join(problems)
    reference = peer_reference.received(name, bits, packet_size)
    expected = dict(reference.stats)
    if stop_heap_counted:
        expected["heaps"] += 1
    for stat in COMPARED_STATS:
        assert received.stats[stat] == expected[stat], (
            f"{stat}: ours {received.stats}, peer's own {reference.stats}"
        )
    assert received.stats["incomplete_heaps_evicted"] == 0


def send_udp(
    spead2: ModuleType, catalogue: ModuleType, host: str, port: int, bits: int, size: int, name: str
) -> None:
    config = spead2.send.StreamConfig(max_packet_size=size, rate=UDP_RATE)
    stream = spead2.send.UdpStream(jobs.thread_pool(spead2), [(host, port)], config)
    catalogue.send_all(catalogue.build(name, bits), item_group(spead2, bits), stream)


@pytest.mark.parametrize(
    ("name", "bits", "packet_size"), [("full", 40, 1472), ("full", 48, 1472), ("full", 48, 9000)]
)
def test_udp_to_peer(
    spead2: ModuleType,
    catalogue: ModuleType,
    peer_reference: PeerReference,
    name: str,
    bits: int,
    packet_size: int,
) -> None:
    port = free_udp_port()
    with peer_receiving(peer_reference, "udp", LOOPBACK_V4, port) as result:
        send_udp(spead2, catalogue, LOOPBACK_V4, port, bits, packet_size, name)
        received = result()
    assert_received(catalogue, peer_reference, received, name, bits, packet_size)


@needs_ipv6
def test_udp_ipv6_to_peer(
    spead2: ModuleType, catalogue: ModuleType, peer_reference: PeerReference
) -> None:
    port = free_udp_port(LOOPBACK_V6)
    with peer_receiving(peer_reference, "udp", LOOPBACK_V6, port) as result:
        send_udp(spead2, catalogue, LOOPBACK_V6, port, 48, 1472, "small")
        received = result()
    assert_received(catalogue, peer_reference, received, "small", 48)


def test_udp_socket_form_to_peer(
    spead2: ModuleType, catalogue: ModuleType, peer_reference: PeerReference
) -> None:
    """``UdpStream(thread_pool, socket, endpoints, config)`` with a socket we bound."""
    port = free_udp_port()
    config = spead2.send.StreamConfig(rate=UDP_RATE)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        peer_receiving(peer_reference, "udp", LOOPBACK_V4, port) as result,
    ):
        sock.bind((LOOPBACK_V4, 0))
        stream = spead2.send.UdpStream(
            jobs.thread_pool(spead2), sock, [(LOOPBACK_V4, port)], config
        )
        catalogue.send_all(catalogue.build("small", 40), item_group(spead2, 40), stream)
        received = result()
    assert_received(catalogue, peer_reference, received, "small", 40)


def test_udp_interface_address_to_peer(
    spead2: ModuleType, catalogue: ModuleType, peer_reference: PeerReference
) -> None:
    """``UdpStream(thread_pool, endpoints, config, buffer_size, interface_address)``."""
    port = free_udp_port()
    config = spead2.send.StreamConfig(rate=UDP_RATE)
    with peer_receiving(peer_reference, "udp", LOOPBACK_V4, port) as result:
        stream = spead2.send.UdpStream(
            jobs.thread_pool(spead2), [(LOOPBACK_V4, port)], config, 1 << 20, LOOPBACK_V4
        )
        catalogue.send_all(catalogue.build("small", 48), item_group(spead2, 48), stream)
        received = result()
    assert_received(catalogue, peer_reference, received, "small", 48)


@pytest.mark.parametrize("bits", [40, 48])
def test_udp_substreams_to_peer(
    spead2: ModuleType,
    catalogue: ModuleType,
    peer: Peer,
    peer_reference: PeerReference,
    tmp_path: Path,
    bits: int,
) -> None:
    """One substream per port (3 ports); heap ``i`` goes to substream ``i % 3``; one peer
    stream with a reader on each port gets every heap, exact."""
    ports = [free_udp_port() for _ in range(3)]
    cat = catalogue.build("full", bits)
    expect = len(cat.heaps) + 2
    config = spead2.send.StreamConfig(rate=UDP_RATE)
    with peer_receiving_ports(peer, tmp_path, LOOPBACK_V4, ports, expect) as result:
        endpoints = [(LOOPBACK_V4, p) for p in ports]
        stream = spead2.send.UdpStream(jobs.thread_pool(spead2), endpoints, config)
        assert stream.num_substreams == 3
        sent = send_all_substreams(cat, item_group(spead2, bits), stream, 3)
        received, raw = result(catalogue)
    assert sent == expect
    assert sorted(raw["cnts_arrived"]) == list(range(1, expect + 1))
    assert raw["stop_heaps"] == 1
    assert_received(catalogue, peer_reference, received, "full", bits, stop_heap_counted=True)


@pytest.mark.parametrize("bits", [40, 48])
def test_tcp_to_peer(
    spead2: ModuleType, catalogue: ModuleType, peer_reference: PeerReference, bits: int
) -> None:
    """``TcpStream(thread_pool, endpoints, config)`` connects to the listening peer."""
    port = free_tcp_port()
    with peer_receiving(peer_reference, "tcp", LOOPBACK_V4, port) as result:
        config = spead2.send.StreamConfig(max_heaps=8)
        stream = spead2.send.TcpStream(jobs.thread_pool(spead2), [(LOOPBACK_V4, port)], config)
        catalogue.send_all(catalogue.build("full", bits), item_group(spead2, bits), stream)
        received = result()
    assert_received(catalogue, peer_reference, received, "full", bits)


def test_tcp_socket_to_peer(
    spead2: ModuleType, catalogue: ModuleType, peer_reference: PeerReference
) -> None:
    """``TcpStream(thread_pool, socket, config)`` from a socket we connected."""
    port = free_tcp_port()
    with peer_receiving(peer_reference, "tcp", LOOPBACK_V4, port) as result:
        with socket.create_connection((LOOPBACK_V4, port), timeout=10.0) as sock:
            sock.settimeout(None)
            stream = spead2.send.TcpStream(jobs.thread_pool(spead2), sock)
        catalogue.send_all(catalogue.build("small", 48), item_group(spead2, 48), stream)
        received = result()
    assert_received(catalogue, peer_reference, received, "small", 48)


def test_tcp_interface_address_to_peer(
    spead2: ModuleType, catalogue: ModuleType, peer_reference: PeerReference
) -> None:
    """``TcpStream(thread_pool, endpoints, config, buffer_size, interface_address)``."""
    port = free_tcp_port()
    with peer_receiving(peer_reference, "tcp", LOOPBACK_V4, port) as result:
        stream = spead2.send.TcpStream(
            jobs.thread_pool(spead2),
            [(LOOPBACK_V4, port)],
            spead2.send.StreamConfig(),
            buffer_size=1 << 20,
            interface_address=LOOPBACK_V4,
        )
        catalogue.send_all(catalogue.build("small", 40), item_group(spead2, 40), stream)
        received = result()
    assert_received(catalogue, peer_reference, received, "small", 40)
