"""Python client of the spead2 gateway: streams, heaps as numpy arrays, stats, sending.

Synchronous::

    from spead2_gateway.client import GatewayClient

    with GatewayClient("127.0.0.1:50051") as client:
        print(client.list_streams())
        with client.subscribe("default", items=["spectrum"], every_nth=10) as heaps:
            for heap in heaps:
                print(heap.cnt, heap.sequence, heap["spectrum"].mean())

asyncio: :class:`AsyncGatewayClient` has the same methods, as coroutines and async
iterators. Sending looks like ``spead2.send.ItemGroup`` plus a stream::

    sender = client.sender("out")
    sender.add_item(0x1600, "timestamp", "", (), format=[("u", 48)])
    sender["timestamp"].value = 1234
    sender.send_heap(sender.get_heap())
    result = sender.close()   # SendResult(heaps=1, bytes=...)

Reconnecting: ``client.subscribe("default", reconnect=True)`` (or a :class:`ReconnectPolicy`)
survives the daemon going away: the subscription calls ``Subscribe`` again with exponential
backoff, and the first heap after the reconnection carries a :class:`Reconnect` report in
``heap.reconnect`` (heaps captured in between are lost; ``sequence`` starts again from 1).

Received arrays may be read-only (a large item's array is a view of the message grpcio
delivered); copy them to modify in place. :meth:`ReceivedItem.spead2_value` gives the value
exactly as spead2's ``ItemGroup`` would (``str``, ``int``, object arrays for odd bit widths).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

import grpc
import grpc.aio
import numpy as np
from google.protobuf import json_format
from grpc_health.v1 import health_pb2

from spead2_gateway import codec, wire
from spead2_gateway._proto import gateway_pb2 as pb

__all__ = [
    "AsyncGatewayClient",
    "AsyncHeapSender",
    "AsyncReconnectingSubscription",
    "AsyncSubscription",
    "Descriptor",
    "GatewayClient",
    "HeapSender",
    "OutgoingHeap",
    "ReceivedHeap",
    "ReceivedItem",
    "Reconnect",
    "ReconnectPolicy",
    "ReconnectingSubscription",
    "SendItem",
    "SendResult",
    "StatsUpdate",
    "StreamDetail",
    "StreamInfo",
    "StreamStats",
    "Subscription",
]

_SERVICE = "/spead2.gateway.v1.Gateway/"
DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_SEND_QUEUE = 16

logger = logging.getLogger(__name__)


class ProtocolError(RuntimeError):
    """The gateway sent something this client cannot interpret."""


# ------------------------------------------------------------------------------------------
# Plain data returned by the client.


@dataclass(frozen=True)
class ReceivedItem:
    """One item of a received heap."""

    id: int
    name: str
    value: np.ndarray
    format: list[tuple[str, int]] | None = None

    def spead2_value(self) -> Any:
        """The value as ``spead2.ItemGroup.update`` would present it."""
        return codec.spead2_value(self.value, self.format)


@dataclass(frozen=True)
class Reconnect:
    """How a reconnecting call got back after its call broke.

    Carried by the first heap (``ReceivedHeap.reconnect``) or stats update
    (``StatsUpdate.reconnect``) after the reconnection, and passed to ``on_reconnect``. Every
    heap the gateway captured between the break and the new call is lost to this subscriber
    (how many is unknown here: compare ``last_cnt`` with the next heap's ``cnt`` if the
    sender numbers heaps consecutively). The new call's ``sequence`` starts again from 1 and
    its ``dropped`` from 0: that is not a gap.
    """

    code: grpc.StatusCode  # why the previous call ended (UNAVAILABLE when the daemon went away)
    details: str
    disconnected: float  # Unix time at which the break was seen
    reconnected: float  # Unix time at which the gateway accepted the new call
    downtime: float  # seconds from the break to the new call (monotonic clock)
    attempts: int  # calls it took to get back (1: the first retry worked)
    last_sequence: int = 0  # ``sequence`` of the last heap before the break (0: none yet)
    last_cnt: int | None = None  # the SPEAD heap counter of that heap
    previous_subscriber_id: int = 0
    subscriber_id: int = 0
    # True when the call reached a different daemon process (its x-gateway-instance id
    # changed): the daemon was restarted; False for the same process. From a daemon that sends
    # no instance id, inferred from subscriber ids starting again (then False proves nothing).
    # None for stats watches.
    server_restarted: bool | None = None


@dataclass(frozen=True)
class ReceivedHeap:
    """A heap from :meth:`GatewayClient.subscribe`; ``heap["name"]`` is an item's array."""

    stream: str
    cnt: int
    sequence: int
    dropped: int
    received: float  # Unix time (seconds) at which the gateway took the heap
    incomplete: bool
    start_of_stream: bool
    end_of_stream: bool
    items: dict[str, ReceivedItem]
    heap_length: int = 0
    received_length: int = 0
    fragments: int = 1
    # Set on the first heap after a reconnecting subscription got back (see Reconnect).
    reconnect: Reconnect | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.items[name].value

    def __contains__(self, name: object) -> bool:
        return name in self.items

    def is_start_of_stream(self) -> bool:
        """As ``spead2.recv.Heap.is_start_of_stream``."""
        return self.start_of_stream

    def is_end_of_stream(self) -> bool:
        """As ``spead2.recv.Heap.is_end_of_stream``."""
        return self.end_of_stream


@dataclass(frozen=True)
class Descriptor:
    """An item description, with the fields of ``spead2.Descriptor``."""

    id: int
    name: str
    description: str
    shape: tuple[int | None, ...]
    dtype: np.dtype | None
    order: str
    format: list[tuple[str, int]] | None

    @classmethod
    def from_proto(cls, message: pb.Descriptor) -> Descriptor:
        """From a Descriptor message."""
        return cls(**codec.descriptor_from_proto(message))


