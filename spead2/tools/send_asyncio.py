"""spead2_send.py: send heaps of synthetic data over UDP or TCP.

Each heap holds ``--items`` one-dimensional arrays of ``--dtype`` (zeros) that together fill
``--heap-size`` bytes. Heaps go round-robin to the destinations (one substream each); every
substream gets its own descriptors (at its first heap, or every ``--descriptors`` heaps) and
its own end-of-stream heap. Progress goes to stderr; the summary goes to stdout::

    Sent <bytes> bytes in <seconds>s, <rate> Gb/s
    Sent <n> heaps, <rate> heaps/s

Ctrl-C (or SIGTERM) stops sending early, still ending the streams cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import logging
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import spead2
import spead2.send
import spead2.send.asyncio
from spead2.tools.cmdline import (
    Progress,
    ProgressCounts,
    ProtocolOptions,
    SenderOptions,
    ToolError,
    add_log_argument,
    add_progress_arguments,
    configure_logging,
    gbps,
    parse_endpoint,
)

PROG = "spead2_send.py"


@dataclass
class SendArgs:
    """Everything :func:`run` needs, taken from the command line."""

    destinations: list[tuple[str, int]]
    heap_size: int
    items: int
    dtype: np.dtype
    heaps: int | None
    descriptors: int | None
    protocol: ProtocolOptions
    sender: SenderOptions
    progress: bool
    interval: float


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for spead2_send.py."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Send heaps of synthetic data as SPEAD (asyncio)."
    )
    parser.add_argument("destination", type=parse_endpoint, nargs="+", metavar="HOST:PORT")
    group = parser.add_argument_group("Data options")
    group.add_argument(
        "--heap-size",
        type=int,
        default=4194304,
        metavar="BYTES",
        help="Payload size for heap [4194304]",
    )
    group.add_argument("--items", type=int, default=1, help="Number of items per heap [1]")
    group.add_argument("--dtype", default="<c8", help="Numpy data type [<c8]")
    group.add_argument("--heaps", type=int, help="Number of data heaps to send [infinite]")
    group = parser.add_argument_group("Output options")
    add_log_argument(group)
    add_progress_arguments(group)
    group = parser.add_argument_group("Protocol and performance options")
    ProtocolOptions().add_arguments(group)
    SenderOptions().add_arguments(group)
    group.add_argument(
        "--descriptors", type=int, help="Description issue frequency [only at start]"
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> SendArgs:
    """Parses and checks the command line; exits with status 2 on a usage error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log, parser)
    protocol = ProtocolOptions()
    protocol.notify(parser, args)
    sender = SenderOptions()
    sender.notify(parser, args)
    if protocol.tcp and len(args.destination) != 1:
        parser.error("only one destination is supported with TCP")
    if args.heap_size <= 0 or args.items <= 0:
        parser.error("--heap-size and --items must be positive")
    if args.heaps is not None and args.heaps < 0:
        parser.error("--heaps must not be negative")
    if args.descriptors is not None and args.descriptors <= 0:
        parser.error("--descriptors must be positive")
    try:
        dtype = np.dtype(args.dtype)
    except TypeError as exc:
        parser.error(f"argument --dtype: {exc}")
    if dtype.hasobject or dtype.itemsize == 0:
        parser.error(f"argument --dtype: {args.dtype!r} cannot be sent")
    if args.heap_size < args.items * dtype.itemsize:
        parser.error("--heap-size is too small for --items elements of --dtype")
    return SendArgs(
        destinations=list(args.destination),
        heap_size=args.heap_size,
        items=args.items,
        dtype=dtype,
        heaps=args.heaps,
        descriptors=args.descriptors,
        protocol=protocol,
        sender=sender,
        progress=Progress.wanted(args.progress),
        interval=args.interval,
    )


def make_item_group(args: SendArgs, flavour: spead2.Flavour) -> spead2.ItemGroup:
    """The items of every data heap: ``args.items`` zero arrays splitting the heap size."""
    per_item = args.heap_size // (args.items * args.dtype.itemsize)
    actual = per_item * args.items * args.dtype.itemsize
    if actual != args.heap_size:
        logging.warning(
            "Heap size is not an exact multiple: using %d instead of %d", actual, args.heap_size
        )
    item_group = spead2.ItemGroup()
    for i in range(args.items):
        item_group.add_item(
            None,
            f"Test item {i}",
            "A test item with arbitrary value",
            (per_item,),
            dtype=args.dtype,
            value=np.zeros((per_item,), args.dtype),
        )
    return item_group


