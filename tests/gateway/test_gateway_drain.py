"""Who drains a receive stream's ring: the event loop while it is free, the watchdog thread
while it is not, and the heaps stay in order either way."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from spead2_gateway import receiver
from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.config import parse_config
from spead2_gateway.hub import Envelope, Hub, Subscription
from spead2_gateway.receiver import ReceiveStream
from util.ports import free_udp_port

import spead2
import spead2.send

HEAP_SIZE = 1000


def open_stream(loop: asyncio.AbstractEventLoop, ring_heaps: int) -> tuple[ReceiveStream, int]:
    port = free_udp_port()
    text = (
        '[[receive.streams]]\nname = "s"\ntransport = "udp"\nhost = "127.0.0.1"\n'
        f"port = {port}\nring_heaps = {ring_heaps}\n"
    )
    config = parse_config(text, "t.toml")
    return ReceiveStream(config.receive[0], Hub("s", loop), 1 << 20), port


def send_heaps(port: int, first: int, count: int) -> None:
    """``count`` heaps whose one item holds their index (from ``first``), descriptors first."""
    stream = spead2.send.UdpStream(
        spead2.ThreadPool(1),
        [("127.0.0.1", port)],
        spead2.send.StreamConfig(rate=50e6, max_packet_size=1472),
    )
    ig = spead2.send.ItemGroup()
    ig.add_item(0x1000, "x", "", (HEAP_SIZE,), np.uint8)
    stream.send_heap(ig.get_heap(descriptors="all", data="none"))
    for i in range(first, first + count):
        ig["x"].value = np.full(HEAP_SIZE, i % 256, np.uint8)
        stream.send_heap(ig.get_heap(descriptors="none", data="all"))


def record_publishers(stream: ReceiveStream) -> list[tuple[str, int]]:
    """Wraps the hub's publish to note, per heap, the publishing thread and the heap's cnt."""
    calls: list[tuple[str, int]] = []
    publish = stream.hub.publish

    def recording(envelope: Envelope) -> None:
        calls.append((threading.current_thread().name, pb.Heap.FromString(envelope.header).cnt))
        publish(envelope)

    stream.hub.publish = recording  # type: ignore[method-assign]
    return calls


async def values(sub: Subscription, count: int) -> list[int]:
    """The first byte of item ``x`` of ``sub``'s next ``count`` heaps that carry it."""
    out: list[int] = []
    while len(out) < count:
        messages = await asyncio.wait_for(sub.next(), 10)
        heap = pb.Heap.FromString(b"".join(messages))
        out.extend(item.data[0] for item in heap.items if item.name == "x")
    return out


async def test_the_event_loop_drains_the_ring_while_it_is_free() -> None:
    loop = asyncio.get_running_loop()
    stream, port = open_stream(loop, ring_heaps=4)
    calls = record_publishers(stream)
    sub = stream.hub.subscribe(None, 1, False, 100, 1 << 30)
    stream.start()
    try:
        await asyncio.sleep(0.1)  # the loop has registered the ring's fd
        await asyncio.to_thread(send_heaps, port, 0, 20)
        assert await values(sub, 20) == list(range(20))
        threads = {name for name, _ in calls}
        assert threads == {threading.current_thread().name}, threads
        cnts = [cnt for _, cnt in calls]
        assert cnts == sorted(cnts) and len(cnts) == 21  # the descriptor heap, then 20
    finally:
        stream.stop()
        assert await asyncio.to_thread(stream.join, 5)


async def test_a_stalled_event_loop_does_not_stall_the_capture() -> None:
    loop = asyncio.get_running_loop()
    stream, port = open_stream(loop, ring_heaps=2)
    calls = record_publishers(stream)
    sub = stream.hub.subscribe(None, 1, False, 100, 1 << 30)
    stream.start()
    try:
        await asyncio.sleep(0.1)
        sender = threading.Thread(target=send_heaps, args=(port, 0, 40))
        # The loop now sleeps (as a callback doing blocking work would) while 40 heaps, 20
        # times the ring, arrive; the watchdog must publish every one of them meanwhile.
        sender.start()
        deadline = time.monotonic() + 10
        while stream.hub.published < 41 and time.monotonic() < deadline:
            time.sleep(0.01)
        sender.join()
        assert stream.hub.published == 41
        watchdog = f"spead2-gateway-recv-{stream.name}"
        assert {name for name, _ in calls} == {watchdog}
        assert await values(sub, 40) == list(range(40))
        stats = stream.stats()
        assert stats.counters["heaps"] == 41
        assert sum(stats.drops.values()) == 0
        assert stats.counters["incomplete_heaps_evicted"] == 0
        # Free again, the loop takes over.
        await asyncio.to_thread(send_heaps, port, 40, 5)
        assert await values(sub, 5) == list(range(40, 45))
        assert calls[-1][0] == threading.current_thread().name
    finally:
        stream.stop()
        assert await asyncio.to_thread(stream.join, 5)


async def test_stop_publishes_what_the_ring_still_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    # The watchdog does not look on its own here, and the loop is blocked while heaps
    # arrive: stop() must still have every one of them published.
    monkeypatch.setattr(receiver, "WATCHDOG_INTERVAL", 60.0)
    loop = asyncio.get_running_loop()
    stream, port = open_stream(loop, ring_heaps=64)
    sub = stream.hub.subscribe(None, 1, False, 100, 1 << 30)
    stream.start()
    await asyncio.sleep(0.1)
    send_heaps(port, 0, 10)
    time.sleep(0.2)
    assert stream.hub.published == 0
    stream.stop()
    assert await asyncio.to_thread(stream.join, 5)
    assert stream.hub.published == 11
    assert await values(sub, 10) == list(range(10))
