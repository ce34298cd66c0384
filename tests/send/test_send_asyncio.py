"""``spead2.send.asyncio``: our asyncio streams send to the real spead2 4.5.1, and refusals
and transport errors reach the futures as they do in spead2.

Sending: ``async_send_heap`` awaited heap by heap, many heaps in flight then ``async_flush``,
and ``async_send_heaps`` groups, over UDP (rate-limited) and TCP (``await TcpStream.connect``
and a connected socket); the peer checks every value. Errors: the probes of
``util.send_probes`` run with both implementations and compare by exception type and errno.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from util import jobs
from util.ours import import_ours
from util.peer import Peer
from util.ports import LOOPBACK_V4, free_tcp_port, free_udp_port
from util.reference import PeerReference
from util.send_catalogue import (
    SEND_TIMEOUT,
    async_send_all,
    async_send_group,
    async_send_pipelined,
)
from util.send_compare import error_kind, mismatches
from util.send_peer import peer_receiving, peer_receiving_ports

UDP_RATE = 50e6
"""Bytes per second for UDP: far below what loopback carries, so nothing is lost."""


@pytest.fixture
def spead2() -> ModuleType:
    """Our spead2 with ``send.asyncio`` imported."""
    return import_ours("send", "send.asyncio")


def item_group(spead2: ModuleType, bits: int) -> Any:
    return spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, bits, 0))


def assert_values(catalogue: ModuleType, received: Any, name: str, bits: int) -> None:
    problems = catalogue.check_received(catalogue.build(name, bits), received)
    assert not problems, "\n".join(problems)
    assert received.stats["incomplete_heaps_evicted"] == 0


@pytest.mark.parametrize("bits", [40, 48])
async def test_async_udp_to_peer(
    spead2: ModuleType, catalogue: ModuleType, peer_reference: PeerReference, bits: int
) -> None:
    """Each future resolves to the heap's size in bytes, and the peer gets every value."""
    port = free_udp_port()
    config = spead2.send.StreamConfig(rate=UDP_RATE)
    with peer_receiving(peer_reference, "udp", LOOPBACK_V4, port) as result:
        stream = spead2.send.asyncio.UdpStream(
            jobs.thread_pool(spead2), [(LOOPBACK_V4, port)], config
        )
        sizes = await async_send_all(
            catalogue.build("full", bits), item_group(spead2, bits), stream
        )
        await stream.async_flush()
        received = result()
    assert_values(catalogue, received, "full", bits)
    reference = peer_reference.received("full", bits)
    assert received.stats["packets"] == reference.stats["packets"]
    # The heaps' sizes add up to the length of the peer's own packets for the catalogue.
    assert sum(sizes) == peer_reference.stream_bytes("full", bits).stat().st_size


async def test_async_udp_pipelined_to_peer(
    spead2: ModuleType, catalogue: ModuleType, peer_reference: PeerReference
) -> None:
    """All heaps in flight at once, then ``async_flush``: every future is done by then."""
    port = free_udp_port()
    config = spead2.send.StreamConfig(rate=UDP_RATE, max_heaps=16)
    with peer_receiving(peer_reference, "udp", LOOPBACK_V4, port) as result:
        stream = spead2.send.asyncio.UdpStream(
            jobs.thread_pool(spead2), [(LOOPBACK_V4, port)], config
        )
        futures = await async_send_pipelined(
            catalogue.build("full", 48), item_group(spead2, 48), stream
        )
        assert all(f.done() for f in futures)
        assert all(f.result() > 0 for f in futures)
        received = result()
    assert_values(catalogue, received, "full", 48)


@pytest.mark.parametrize("mode", ["ROUND_ROBIN", "SERIAL"])
async def test_async_group_to_peer(
    spead2: ModuleType,
    catalogue: ModuleType,
    peer: Peer,
    peer_reference: PeerReference,
    tmp_path: Path,
    mode: str,
) -> None:
    """The catalogue heaps as one ``async_send_heaps`` group; the future gives the group's
    size; the peer (8 heap slots, so round robin never evicts) gets every value."""
    port = free_udp_port()
    cat = catalogue.build("full", 40)
    expect = len(cat.heaps) + 2
    config = spead2.send.StreamConfig(rate=UDP_RATE, max_heaps=8)
    with peer_receiving_ports(peer, tmp_path, LOOPBACK_V4, [port], expect, max_heaps=8) as result:
        stream = spead2.send.asyncio.UdpStream(
            jobs.thread_pool(spead2), [(LOOPBACK_V4, port)], config
        )
        group_mode = getattr(spead2.send.GroupMode, mode)
        sizes = await async_send_group(
            cat, item_group(spead2, 40), stream, group_mode, spead2.send.HeapReference
        )
        received, raw = result(catalogue)
    assert raw["stop_heaps"] == 1
    assert_values(catalogue, received, "full", 40)
    if mode == "SERIAL":
        assert raw["cnts_arrived"] == list(range(1, expect + 1))
    # The group's packets are those of the heaps sent one by one, in another order.
    assert sum(sizes) == peer_reference.stream_bytes("full", 40).stat().st_size


