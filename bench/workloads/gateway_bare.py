"""The ceiling for the ``gateway`` suite: a bare grpcio aio server streaming pre-built messages.

It serves the gateway's ``Subscribe`` method (same method path, same server channel options as
the daemon, ``response_serializer=None``) so that the very same subscriber programs can read
from it, but does nothing per heap except send bytes built before the first subscriber came:
the Heap message bodies of one heap with the same two items (``payload``, ``timestamp``) and
the same fragment size as the daemon, encoded once. Each message is only the per-subscriber
prefix (``sequence`` and the daemon's alignment padding), the pre-built body and the heap's
``cnt`` (a later field wins in protobuf), joined into one ``bytes``: grpcio needs a distinct
bytes object per message, and a numbered stream cannot avoid that one concatenation.

Waits until --subscribers subscriptions are open, then streams --heaps heaps to each, then a
heap marked ``end_of_stream``. Prints ``READY <port>`` once serving; runs until SIGTERM.

With --relay-port it is instead the **input floor**: the ceiling plus nothing but reading
the input from a socket. It accepts one TCP connection on that port (from ``raw_feed.py``)
and, for its one subscriber, reads each heap's payload as raw bytes straight off that socket
into the buffer the message is joined from (one read per heap, in a thread, as a capture
would), then sends the message exactly as above. No SPEAD, no heap assembly, no decoding, no
hub: a SPEAD gateway does this work and more on top, on the same two cores.

With --sink-port it is the ceiling for the **input bound**: the same pre-built messages,
while a thread of the same process reads a raw TCP transfer (``raw_feed.py --rate``) off that
port and discards it, one ``MSG_WAITALL`` read per block, stamping each block's arrival
(``time.time_ns``) and writing the stamps to --sink-stamps (native int64) when it stops. A
gateway has at least to take in its input and send as this server does; here the two share
nothing but the process and the machine, with no hand-off from one to the other.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from spead2_gateway import wire
from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.app import server_options
from spead2_gateway.config import ServerConfig, SubscribeConfig
from spead2_gateway.malloc import tune_malloc
from spead2_gateway.service import SERVICE_NAME

FIRST_CNT = 1000  # as gateway_send.py
_TAG_HEAP_CNT = b"\x10"  # Heap.cnt = 2, varint
FEED_ACCEPT_TIMEOUT = 30.0  # seconds for raw_feed.py to connect


def heap_parts(payload: memoryview) -> tuple[bytes, list[wire.EncodedItem]]:
    """The header and items of one heap as the daemon would encode them, the payload item's
    data a view of ``payload``."""
    stamp = Timestamp()
    stamp.GetCurrentTime()
    header = pb.Heap(stream="bench", cnt=FIRST_CNT, received=stamp).SerializeToString()
    timestamp = np.array(stamp.ToNanoseconds(), dtype=np.uint64)
    items = [
        wire.EncodedItem.from_proto(
            pb.Item(id=0x1000, name="payload", dtype="|u1", shape=[len(payload)]),
            payload,
        ),
        wire.EncodedItem.from_proto(
            pb.Item(id=0x1001, name="timestamp", dtype="<u8", shape=[]),
            memoryview(timestamp.reshape(1).view(np.uint8)).cast("B"),
        ),
    ]
    return header, items


def accept_feed(listener: socket.socket) -> socket.socket:
    """The one connection of raw_feed.py (socket.timeout if it does not come)."""
    listener.settimeout(FEED_ACCEPT_TIMEOUT)
    feed, _ = listener.accept()
    return feed


def prebuilt_bodies(heap_size: int, fragment_bytes: int) -> list[bytes]:
    """The shared part of every message of one heap with a fixed payload, encoded once."""
    payload = np.arange(heap_size, dtype=np.uint64).astype(np.uint8)
    return wire.build_fragments(*heap_parts(memoryview(payload).cast("B")), fragment_bytes)


class Bare:
    def __init__(self, bodies: list[bytes], heaps: int, subscribers: int) -> None:
        self.bodies: list[tuple[bytes | memoryview, ...]] = [(body,) for body in bodies]
        self.heaps = heaps
        self.subscribers = subscribers
        self.joined = 0
        self.all_joined = asyncio.Event()
        end = pb.Heap(stream="bench", cnt=FIRST_CNT + heaps, end_of_stream=True)
        self.end = end.SerializeToString()

    async def subscribe(self, request: Any, context: Any) -> AsyncIterator[bytes]:
        await context.send_initial_metadata((("x-queue-depth", "64"), ("x-subscriber-id", "1")))
        self.joined += 1
        if self.joined >= self.subscribers:
            self.all_joined.set()
        await self.all_joined.wait()
        for seq in range(1, self.heaps + 1):
            tail = _TAG_HEAP_CNT + wire.varint(FIRST_CNT + seq - 1)
            prefix = wire.subscriber_prefix(seq, 0)
            for body in await self.next_bodies():
                yield b"".join((prefix, *body, tail))
        yield wire.subscriber_prefix(self.heaps + 1, 0) + self.end

    async def next_bodies(self) -> list[tuple[bytes | memoryview, ...]]:
        """The next heap's message bodies, as pieces."""
        return self.bodies