@dataclass(frozen=True)
class StreamInfo:
    """A stream as listed by :meth:`GatewayClient.list_streams`."""

    name: str
    kind: str  # "receive" or "send"
    transport: str
    endpoint: str
    state: str
    subscribers: int

    @classmethod
    def from_proto(cls, message: pb.StreamInfo) -> StreamInfo:
        """From a StreamInfo message."""
        kind = {pb.STREAM_KIND_RECEIVE: "receive", pb.STREAM_KIND_SEND: "send"}.get(
            message.kind, "unknown"
        )
        return cls(
            message.name,
            kind,
            message.transport,
            message.endpoint,
            message.state,
            message.subscribers,
        )


@dataclass(frozen=True)
class StreamStats:
    """Statistics of one stream (see ``StreamStats`` in the .proto for the meanings)."""

    stream: str
    counters: dict[str, int]
    drops: dict[str, int] = field(default_factory=dict)
    ring_depth: int = 0
    ring_capacity: int = 0
    ring_high_water: int = 0
    memory_pool: dict[str, int] = field(default_factory=dict)
    published_heaps: int = 0
    subscriber_dropped_heaps: int = 0
    subscribers: list[dict[str, int]] = field(default_factory=list)
    restarts: int = 0

    @classmethod
    def from_proto(cls, m: pb.StreamStats) -> StreamStats:
        """From a StreamStats message."""
        subscribers = [
            {
                "id": s.id,
                "queued_heaps": s.queued_heaps,
                "queued_bytes": s.queued_bytes,
                "queue_depth": s.queue_depth,
                "delivered_heaps": s.delivered_heaps,
                "dropped_heaps": s.dropped_heaps,
            }
            for s in m.subscribers
        ]
        return cls(
            m.stream,
            dict(m.counters),
            dict(m.drops),
            m.ring_depth,
            m.ring_capacity,
            m.ring_high_water,
            dict(m.memory_pool),
            m.published_heaps,
            m.subscriber_dropped_heaps,
            subscribers,
            m.restarts,
        )


@dataclass(frozen=True)
class StatsUpdate:
    """One message of :meth:`GatewayClient.watch_stats`."""

    time: float
    streams: dict[str, StreamStats]
    # Set on the first update after a reconnecting watch got back; counters restart from 0
    # when the daemon was restarted.
    reconnect: Reconnect | None = None

    @classmethod
    def from_proto(cls, m: pb.StatsUpdate) -> StatsUpdate:
        """From a StatsUpdate message."""
        return cls(
            m.time.ToNanoseconds() / 1e9, {s.stream: StreamStats.from_proto(s) for s in m.streams}
        )


@dataclass(frozen=True)
class StreamDetail:
    """What :meth:`GatewayClient.get_stream` returns."""

    info: StreamInfo
    config: dict[str, Any]
    descriptors: list[Descriptor]
    stats: StreamStats

    @classmethod
    def from_proto(cls, m: pb.StreamDetail) -> StreamDetail:
        """From a StreamDetail message."""
        return cls(
            StreamInfo.from_proto(m.info),
            json_format.MessageToDict(m.config),
            [Descriptor.from_proto(d) for d in m.descriptors],
            StreamStats.from_proto(m.stats),
        )


@dataclass(frozen=True)
class SendResult:
    """What a finished ``Send`` call reports."""

    heaps: int
    bytes: int


# ------------------------------------------------------------------------------------------
# Heap reassembly


def _item(meta: pb.Item, data: bytes | memoryview | bytearray) -> ReceivedItem:
    try:
        array = codec.array_from_bytes(data, meta.dtype, meta.shape, meta.fortran_order)
    except ValueError as exc:
        raise ProtocolError(f"item {meta.name!r}: {exc}") from None
    if not array.flags.aligned:  # data left in place by a server that does not align it
        array = array.copy(order="K")
    fmt = [(f.code, f.bits) for f in meta.format] if len(meta.format) else None
    return ReceivedItem(meta.id, meta.name, array, fmt)


def _heap(first: pb.Heap, items: list[ReceivedItem], fragments: int) -> ReceivedHeap:
    return ReceivedHeap(
        stream=first.stream,
        cnt=first.cnt,
        sequence=first.sequence,
        dropped=first.dropped,
        received=first.received.ToNanoseconds() / 1e9,
        incomplete=first.incomplete,
        start_of_stream=first.start_of_stream,
        end_of_stream=first.end_of_stream,
        items={item.name: item for item in items},
        heap_length=first.heap_length,
        received_length=first.received_length,
        fragments=fragments,
    )


class Reassembler:
    """Turns Heap messages (possibly fragments of one heap) into :class:`ReceivedHeap`."""

    def __init__(self) -> None:
        self._first: pb.Heap | None = None
        self._next_fragment = 0
        self._parts: dict[int, tuple[pb.Item, bytes | memoryview | bytearray]] = {}

    def feed(self, message: wire.ParsedHeap) -> ReceivedHeap | None:
        """The heap completed by ``message``, or None while fragments are outstanding."""
        header = message.header
        if header.fragments <= 1:
            return _heap(header, [_item(meta, data) for meta, data in message.items], 1)
        if header.fragment == 0:
            self._first = header
            self._next_fragment = 0
            self._parts = {}
        first = self._first
        if (
            first is None
            or header.sequence != first.sequence
            or (header.fragment != self._next_fragment)
        ):
            raise ProtocolError(
                f"fragment {header.fragment} of heap sequence {header.sequence} out of order"
            )
        self._next_fragment += 1
        for meta, data in message.items:
            self._add(meta, data)
        if self._next_fragment < header.fragments:
            return None
        items = [_item(meta, data) for meta, data in self._parts.values()]
        self._first = None
        self._parts = {}
        return _heap(first, items, header.fragments)

    def _add(self, meta: pb.Item, data: bytes | memoryview) -> None:
        if not meta.size:
            self._parts[meta.id] = (meta, data)
            return
        entry = self._parts.get(meta.id)
        if entry is None:
            entry = (meta, bytearray(meta.size))
            self._parts[meta.id] = entry
        buffer = entry[1]
        end = meta.offset + len(data)
        if not isinstance(buffer, bytearray) or len(buffer) != meta.size or end > meta.size:
            raise ProtocolError(f"item {meta.name!r}: chunk outside the item")
        buffer[meta.offset : end] = data


