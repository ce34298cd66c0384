"""spead2_recv.py: receive SPEAD heaps from UDP, TCP or pcap files and report on them.

Each source (``port``, ``host:port`` or a pcap file name) gets its own stream, unless
``--joint`` puts them all in one. Per heap, stdout shows::

    Received heap <cnt> on stream <source>
    <item name>                 (or "<name> = <value>" with --values)

(``--quiet`` leaves these out) and at the end of each stream::

    Shutting down stream <source> after <n> heaps
    <stat name>: <value>        (one line per StreamStats entry)

followed by an overall line with heaps/s and Gb/s. Progress (heaps/s, Gb/s, incomplete heaps)
goes to stderr. Ctrl-C (or SIGTERM) stops the streams and still prints the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

import spead2
import spead2.recv
import spead2.recv.asyncio
from spead2.tools.cmdline import (
    Progress,
    ProgressCounts,
    ProtocolOptions,
    ReceiverOptions,
    Source,
    ToolError,
    add_log_argument,
    add_progress_arguments,
    configure_logging,
    gbps,
    parse_source,
)

PROG = "spead2_recv.py"


@dataclass
class RecvArgs:
    """Everything :func:`run` needs, taken from the command line."""

    sources: list[Source]
    values: bool
    descriptors: bool
    quiet: bool
    max_heaps: int | None
    joint: bool
    protocol: ProtocolOptions
    receiver: ReceiverOptions
    progress: bool
    interval: float


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for spead2_recv.py."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Receive SPEAD heaps and report on them (asyncio)."
    )
    parser.add_argument(
        "source", type=parse_source, nargs="+", help="Sources (filename, host:port or port)"
    )
    group = parser.add_argument_group("Output options")
    add_log_argument(group)
    group.add_argument("--values", action="store_true", help="Show heap values")
    group.add_argument("--descriptors", action="store_true", help="Show descriptors")
    group.add_argument("--quiet", "-q", action="store_true", help="Do not print a line per heap")
    add_progress_arguments(group)
    group = parser.add_argument_group("Input options")
    group.add_argument("--max-heaps", type=int, help="Stop receiving after this many heaps")
    group.add_argument("--joint", action="store_true", help="Treat all sources as a single stream")
    group = parser.add_argument_group("Protocol and performance options")
    ProtocolOptions().add_arguments(group)
    ReceiverOptions().add_arguments(group)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> RecvArgs:
    """Parses and checks the command line; exits with status 2 on a usage error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log, parser)
    protocol = ProtocolOptions()
    protocol.notify(parser, args)
    receiver = ReceiverOptions()
    receiver.notify(parser, args)
    if args.max_heaps is not None and args.max_heaps <= 0:
        parser.error("--max-heaps must be positive")
    if protocol.tcp:
        files = [source.text for source in args.source if source.is_file]
        if files:
            parser.error(f"a pcap file cannot be used with --tcp: {files[0]}")
    return RecvArgs(
        sources=list(args.source),
        values=args.values,
        descriptors=args.descriptors,
        quiet=args.quiet,
        max_heaps=args.max_heaps,
        joint=args.joint,
        protocol=protocol,
        receiver=receiver,
        progress=Progress.wanted(args.progress),
        interval=args.interval,
    )


def heap_bytes(heap: spead2.recv.Heap | spead2.recv.IncompleteHeap) -> int:
    """Payload bytes of a heap: the received length if incomplete, else its items' sizes."""
    if isinstance(heap, spead2.recv.IncompleteHeap):
        return int(heap.received_length)
    return sum(memoryview(item).nbytes for item in heap.get_items())


class HeapPrinter:
    """Writes the per-heap lines (heap, descriptors, items) for one stream."""

    def __init__(self, name: str, args: RecvArgs, out: TextIO | None = None) -> None:
        self.name = name
        self.values = args.values
        self.descriptors = args.descriptors
        self.out = out if out is not None else sys.stdout
        self.item_group = spead2.ItemGroup()

    def show(self, heap: spead2.recv.Heap | spead2.recv.IncompleteHeap) -> None:
        """Prints one heap."""
        write = self.out.write
        if isinstance(heap, spead2.recv.IncompleteHeap):
            write(f"Received incomplete heap {heap.cnt} on stream {self.name}\n")
            return
        write(f"Received heap {heap.cnt} on stream {self.name}\n")
        if self.descriptors:
            for raw in heap.get_descriptors():
                self._show_descriptor(spead2.Descriptor.from_raw(raw, heap.flavour))
        for item in self.item_group.update(heap).values():
            write(f"{item.name} = {item.value}\n" if self.values else f"{item.name}\n")

    def _show_descriptor(self, descriptor: spead2.Descriptor) -> None:
        self.out.write(
            f"    Descriptor for {descriptor.name} ({descriptor.id:#x})\n"
            f"      description: {descriptor.description}\n"
            f"      format:      {descriptor.format}\n"
            f"      dtype:       {descriptor.dtype}\n"
            f"      shape:       {descriptor.shape}\n"
        )


