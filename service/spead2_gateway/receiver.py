"""A receive stream owned by the daemon: read once, decoded once, published to its hub.

Each stream has its own reader thread, which blocks in ``spead2.recv.Stream.get`` (the GIL is
released while it waits) and so drains the ringbuffer at line rate whatever the event loop is
doing. Per heap it updates a ``spead2.ItemGroup`` (descriptors are tracked per stream),
encodes every updated item once (``codec`` + ``wire``) and hands the result to the
:class:`~spead2_gateway.hub.Hub`, which never blocks.

When the spead2 stream stops (a TCP sender disconnects, a stop item with
``stop_on_stop_item``, the end of a pcap file) it is reopened if ``restart`` is set; the
statistics of every incarnation are summed, so counters never go backwards.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import spead2
import spead2.recv
from google.protobuf.timestamp_pb2 import Timestamp

from spead2_gateway import codec, wire
from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.config import ReceiveStreamConfig
from spead2_gateway.hub import Envelope, Hub

__all__ = ["ReceiveStream"]

logger = logging.getLogger(__name__)

RESTART_DELAY = 0.2
MAX_RESTART_DELAY = 5.0
LOG_INTERVAL = 10.0


class _RateLimitedLog:
    """At most one record per interval, with a count of those suppressed."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -interval
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return
        if self._suppressed:
            message += f" ({self._suppressed} similar messages suppressed)"
        self._suppressed = 0
        self._last = now
        logger.warning(message, *args)


def _stat_modes() -> dict[str, bool]:
    """Stat name -> True for counters (summed over restarts), False for maxima."""
    return {
        s.name: s.mode == spead2.recv.StreamStatConfig.Mode.COUNTER
        for s in spead2.recv.StreamConfig().stats
    }