# ------------------------------------------------------------------------------------------
# Sending: an ItemGroup-like builder of SendRequest messages.


class SendItem:
    """An item of a :class:`HeapSender`; assigning :attr:`value` marks it for the next heap."""

    def __init__(self, descriptor: Descriptor, value: Any = None) -> None:
        self.descriptor = descriptor
        self._value = value
        self.version = 0 if value is None else 1

    @property
    def id(self) -> int:
        """The item ID."""
        return self.descriptor.id

    @property
    def name(self) -> str:
        """The item name."""
        return self.descriptor.name

    @property
    def value(self) -> Any:
        """The current value (None until set)."""
        return self._value

    @value.setter
    def value(self, new: Any) -> None:
        if new is None:
            raise ValueError("Item value cannot be set to None")
        self._value = new
        self.version += 1

    def to_proto(self) -> pb.Item:
        """The value as an Item message."""
        d = self.descriptor
        array = value_to_array(self._value, d.dtype, d.format, d.shape, d.order)
        fortran, data = codec.array_to_bytes(array)
        return pb.Item(
            id=d.id,
            name=d.name,
            dtype=codec.dtype_to_wire(array.dtype),
            shape=array.shape,
            fortran_order=fortran,
            data=bytes(data),
        )


def value_to_array(
    value: Any,
    dtype: np.dtype | None,
    format: Sequence[tuple[str, int]] | None,
    shape: Sequence[int | None],
    order: str = "C",
) -> np.ndarray:
    """A value as spead2 would accept it for an item, as a plain numpy array."""
    if dtype is not None:
        return np.asarray(value, dtype=dtype, order="F" if order == "F" else "C")
    assert format is not None
    container = codec.format_dtype(format)
    if container == np.dtype("S1") and len(shape) == 1:
        if isinstance(value, str):
            return np.frombuffer(value.encode("latin-1"), dtype="S1")
        if isinstance(value, bytes):
            return np.frombuffer(value, dtype="S1")
    if isinstance(value, np.ndarray) and value.dtype.hasobject:
        return codec.to_array(value, format)
    return np.asarray(value, dtype=container)


@dataclass
class OutgoingHeap:
    """A heap built by :meth:`HeapSender.get_heap` (a SendRequest without the stream name)."""

    request: pb.SendRequest


class HeapSender:
    """Builds heaps like ``spead2.send.ItemGroup`` and streams them into a send stream.

    ``add_item``, ``[name]``/``[id]``, ``get_heap``, ``get_start``, ``get_end`` behave as in
    spead2 (descriptors and changed values are sent once, "stale" mode); ``send_heap``
    queues a heap and :meth:`close` ends the call and returns a :class:`SendResult`.
    """

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self._items: dict[str, SendItem] = {}
        self._by_id: dict[int, SendItem] = {}
        self._described: set[int] = set()
        self._sent_version: dict[int, int] = {}
        self._named = False

    # ItemGroup-like ------------------------------------------------------------------

    def add_item(
        self,
        id: int | None,
        name: str,
        description: str,
        shape: Sequence[int | None],
        dtype: Any = None,
        order: str = "C",
        format: Sequence[tuple[str, int]] | None = None,
        value: Any = None,
    ) -> SendItem:
        """Adds (or replaces) an item; ``id`` None picks the next free one from 0x1000."""
        if id is None:
            id = max([0x0FFF, *self._by_id]) + 1
        if (dtype is None) == (format is None):
            raise ValueError("exactly one of dtype and format must be given")
        descriptor = Descriptor(
            id,
            name,
            description,
            tuple(shape),
            None if dtype is None else np.dtype(dtype),
            order,
            None if format is None else [(str(c), int(b)) for c, b in format],
        )
        for old in (self._items.get(name), self._by_id.get(id)):
            if old is not None:
                self._items.pop(old.name, None)
                self._by_id.pop(old.id, None)
                self._described.discard(old.id)
        item = SendItem(descriptor, value)
        self._items[name] = item
        self._by_id[id] = item
        self._sent_version.pop(id, None)
        return item

    def __getitem__(self, key: int | str) -> SendItem:
        return self._by_id[key] if isinstance(key, int) else self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items or key in self._by_id

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[str]:
        """Item names."""
        return list(self._items)

    def ids(self) -> list[int]:
        """Item IDs."""
        return list(self._by_id)

    def values(self) -> list[SendItem]:
        """The items."""
        return list(self._items.values())

    def _descriptor_proto(self, item: SendItem) -> pb.Descriptor:
        d = item.descriptor
        return codec.descriptor_to_proto(
            d.id, d.name, d.description, d.shape, d.dtype, d.format, d.order
        )

    def get_heap(self, descriptors: str = "stale", data: str = "stale") -> OutgoingHeap:
        """A heap of the descriptors not yet sent and the values changed since last time."""
        if descriptors not in ("stale", "all", "none") or data not in ("stale", "all", "none"):
            raise ValueError("descriptors and data must be 'stale', 'all' or 'none'")
        request = pb.SendRequest()
        for item in self._items.values():
            if descriptors == "all" or (descriptors == "stale" and item.id not in self._described):
                request.descriptors.append(self._descriptor_proto(item))
                self._described.add(item.id)
        for item in self._items.values():
            if item.value is None or data == "none":
                continue
            if data == "all" or self._sent_version.get(item.id) != item.version:
                request.items.append(item.to_proto())
                self._sent_version[item.id] = item.version
        return OutgoingHeap(request)

    def get_start(self) -> OutgoingHeap:
        """A heap with only a start-of-stream marker."""
        return OutgoingHeap(pb.SendRequest(start_of_stream=True))

    def get_end(self) -> OutgoingHeap:
        """A heap with only an end-of-stream marker."""
        return OutgoingHeap(pb.SendRequest(end_of_stream=True))

    def _request(self, heap: OutgoingHeap, cnt: int) -> pb.SendRequest:
        request = pb.SendRequest()
        request.CopyFrom(heap.request)
        if not self._named:
            request.stream = self.stream
            self._named = True
        if cnt > 0:
            request.cnt = cnt
        return request


