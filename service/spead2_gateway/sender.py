"""A send stream owned by the daemon: heaps from ``Send`` calls, transmitted as SPEAD.

Each ``Send`` call gets a :class:`SendSession` with its own ``spead2.send.ItemGroup``, so
descriptors are sent with the first heap of the call that uses them, as a spead2 sender
would. Heaps go to a ``spead2.send.asyncio`` stream, which paces them at the configured rate.
At most ``max_heaps`` heaps are in flight per stream; a call whose next heap finds no room
for ``queue_timeout`` seconds fails with RESOURCE_EXHAUSTED (the wait itself is
back-pressure: the call stops reading, so HTTP/2 flow control slows the client).

Per-client limits fail fast with RESOURCE_EXHAUSTED rather than pace: at most
``max_concurrent_sends`` calls are open per stream, and a call whose requests exceed
``max_client_rate`` bytes per second (a token bucket of ``max_client_burst`` bytes per call)
is ended. Pacing would let one client hold a queue slot and a call open indefinitely; a hard
error tells the client at once that it must slow down.

The achieved rate (bytes on the wire per second over the last :data:`RATE_WINDOW` seconds)
is kept here, as heaps complete, so every reader (metrics scrapes, ``WatchStats``) sees the
same value and none of them disturbs it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import spead2
import spead2.send
import spead2.send.asyncio

from spead2_gateway import codec
from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.config import SendStreamConfig

__all__ = ["RateWindow", "SendError", "SendSession", "SendStream", "TokenBucket"]

logger = logging.getLogger(__name__)

# Item IDs 1 to 6 are SPEAD's own (heap counter, heap length, payload, descriptor, control).
MAX_RESERVED_ID = 6
# Seconds of history behind the achieved-rate gauge, and the slots it is kept in.
RATE_WINDOW = 10.0
RATE_SLOTS = 50


class SendError(Exception):
    """A request that cannot be sent, with the gRPC status code to report."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> SendError:
    return SendError(grpc.StatusCode.INVALID_ARGUMENT, message)


@dataclass
class SendCounters:
    """What a send stream has done since the daemon started."""

    heaps: int = 0
    bytes: int = 0
    rejected_heaps: int = 0
    errors: int = 0
    sessions: int = 0
    refused_sessions: int = 0
    rate_limited_sessions: int = 0