async def test_async_tcp_connect_to_peer(
    spead2: ModuleType, catalogue: ModuleType, peer_reference: PeerReference
) -> None:
    """``await TcpStream.connect(...)`` then awaited sends."""
    port = free_tcp_port()
    with peer_receiving(peer_reference, "tcp", LOOPBACK_V4, port) as result:
        stream = await asyncio.wait_for(
            spead2.send.asyncio.TcpStream.connect(
                jobs.thread_pool(spead2), [(LOOPBACK_V4, port)], spead2.send.StreamConfig()
            ),
            SEND_TIMEOUT,
        )
        await async_send_all(catalogue.build("full", 48), item_group(spead2, 48), stream)
        await stream.async_flush()
        received = result()
    assert_values(catalogue, received, "full", 48)


async def test_async_tcp_socket_to_peer(
    spead2: ModuleType, catalogue: ModuleType, peer_reference: PeerReference
) -> None:
    """``TcpStream(thread_pool, socket, config)`` from a socket we connected."""
    port = free_tcp_port()
    with peer_receiving(peer_reference, "tcp", LOOPBACK_V4, port) as result:
        with socket.create_connection((LOOPBACK_V4, port), timeout=10.0) as sock:
            sock.settimeout(None)
            stream = spead2.send.asyncio.TcpStream(
                jobs.thread_pool(spead2), sock, spead2.send.StreamConfig(max_heaps=16)
            )
        await async_send_pipelined(catalogue.build("small", 40), item_group(spead2, 40), stream)
        received = result()
    assert_values(catalogue, received, "small", 40)


# --------------------------------------------------------------------------- errors

PROBES = ("async_queue_full_probe", "async_transport_errors_probe", "async_lifetime_probe")


@pytest.fixture(scope="module")
def peer_probes(peer: Peer) -> dict[str, Any]:
    results = jobs.run_peer(peer.python, [(f"send_probes:{name}", {}) for name in PROBES])
    return dict(zip(PROBES, results, strict=True))


def run_probe(name: str) -> dict[str, Any]:
    """A probe with our spead2 (it runs its own event loop, so the calling test is sync)."""
    result = jobs.run_ours((f"send_probes:{name}", {}))
    assert "errno" in result or "error" not in result, f"probe crashed: {result}"
    return result


def test_async_queue_full(peer_probes: dict[str, Any]) -> None:
    """With max_heaps=1 and a slow rate, a second async_send_heap fails its future with
    BlockingIOError (EAGAIN), and so does a group larger than max_heaps; a bad cnt or
    substream and an empty group fail with EINVAL; none of these uses a cnt."""
    ours, theirs = run_probe("async_queue_full_probe"), peer_probes["async_queue_full_probe"]
    problems = mismatches(ours, theirs, sorted(theirs))
    assert not problems, "\n".join(problems)
    assert ours["first"] == {"ok": 20568}
    assert error_kind(ours["second"]) == ("BlockingIOError", errno.EAGAIN)
    assert error_kind(ours["group_too_big"]) == ("BlockingIOError", errno.EAGAIN)
    assert error_kind(ours["cnt_out_of_range"]) == ("OSError", errno.EINVAL)
    assert error_kind(ours["bad_substream"]) == ("OSError", errno.EINVAL)
    assert error_kind(ours["empty_group"]) == ("OSError", errno.EINVAL)
    assert ours["last_done_after_flush"] is True
    assert ours["received_cnts"] == [1, 2]


def test_async_transport_errors(peer_probes: dict[str, Any]) -> None:
    """EMSGSIZE and a stopped InprocQueue fail the future with the socket's errno, and a
    refused connect raises ConnectionRefusedError (ECONNREFUSED) from TcpStream.connect."""
    ours = run_probe("async_transport_errors_probe")
    theirs = peer_probes["async_transport_errors_probe"]
    problems = mismatches(ours, theirs, sorted(theirs))
    assert not problems, "\n".join(problems)
    assert error_kind(ours["too_long"]) == ("OSError", errno.EMSGSIZE)
    assert ours["after"] == {"ok": 51}
    assert error_kind(ours["stopped_queue"]) == ("OSError", errno.ECANCELED)
    assert error_kind(ours["refused"]) == ("ConnectionRefusedError", errno.ECONNREFUSED)


def test_async_heap_lifetime(peer_probes: dict[str, Any]) -> None:
    """A heap (and its item buffer) that only the stream refers to after async_send_heap
    stays alive until sent: every payload arrives intact."""
    ours, theirs = run_probe("async_lifetime_probe"), peer_probes["async_lifetime_probe"]
    problems = mismatches(ours, theirs, sorted(theirs))
    assert not problems, "\n".join(problems)
    assert ours["payloads"] == [[cnt, True] for cnt in range(1, 5)]
    assert ours["futures"] == [{"ok": 5168}] * 4