class _SyncSendCall:
    """A client-streaming call fed from a bounded queue."""

    def __init__(self, method: Any, metadata: Sequence[tuple[str, str]]) -> None:
        self._queue: queue.Queue[pb.SendRequest | None] = queue.Queue(maxsize=_SEND_QUEUE)
        self._future = method.future(self._requests(), metadata=metadata)

    def _requests(self) -> Iterator[pb.SendRequest]:
        while True:
            request = self._queue.get()
            if request is None:
                return
            yield request

    def put(self, request: pb.SendRequest | None) -> None:
        while True:
            if self._future.done():
                self._future.result()  # raises the call's error
                raise RuntimeError("the Send call has already finished")
            try:
                self._queue.put(request, timeout=0.1)
                return
            except queue.Full:
                continue

    def result(self) -> pb.SendResponse:
        response: pb.SendResponse = self._future.result()
        return response


class SyncHeapSender(HeapSender):
    """:class:`HeapSender` over a synchronous channel (from :meth:`GatewayClient.sender`)."""

    def __init__(self, stream: str, method: Any, metadata: Sequence[tuple[str, str]]) -> None:
        super().__init__(stream)
        self._call = _SyncSendCall(method, metadata)
        self._lock = threading.Lock()

    def send_heap(self, heap: OutgoingHeap, cnt: int = -1) -> None:
        """Queues a heap (blocks while the call's small queue is full)."""
        with self._lock:
            self._call.put(self._request(heap, cnt))

    def close(self) -> SendResult:
        """Ends the call once everything is sent; raises ``grpc.RpcError`` on failure."""
        with self._lock:
            self._call.put(None)
        response = self._call.result()
        return SendResult(response.heaps, response.bytes)


class AsyncHeapSender(HeapSender):
    """:class:`HeapSender` over an asyncio channel (from :meth:`AsyncGatewayClient.sender`)."""

    def __init__(self, stream: str, method: Any, metadata: Sequence[tuple[str, str]]) -> None:
        super().__init__(stream)
        self._queue: asyncio.Queue[pb.SendRequest | None] = asyncio.Queue(maxsize=_SEND_QUEUE)
        self._call = method(self._requests(), metadata=metadata)
        self._task: asyncio.Task[Any] = asyncio.ensure_future(self._await_call())

    async def _await_call(self) -> Any:
        return await self._call

    async def _requests(self) -> AsyncIterator[pb.SendRequest]:
        while True:
            request = await self._queue.get()
            if request is None:
                return
            yield request

    async def _put(self, request: pb.SendRequest | None) -> None:
        put = asyncio.ensure_future(self._queue.put(request))
        done, _ = await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if put not in done:
            put.cancel()
            self._task.result()
            raise RuntimeError("the Send call has already finished")

    async def send_heap(self, heap: OutgoingHeap, cnt: int = -1) -> None:
        """Queues a heap (waits while the call's small queue is full)."""
        await self._put(self._request(heap, cnt))

    async def close(self) -> SendResult:
        """Ends the call once everything is sent; raises ``grpc.RpcError`` on failure."""
        if not self._task.done():
            await self._put(None)
        response: pb.SendResponse = await self._task
        return SendResult(response.heaps, response.bytes)


# ------------------------------------------------------------------------------------------
# Reconnection: the policy and the bookkeeping shared by the sync and asyncio calls (no I/O).

RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED})
"""What ends a call for a reason that retrying can fix, by default: UNAVAILABLE (daemon gone,
connection reset, daemon shutting down) and ABORTED."""

NEVER_RETRIED = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
"""Codes a :class:`ReconnectPolicy` refuses to retry: the same call would fail the same way,
or the caller asked for the end (cancellation, its own deadline)."""


