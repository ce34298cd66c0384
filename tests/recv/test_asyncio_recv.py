"""``spead2.recv.asyncio.Stream``: waiters, cancellation, ``async for`` and idle cost.

Packets are fed through an ``InprocQueue`` from the test itself, so each test decides exactly
when a heap becomes available.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pytest
from util import jobs
from util import packets as P

import spead2
import spead2.recv
import spead2.recv.asyncio

IDLE = 0.5
"""Seconds a waiter is left waiting for a heap that never comes."""
IDLE_CPU_LIMIT = 0.2
"""CPU seconds the whole process may use in that time (a busy wait would use about IDLE)."""
TIMEOUT = 20.0
"""Upper bound for awaits that must complete (only reached when something is broken)."""


class Feed:
    """An asyncio stream and the inproc queue feeding it."""

    def __init__(self) -> None:
        self.queue = spead2.InprocQueue()
        self.stream = spead2.recv.asyncio.Stream(
            jobs.thread_pool(spead2),
            spead2.recv.StreamConfig(),
            spead2.recv.RingStreamConfig(heaps=16),
        )
        self.stream.add_inproc_reader(self.queue)

    def heap(self, cnt: int) -> None:
        """Make heap ``cnt`` (two packets) available."""
        for packet in P.simple_heap(cnt, 1500):
            self.queue.add_packet(packet)


@pytest.fixture
async def feed() -> AsyncIterator[Feed]:
    f = Feed()
    yield f
    f.stream.stop()


async def settle() -> None:
    """Let every ready task run up to its next suspension point."""
    for _ in range(5):
        await asyncio.sleep(0)


async def get_cnt(stream: spead2.recv.asyncio.Stream) -> int:
    heap = await stream.get()
    return int(heap.cnt)


async def test_waiters_served_in_order(feed: Feed) -> None:
    waiters = [asyncio.create_task(get_cnt(feed.stream)) for _ in range(4)]
    await settle()
    assert not any(w.done() for w in waiters)
    for cnt in (1, 2, 3, 4):
        feed.heap(cnt)
    results = await asyncio.wait_for(asyncio.gather(*waiters), TIMEOUT)
    assert results == [1, 2, 3, 4]


async def test_waiters_in_order_when_heaps_trickle_in(feed: Feed) -> None:
    waiters = [asyncio.create_task(get_cnt(feed.stream)) for _ in range(3)]
    await settle()
    for cnt in (1, 2, 3):
        feed.heap(cnt)
        done = await asyncio.wait_for(asyncio.shield(waiters[cnt - 1]), TIMEOUT)
        assert done == cnt
        assert not any(w.done() for w in waiters[cnt:])


async def test_cancelled_waiter_does_not_lose_heap(feed: Feed) -> None:
    first = asyncio.create_task(get_cnt(feed.stream))
    second = asyncio.create_task(get_cnt(feed.stream))
    await settle()
    first.cancel()
    await settle()
    feed.heap(1)
    assert await asyncio.wait_for(second, TIMEOUT) == 1
    assert first.cancelled()
    feed.heap(2)
    assert await asyncio.wait_for(get_cnt(feed.stream), TIMEOUT) == 2


async def test_timed_out_waiter_does_not_lose_heap(feed: Feed) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(feed.stream.get(), 0.05)
    feed.heap(7)
    assert await asyncio.wait_for(get_cnt(feed.stream), TIMEOUT) == 7


async def test_async_for_ends_when_queue_stops(feed: Feed) -> None:
    async def collect() -> list[int]:
        return [heap.cnt async for heap in feed.stream]

    task = asyncio.create_task(collect())
    feed.heap(1)
    feed.heap(2)
    await settle()
    assert not task.done()
    feed.queue.stop()
    assert await asyncio.wait_for(task, TIMEOUT) == [1, 2]


async def test_async_for_ends_at_stream_stop(feed: Feed) -> None:
    received: list[int] = []

    async def collect() -> None:
        async for heap in feed.stream:
            received.append(heap.cnt)

    task = asyncio.create_task(collect())
    feed.heap(1)
    while not received:
        await asyncio.sleep(0.01)
    feed.stream.stop()
    await asyncio.wait_for(task, TIMEOUT)
    assert received == [1]


async def test_pending_waiters_raise_stopped(feed: Feed) -> None:
    waiters = [asyncio.create_task(feed.stream.get()) for _ in range(3)]
    await settle()
    feed.stream.stop()
    results = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), TIMEOUT)
    assert all(isinstance(r, spead2.Stopped) for r in results), results
    with pytest.raises(spead2.Stopped):
        await feed.stream.get()


async def test_heap_already_waiting_is_returned(feed: Feed) -> None:
    feed.heap(3)
    deadline = time.monotonic() + TIMEOUT
    while feed.stream.ringbuffer.size() == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert await feed.stream.get() is not None


async def test_no_busy_waiting(feed: Feed) -> None:
    """Waiting for a heap that never comes costs (almost) no CPU, in any thread."""
    start = time.process_time()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(feed.stream.get(), IDLE)
    used = time.process_time() - start
    assert used < IDLE_CPU_LIMIT, f"{used:.3f} s of CPU while idle for {IDLE} s"


def test_blocking_get_does_not_busy_wait() -> None:
    """The blocking ``get`` of a plain stream is idle too while it waits."""
    stream = spead2.recv.Stream(jobs.thread_pool(spead2))
    stream.add_inproc_reader(spead2.InprocQueue())
    timer = threading.Timer(IDLE, stream.stop)
    start = time.process_time()
    timer.start()
    try:
        with pytest.raises(spead2.Stopped):
            stream.get()
    finally:
        timer.cancel()
    used = time.process_time() - start
    assert used < IDLE_CPU_LIMIT, f"{used:.3f} s of CPU while idle for {IDLE} s"
