"""Interop: the real spead2 4.5.1 sends, our spead2 receives, over every transport.

The peer (a subprocess in ``.venv-peer``) sends a catalogue of heaps (``tests/peer/catalogue.py``)
wrapped in start and stop heaps. Our stream is built exactly as a spead2 user would build it,
every heap goes through ``spead2.ItemGroup.update``, and every value must equal the catalogue's
exactly (type, dtype, shape and bytes). Statistics must equal what the real spead2 counts for
the same packets.

``test_peer_to_peer_*`` run the same flows with the peer on both ends: they prove the harness,
sender script and catalogue right, independently of our implementation.
"""

from __future__ import annotations

import asyncio
import socket
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from util.ours import import_ours
from util.peer import Peer
from util.ports import (
    LOOPBACK_V4,
    LOOPBACK_V6,
    free_tcp_port,
    free_udp_port,
    ipv6_loopback_available,
)
from util.receive import receive, receive_async
from util.reference import PeerReference

FLAVOURS = (40, 48)
UDP_RATE = 50e6
"""Peer send rate (bytes/s) for UDP: far below what loopback carries, so nothing is lost."""
RING_HEAPS = 16
"""More than a catalogue's heaps, so the worker never waits for the test to consume."""
PEER_TIMEOUT = 60.0
COMPARED_STATS = (
    "heaps",
    "packets",
    "incomplete_heaps_evicted",
    "incomplete_heaps_flushed",
    "single_packet_heaps",
)
"""Statistics with one right answer for a lossless stream (batching differs by design)."""

needs_ipv6 = pytest.mark.skipif(
    not ipv6_loopback_available(), reason="no IPv6 loopback on this host"
)


@pytest.fixture
def spead2() -> ModuleType:
    """Our spead2 (never the peer's), with ``recv`` and ``recv.asyncio`` imported."""
    return import_ours("recv", "recv.asyncio")


def send(peer: Peer, transport: str, port: int, bits: int, **options: Any) -> None:
    """Run the peer sender to completion."""
    args = ["--transport", transport, "--port", str(port), "--bits", str(bits)]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    peer.run("send.py", *args, timeout=PEER_TIMEOUT)


def make_stream(spead2: ModuleType, stream_class: Any = None) -> Any:
    """A ring stream the way spead2 users build one."""
    cls = stream_class or spead2.recv.Stream
    return cls(
        spead2.ThreadPool(),
        spead2.recv.StreamConfig(max_heaps=4),
        spead2.recv.RingStreamConfig(heaps=RING_HEAPS),
    )


def assert_matches(
    catalogue: ModuleType, received: Any, reference: Any, name: str, bits: int
) -> None:
    """Values equal the catalogue; statistics equal the real spead2's for the same packets."""
    problems = catalogue.check_received(catalogue.build(name, bits), received)
    assert not problems, "\n".join(problems)
    stats = received.stats
    assert stats["packets"] > 0
    assert stats["incomplete_heaps_evicted"] == 0
    assert stats["incomplete_heaps_flushed"] == 0
    for stat in COMPARED_STATS:
        assert stats[stat] == reference.stats[stat], f"{stat}: ours {stats} peer {reference.stats}"


def check_core_stat_attributes(stats: Any, expected: dict[str, int]) -> None:
    """The core statistics are also attributes and indexable by position."""
    from spead2.recv import stream_stat_indices

    assert stats.heaps == expected["heaps"]
    assert stats.packets == expected["packets"]
    assert stats[stream_stat_indices.HEAPS] == expected["heaps"]
    assert stats[stream_stat_indices.PACKETS] == expected["packets"]
    assert stats.incomplete_heaps_evicted == 0
    assert stats.incomplete_heaps_flushed == 0


# ---------------------------------------------------------------------------------------------
# Peer to peer: validates the harness (passes without our native core).


def _peer_to_peer(
    peer: Peer, peer_reference: PeerReference, transport: str, host: str, bits: int, **opts: Any
) -> Any:
    port = free_udp_port(host) if transport == "udp" else free_tcp_port(host)
    receiver, output = peer_reference.start_receiver(transport, host, port)
    with receiver:
        receiver.wait_ready()
        send(peer, transport, port, bits, host=host, **opts)
        receiver.finish(timeout=PEER_TIMEOUT)
    return peer_reference.load(output)


@pytest.mark.parametrize("bits", FLAVOURS)
def test_peer_to_peer_buffer(
    peer_reference: PeerReference, catalogue: ModuleType, bits: int
) -> None:
    received = peer_reference.received("full", bits)
    problems = catalogue.check_received(catalogue.build("full", bits), received)
    assert not problems, "\n".join(problems)
    # start heap + catalogue heaps; the stop heap is not counted
    assert received.stats["heaps"] == len(catalogue.build("full", bits).heaps) + 1
    assert received.stats["incomplete_heaps_evicted"] == 0