@dataclass(frozen=True)
class ReconnectPolicy:
    """When and how fast a reconnecting call calls again after it broke.

    The n-th retry of one outage waits ``min(max_backoff, initial_backoff * multiplier**(n-1))``
    seconds, times a random factor in ``[1 - jitter, 1 + jitter]`` (so that many clients do not
    come back in step). ``max_attempts`` bounds the calls made for one outage (or for the first
    connection), ``max_elapsed`` the seconds since the break; None means no bound. Only codes
    in ``retry_codes`` are retried; any other error ends the call as without reconnection.
    """

    initial_backoff: float = 0.1
    multiplier: float = 2.0
    max_backoff: float = 5.0
    jitter: float = 0.2
    max_attempts: int | None = None
    max_elapsed: float | None = None
    retry_codes: frozenset[grpc.StatusCode] = RETRYABLE_CODES

    def __post_init__(self) -> None:
        if not 0 < self.initial_backoff <= self.max_backoff:
            raise ValueError("need 0 < initial_backoff <= max_backoff")
        if not self.multiplier >= 1:
            raise ValueError("multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_elapsed is not None and not self.max_elapsed > 0:
            raise ValueError("max_elapsed must be positive")
        refused = set(self.retry_codes) & NEVER_RETRIED
        if refused:
            names = ", ".join(sorted(code.name for code in refused))
            raise ValueError(f"these codes are never retried: {names}")

    def backoff(
        self, retry: int, uniform: Callable[[float, float], float] = random.uniform
    ) -> float:
        """Seconds to wait before retry number ``retry`` (from 1) of one outage."""
        try:
            base = self.initial_backoff * self.multiplier ** max(retry - 1, 0)
        except OverflowError:
            base = self.max_backoff
        base = min(base, self.max_backoff)
        return base * uniform(1.0 - self.jitter, 1.0 + self.jitter)


@dataclass
class _Outage:
    """A broken call being retried."""

    since: float  # time.monotonic() of the break
    wall: float  # time.time() of the break
    code: grpc.StatusCode
    details: str
    failures: int = 0  # calls that failed since the break (or since the first call)
    retries: int = 0  # calls scheduled since


def _status(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return code, details or ""


class _Reconnector:
    """The state of a reconnecting call, without I/O: the sync and asyncio subscriptions and
    stats watches tell it what happened (a call accepted, a heap delivered, a call failed) and
    it says how long to wait before the next call, and what to report."""

    def __init__(
        self,
        policy: ReconnectPolicy,
        on_reconnect: Callable[[Reconnect], None] | None,
        what: str,
        timeout: float | None,
    ) -> None:
        self.policy = policy
        self.on_reconnect = on_reconnect
        self.what = what
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.connected = False
        self.reconnects = 0
        self._accepted_before = False
        self._outage: _Outage | None = None
        self._pending: Reconnect | None = None
        self._subscriber_id = 0
        self._instance = ""
        self._last_sequence = 0
        self._last_cnt: int | None = None

    def call_timeout(self) -> float | None:
        """The timeout of the next call: what is left of the caller's overall timeout."""
        if self.deadline is None:
            return None
        return max(self.deadline - time.monotonic(), 0.0)

    def accepted(self, subscriber_id: int, instance: str = "") -> None:
        """The gateway accepted a call (sent its initial metadata or a first message);
        ``instance`` is the daemon process's id, if it sent one."""
        self.connected = True
        outage, self._outage = self._outage, None
        previous = self._subscriber_id
        previous_instance, self._instance = self._instance, instance
        self._subscriber_id = subscriber_id
        if outage is None or not self._accepted_before:
            self._accepted_before = True
            return
        restarted = None
        if instance and previous_instance:
            restarted = instance != previous_instance
        elif subscriber_id and previous:
            # An older daemon without an instance id: its subscriber ids start again at 1.
            restarted = subscriber_id <= previous
        if restarted is not None and self._pending is not None:
            # Two outages without a heap in between: the next heap reports the latest, but
            # must not hide that the daemon restarted during the first.
            restarted = restarted or bool(self._pending.server_restarted)
        now = time.time()
        report = Reconnect(
            code=outage.code,
            details=outage.details,
            disconnected=outage.wall,
            reconnected=now,
            downtime=time.monotonic() - outage.since,
            attempts=outage.failures + 1,
            last_sequence=self._last_sequence,
            last_cnt=self._last_cnt,
            previous_subscriber_id=previous,
            subscriber_id=subscriber_id,
            server_restarted=restarted,
        )
        self._pending = report
        self.reconnects += 1
        logger.info(
            "%s: reconnected after %.3f s (%d attempt(s)%s); what was sent in between is lost",
            self.what,
            report.downtime,
            report.attempts,
            ", the gateway restarted" if restarted else "",
        )
        if self.on_reconnect is not None:
            self.on_reconnect(report)

    def take_report(self) -> Reconnect | None:
        """The report to attach to the next heap or update (once)."""
        report, self._pending = self._pending, None
        return report

    def delivered(self, heap: ReceivedHeap) -> ReceivedHeap:
        """A heap to hand to the caller, with the pending report attached."""
        self._last_sequence = heap.sequence
        self._last_cnt = heap.cnt
        report = self.take_report()
        return heap if report is None else replace(heap, reconnect=report)

    def failed(self, exc: grpc.RpcError) -> float | None:
        """Seconds to wait before calling again, or None: give up (re-raise ``exc``)."""
        was_connected, self.connected = self.connected, False
        code, details = _status(exc)
        if code not in self.policy.retry_codes:
            return None
        now = time.monotonic()
        outage = self._outage
        if outage is None or was_connected:
            outage = self._outage = _Outage(now, time.time(), code, details)
            if was_connected:
                logger.warning(
                    "%s: call broke (%s: %s); reconnecting", self.what, code.name, details
                )
        if not was_connected:
            outage.failures += 1
        policy = self.policy
        if policy.max_attempts is not None and outage.failures >= policy.max_attempts:
            logger.warning("%s: giving up after %d attempt(s)", self.what, outage.failures)
            return None
        outage.retries += 1
        delay = policy.backoff(outage.retries)
        limits = []
        if policy.max_elapsed is not None:
            left = policy.max_elapsed - (now - outage.since)
            if left <= 0:
                logger.warning("%s: giving up after %.3f s", self.what, now - outage.since)
                return None
            limits.append(left)
        timeout = self.call_timeout()
        if timeout is not None:
            # The next call then fails with DEADLINE_EXCEEDED, which ends it.
            limits.append(timeout)
        delay = min([delay, *limits])
        logger.debug("%s: %s (%s); calling again in %.3f s", self.what, code.name, details, delay)
        return delay


def _reconnector(
    reconnect: bool | ReconnectPolicy,
    on_reconnect: Callable[[Reconnect], None] | None,
    what: str,
    timeout: float | None,
) -> _Reconnector | None:
    if reconnect is False or reconnect is None:
        if on_reconnect is not None:
            raise ValueError("on_reconnect needs reconnect=True or a ReconnectPolicy")
        return None
    policy = ReconnectPolicy() if reconnect is True else reconnect
    if not isinstance(policy, ReconnectPolicy):
        raise TypeError("reconnect must be a bool or a ReconnectPolicy")
    return _Reconnector(policy, on_reconnect, what, timeout)


def _stats_update(message: pb.StatsUpdate, reconnector: _Reconnector | None) -> StatsUpdate:
    """An update for the caller; the first one of a call means the call was accepted."""
    update = StatsUpdate.from_proto(message)
    if reconnector is None:
        return update
    if not reconnector.connected:
        reconnector.accepted(0)
    report = reconnector.take_report()
    return update if report is None else replace(update, reconnect=report)


# ------------------------------------------------------------------------------------------
# Channels


# gRPC waits up to 120 s between attempts to reconnect a channel whose server went away, and
# fails calls at once meanwhile: a reconnecting subscription would then get back long after
# the daemon did. These bounds keep that delay near a second (the `options` argument can
# override them).
_RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def _channel_options(
    max_message_bytes: int, extra: Iterable[tuple[str, Any]]
) -> list[tuple[str, Any]]:
    extra = list(extra)
    given = {key for key, _ in extra}
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        *((key, value) for key, value in _RECONNECT_OPTIONS if key not in given),
        *extra,
    ]


def _credentials(
    tls: bool,
    root_certificates: bytes | None,
    private_key: bytes | None,
    certificate_chain: bytes | None,
) -> grpc.ChannelCredentials | None:
    if not (tls or root_certificates or private_key or certificate_chain):
        return None
    return grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)


