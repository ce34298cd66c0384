"""Fan-out costs: item data is copied once per subscriber unless the received heap's memory
must be released at once, and loop wake-ups are coalesced."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

import numpy as np
from spead2_gateway import wire
from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.config import parse_config
from spead2_gateway.hub import Envelope, Hub, make_filter
from spead2_gateway.receiver import ReceiveStream

import spead2
import spead2.recv
import spead2.send

LIMIT = 1 << 20


def encoded(name: str, array: np.ndarray, item_id: int) -> wire.EncodedItem:
    meta = pb.Item(id=item_id, name=name, dtype=array.dtype.str, shape=array.shape)
    return wire.EncodedItem.from_proto(meta, memoryview(array).cast("B"))


def envelope(cnt: int) -> Envelope:
    data = np.full(100, cnt % 256, dtype=np.uint8)
    header = wire.encode_header(pb.Heap(stream="s", cnt=cnt))
    return Envelope(header, [encoded("data", data, 0x1000)], False, LIMIT)


class CountingLoop:
    """Forwards to a real loop, counting cross-thread wake-ups."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls = 0

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> Any:
        self.calls += 1
        return self.loop.call_soon_threadsafe(callback, *args)


def test_planned_bodies_reference_the_data_and_join_to_the_built_bytes() -> None:
    big = (np.arange(300_000, dtype=np.uint32) * 2654435761).astype("<u4")
    small = np.arange(5, dtype="<i2")
    items = [encoded("big", big, 0x1000), encoded("small", small, 0x1001)]
    header = wire.encode_header(pb.Heap(stream="s", cnt=7))
    for limit in (4096, 65536, LIMIT):
        plans = wire.plan_fragments(header, items, limit)
        # Planning copies nothing: the data pieces are views of the arrays' own memory.
        views = [p for f in plans for p in f.pieces if isinstance(p, memoryview)]
        assert views and all(v.obj is big or v.obj is small for v in views)
        assert sum(v.nbytes for v in views) == big.nbytes + small.nbytes
        built = wire.build_fragments(header, items, limit)
        prefix = wire.subscriber_prefix(3, 1)
        assert [f.join(prefix) for f in plans] == [prefix + b for b in built]
        assert [f.size for f in plans] == [len(b) for b in built]
        assert all(f.size <= limit for f in plans)


async def test_one_wake_serves_every_waiting_subscriber() -> None:
    hub = Hub("s", asyncio.get_running_loop())
    counting = CountingLoop(asyncio.get_running_loop())
    hub._loop = counting  # type: ignore[assignment]
    subs = [hub.subscribe(None, 1, False, depth=10, max_bytes=LIMIT) for _ in range(4)]
    waiting = [asyncio.ensure_future(sub.next()) for sub in subs]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waiting)
    thread = threading.Thread(target=hub.publish, args=(envelope(1),))
    thread.start()
    thread.join()
    got = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert [pb.Heap.FromString(m[0]).cnt for m in got] == [1, 1, 1, 1]
    assert counting.calls == 1


async def test_heaps_published_while_the_loop_is_busy_need_one_wake() -> None:
    hub = Hub("s", asyncio.get_running_loop())
    counting = CountingLoop(asyncio.get_running_loop())
    hub._loop = counting  # type: ignore[assignment]
    sub = hub.subscribe(None, 1, False, depth=100, max_bytes=LIMIT)
    waiting = asyncio.ensure_future(sub.next())
    await asyncio.sleep(0.01)
    for cnt in range(1, 11):  # the loop cannot run the wake callback in between
        hub.publish(envelope(cnt))
    assert counting.calls == 1
    first = await asyncio.wait_for(waiting, 5)
    rest = [await asyncio.wait_for(sub.next(), 5) for _ in range(9)]
    heaps = [pb.Heap.FromString(m[0]) for m in [first, *rest]]
    assert [(h.cnt, h.sequence) for h in heaps] == [(c, c) for c in range(1, 11)]
    # Waiting again after the queue drained needs (and gets) a new wake.
    waiting = asyncio.ensure_future(sub.next())
    await asyncio.sleep(0.01)
    hub.publish(envelope(11))
    assert pb.Heap.FromString((await asyncio.wait_for(waiting, 5))[0]).cnt == 11
    assert counting.calls == 2


def views(plans: list[wire.Fragment]) -> list[memoryview]:
    return [p for f in plans for p in f.pieces if isinstance(p, memoryview)]


def test_plans_keep_views_only_of_memory_they_mostly_use() -> None:
    big = np.arange(10_000, dtype=np.uint8)
    small = np.arange(4, dtype="<u2")
    items = [encoded("big", big, 0x1000), encoded("small", small, 0x1001)]
    header = wire.encode_header(pb.Heap(stream="s", cnt=1))
    heap_bytes = big.nbytes + small.nbytes
    env = Envelope(header, items, False, LIMIT, retained_bytes=heap_bytes)
    assert len(views(env.bodies(None))) == 2  # every item: the views are worth keeping
    assert len(views(env.bodies(make_filter(["big"], [])))) == 1
    # 8 bytes kept out of 10 kB received: copied out, so the heap can be released.
    only_small = env.bodies(make_filter(["small"], []))
    assert views(only_small) == []
    assert only_small[0].join(b"") == wire.build_fragments(header, items[1:], LIMIT)[0]
    pooled = Envelope(header, items, False, LIMIT, retained_bytes=math.inf)
    assert views(pooled.bodies(None)) == []
    assert [f.join(b"\x18\x01") for f in pooled.bodies(None)] == [
        f.join(b"\x18\x01") for f in env.bodies(None)
    ]


def heaps_from_memory(count: int, size: int) -> list[spead2.recv.Heap]:
    ig = spead2.send.ItemGroup()
    ig.add_item(0x1000, "payload", "", (size,), np.uint8, value=np.zeros(size, np.uint8))
    stream = spead2.send.BytesStream(spead2.ThreadPool(1), spead2.send.StreamConfig())
    stream.send_heap(ig.get_heap(descriptors="all", data="none"))
    for i in range(count):
        ig["payload"].value = np.full(size, i, np.uint8)
        stream.send_heap(ig.get_heap(descriptors="none", data="all"))
    recv = spead2.recv.Stream(
        spead2.ThreadPool(1), spead2.recv.StreamConfig(), spead2.recv.RingStreamConfig(heaps=64)
    )
    recv.add_buffer_reader(stream.getvalue())
    return list(recv)


async def test_memory_pool_heaps_are_copied_and_others_held() -> None:
    text = '[[receive.streams]]\nname = "s"\ntransport = "udp"\nport = 7148\n'
    pool = "[receive.streams.memory_pool]\nlower = 1024\nupper = 65536\nmax_free = 2\ninitial = 2\n"
    heaps = heaps_from_memory(3, 20_000)
    loop = asyncio.get_running_loop()
    for config_text, expect_views in ((text, True), (text + pool, False)):
        config = parse_config(config_text, "t.toml")
        stream = ReceiveStream(config.receive[0], Hub("s", loop), LIMIT)
        try:
            envelopes = [stream._encode(heap) for heap in heaps]
        finally:
            stream.close()
        # Every heap's data is intact after the later heaps were decoded (the first heap only
        # carried descriptors).
        for value, envelope in enumerate(envelopes[1:]):
            (body,) = envelope.bodies(None)
            assert bool(views([body])) is expect_views
            message = pb.Heap.FromString(body.join(wire.subscriber_prefix(1, 0)))
            assert message.items[0].data == bytes([value]) * 20_000
