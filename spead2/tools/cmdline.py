"""Option groups shared by the command-line tools (spead2_send.py, spead2_recv.py, spead2_bench.py).

Each group is a small dataclass that knows how to add its options to an argparse parser (or
argument group), how to read them back from the parsed namespace (:meth:`notify`), and how to
build the spead2 objects they describe. The option names and defaults follow the tools shipped
with spead2 4.5.1. ibverbs is not available in this build: its options are accepted so that
command lines written for spead2 parse, but asking for ibverbs is a clear error.

The bench tool moves receiver settings between processes, so :class:`ReceiverOptions` and
:class:`ProtocolOptions` also convert to and from plain dictionaries.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import spead2
import spead2.recv
import spead2.recv.asyncio
import spead2.send
import spead2.send.asyncio

__all__ = [
    "Endpoint",
    "Progress",
    "ProgressCounts",
    "ProtocolOptions",
    "ReceiverOptions",
    "SenderOptions",
    "SharedOptions",
    "Source",
    "ToolError",
    "add_log_argument",
    "add_progress_arguments",
    "configure_logging",
    "gbps",
    "parse_endpoint",
    "parse_source",
]

Endpoint = tuple[str, int]
ArgumentContainer = argparse.ArgumentParser | argparse._ArgumentGroup

IBV_UNSUPPORTED = "is not supported by this build (spead2 was built without ibverbs)"


class ToolError(Exception):
    """A failure the user can act on (refused connection, bind failure...): reported in one
    line, without a traceback."""


def parse_endpoint(text: str) -> Endpoint:
    """Parses ``host:port`` or ``[ipv6-host]:port`` into ``(host, port)``.

    Raises :class:`ValueError` if there is no host, no port, or the port is not in 0..65535.
    argparse reports that as "invalid parse_endpoint value".
    """
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"bad endpoint {text!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"bad endpoint {text!r}")
    port = _parse_port(port_text)
    if not host:
        raise ValueError(f"bad endpoint {text!r}: no host")
    return host, port


def _parse_port(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"bad port {text!r}")
    port = int(text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    return port


@dataclass(frozen=True)
class Source:
    """Where a receiver reads from: a pcap file, or a port with an optional host.

    ``host`` is the local address to bind, or a multicast group to join (UDP only).
    """

    text: str
    filename: str | None = None
    host: str = ""
    port: int = 0

    @property
    def is_file(self) -> bool:
        """True for a pcap file source."""
        return self.filename is not None

    @property
    def is_multicast(self) -> bool:
        """True if ``host`` is a multicast group address."""
        try:
            return ipaddress.ip_address(self.host).is_multicast
        except ValueError:
            return False


def parse_source(text: str) -> Source:
    """Parses a receiver source: ``port``, ``host:port``, ``[ipv6]:port``, else a pcap file."""
    if text.isdigit():
        return Source(text, port=_parse_port(text))
    try:
        host, port = parse_endpoint(text)
    except ValueError:
        if not text:
            raise ValueError("empty source") from None
        return Source(text, filename=text)
    return Source(text, host=host, port=port)


def _flag(prefix: str, name: str) -> str:
    return f"--{prefix}{name}"


def _dest(prefix: str, name: str) -> str:
    return f"{prefix}{name}".replace("-", "_")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"{value} is not positive")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0.0:  # also rejects NaN
        raise ValueError(f"{value} is negative")
    return value


_positive_int.__name__ = "positive int"
_non_negative_float.__name__ = "non-negative float"


@dataclass
class ProtocolOptions:
    """Wire-protocol options common to both directions: ``--tcp`` and ``--pyspead``."""

    tcp: bool = False
    pyspead: bool = False

    def add_arguments(self, parser: ArgumentContainer, *, tcp: bool = True) -> None:
        """Adds ``--tcp`` (unless ``tcp`` is false) and ``--pyspead``."""
        if tcp:
            parser.add_argument("--tcp", action="store_true", help="Use TCP instead of UDP")
        parser.add_argument("--pyspead", action="store_true", help="Be bug-compatible with PySPEAD")

    def notify(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
        """Copies the parsed values into this object."""
        self.tcp = bool(getattr(args, "tcp", False))
        self.pyspead = bool(args.pyspead)

    @property
    def bug_compat(self) -> int:
        """The bug_compat flags that ``--pyspead`` selects."""
        return spead2.BUG_COMPAT_PYSPEAD_0_5_2 if self.pyspead else 0

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-compatible dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProtocolOptions:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclass
class SharedOptions:
    """Socket, thread and (unsupported) ibverbs options found on senders and receivers.

    ``prefix`` is put in front of each option name, so that the bench master can offer both a
    sender's ``--send-buffer`` and a receiver's ``--recv-buffer``.
    """

    prefix: str = ""
    buffer: int | None = None
    bind: str | None = None
    affinity: list[int] = field(default_factory=list)
    threads: int = 1
    ibv: bool = False
    ibv_vector: int = 0
    ibv_max_poll: int = 10

    _SHARED = ("buffer", "bind", "affinity", "threads", "ibv", "ibv_vector", "ibv_max_poll")

    def add_shared_arguments(self, parser: ArgumentContainer) -> None:
        """Adds ``--buffer``, ``--bind``, the ``--ibv`` family, ``--affinity``, ``--threads``."""
        p = self.prefix
        upper = p.upper()
        parser.add_argument(
            _flag(p, "buffer"),
            dest=_dest(p, "buffer"),
            type=_positive_int,
            help="Socket buffer size",
        )
        parser.add_argument(_flag(p, "bind"), dest=_dest(p, "bind"), help="Interface address")
        parser.add_argument(
            _flag(p, "ibv"),
            dest=_dest(p, "ibv"),
            action="store_true",
            help="Use ibverbs [no] (not supported by this build)",
        )
        parser.add_argument(
            _flag(p, "ibv-vector"),
            dest=_dest(p, "ibv_vector"),
            type=int,
            default=0,
            metavar="N",
            help="Completion vector, or -1 to use polling [0]",
        )
        parser.add_argument(
            _flag(p, "ibv-max-poll"),
            dest=_dest(p, "ibv_max_poll"),
            type=_positive_int,
            default=10,
            help="Maximum number of times to poll in a row [10]",
        )
        parser.add_argument(
            _flag(p, "affinity"),
            dest=_dest(p, "affinity"),
            type=spead2.parse_range_list,
            default=[],
            metavar=f"{upper}AFFINITY",
            help="List of CPUs to pin threads to [no affinity]",
        )
        parser.add_argument(
            _flag(p, "threads"),
            dest=_dest(p, "threads"),
            type=_positive_int,
            default=1,
            metavar=f"{upper}THREADS",
            help="Number of worker threads [1]",
        )

    def notify_shared(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
        """Reads the shared options back; rejects ``--ibv``."""
        for name in self._SHARED:
            setattr(self, name, getattr(args, _dest(self.prefix, name)))
        if self.ibv:
            parser.error(f"{_flag(self.prefix, 'ibv')} {IBV_UNSUPPORTED}")

    def make_thread_pool(self) -> spead2.ThreadPool:
        """A thread pool with ``threads`` workers, pinned to ``affinity`` if given."""
        if self.affinity:
            return spead2.ThreadPool(self.threads, self.affinity)
        return spead2.ThreadPool(self.threads)


@dataclass
class ReceiverOptions(SharedOptions):
    """Receive-stream options: stream and ring configuration, memory pool, packet size."""

    memcpy_nt: bool = False
    concurrent_heaps: int = spead2.recv.StreamConfig.DEFAULT_MAX_HEAPS
    substreams: int = 1
    ring_heaps: int = spead2.recv.RingStreamConfig.DEFAULT_HEAPS
    mem_pool: bool = False
    mem_lower: int = 16384
    mem_upper: int = 32 * 1024 * 1024
    mem_max_free: int = 12
    mem_initial: int = 8
    packet: int | None = None

    _OWN = (
        "memcpy_nt",
        "concurrent_heaps",
        "substreams",
        "ring_heaps",
        "mem_pool",
        "mem_lower",
        "mem_upper",
        "mem_max_free",
        "mem_initial",
        "packet",
    )

    def add_arguments(self, parser: ArgumentContainer, *, pool_switch: bool = True) -> None:
        """Adds the receiver options.

        With ``pool_switch`` false (the bench master), ``--mem-pool``, ``--mem-lower`` and
        ``--mem-upper`` are left out: the pool is always on and sized from the heap size.
        """
        parser.add_argument("--memcpy-nt", action="store_true", help="Use non-temporal memcpy")
        parser.add_argument(
            "--concurrent-heaps",
            type=_positive_int,
            default=self.concurrent_heaps,
            help=f"Maximum number of in-flight heaps per substream [{self.concurrent_heaps}]",
        )
        parser.add_argument(
            "--substreams",
            type=_positive_int,
            default=1,
            help="Number of parallel substreams [1]",
        )
        parser.add_argument(
            "--ring-heaps",
            type=_positive_int,
            default=self.ring_heaps,
            help=f"Ring buffer capacity in heaps [{self.ring_heaps}]",
        )
        if pool_switch:
            parser.add_argument("--mem-pool", action="store_true", help="Use a memory pool")
            parser.add_argument(
                "--mem-lower",
                type=int,
                default=self.mem_lower,
                help=f"Minimum allocation which will use the memory pool [{self.mem_lower}]",
            )
            parser.add_argument(
                "--mem-upper",
                type=_positive_int,
                default=self.mem_upper,
                help=f"Maximum allocation which will use the memory pool [{self.mem_upper}]",
            )
        parser.add_argument(
            "--mem-max-free",
            type=int,
            default=self.mem_max_free,
            help=f"Maximum free memory buffers [{self.mem_max_free}]",
        )
        parser.add_argument(
            "--mem-initial",
            type=int,
            default=self.mem_initial,
            help=f"Initial free memory buffers [{self.mem_initial}]",
        )
        parser.add_argument("--packet", type=_positive_int, help="Maximum packet size to accept")
        self.add_shared_arguments(parser)

    def notify(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
        """Reads the parsed receiver options back and checks them."""
        for name in self._OWN:
            setattr(self, name, getattr(args, name, getattr(self, name)))
        self.notify_shared(parser, args)
        if self.mem_max_free < 0 or self.mem_initial < 0:
            parser.error("--mem-max-free and --mem-initial must not be negative")
        if self.mem_initial > self.mem_max_free:
            parser.error("--mem-initial must not exceed --mem-max-free")
        if not 0 <= self.mem_lower <= self.mem_upper:
            parser.error("--mem-lower must be between 0 and --mem-upper")

    def max_size(self, protocol: ProtocolOptions) -> int:
        """The largest packet accepted: ``--packet`` or the transport's default."""
        if self.packet is not None:
            return self.packet
        stream = spead2.recv.Stream
        return stream.DEFAULT_TCP_MAX_SIZE if protocol.tcp else stream.DEFAULT_UDP_MAX_SIZE

    def buffer_size(self, protocol: ProtocolOptions) -> int:
        """The socket buffer size: ``--buffer`` or the transport's default."""
        if self.buffer is not None:
            return self.buffer
        stream = spead2.recv.Stream
        return stream.DEFAULT_TCP_BUFFER_SIZE if protocol.tcp else stream.DEFAULT_UDP_BUFFER_SIZE

    def make_memory_pool(self) -> spead2.MemoryPool | None:
        """The memory pool that ``--mem-pool`` asks for, or None."""
        if not self.mem_pool:
            return None
        return spead2.MemoryPool(
            self.mem_lower, self.mem_upper, self.mem_max_free, self.mem_initial
        )

    def make_stream_config(self, protocol: ProtocolOptions) -> spead2.recv.StreamConfig:
        """The :class:`spead2.recv.StreamConfig` for these options (memory pool included)."""
        config = spead2.recv.StreamConfig(
            max_heaps=self.concurrent_heaps,
            substreams=self.substreams,
            bug_compat=protocol.bug_compat,
            memcpy=spead2.MEMCPY_NONTEMPORAL if self.memcpy_nt else spead2.MEMCPY_STD,
        )
        pool = self.make_memory_pool()
        if pool is not None:
            config.memory_allocator = pool
        return config

    def make_ring_stream_config(self) -> spead2.recv.RingStreamConfig:
        """The :class:`spead2.recv.RingStreamConfig` for these options."""
        return spead2.recv.RingStreamConfig(heaps=self.ring_heaps)

    def make_stream(
        self, thread_pool: spead2.ThreadPool, protocol: ProtocolOptions
    ) -> spead2.recv.asyncio.Stream:
        """An asyncio receive stream with no readers yet."""
        return spead2.recv.asyncio.Stream(
            thread_pool, self.make_stream_config(protocol), self.make_ring_stream_config()
        )

    def add_reader(
        self, stream: spead2.recv.Stream, source: Source, protocol: ProtocolOptions
    ) -> None:
        """Adds the reader for one source to ``stream``; raises :class:`ToolError` on failure."""
        try:
            self._add_reader(stream, source, protocol)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            raise ToolError(f"cannot receive from {source.text}: {exc}") from exc

    def _add_reader(
        self, stream: spead2.recv.Stream, source: Source, protocol: ProtocolOptions
    ) -> None:
        if source.filename is not None:
            if protocol.tcp:
                raise ValueError("a pcap file cannot be read with --tcp")
            stream.add_udp_pcap_file_reader(source.filename)
            return
        max_size = self.max_size(protocol)
        buffer_size = self.buffer_size(protocol)
        if protocol.tcp:
            host = source.host or self.bind or ""
            stream.add_tcp_reader(source.port, max_size, buffer_size, host)
        elif source.is_multicast:
            if ":" in source.host:
                stream.add_udp_reader(source.host, source.port, max_size, buffer_size, 0)
            else:
                interface = self.bind or "0.0.0.0"
                stream.add_udp_reader(source.host, source.port, max_size, buffer_size, interface)
        else:
            host = source.host or self.bind or ""
            stream.add_udp_reader(source.port, max_size, buffer_size, host)

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-compatible dict (the prefix is not included)."""
        data = dataclasses.asdict(self)
        data.pop("prefix")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReceiverOptions:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)} - {"prefix"}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class SenderOptions(SharedOptions):
    """Send-stream options: flavour, packet size, rate limiting and queue depth."""

    addr_bits: int = 40
    packet: int = spead2.send.StreamConfig.DEFAULT_MAX_PACKET_SIZE
    burst: int = spead2.send.StreamConfig.DEFAULT_BURST_SIZE
    burst_rate_ratio: float = spead2.send.StreamConfig.DEFAULT_BURST_RATE_RATIO
    max_heaps: int = spead2.send.StreamConfig.DEFAULT_MAX_HEAPS
    rate_method: str = "AUTO"
    rate: float = 0.0
    ttl: int | None = None

    _OWN = (
        "addr_bits",
        "packet",
        "burst",
        "burst_rate_ratio",
        "max_heaps",
        "rate_method",
        "rate",
        "ttl",
    )

    def add_arguments(
        self, parser: ArgumentContainer, *, packet: bool = True, rate: bool = True
    ) -> None:
        """Adds the sender options; ``packet``/``rate`` false leave out ``--packet``/``--rate``
        (the bench master shares ``--packet`` with the receiver and chooses rates itself)."""
        parser.add_argument(
            "--addr-bits",
            type=int,
            default=self.addr_bits,
            help=f"Heap address bits [{self.addr_bits}]",
        )
        if packet:
            parser.add_argument(
                "--packet",
                type=_positive_int,
                default=self.packet,
                help=f"Maximum packet size to send [{self.packet}]",
            )
        parser.add_argument(
            "--burst",
            type=_positive_int,
            default=self.burst,
            metavar="BYTES",
            help=f"Burst size [{self.burst}]",
        )
        parser.add_argument(
            "--burst-rate-ratio",
            type=float,
            default=self.burst_rate_ratio,
            metavar="RATIO",
            help=f"Hard rate limit, relative to --rate [{self.burst_rate_ratio}]",
        )
        parser.add_argument(
            "--max-heaps",
            type=_positive_int,
            default=self.max_heaps,
            metavar="HEAPS",
            help=f"Maximum heaps in flight [{self.max_heaps}]",
        )
        parser.add_argument(
            "--rate-method",
            type=str.upper,
            choices=list(spead2.send.RateMethod.__members__),
            default="AUTO",
            metavar="METHOD",
            help="Method for rate limiting (SW/HW/AUTO)",
        )
        if rate:
            parser.add_argument(
                "--rate",
                type=_non_negative_float,
                default=0.0,
                metavar="Gb/s",
                help="Transmission rate bound [no limit]",
            )
        parser.add_argument("--ttl", type=int, help="TTL for multicast target")
        self.add_shared_arguments(parser)

    def notify(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
        """Reads the parsed sender options back and checks them."""
        for name in self._OWN:
            setattr(self, name, getattr(args, name, getattr(self, name)))
        self.notify_shared(parser, args)
        if self.addr_bits % 8 != 0 or not 8 <= self.addr_bits <= 56:
            parser.error("--addr-bits must be a multiple of 8 between 8 and 56")
        if not self.burst_rate_ratio >= 1.0:
            parser.error("--burst-rate-ratio must be at least 1")

    def make_flavour(self, protocol: ProtocolOptions) -> spead2.Flavour:
        """The SPEAD flavour: SPEAD-64-``addr_bits`` with the protocol's bug_compat."""
        return spead2.Flavour(4, 64, self.addr_bits, protocol.bug_compat)

    def make_stream_config(self, rate_gbps: float | None = None) -> spead2.send.StreamConfig:
        """The :class:`spead2.send.StreamConfig`; ``rate_gbps`` overrides ``--rate``."""
        rate = self.rate if rate_gbps is None else rate_gbps
        try:
            return spead2.send.StreamConfig(
                max_packet_size=self.packet,
                rate=rate * 1e9 / 8,
                burst_size=self.burst,
                max_heaps=self.max_heaps,
                burst_rate_ratio=self.burst_rate_ratio,
                rate_method=spead2.send.RateMethod[self.rate_method],
            )
        except ValueError as exc:
            raise ToolError(f"bad sender configuration: {exc}") from exc

    async def make_stream(
        self,
        thread_pool: spead2.ThreadPool,
        endpoints: Sequence[Endpoint],
        protocol: ProtocolOptions,
        config: spead2.send.StreamConfig | None = None,
    ) -> spead2.send.asyncio.UdpStream | spead2.send.asyncio.TcpStream:
        """Opens an asyncio send stream to ``endpoints`` (one per substream; TCP takes one).

        Raises :class:`ToolError` if the destination cannot be reached or resolved.
        """
        config = config or self.make_stream_config()
        endpoints = list(endpoints)
        try:
            if protocol.tcp:
                buffer_size = self.buffer or spead2.send.TcpStream.DEFAULT_BUFFER_SIZE
                return await spead2.send.asyncio.TcpStream.connect(
                    thread_pool, endpoints, config, buffer_size, self.bind or ""
                )
            return self._make_udp_stream(thread_pool, endpoints, config)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            where = ", ".join(f"{host}:{port}" for host, port in endpoints)
            raise ToolError(f"cannot send to {where}: {exc}") from exc

    def _make_udp_stream(
        self,
        thread_pool: spead2.ThreadPool,
        endpoints: list[Endpoint],
        config: spead2.send.StreamConfig,
    ) -> spead2.send.asyncio.UdpStream:
        buffer_size = self.buffer or spead2.send.UdpStream.DEFAULT_BUFFER_SIZE
        stream_class = spead2.send.asyncio.UdpStream
        if self.ttl is None:
            return stream_class(thread_pool, endpoints, config, buffer_size, self.bind or "")
        if self.bind:
            return stream_class(thread_pool, endpoints, config, buffer_size, self.ttl, self.bind)
        return stream_class(thread_pool, endpoints, config, buffer_size, self.ttl)