class Sender:
    """Keeps up to ``max_heaps`` heaps in flight on one stream and counts what was sent."""

    def __init__(
        self,
        stream: spead2.send.asyncio.UdpStream | spead2.send.asyncio.TcpStream,
        generators: list[spead2.send.HeapGenerator],
        max_heaps: int,
    ) -> None:
        self.stream = stream
        self.generators = generators
        self.max_heaps = max_heaps
        self.counts = ProgressCounts()
        self._in_flight: collections.deque[asyncio.Future[int]] = collections.deque()

    async def send(self, heap: spead2.send.Heap, substream: int, data: bool = True) -> None:
        """Queues one heap, first waiting for room if ``max_heaps`` are in flight."""
        while len(self._in_flight) >= self.max_heaps:
            await self._in_flight.popleft()
        if self.counts.started is None:
            self.counts.started = time.monotonic()
        future = self.stream.async_send_heap(heap, substream_index=substream)
        future.add_done_callback(lambda f: self._account(f, data))
        self._in_flight.append(future)

    def _account(self, future: asyncio.Future[int], data: bool) -> None:
        if not future.cancelled() and future.exception() is None:
            self.counts.bytes += future.result()
            self.counts.heaps += int(data)

    async def flush(self) -> None:
        """Waits for every queued heap; raises the first send error."""
        while self._in_flight:
            await self._in_flight.popleft()

    async def run(self, heaps: int | None, stop: asyncio.Event) -> None:
        """Sends ``heaps`` data heaps (forever if None, until ``stop``), then the end heaps."""
        substreams = len(self.generators)
        counter = range(heaps) if heaps is not None else itertools.count()
        for i in counter:
            if stop.is_set():
                break
            generator = self.generators[i % substreams]
            heap = generator.get_heap(descriptors="stale", data="all")
            await self.send(heap, i % substreams)
        for index, generator in enumerate(self.generators):
            await self.send(generator.get_end(), index, data=False)
        await self.flush()


async def run(args: SendArgs) -> tuple[ProgressCounts, float]:
    """Sends as the arguments describe; returns the totals and the seconds spent sending."""
    thread_pool = args.sender.make_thread_pool()
    flavour = args.sender.make_flavour(args.protocol)
    stream = await args.sender.make_stream(thread_pool, args.destinations, args.protocol)
    item_group = make_item_group(args, flavour)
    generators = [
        spead2.send.HeapGenerator(item_group, args.descriptors, flavour) for _ in args.destinations
    ]
    sender = Sender(stream, generators, args.sender.max_heaps)
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    reporter: asyncio.Task[None] | None = None
    if args.progress:
        progress = Progress("sent", args.interval, lambda: _snapshot(sender.counts))
        reporter = asyncio.create_task(progress.run())
    try:
        await sender.run(args.heaps, stop)
    except OSError as exc:
        raise ToolError(f"send failed: {exc}") from exc
    finally:
        if reporter is not None:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
    started = sender.counts.started
    elapsed = time.monotonic() - started if started is not None else 0.0
    return sender.counts, elapsed


def _snapshot(counts: ProgressCounts) -> ProgressCounts:
    return ProgressCounts(counts.heaps, counts.bytes, None, counts.started)


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass


def print_summary(counts: ProgressCounts, elapsed: float) -> None:
    """The final report on stdout."""
    print(f"Sent {counts.bytes} bytes in {elapsed:.6f}s, {gbps(counts.bytes, elapsed):.6f} Gb/s")
    heap_rate = counts.heaps / elapsed if elapsed > 0 else 0.0
    print(f"Sent {counts.heaps} heaps, {heap_rate:.1f} heaps/s")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of spead2_send.py; returns the exit status."""
    args = parse_args(argv)
    try:
        counts, elapsed = asyncio.run(run(args))
    except ToolError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print_summary(counts, elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