class Relay(Bare):
    """The input floor: each heap's payload read off a raw TCP socket (one subscriber).

    A reader thread fills a ring of payload buffers, one ``MSG_WAITALL`` read per heap (the
    GIL released), while the event loop sends, as a capture thread would. A buffer is read
    into again only after the messages joined from it have been built.
    """

    RING = 4

    def __init__(self, listener: socket.socket, heap_size: int, fragment_bytes: int, heaps: int):
        super().__init__([], heaps, 1)
        self.buffers = [bytearray(heap_size) for _ in range(self.RING)]
        self.plans = [
            wire.plan_fragments(*heap_parts(memoryview(b)), fragment_bytes) for b in self.buffers
        ]
        self.listener = listener
        self.free = threading.Semaphore(self.RING)
        self.filled: asyncio.Queue[int] = asyncio.Queue()  # buffer indices; -1: feed failed
        self.started = False
        self.holding = False  # the previous heap's buffer, until its messages are joined

    async def subscribe(self, request: Any, context: Any) -> AsyncIterator[bytes]:
        if self.started:  # a second reader of the ring would free buffers still in use
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the relay has one subscriber")
        self.started = True
        loop = asyncio.get_running_loop()
        threading.Thread(target=self.read_heaps, args=(loop,), daemon=True).start()
        async for message in super().subscribe(request, context):
            yield message

    def read_heaps(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reader thread: fills the ring; -1 if the feed fails before the last heap."""
        done = 0
        try:
            with accept_feed(self.listener) as feed:
                for index in range(self.heaps):
                    self.free.acquire()
                    view = memoryview(self.buffers[index % self.RING])
                    if feed.recv_into(view, len(view), socket.MSG_WAITALL) != len(view):
                        return
                    loop.call_soon_threadsafe(self.filled.put_nowait, index % self.RING)
                    done += 1
        finally:
            if done < self.heaps:
                loop.call_soon_threadsafe(self.filled.put_nowait, -1)

    async def next_bodies(self) -> list[tuple[bytes | memoryview, ...]]:
        if self.holding:
            self.free.release()  # the previous heap's messages are joined by now
        index = await self.filled.get()
        if index < 0:
            raise RuntimeError("the raw feed failed before the last heap")
        self.holding = True
        return [fragment.pieces for fragment in self.plans[index]]


class Sink:
    """The input bound's receiving end: reads one raw TCP transfer block by block, in a
    thread, discarding the data and stamping each block's arrival."""

    def __init__(self, listener: socket.socket, block_size: int) -> None:
        self.listener = listener
        self.block = memoryview(bytearray(block_size))
        self.stamps = array.array("q")
        self.thread = threading.Thread(target=self.read_blocks, daemon=True)

    def read_blocks(self) -> None:
        size = len(self.block)
        with accept_feed(self.listener) as feed:
            while feed.recv_into(self.block, size, socket.MSG_WAITALL) == size:
                self.stamps.append(time.time_ns())

    def save(self, path: str) -> None:
        """Writes the stamps so far (the transfer may still be running)."""
        with open(path, "wb") as f:
            f.write(self.stamps.tobytes())


def make_servicer(args: argparse.Namespace) -> Bare:
    if not args.relay_port:
        bodies = prebuilt_bodies(args.heap_size, args.fragment_bytes)
        return Bare(bodies, args.heaps, args.subscribers)
    if args.subscribers != 1:
        raise SystemExit("--relay-port serves exactly one subscriber")
    listener = socket.create_server(("127.0.0.1", args.relay_port))
    return Relay(listener, args.heap_size, args.fragment_bytes, args.heaps)


async def serve(args: argparse.Namespace) -> None:
    bare = make_servicer(args)
    handler = grpc.unary_stream_rpc_method_handler(
        bare.subscribe,
        request_deserializer=pb.SubscribeRequest.FromString,
        response_serializer=None,
    )
    extra = [(name, int(value)) for name, value in (o.split("=", 1) for o in args.option)]
    server = grpc.aio.server(options=server_options(ServerConfig()) + extra)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, {"Subscribe": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    sink = None
    if args.sink_port:
        sink = Sink(socket.create_server(("127.0.0.1", args.sink_port)), args.heap_size)
        sink.thread.start()
    await server.start()
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if sink is not None:
        sink.save(args.sink_stamps)
    await server.stop(0.5)


def main() -> None:
    tune_malloc()  # as the daemon and the client CLI do (see docs/gateway.md)
    parser = argparse.ArgumentParser()
    parser.add_argument("--heap-size", type=int, required=True)
    parser.add_argument("--heaps", type=int, required=True)
    parser.add_argument("--subscribers", type=int, default=1)
    parser.add_argument("--fragment-bytes", type=int, default=SubscribeConfig().fragment_bytes)
    parser.add_argument(
        "--relay-port", type=int, default=0, help="the input floor: payload from raw TCP"
    )
    parser.add_argument(
        "--sink-port", type=int, default=0, help="the input bound: read raw TCP beside"
    )
    parser.add_argument("--sink-stamps", help="where the sink writes its arrival stamps")
    parser.add_argument(
        "--option", action="append", default=[], help="extra server option NAME=INT (tuning)"
    )
    args = parser.parse_args()
    if args.sink_port and (args.relay_port or not args.sink_stamps):
        parser.error("--sink-port needs --sink-stamps and excludes --relay-port")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