def _subscribe_request(
    stream: str,
    items: Iterable[str | int],
    every_nth: int,
    include_incomplete: bool,
    queue_depth: int,
) -> pb.SubscribeRequest:
    names = [i for i in items if isinstance(i, str)]
    ids = [int(i) for i in items if not isinstance(i, str)]
    return pb.SubscribeRequest(
        stream=stream,
        item_names=names,
        item_ids=ids,
        every_nth=every_nth,
        include_incomplete=include_incomplete,
        queue_depth=queue_depth,
    )


class _Methods:
    """Callables for every method of a channel (sync or asyncio)."""

    def __init__(self, channel: Any) -> None:
        def unary(name: str, req: Any, resp: Any) -> Any:
            return channel.unary_unary(
                _SERVICE + name,
                request_serializer=req.SerializeToString,
                response_deserializer=resp.FromString,
            )

        def stream(name: str, req: Any, parse: Callable[[bytes], Any]) -> Any:
            return channel.unary_stream(
                _SERVICE + name,
                request_serializer=req.SerializeToString,
                response_deserializer=parse,
            )

        self.list_streams = unary("ListStreams", pb.ListStreamsRequest, pb.ListStreamsResponse)
        self.get_stream = unary("GetStream", pb.GetStreamRequest, pb.StreamDetail)
        # Heaps are read by hand, their item data left in place (see wire.parse_heap).
        self.subscribe = stream("Subscribe", pb.SubscribeRequest, wire.parse_heap)
        self.watch_stats = stream("WatchStats", pb.WatchStatsRequest, pb.StatsUpdate.FromString)
        self.send = channel.stream_unary(
            _SERVICE + "Send",
            request_serializer=pb.SendRequest.SerializeToString,
            response_deserializer=pb.SendResponse.FromString,
        )
        self.health = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )


class _ClientBase:
    _m: _Methods

    def __init__(self, token: str | None) -> None:
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )

    def _subscription(
        self,
        request: pb.SubscribeRequest,
        reconnect: bool | ReconnectPolicy,
        on_reconnect: Callable[[Reconnect], None] | None,
        timeout: float | None,
        plain: Callable[[Any], Any],
        reconnecting: Callable[[Callable[[float | None], Any], _Reconnector], Any],
    ) -> Any:
        """A subscription of the ``plain`` kind, or of the ``reconnecting`` one if asked."""

        def start(call_timeout: float | None) -> Any:
            return self._m.subscribe(request, metadata=self.metadata, timeout=call_timeout)

        what = f"subscription to {request.stream!r}"
        reconnector = _reconnector(reconnect, on_reconnect, what, timeout)
        if reconnector is None:
            return plain(start(timeout))
        return reconnecting(start, reconnector)


class Subscription:
    """An iterator of :class:`ReceivedHeap`; ``cancel()`` (or leaving ``with``) ends it."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._reassembler = Reassembler()

    def __iter__(self) -> Iterator[ReceivedHeap]:
        for message in self._call:
            heap = self._reassembler.feed(message)
            if heap is not None:
                yield heap

    @property
    def queue_depth(self) -> int:
        """The queue depth the server granted (waits for the call to start)."""
        return int(dict(self._call.initial_metadata()).get("x-queue-depth", 0))

    @property
    def subscriber_id(self) -> int:
        """The id of this subscription in the gateway's statistics and metrics."""
        return int(dict(self._call.initial_metadata()).get("x-subscriber-id", 0))

    def cancel(self) -> None:
        """Ends the subscription."""
        self._call.cancel()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()


def _acceptance(metadata: Any) -> tuple[int, str] | None:
    """The subscriber id and daemon instance in a call's initial metadata; None if the call
    never started."""
    values = dict(metadata or ())
    value = values.get("x-subscriber-id")
    return None if value is None else (int(value), values.get("x-gateway-instance", ""))


class _ReconnectState:
    """What both reconnecting subscriptions report about their :class:`_Reconnector`."""

    _reconnector: _Reconnector

    @property
    def connected(self) -> bool:
        """True while a call is in place (accepted by the gateway and not broken)."""
        return self._reconnector.connected

    @property
    def reconnects(self) -> int:
        """How many times the subscription got back after its call broke."""
        return self._reconnector.reconnects