@pytest.mark.parametrize("bits", FLAVOURS)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_peer_to_peer_network(
    peer: Peer,
    peer_reference: PeerReference,
    catalogue: ModuleType,
    transport: str,
    bits: int,
) -> None:
    rate = {"rate": UDP_RATE} if transport == "udp" else {}
    received = _peer_to_peer(peer, peer_reference, transport, LOOPBACK_V4, bits, **rate)
    assert_matches(catalogue, received, peer_reference.received("full", bits), "full", bits)


@needs_ipv6
def test_peer_to_peer_udp_ipv6(
    peer: Peer, peer_reference: PeerReference, catalogue: ModuleType
) -> None:
    received = _peer_to_peer(peer, peer_reference, "udp", LOOPBACK_V6, 48, rate=UDP_RATE)
    assert_matches(catalogue, received, peer_reference.received("full", 48), "full", 48)


def test_catalogue_is_deterministic(catalogue: ModuleType) -> None:
    """Both sides rebuild the catalogue independently, so it must not vary between builds."""
    first, second = catalogue.build("full", 48), catalogue.build("full", 48)
    assert first.items == second.items
    for a, b in zip(first.heaps, second.heaps, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            spec = first.spec(name)
            mismatch = catalogue.value_mismatch(
                catalogue.expected_value(spec, a[name]), catalogue.expected_value(spec, b[name])
            )
            assert mismatch is None, f"{name}: {mismatch}"


def test_catalogue_checker_detects_differences(
    peer_reference: PeerReference, catalogue: ModuleType
) -> None:
    """The comparison is strict: byte order, types, shapes and descriptors all count."""
    cat = catalogue.build("full", 40)
    good = peer_reference.received("full", 40)
    tampered = catalogue.Received.from_plain(good.to_plain())
    values = dict(tampered.heaps[1].values)
    values["arr_u4_be"] = values["arr_u4_be"].astype(">u4")  # same numbers, wrong byte order
    values["imm_u8"] = int(values["imm_u8"])  # same number, wrong type
    values["str_var"] = values["str_var"].encode()
    values["fmt_u4"] = values["fmt_u4"].astype(np.int64)
    values["big_f4"] = values["big_f4"].copy()
    values["big_f4"][-1] = np.nextafter(values["big_f4"][-1], np.float32(np.inf))  # one ulp
    tampered.heaps[1].values = values
    del tampered.heaps[2].values["record"]
    tampered.descriptors = {
        **tampered.descriptors,
        "fortran_i4": {**tampered.descriptors["fortran_i4"], "order": "C"},
    }
    problems = catalogue.check_received(cat, tampered)
    needles = (
        "arr_u4_be",
        "imm_u8",
        "str_var",
        "fmt_u4",
        "big_f4",
        "heap 1: items",
        "fortran_i4.order",
    )
    for needle in needles:
        assert any(needle in p for p in problems), f"{needle} not reported: {problems}"


# ---------------------------------------------------------------------------------------------
# Real spead2 sends, ours receives (fail until the native core is built).


@pytest.mark.parametrize(("bits", "packet_size"), [(40, 1472), (48, 1472), (48, 8972)])
def test_udp(
    spead2: ModuleType,
    peer: Peer,
    peer_reference: PeerReference,
    catalogue: ModuleType,
    udp_port: int,
    bits: int,
    packet_size: int,
) -> None:
    stream = make_stream(spead2)
    stream.add_udp_reader(udp_port, max_size=9200, buffer_size=8 << 20, bind_hostname=LOOPBACK_V4)
    send(peer, "udp", udp_port, bits, rate=UDP_RATE, packet_size=packet_size)
    received = receive(stream, spead2.ItemGroup(), catalogue)
    reference = peer_reference.received("full", bits, packet_size)
    assert_matches(catalogue, received, reference, "full", bits)
    check_core_stat_attributes(stream.stats, reference.stats)


@pytest.mark.parametrize("bits", FLAVOURS)
def test_udp_socket(
    spead2: ModuleType,
    peer: Peer,
    peer_reference: PeerReference,
    catalogue: ModuleType,
    bits: int,
) -> None:
    """``add_udp_reader(socket)``: the stream dups the socket, so ours may be closed at once."""
    stream = make_stream(spead2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        # this overload keeps the caller's buffer size; make it hold the whole catalogue
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind((LOOPBACK_V4, 0))
        port = sock.getsockname()[1]
        stream.add_udp_reader(sock)
    send(peer, "udp", port, bits, rate=UDP_RATE)
    received = receive(stream, spead2.ItemGroup(), catalogue)
    assert_matches(catalogue, received, peer_reference.received("full", bits), "full", bits)


@needs_ipv6
@pytest.mark.parametrize("bits", FLAVOURS)
def test_udp_ipv6(
    spead2: ModuleType,
    peer: Peer,
    peer_reference: PeerReference,
    catalogue: ModuleType,
    bits: int,
) -> None:
    port = free_udp_port(LOOPBACK_V6)
    stream = make_stream(spead2)
    stream.add_udp_reader(port, bind_hostname=LOOPBACK_V6)
    send(peer, "udp", port, bits, host=LOOPBACK_V6, rate=UDP_RATE)
    received = receive(stream, spead2.ItemGroup(), catalogue)
    assert_matches(catalogue, received, peer_reference.received("full", bits), "full", bits)


@pytest.mark.parametrize("bits", FLAVOURS)
def test_tcp(
    spead2: ModuleType,
    peer: Peer,
    peer_reference: PeerReference,
    catalogue: ModuleType,
    tcp_port: int,
    bits: int,
) -> None:
    stream = make_stream(spead2)
    stream.add_tcp_reader(tcp_port, bind_hostname=LOOPBACK_V4)
    send(peer, "tcp", tcp_port, bits)
    received = receive(stream, spead2.ItemGroup(), catalogue)
    reference = peer_reference.received("full", bits)
    assert_matches(catalogue, received, reference, "full", bits)
    check_core_stat_attributes(stream.stats, reference.stats)


def test_tcp_acceptor(
    spead2: ModuleType, peer: Peer, peer_reference: PeerReference, catalogue: ModuleType
) -> None:
    """``add_tcp_reader(acceptor)`` with a listening socket made by the caller."""
    stream = make_stream(spead2)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as acceptor:
        acceptor.bind((LOOPBACK_V4, 0))
        acceptor.listen(1)
        port = acceptor.getsockname()[1]
        stream.add_tcp_reader(acceptor)
        send(peer, "tcp", port, 48, packet_size=8872)
    received = receive(stream, spead2.ItemGroup(), catalogue)
    assert_matches(catalogue, received, peer_reference.received("full", 48, 8872), "full", 48)


@pytest.mark.parametrize("bits", FLAVOURS)
@pytest.mark.parametrize("container", ["bytes", "ndarray"])
def test_buffer(
    spead2: ModuleType,
    peer_reference: PeerReference,
    catalogue: ModuleType,
    bits: int,
    container: str,
) -> None:
    data: Any = peer_reference.stream_bytes("full", bits).read_bytes()
    if container == "ndarray":
        data = np.frombuffer(data, dtype=np.uint8)
    stream = make_stream(spead2)
    stream.add_buffer_reader(data)
    received = receive(stream, spead2.ItemGroup(), catalogue)
    reference = peer_reference.received("full", bits)
    assert_matches(catalogue, received, reference, "full", bits)
    check_core_stat_attributes(stream.stats, reference.stats)


@pytest.mark.parametrize("bits", FLAVOURS)
async def test_asyncio_udp(
    spead2: ModuleType,
    peer: Peer,
    peer_reference: PeerReference,
    catalogue: ModuleType,
    udp_port: int,
    bits: int,
) -> None:
    """``async for`` over ``spead2.recv.asyncio.Stream`` while the peer is still sending."""
    stream = make_stream(spead2, spead2.recv.asyncio.Stream)
    stream.add_udp_reader(udp_port, bind_hostname=LOOPBACK_V4)
    sender = asyncio.create_task(
        asyncio.to_thread(send, peer, "udp", udp_port, bits, rate=UDP_RATE / 4)
    )
    try:
        received = await receive_async(stream, spead2.ItemGroup(), catalogue)
    finally:
        await sender
    assert_matches(catalogue, received, peer_reference.received("full", bits), "full", bits)


@pytest.mark.parametrize("transport", ["udp", "tcp", "buffer"])
def test_small_streams_in_sequence(
    spead2: ModuleType,
    peer: Peer,
    peer_reference: PeerReference,
    catalogue: ModuleType,
    transport: str,
) -> None:
    """One ItemGroup per stream, several streams in one process: nothing leaks between them."""
    for bits in FLAVOURS:
        stream = make_stream(spead2)
        if transport == "buffer":
            stream.add_buffer_reader(peer_reference.stream_bytes("small", bits).read_bytes())
        elif transport == "udp":
            port = free_udp_port()
            stream.add_udp_reader(port, bind_hostname=LOOPBACK_V4)
            send(peer, "udp", port, bits, catalogue="small", rate=UDP_RATE)
        else:
            port = free_tcp_port()
            stream.add_tcp_reader(port, bind_hostname=LOOPBACK_V4)
            send(peer, "tcp", port, bits, catalogue="small")
        received = receive(stream, spead2.ItemGroup(), catalogue)
        reference = peer_reference.received("small", bits)
        assert_matches(catalogue, received, reference, "small", bits)