@dataclass
class StreamReport:
    """What one stream received."""

    name: str
    heaps: int = 0
    incomplete: int = 0
    bytes: int = 0
    stats: spead2.recv.StreamStats | None = None
    first: float | None = None
    last: float | None = None


@dataclass
class Receiver:
    """Drains the streams and keeps the totals that progress reports and the summary use."""

    args: RecvArgs
    streams: list[tuple[str, spead2.recv.asyncio.Stream]] = field(default_factory=list)
    reports: list[StreamReport] = field(default_factory=list)

    async def consume(self, name: str, stream: spead2.recv.asyncio.Stream) -> StreamReport:
        """Receives heaps until the stream ends or ``--max-heaps``; then stops it."""
        report = StreamReport(name)
        self.reports.append(report)
        printer = None if self.args.quiet else HeapPrinter(name, self.args)
        try:
            async for heap in stream:
                now = time.monotonic()
                if report.first is None:
                    report.first = now
                report.last = now
                report.heaps += 1
                report.bytes += heap_bytes(heap)
                if isinstance(heap, spead2.recv.IncompleteHeap):
                    report.incomplete += 1
                if printer is not None:
                    printer.show(heap)
                if self.args.max_heaps is not None and report.heaps >= self.args.max_heaps:
                    break
        finally:
            stream.stop()
            report.stats = stream.stats
        return report

    def stop(self) -> None:
        """Stops every stream (from a signal handler): the consumers then finish."""
        for _, stream in self.streams:
            stream.stop()

    def counts(self) -> ProgressCounts:
        """Totals over all streams, incomplete heaps taken from the live stream statistics."""
        incomplete = 0
        for _, stream in self.streams:
            stats = stream.stats
            incomplete += stats["incomplete_heaps_evicted"] + stats["incomplete_heaps_flushed"]
        return ProgressCounts(
            heaps=sum(r.heaps for r in self.reports),
            bytes=sum(r.bytes for r in self.reports),
            incomplete=incomplete,
        )


def open_streams(args: RecvArgs) -> list[tuple[str, spead2.recv.asyncio.Stream]]:
    """Creates the streams and their readers (one per source, or one for all with --joint)."""
    thread_pool = args.receiver.make_thread_pool()
    groups = [args.sources] if args.joint else [[source] for source in args.sources]
    streams = []
    for group in groups:
        stream = args.receiver.make_stream(thread_pool, args.protocol)
        for source in group:
            args.receiver.add_reader(stream, source, args.protocol)
        streams.append((group[0].text, stream))
    return streams


async def run(args: RecvArgs) -> list[StreamReport]:
    """Receives on every stream until all have ended; returns one report per stream."""
    receiver = Receiver(args)
    try:
        receiver.streams = open_streams(args)
    except (ToolError, ValueError) as exc:
        receiver.stop()
        raise ToolError(str(exc)) from exc
    _install_signal_handlers(receiver)
    reporter: asyncio.Task[None] | None = None
    if args.progress:
        reporter = asyncio.create_task(Progress("received", args.interval, receiver.counts).run())
    tasks = [asyncio.create_task(receiver.consume(n, s)) for n, s in receiver.streams]
    try:
        for future in asyncio.as_completed(tasks):
            print_stream_report(await future)
    finally:
        receiver.stop()
        if reporter is not None:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
    return receiver.reports


def _install_signal_handlers(receiver: Receiver) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, receiver.stop)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass


def print_stream_report(report: StreamReport) -> None:
    """The end-of-stream lines: heap count and every statistic."""
    lines = [f"Shutting down stream {report.name} after {report.heaps} heaps"]
    if report.stats is not None:
        lines.extend(f"{name}: {value}" for name, value in report.stats.items())
    print("\n".join(lines), flush=True)


def print_summary(reports: Sequence[StreamReport]) -> None:
    """The overall line: heaps, incomplete heaps, bytes and rates between first and last heap."""
    heaps = sum(r.heaps for r in reports)
    incomplete = sum(_dropped(r) for r in reports)
    num_bytes = sum(r.bytes for r in reports)
    firsts = [r.first for r in reports if r.first is not None]
    lasts = [r.last for r in reports if r.last is not None]
    elapsed = max(lasts) - min(firsts) if firsts else 0.0
    heap_rate = heaps / elapsed if elapsed > 0 else 0.0
    print(
        f"Received {heaps} heaps ({incomplete} incomplete), {num_bytes} bytes in "
        f"{elapsed:.6f}s: {heap_rate:.1f} heaps/s, {gbps(num_bytes, elapsed):.6f} Gb/s",
        flush=True,
    )


def _dropped(report: StreamReport) -> int:
    """Incomplete heaps: delivered ones plus those the stream dropped (evicted or flushed)."""
    if report.stats is None:
        return report.incomplete
    stats = report.stats
    return stats["incomplete_heaps_evicted"] + stats["incomplete_heaps_flushed"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of spead2_recv.py; returns the exit status."""
    args = parse_args(argv)
    try:
        reports = asyncio.run(run(args))
    except ToolError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print_summary(reports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