class TokenBucket:
    """Admits ``rate`` units per second on average and at most ``burst`` at once.

    The bucket starts full. A request for more than the bucket holds is refused and takes
    nothing, so a refused request does not push later ones further into the future.
    """

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()

    def take(self, amount: float) -> bool:
        """Removes ``amount`` tokens if the bucket holds that many; False otherwise."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if amount > self._tokens:
            return False
        self._tokens -= amount
        return True


class RateWindow:
    """Bytes per second over the last ``window`` seconds, summed in fixed time slots.

    Memory is bounded by the number of slots, whatever the heap rate. Before ``window``
    seconds have passed since creation the rate is over the time elapsed so far (at least one
    second, so the first heap does not read as a huge rate). :meth:`add` runs on the event
    loop and :meth:`rate` on the metrics thread, hence the lock.
    """

    def __init__(
        self,
        window: float = RATE_WINDOW,
        slots: int = RATE_SLOTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self._slots = slots
        self._width = window / slots
        self._clock = clock
        self._start = clock()
        self._totals: deque[list[int]] = deque()  # [slot index, bytes], oldest first
        self._lock = threading.Lock()

    def add(self, nbytes: int) -> None:
        """Counts ``nbytes`` as sent now."""
        index = int(self._clock() // self._width)
        with self._lock:
            if self._totals and self._totals[-1][0] == index:
                self._totals[-1][1] += nbytes
            else:
                self._totals.append([index, nbytes])
                self._prune(index)

    def _prune(self, index: int) -> None:
        oldest = index - self._slots + 1
        while self._totals and self._totals[0][0] < oldest:
            self._totals.popleft()

    def rate(self) -> float:
        """Bytes per second over the window that ends now."""
        now = self._clock()
        index = int(now // self._width)
        with self._lock:
            self._prune(index)
            total = sum(nbytes for _, nbytes in self._totals)
        begin = max((index - self._slots + 1) * self._width, self._start)
        return total / max(now - begin, 1.0)


class SendStream:
    """One configured send stream (connected lazily for TCP)."""

    kind = "send"

    def __init__(
        self, config: SendStreamConfig, on_state: Callable[[SendStream], None] | None = None
    ) -> None:
        self.config = config
        self.name = config.name
        self.on_state = on_state
        self.state = "stopped"
        self.counters = SendCounters()
        self.flavour = spead2.Flavour(4, 64, config.heap_address_bits, config.bug_compat)
        self._thread_pool = spead2.ThreadPool(config.threads)
        self._stream: Any = None
        self._connect_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(config.max_heaps)
        self._pending: set[asyncio.Future[int]] = set()
        self.active_sessions = 0
        self.achieved = RateWindow()
        self.max_item_id = (1 << (63 - config.heap_address_bits)) - 1

    def _stream_config(self) -> spead2.send.StreamConfig:
        c = self.config
        return spead2.send.StreamConfig(
            max_packet_size=c.max_packet_size,
            rate=c.rate,
            burst_size=c.burst_size,
            max_heaps=c.max_heaps,
            burst_rate_ratio=c.burst_rate_ratio,
        )

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.on_state is not None:
                self.on_state(self)

    async def start(self) -> None:
        """Opens UDP streams now (errors propagate); TCP connects on first use."""
        if self.config.transport == "udp":
            self._stream = self._open_udp()
        self._set_state("running")

    def _open_udp(self) -> Any:
        c = self.config
        endpoints = list(c.destinations)
        multicast = all(_is_multicast(host) for host, _ in endpoints)
        if multicast:
            args: tuple[Any, ...] = (c.buffer_size, c.ttl)
            if c.interface_address:
                args += (c.interface_address,)
        else:
            args = (c.buffer_size,)
            if c.interface_address:
                args += (c.interface_address,)
        return spead2.send.asyncio.UdpStream(
            self._thread_pool, endpoints, self._stream_config(), *args
        )

    async def _ensure_stream(self) -> Any:
        if self._stream is not None:
            return self._stream
        async with self._connect_lock:
            if self._stream is None:
                c = self.config
                try:
                    self._stream = await spead2.send.asyncio.TcpStream.connect(
                        self._thread_pool,
                        list(c.destinations),
                        self._stream_config(),
                        c.buffer_size,
                        c.interface_address,
                    )
                except OSError as exc:
                    self.counters.errors += 1
                    self._set_state("failed")
                    raise SendError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"send stream {self.name}: cannot connect to {c.endpoint}: {exc}",
                    ) from None
                self._set_state("running")
        return self._stream

    def session(self) -> SendSession:
        """State for one ``Send`` call; RESOURCE_EXHAUSTED past ``max_concurrent_sends``.

        The session closes itself when the calling task (the RPC) ends, however it ends;
        :meth:`SendSession.close` may also be called earlier.
        """
        limit = self.config.max_concurrent_sends
        if self.active_sessions >= limit:
            self.counters.refused_sessions += 1
            raise SendError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"send stream {self.name}: {limit} Send calls already in progress "
                f"(max_concurrent_sends); retry when one ends",
            )
        self.counters.sessions += 1
        self.active_sessions += 1
        session = SendSession(self)
        task = _current_task()
        if task is not None:
            task.add_done_callback(lambda _task: session.close())
        return session

    async def transmit(self, heap: spead2.send.Heap, cnt: int) -> asyncio.Future[int]:
        """Queues a heap, waiting up to ``queue_timeout`` for room; returns its future."""
        stream = await self._ensure_stream()
        await self._acquire_slot()
        try:
            future: asyncio.Future[int] = stream.async_send_heap(heap, cnt if cnt else -1)
        except BaseException:
            self._slots.release()
            raise
        self._pending.add(future)
        future.add_done_callback(self._sent)
        return future

    async def _acquire_slot(self) -> None:
        timeout = self.config.queue_timeout
        if self._slots.locked() and timeout == 0:
            acquired = False
        else:
            try:
                await asyncio.wait_for(self._slots.acquire(), timeout)
                acquired = True
            except TimeoutError:
                acquired = False
        if not acquired:
            self.counters.rejected_heaps += 1
            raise SendError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"send stream {self.name}: queue of {self.config.max_heaps} heaps still full "
                f"after {timeout:g} s",
            )

    def _sent(self, future: asyncio.Future[int]) -> None:
        self._slots.release()
        self._pending.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            nbytes = future.result()
            self.counters.heaps += 1
            self.counters.bytes += nbytes
            self.achieved.add(nbytes)
            return
        self.counters.errors += 1
        logger.warning("send stream %s: heap not sent: %s", self.name, exc)
        if self.config.transport == "tcp":
            self._stream = None  # reconnect on next use
            self._set_state("failed")

    async def flush(self, timeout: float) -> None:
        """Waits (up to ``timeout``) for every queued heap to be sent."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout)

    def close(self) -> None:
        """Drops the stream and stops its thread pool (after :meth:`flush`)."""
        self._stream = None
        self._thread_pool.stop()
        self._set_state("stopped")

    def stats(self) -> pb.StreamStats:
        """The stream's counters as a StreamStats message."""
        c = self.counters
        message = pb.StreamStats(stream=self.name, kind=pb.STREAM_KIND_SEND)
        message.counters.update(
            {
                "heaps": c.heaps,
                "bytes": c.bytes,
                "rejected_heaps": c.rejected_heaps,
                "errors": c.errors,
                "sessions": c.sessions,
                "refused_sessions": c.refused_sessions,
                "rate_limited_sessions": c.rate_limited_sessions,
                "queued_heaps": len(self._pending),
                "active_sessions": self.active_sessions,
                "achieved_rate_bytes_per_second": round(self.achieved.rate()),
            }
        )
        return message


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running event loop (direct use from synchronous code)
        return None


