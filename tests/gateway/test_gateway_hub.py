"""The fan-out hub: bounded queues that drop the oldest heaps, sequence numbers, filters."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from spead2_gateway import wire
from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.hub import Envelope, Hub, ItemFilter, SubscriptionClosed, make_filter

LIMIT = 1 << 20


def envelope(cnt: int, incomplete: bool = False, size: int = 8) -> Envelope:
    """A heap with two items: ``n`` (its cnt) and ``data`` (``size`` bytes)."""
    items = []
    for item_id, name, array in (
        (0x1000, "n", np.array(cnt, dtype="<u4")),
        (0x1001, "data", np.full(size, cnt % 256, dtype=np.uint8)),
    ):
        meta = pb.Item(id=item_id, name=name, dtype=array.dtype.str, shape=array.shape)
        items.append(wire.EncodedItem.from_proto(meta, memoryview(array.tobytes())))
    header = wire.encode_header(pb.Heap(stream="s", cnt=cnt, incomplete=incomplete))
    return Envelope(header, items, incomplete, LIMIT)


async def take(sub: object) -> pb.Heap:
    messages = await asyncio.wait_for(sub.next(), 5)  # type: ignore[attr-defined]
    assert len(messages) == 1
    return pb.Heap.FromString(messages[0])


async def test_full_queue_drops_the_oldest_and_counts() -> None:
    hub = Hub("s", asyncio.get_running_loop())
    slow = hub.subscribe(None, 1, False, depth=3, max_bytes=LIMIT)
    for cnt in range(1, 11):
        hub.publish(envelope(cnt))
    assert (slow.queued, slow.dropped, hub.dropped_total) == (3, 7, 7)
    got = [await take(slow) for _ in range(3)]
    assert [(h.cnt, h.sequence, h.dropped) for h in got] == [(8, 8, 7), (9, 9, 7), (10, 10, 7)]
    hub.publish(envelope(11))
    heap = await take(slow)
    assert (heap.sequence, heap.dropped) == (11, 7)
    assert slow.delivered == 4


async def test_byte_limit_keeps_at_least_the_newest_heap() -> None:
    hub = Hub("s", asyncio.get_running_loop())
    sub = hub.subscribe(None, 1, False, depth=100, max_bytes=2500)
    for cnt in range(1, 6):
        hub.publish(envelope(cnt, size=1000))
    assert sub.queued == 2 and sub.dropped == 3
    hub.publish(envelope(6, size=10_000))  # alone above the limit: still delivered
    assert sub.queued == 1
    queued_bytes = sub.queued_bytes
    heap = await take(sub)
    assert (heap.cnt, heap.sequence, heap.dropped) == (6, 6, 5)
    # Delivered bytes count what left the queue: the one 10 kB heap, not the dropped ones.
    assert sub.delivered_bytes == queued_bytes > 10_000


async def test_one_slow_subscriber_does_not_affect_another() -> None:
    hub = Hub("s", asyncio.get_running_loop())
    slow = hub.subscribe(None, 1, False, depth=2, max_bytes=LIMIT)
    fast = hub.subscribe(None, 1, False, depth=2, max_bytes=LIMIT)
    seen = []
    for cnt in range(1, 21):
        hub.publish(envelope(cnt))
        seen.append(await take(fast))
    assert [(h.cnt, h.sequence, h.dropped) for h in seen] == [(c, c, 0) for c in range(1, 21)]
    assert slow.dropped == 18 and fast.dropped == 0


async def test_decimation_and_incomplete_heaps() -> None:
    hub = Hub("s", asyncio.get_running_loop())
    every3 = hub.subscribe(None, 3, False, depth=100, max_bytes=LIMIT)
    all_heaps = hub.subscribe(None, 0, True, depth=100, max_bytes=LIMIT)
    for cnt in range(1, 11):
        hub.publish(envelope(cnt, incomplete=cnt == 2))
    # every3 is never offered the incomplete heap; it keeps offered heaps 1, 4, 7.
    got = [await take(every3) for _ in range(every3.queued)]
    assert [(h.cnt, h.sequence) for h in got] == [(1, 1), (5, 2), (8, 3)]
    got = [await take(all_heaps) for _ in range(all_heaps.queued)]
    assert [h.cnt for h in got] == list(range(1, 11))
    assert got[1].incomplete


async def test_item_filter_and_shared_bodies() -> None:
    hub = Hub("s", asyncio.get_running_loop())
    flt = make_filter(["data"], [])
    assert make_filter([], []) is None
    a = hub.subscribe(flt, 1, False, depth=10, max_bytes=LIMIT)
    b = hub.subscribe(make_filter(["data"], []), 1, False, depth=10, max_bytes=LIMIT)
    by_id = hub.subscribe(ItemFilter(frozenset(), frozenset({0x1000})), 1, False, 10, LIMIT)
    env = envelope(5)
    hub.publish(env)
    assert [i.name for i in (await take(a)).items] == ["data"]
    assert [i.name for i in (await take(b)).items] == ["data"]
    assert [i.name for i in (await take(by_id)).items] == ["n"]
    assert env.bodies(flt) is env.bodies(make_filter(["data"], []))  # encoded once per filter


async def test_close_drains_then_ends() -> None:
    hub = Hub("s", asyncio.get_running_loop())
    sub = hub.subscribe(None, 1, False, depth=10, max_bytes=LIMIT)
    hub.publish(envelope(1))
    hub.publish(envelope(2))
    hub.close("bye", shutdown=True)
    assert [(await take(sub)).cnt for _ in range(2)] == [1, 2]
    with pytest.raises(SubscriptionClosed) as info:
        await sub.next()
    assert info.value.shutdown and info.value.reason == "bye"
    late = hub.subscribe(None, 1, False, depth=10, max_bytes=LIMIT)
    with pytest.raises(SubscriptionClosed):
        await late.next()


async def test_publish_from_a_thread_wakes_the_subscriber() -> None:
    hub = Hub("s", asyncio.get_running_loop())
    sub = hub.subscribe(None, 1, False, depth=100, max_bytes=LIMIT)
    waiting = asyncio.ensure_future(sub.next())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    thread = threading.Thread(target=lambda: [hub.publish(envelope(c)) for c in range(1, 51)])
    thread.start()
    first = pb.Heap.FromString((await asyncio.wait_for(waiting, 5))[0])
    thread.join()
    rest = [await take(sub) for _ in range(49)]
    assert [first.sequence] + [h.sequence for h in rest] == list(range(1, 51))
    hub.unsubscribe(sub)
    assert len(hub) == 0