class ReconnectingSubscription(_ReconnectState, Subscription):
    """A :class:`Subscription` that calls ``Subscribe`` again when its call breaks.

    From ``subscribe(..., reconnect=True)`` (or a :class:`ReconnectPolicy`). Errors outside the
    policy's ``retry_codes``, or an exhausted policy, end the iteration with the
    ``grpc.RpcError`` as usual; ``cancel()`` ends it quietly, even during a backoff wait. The
    first heap after a reconnection carries ``heap.reconnect``.
    """

    def __init__(self, start: Callable[[float | None], Any], reconnector: _Reconnector) -> None:
        self._start = start
        self._reconnector = reconnector
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        super().__init__(start(reconnector.call_timeout()))

    def __iter__(self) -> Iterator[ReceivedHeap]:
        r = self._reconnector
        while not self._stopped.is_set():
            call = self._call
            try:
                accepted = _acceptance(call.initial_metadata())
                if accepted is not None:
                    r.accepted(*accepted)
                reassembler = Reassembler()
                for message in call:
                    if not r.connected:  # a gateway that sends no subscriber id
                        r.accepted(0)
                    heap = reassembler.feed(message)
                    if heap is not None:
                        yield r.delivered(heap)
                r.connected = False
                return  # the stream ended for good
            except grpc.RpcError as exc:
                if self._stopped.is_set():
                    return
                delay = r.failed(exc)
                if delay is None:
                    raise
            except ProtocolError:
                call.cancel()
                raise
            if self._stopped.wait(delay):
                return
            with self._lock:
                if self._stopped.is_set():
                    return
                self._call = self._start(r.call_timeout())

    def cancel(self) -> None:
        """Ends the subscription (and any wait before a new call)."""
        with self._lock:
            self._stopped.set()
            self._call.cancel()


def _open_channel(
    module: Any,
    target: str,
    tls: bool,
    certificates: tuple[bytes | None, bytes | None, bytes | None],
    max_message_bytes: int,
    options: Iterable[tuple[str, Any]],
) -> Any:
    """A channel from ``module`` (``grpc`` or ``grpc.aio``): TLS when asked or when any
    certificate is given, plain text otherwise."""
    creds = _credentials(tls, *certificates)
    opts = _channel_options(max_message_bytes, options)
    if creds is None:
        return module.insecure_channel(target, options=opts)
    return module.secure_channel(target, creds, options=opts)


class GatewayClient(_ClientBase):
    """A synchronous connection to a gateway.

    ``token`` adds ``authorization: Bearer <token>`` to every call; ``tls`` (or any of the
    certificate arguments) makes the channel use TLS, with ``root_certificates`` to trust a
    private CA and ``private_key``/``certificate_chain`` for mutual TLS.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        options: Iterable[tuple[str, Any]] = (),
        timeout: float = 10.0,
    ) -> None:
        super().__init__(token)
        self.channel = _open_channel(
            grpc,
            target,
            tls,
            (root_certificates, private_key, certificate_chain),
            max_message_bytes,
            options,
        )
        self.timeout = timeout
        self._m = _Methods(self.channel)

    def list_streams(self) -> list[StreamInfo]:
        """Every stream of the gateway."""
        response = self._m.list_streams(
            pb.ListStreamsRequest(), metadata=self.metadata, timeout=self.timeout
        )
        return [StreamInfo.from_proto(s) for s in response.streams]

    def get_stream(self, name: str) -> StreamDetail:
        """Configuration, descriptors and statistics of one stream."""
        response = self._m.get_stream(
            pb.GetStreamRequest(name=name), metadata=self.metadata, timeout=self.timeout
        )
        return StreamDetail.from_proto(response)

    def subscribe(
        self,
        stream: str,
        items: Iterable[str | int] = (),
        every_nth: int = 1,
        include_incomplete: bool = False,
        queue_depth: int = 0,
        *,
        reconnect: bool | ReconnectPolicy = False,
        on_reconnect: Callable[[Reconnect], None] | None = None,
        timeout: float | None = None,
    ) -> Subscription:
        """Heaps of a receive stream, optionally only some items and every Nth heap.

        ``reconnect`` (True, or a :class:`ReconnectPolicy`) makes a
        :class:`ReconnectingSubscription`, which calls again when the call breaks;
        ``on_reconnect`` is then called (in the iterating thread) each time it got back.
        ``timeout`` bounds the whole subscription (DEADLINE_EXCEEDED, never retried).
        """
        request = _subscribe_request(
            stream, list(items), every_nth, include_incomplete, queue_depth
        )
        subscription: Subscription = self._subscription(
            request, reconnect, on_reconnect, timeout, Subscription, ReconnectingSubscription
        )
        return subscription

    def watch_stats(
        self,
        streams: Iterable[str] = (),
        interval: float = 1.0,
        *,
        reconnect: bool | ReconnectPolicy = False,
        on_reconnect: Callable[[Reconnect], None] | None = None,
        timeout: float | None = None,
    ) -> Iterator[StatsUpdate]:
        """Statistics every ``interval`` seconds (iterate; close the iterator to stop).

        ``reconnect``, ``on_reconnect`` and ``timeout`` work as for :meth:`subscribe`.
        """
        request = pb.WatchStatsRequest(streams=list(streams), interval_seconds=interval)
        r = _reconnector(reconnect, on_reconnect, "stats watch", timeout)
        while True:
            call = self._m.watch_stats(
                request,
                metadata=self.metadata,
                timeout=timeout if r is None else r.call_timeout(),
            )
            try:
                for message in call:
                    yield _stats_update(message, r)
                return
            except grpc.RpcError as exc:
                delay = None if r is None else r.failed(exc)
                if delay is None:
                    raise
            finally:
                call.cancel()
            time.sleep(delay)

    def sender(self, stream: str) -> SyncHeapSender:
        """An ItemGroup-like sender into a send stream (one ``Send`` call)."""
        return SyncHeapSender(stream, self._m.send, self.metadata)

    def health(self, service: str = "") -> str:
        """ "SERVING", "NOT_SERVING", ... for the gateway ("") or ``receive/<stream>``."""
        response = self._m.health(
            health_pb2.HealthCheckRequest(service=service), timeout=self.timeout
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    def close(self) -> None:
        """Closes the channel."""
        self.channel.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncSubscription:
    """An async iterator of :class:`ReceivedHeap`; ``cancel()`` ends it."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._reassembler = Reassembler()

    async def __aiter__(self) -> AsyncIterator[ReceivedHeap]:
        async for message in self._call:
            heap = self._reassembler.feed(message)
            if heap is not None:
                yield heap

    async def queue_depth(self) -> int:
        """The queue depth the server granted."""
        metadata = await self._call.initial_metadata()
        return int(dict(metadata).get("x-queue-depth", 0))

    async def subscriber_id(self) -> int:
        """The id of this subscription in the gateway's statistics and metrics."""
        metadata = await self._call.initial_metadata()
        return int(dict(metadata).get("x-subscriber-id", 0))

    def cancel(self) -> None:
        """Ends the subscription."""
        self._call.cancel()