class ReceiveStream:
    """One configured receive stream, its reader thread and its hub."""

    kind = "receive"

    def __init__(
        self,
        config: ReceiveStreamConfig,
        hub: Hub,
        fragment_bytes: int,
        on_state: Callable[[ReceiveStream], None] | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.hub = hub
        self.fragment_bytes = fragment_bytes
        self.on_state = on_state
        self.state = "stopped"
        self.restarts = 0
        self.decode_errors = 0
        self.ring_high_water = 0
        self.descriptors: tuple[pb.Descriptor, ...] = ()
        self._thread_pool = spead2.ThreadPool(config.threads)
        self._pool = self._make_pool()
        self._modes = _stat_modes()
        self._lock = threading.Lock()  # guards _stream and the totals of past incarnations
        self._past_stats: dict[str, int] = {}
        self._past_drops: dict[str, int] = {}
        self._stream: spead2.recv.Stream | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._item_group = spead2.ItemGroup()
        self._decode_log = _RateLimitedLog(LOG_INTERVAL)

    # Setup -----------------------------------------------------------------------------

    def _make_pool(self) -> spead2.MemoryPool | None:
        pool = self.config.memory_pool
        if pool is None:
            return None
        return spead2.MemoryPool(pool.lower, pool.upper, pool.max_free, pool.initial)

    def _open(self) -> spead2.recv.Stream:
        """A new spead2 stream with its reader; raises OSError/ValueError on failure."""
        c = self.config
        kwargs: dict[str, Any] = {
            "max_heaps": c.max_heaps,
            "max_heap_size": c.max_heap_size,
            "substreams": c.substreams,
            "bug_compat": c.bug_compat,
            "memcpy": spead2.MEMCPY_NONTEMPORAL if c.memcpy == "nontemporal" else spead2.MEMCPY_STD,
            "stop_on_stop_item": c.stop_on_stop_item,
            "allow_unsized_heaps": c.allow_unsized_heaps,
            "allow_out_of_order": c.allow_out_of_order,
            "stream_id": c.stream_id,
            "explicit_start": c.explicit_start,
        }
        if self._pool is not None:
            kwargs["memory_allocator"] = self._pool
        stream = spead2.recv.Stream(
            self._thread_pool,
            spead2.recv.StreamConfig(**kwargs),
            spead2.recv.RingStreamConfig(
                heaps=c.ring_heaps,
                contiguous_only=c.contiguous_only,
                incomplete_keep_payload_ranges=c.incomplete_keep_payload_ranges,
            ),
        )
        try:
            self._add_reader(stream)
            if c.explicit_start:
                stream.start()
        except BaseException:
            stream.stop()
            raise
        return stream

    def _add_reader(self, stream: spead2.recv.Stream) -> None:
        c = self.config
        if c.transport == "pcap":
            stream.add_udp_pcap_file_reader(str(c.file), c.filter)
        elif c.transport == "tcp":
            stream.add_tcp_reader(c.port, c.max_size, c.buffer_size, c.host)
        elif c.group is None:
            stream.add_udp_reader(c.port, c.max_size, c.buffer_size, c.host)
        elif c.interface_index is not None:
            stream.add_udp_reader(
                c.group, c.port, c.max_size, c.buffer_size, interface_index=c.interface_index
            )
        else:
            stream.add_udp_reader(
                c.group, c.port, c.max_size, c.buffer_size, c.interface_address or "0.0.0.0"
            )

    def start(self) -> None:
        """Opens the stream (errors propagate: the daemon fails at start) and the reader."""
        self._stream = self._open()
        self._set_state("running")
        self._thread = threading.Thread(
            target=self._run, name=f"spead2-gateway-recv-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stops the spead2 stream; the reader thread ends soon after (see :meth:`join`)."""
        self._stopping.set()
        with self._lock:
            if self._stream is not None:
                self._stream.stop()

    def join(self, timeout: float) -> bool:
        """Waits for the reader thread; True if it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.on_state is not None:
                self.on_state(self)

    # Reader thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            stream = self._stream
            assert stream is not None
            try:
                heap = stream.get()
            except spead2.Stopped:
                if not self._after_stop(stream):
                    return
                continue
            except Exception as exc:  # never let the reader die: treat it as a stop
                logger.error("stream %s: receive failed: %s", self.name, exc)
                stream.stop()
                if not self._after_stop(stream):
                    return
                continue
            self.ring_high_water = max(self.ring_high_water, stream.ringbuffer.size() + 1)
            self._publish(heap)

    def _publish(self, heap: spead2.recv.Heap | spead2.recv.IncompleteHeap) -> None:
        """Decodes, encodes and fans out one heap; a heap that cannot be is counted, skipped."""
        try:
            self.hub.publish(self._encode(heap))
        except Exception as exc:  # input from the network must never stop the stream
            self.decode_errors += 1
            self._decode_log.warning(
                "stream %s: heap %d could not be decoded: %s", self.name, heap.cnt, exc
            )

    def _fold(self, stream: spead2.recv.Stream) -> None:
        """Adds a finished incarnation's statistics to the totals (caller holds the lock)."""
        for name, value in stream.stats.items():
            old = self._past_stats.get(name, 0)
            self._past_stats[name] = old + value if self._modes.get(name, True) else max(old, value)
        for reason, count in stream.drop_counts.items():
            self._past_drops[reason] = self._past_drops.get(reason, 0) + count

    def _after_stop(self, stream: spead2.recv.Stream) -> bool:
        """Handles the end of a spead2 stream; True if a new one replaced it."""
        with self._lock:
            self._fold(stream)
            self._stream = None
        if self._stopping.is_set():
            return False
        if not self.config.restart:
            logger.info("stream %s: ended", self.name)
            self._set_state("stopped")
            self.hub.close(f"stream {self.name} ended", shutdown=False)
            return False
        delay = RESTART_DELAY
        while not self._stopping.wait(delay):
            try:
                new = self._open()
            except (OSError, ValueError, RuntimeError) as exc:
                logger.warning("stream %s: cannot restart: %s", self.name, exc)
                self._set_state("failed")
                delay = min(delay * 2, MAX_RESTART_DELAY)
                continue
            with self._lock:
                if self._stopping.is_set():
                    new.stop()
                    return False
                self._stream = new
            self.restarts += 1
            logger.info("stream %s: restarted after the spead2 stream stopped", self.name)
            self._set_state("running")
            return True
        return False

    def _encode(self, heap: spead2.recv.Heap | spead2.recv.IncompleteHeap) -> Envelope:
        """Decodes a heap once and encodes its items once."""
        stamp = Timestamp()
        stamp.FromNanoseconds(time.time_ns())
        header = pb.Heap(
            stream=self.name,
            cnt=heap.cnt,
            received=stamp,
            start_of_stream=heap.is_start_of_stream(),
            end_of_stream=heap.is_end_of_stream(),
        )
        if isinstance(heap, spead2.recv.IncompleteHeap):
            header.incomplete = True
            header.heap_length = max(heap.heap_length, 0)
            header.received_length = heap.received_length
            items = self._incomplete_items(heap)
        else:
            updated = self._item_group.update(heap)
            if heap.get_descriptors():
                self._refresh_descriptors()
            items = [self._encode_item(item) for item in updated.values()]
        return Envelope(
            wire.encode_header(header),
            items,
            header.incomplete,
            self.fragment_bytes,
            self._retained_bytes(heap),
        )

    def _retained_bytes(self, heap: spead2.recv.Heap | spead2.recv.IncompleteHeap) -> float:
        """The heap memory that views of its items keep alive while queued (see Envelope)."""
        if self._pool is not None:
            # Pool buffers go back at once: the capture path allocates from the pool, and
            # subscriber queues holding its buffers would leave it empty.
            return math.inf
        size = sum(memoryview(raw).nbytes for raw in heap.get_items())
        if isinstance(heap, spead2.recv.IncompleteHeap):
            size = max(size, heap.received_length)
        return size

    def _incomplete_items(self, heap: spead2.recv.IncompleteHeap) -> list[wire.EncodedItem]:
        """Items of an incomplete heap that are known and decodable (immediates only)."""
        items = []
        for raw in heap.get_items():
            if raw.id not in self._item_group.ids():
                continue
            known = self._item_group[raw.id]
            scratch = spead2.Item(
                known.id,
                known.name,
                known.description,
                known.shape,
                known.dtype,
                known.order,
                known.format,
            )
            try:
                scratch.set_from_raw(raw)
            except ValueError:
                continue
            items.append(self._encode_item(scratch))
        return items

    @staticmethod
    def _encode_item(item: spead2.Item) -> wire.EncodedItem:
        format = item.format if item.dtype is None else None
        array = codec.to_array(item.value, format)
        fortran, data = codec.array_to_bytes(array)
        meta = pb.Item(
            id=item.id,
            name=item.name,
            dtype=codec.dtype_to_wire(array.dtype),
            shape=array.shape,
            fortran_order=fortran,
        )
        for code, bits in format or ():
            meta.format.add(code=code, bits=bits)
        return wire.EncodedItem.from_proto(meta, data)

    def _refresh_descriptors(self) -> None:
        self.descriptors = tuple(
            codec.descriptor_to_proto(
                item.id,
                item.name,
                item.description,
                item.shape,
                item.dtype,
                item.format,
                item.order,
            )
            for item in self._item_group.values()
        )

    # Statistics ------------------------------------------------------------------------

    def stats(self) -> pb.StreamStats:
        """Current statistics, summed over every incarnation of the spead2 stream."""
        message = pb.StreamStats(stream=self.name, kind=pb.STREAM_KIND_RECEIVE)
        with self._lock:
            counters = dict(self._past_stats)
            drops = dict(self._past_drops)
            stream = self._stream
            if stream is not None:
                for name, value in stream.stats.items():
                    old = counters.get(name, 0)
                    counters[name] = old + value if self._modes.get(name, True) else max(old, value)
                for reason, count in stream.drop_counts.items():
                    drops[reason] = drops.get(reason, 0) + count
                message.ring_depth = stream.ringbuffer.size()
                message.ring_capacity = stream.ringbuffer.capacity()
        if not message.ring_capacity:
            message.ring_capacity = self.config.ring_heaps
        counters["decode_errors"] = self.decode_errors
        message.counters.update(counters)
        message.drops.update(drops)
        message.ring_high_water = self.ring_high_water
        if self._pool is not None:
            message.memory_pool.update({k: max(v, 0) for k, v in self._pool.stats.items()})
        message.restarts = self.restarts
        published, dropped, subs = self.hub.counters()
        message.published_heaps = published
        message.subscriber_dropped_heaps = dropped
        for c in subs:
            message.subscribers.add(
                id=c.id,
                queued_heaps=c.queued_heaps,
                queued_bytes=c.queued_bytes,
                queue_depth=c.queue_depth,
                delivered_heaps=c.delivered_heaps,
                delivered_bytes=c.delivered_bytes,
                dropped_heaps=c.dropped_heaps,
            )
        return message

    def close(self) -> None:
        """Releases the thread pool (after :meth:`stop` and :meth:`join`)."""
        self._thread_pool.stop()