def _is_multicast(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_multicast
    except ValueError:
        return False


class SendSession:
    """One ``Send`` call: its item group and the heaps it has queued."""

    def __init__(self, stream: SendStream) -> None:
        self.stream = stream
        self.item_group = spead2.send.ItemGroup(flavour=stream.flavour)
        self._futures: list[asyncio.Future[int]] = []
        config = stream.config
        self._bucket = (
            TokenBucket(config.max_client_rate, config.client_burst)
            if config.max_client_rate > 0
            else None
        )
        self.closed = False

    def close(self) -> None:
        """Frees this call's place under ``max_concurrent_sends`` (idempotent)."""
        if not self.closed:
            self.closed = True
            self.stream.active_sessions -= 1

    async def submit(self, request: pb.SendRequest) -> None:
        """Builds and queues one heap; raises :class:`SendError`."""
        self._admit(request.ByteSize())
        try:
            heap = self._build(request)
        except SendError:
            self.stream.counters.rejected_heaps += 1
            raise
        self._futures.append(await self.stream.transmit(heap, request.cnt))

    def _admit(self, size: int) -> None:
        """Charges ``size`` request bytes to this call's token bucket; RESOURCE_EXHAUSTED if
        the call is over ``max_client_rate``."""
        bucket = self._bucket
        if bucket is None or bucket.take(size):
            return
        counters = self.stream.counters
        counters.rejected_heaps += 1
        counters.rate_limited_sessions += 1
        name = self.stream.name
        if size > bucket.burst:
            message = (
                f"send stream {name}: a request of {size} bytes is larger than this call's "
                f"burst of {bucket.burst:g} bytes (max_client_burst)"
            )
        else:
            message = (
                f"send stream {name}: this Send call exceeded max_client_rate = "
                f"{bucket.rate:g} bytes/s (burst {bucket.burst:g} bytes); send more slowly"
            )
        raise SendError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)

    def _build(self, request: pb.SendRequest) -> spead2.send.Heap:
        group = self.item_group
        for descriptor in request.descriptors:
            self._describe(descriptor)
        for item in request.items:
            target = self._find(item)
            if item.size or item.offset:
                raise _invalid(f"item {target.name!r}: split items are not accepted by Send")
            try:
                array = codec.array_from_bytes(
                    item.data, item.dtype, item.shape, item.fortran_order
                )
            except ValueError as exc:
                raise _invalid(f"item {target.name!r}: {exc}") from None
            target.value = _value_for(target, array)
        try:
            heap: spead2.send.Heap = group.get_heap()
        except (ValueError, TypeError, OverflowError) as exc:
            raise _invalid(f"cannot build the heap: {exc}") from None
        if request.start_of_stream:
            heap.add_start()
        if request.end_of_stream:
            heap.add_end()
        return heap

    def _describe(self, descriptor: pb.Descriptor) -> None:
        name = descriptor.name or f"#{descriptor.id}"
        if not descriptor.name:
            raise _invalid(f"descriptor {name}: missing name")
        if not 1 <= descriptor.id <= self.stream.max_item_id:
            raise _invalid(
                f"descriptor {name!r}: id {descriptor.id} out of range 1..{self.stream.max_item_id}"
            )
        if descriptor.id <= MAX_RESERVED_ID:
            raise _invalid(f"descriptor {name!r}: id {descriptor.id} is reserved by SPEAD")
        try:
            kwargs = codec.descriptor_from_proto(descriptor)
            self.item_group.add_item(**kwargs)
        except (ValueError, TypeError) as exc:
            raise _invalid(f"descriptor {name!r}: {exc}") from None

    def _find(self, item: pb.Item) -> spead2.Item:
        group = self.item_group
        if item.id:
            if item.id in group.ids():
                return group[item.id]
            raise _invalid(f"item id {item.id:#x} has no descriptor in this call")
        if item.name and item.name in group.keys():
            return group[item.name]
        raise _invalid(f"item {item.name!r} has no descriptor in this call")

    async def finish(self, timeout: float) -> tuple[int, int]:
        """Waits for this call's heaps; returns (heaps, bytes). Raises :class:`SendError`."""
        if not self._futures:
            return 0, 0
        done, pending = await asyncio.wait(self._futures, timeout=timeout)
        if pending:
            raise SendError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"send stream {self.stream.name}: {len(pending)} heaps still queued",
            )
        nbytes = 0
        for future in done:
            exc = future.exception()
            if exc is not None:
                raise SendError(
                    grpc.StatusCode.UNAVAILABLE, f"send stream {self.stream.name}: {exc}"
                )
            nbytes += future.result()
        return len(done), nbytes


def _value_for(item: spead2.Item, array: np.ndarray) -> Any:
    """The value to assign for ``array``: 1-D character items take bytes, as in spead2."""
    if item.dtype is None and item.format == [("c", 8)] and len(item.shape) == 1:
        return array.tobytes()
    return array