def add_log_argument(parser: ArgumentContainer) -> None:
    """Adds ``--log LEVEL`` (default INFO)."""
    parser.add_argument(
        "--log", metavar="LEVEL", default="INFO", type=str.upper, help="Log level [INFO]"
    )


def configure_logging(level: str, parser: argparse.ArgumentParser) -> None:
    """Sets up the root logger at ``level`` (a name such as INFO); a bad name is a usage error."""
    numeric = logging.getLevelName(level)
    if not isinstance(numeric, int):
        parser.error(f"argument --log: unknown log level {level!r}")
    logging.basicConfig(level=numeric)


def add_progress_arguments(parser: ArgumentContainer) -> None:
    """Adds ``--progress``/``--no-progress`` (default: only on a terminal) and ``--interval``."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Report progress on stderr [when stderr is a terminal]",
    )
    parser.add_argument(
        "--interval",
        type=_positive_float,
        default=1.0,
        metavar="SECONDS",
        help="Seconds between progress reports [1.0]",
    )


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0.0:
        raise ValueError(f"{value} is not positive")
    return value


_positive_float.__name__ = "positive float"


def gbps(num_bytes: float, seconds: float) -> float:
    """Gigabits per second; 0 when no time has passed."""
    return num_bytes * 8e-9 / seconds if seconds > 0 else 0.0


@dataclass
class ProgressCounts:
    """Running totals that a :class:`Progress` reporter samples."""

    heaps: int = 0
    bytes: int = 0
    incomplete: int | None = None
    started: float | None = None


class Progress:
    """Prints heaps/s and Gb/s (and incomplete heaps, when known) every ``interval`` seconds.

    On a terminal each report overwrites the previous one; otherwise one line per report.
    """

    def __init__(
        self,
        label: str,
        interval: float,
        sample: Callable[[], ProgressCounts],
        out: TextIO | None = None,
    ) -> None:
        self.label = label
        self.interval = interval
        self.sample = sample
        self.out = out if out is not None else sys.stderr
        self._tty = _isatty(self.out)
        self._dirty = False

    @staticmethod
    def wanted(option: bool | None, out: TextIO | None = None) -> bool:
        """Resolves ``--progress``/``--no-progress``: unset means "if stderr is a terminal"."""
        if option is not None:
            return option
        return _isatty(out if out is not None else sys.stderr)

    async def run(self) -> None:
        """Reports until cancelled."""
        last = self.sample()
        last_time = time.monotonic()
        try:
            while True:
                await asyncio.sleep(self.interval)
                now = time.monotonic()
                counts = self.sample()
                self._write(self.format(last, counts, now - last_time))
                last, last_time = dataclasses.replace(counts), now
        finally:
            self.finish()

    def format(self, before: ProgressCounts, after: ProgressCounts, seconds: float) -> str:
        """One report: totals plus rates over the last interval."""
        heaps = after.heaps - before.heaps
        rate = heaps / seconds if seconds > 0 else 0.0
        text = (
            f"{self.label}: {after.heaps} heaps, {rate:.1f} heaps/s, "
            f"{gbps(after.bytes - before.bytes, seconds):.3f} Gb/s"
        )
        if after.incomplete is not None:
            text += f", {after.incomplete} incomplete"
        return text

    def _write(self, line: str) -> None:
        if self._tty:
            self.out.write("\r" + line + "\x1b[K")
            self._dirty = True
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def finish(self) -> None:
        """Ends an overwritten terminal line so later output starts on a fresh line."""
        if self._dirty:
            self.out.write("\n")
            self.out.flush()
            self._dirty = False


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False