class AsyncReconnectingSubscription(_ReconnectState, AsyncSubscription):
    """The asyncio :class:`ReconnectingSubscription` (``subscribe(..., reconnect=...)``)."""

    def __init__(self, start: Callable[[float | None], Any], reconnector: _Reconnector) -> None:
        self._start = start
        self._reconnector = reconnector
        self._stopped = asyncio.Event()
        super().__init__(start(reconnector.call_timeout()))

    async def __aiter__(self) -> AsyncIterator[ReceivedHeap]:
        r = self._reconnector
        while not self._stopped.is_set():
            call = self._call
            try:
                accepted = _acceptance(await call.initial_metadata())
                if accepted is not None:
                    r.accepted(*accepted)
                reassembler = Reassembler()
                async for message in call:
                    if not r.connected:  # a gateway that sends no subscriber id
                        r.accepted(0)
                    heap = reassembler.feed(message)
                    if heap is not None:
                        yield r.delivered(heap)
                r.connected = False
                return  # the stream ended for good
            except asyncio.CancelledError:
                if self._stopped.is_set():  # our cancel(), not the task's
                    return
                raise
            except grpc.RpcError as exc:
                if self._stopped.is_set():
                    return
                delay = r.failed(exc)
                if delay is None:
                    raise
            except ProtocolError:
                call.cancel()
                raise
            try:
                await asyncio.wait_for(self._stopped.wait(), delay)
                return
            except TimeoutError:
                pass
            self._call = self._start(r.call_timeout())

    def cancel(self) -> None:
        """Ends the subscription (and any wait before a new call)."""
        self._stopped.set()
        self._call.cancel()


class AsyncGatewayClient(_ClientBase):
    """The asyncio counterpart of :class:`GatewayClient` (same arguments)."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        options: Iterable[tuple[str, Any]] = (),
        timeout: float = 10.0,
    ) -> None:
        super().__init__(token)
        self.channel = _open_channel(
            grpc.aio,
            target,
            tls,
            (root_certificates, private_key, certificate_chain),
            max_message_bytes,
            options,
        )
        self.timeout = timeout
        self._m = _Methods(self.channel)

    async def list_streams(self) -> list[StreamInfo]:
        """Every stream of the gateway."""
        response = await self._m.list_streams(
            pb.ListStreamsRequest(), metadata=self.metadata, timeout=self.timeout
        )
        return [StreamInfo.from_proto(s) for s in response.streams]

    async def get_stream(self, name: str) -> StreamDetail:
        """Configuration, descriptors and statistics of one stream."""
        response = await self._m.get_stream(
            pb.GetStreamRequest(name=name), metadata=self.metadata, timeout=self.timeout
        )
        return StreamDetail.from_proto(response)

    def subscribe(
        self,
        stream: str,
        items: Iterable[str | int] = (),
        every_nth: int = 1,
        include_incomplete: bool = False,
        queue_depth: int = 0,
        *,
        reconnect: bool | ReconnectPolicy = False,
        on_reconnect: Callable[[Reconnect], None] | None = None,
        timeout: float | None = None,
    ) -> AsyncSubscription:
        """Heaps of a receive stream (``async for heap in client.subscribe(...)``);
        ``reconnect``, ``on_reconnect`` and ``timeout`` as for :meth:`GatewayClient.subscribe`.
        """
        request = _subscribe_request(
            stream, list(items), every_nth, include_incomplete, queue_depth
        )
        subscription: AsyncSubscription = self._subscription(
            request,
            reconnect,
            on_reconnect,
            timeout,
            AsyncSubscription,
            AsyncReconnectingSubscription,
        )
        return subscription

    async def watch_stats(
        self,
        streams: Iterable[str] = (),
        interval: float = 1.0,
        *,
        reconnect: bool | ReconnectPolicy = False,
        on_reconnect: Callable[[Reconnect], None] | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[StatsUpdate]:
        """Statistics every ``interval`` seconds; ``reconnect``, ``on_reconnect`` and
        ``timeout`` as for :meth:`GatewayClient.subscribe`."""
        request = pb.WatchStatsRequest(streams=list(streams), interval_seconds=interval)
        r = _reconnector(reconnect, on_reconnect, "stats watch", timeout)
        while True:
            call = self._m.watch_stats(
                request,
                metadata=self.metadata,
                timeout=timeout if r is None else r.call_timeout(),
            )
            try:
                async for message in call:
                    yield _stats_update(message, r)
                return
            except grpc.RpcError as exc:
                delay = None if r is None else r.failed(exc)
                if delay is None:
                    raise
            finally:
                call.cancel()
            await asyncio.sleep(delay)

    def sender(self, stream: str) -> AsyncHeapSender:
        """An ItemGroup-like sender into a send stream (needs a running event loop)."""
        return AsyncHeapSender(stream, self._m.send, self.metadata)

    async def health(self, service: str = "") -> str:
        """The health status of the gateway ("") or of ``receive/<stream>``."""
        response = await self._m.health(
            health_pb2.HealthCheckRequest(service=service), timeout=self.timeout
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    async def close(self) -> None:
        """Closes the channel."""
        await self.channel.close(None)

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
