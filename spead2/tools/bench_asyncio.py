"""spead2_bench.py: find the highest rate at which heaps arrive without loss.

Run ``spead2_bench.py agent PORT`` on the receiving host and ``spead2_bench.py master
HOST:PORT`` on the sending one. The master first sends as fast as it can to learn the sender's
own limit, then binary-searches between zero and that limit: for each candidate rate it asks
the agent to open a receive stream, sends heaps at that rate for ``--time`` seconds, and asks
the agent how many complete heaps arrived. A rate is GOOD when every heap arrived whole.

Control protocol (TCP, one JSON object per line, one reply per request)::

    {"cmd": "start", "protocol": {...}, "receiver": {...}, "multicast": null, "port": P}
        -> {"ok": true, "port": <UDP port the agent receives on>}
    {"cmd": "stop", "heaps": <heaps sent>, "drain": <seconds>}
        -> {"ok": true, "heaps": <complete heaps>, "incomplete": n, "stats": {...}}
    any failure -> {"ok": false, "error": "<message>"}

The agent waits up to ``drain`` seconds for the end-of-stream heap (or for the expected number
of heaps) before stopping the stream, so heaps still in its socket buffer are counted. The
master and agent only need to match each other, not the original spead2 tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import spead2
import spead2.recv
import spead2.recv.asyncio
import spead2.send
from spead2.tools.cmdline import (
    ProtocolOptions,
    ReceiverOptions,
    SenderOptions,
    Source,
    ToolError,
    add_log_argument,
    configure_logging,
    gbps,
    parse_endpoint,
)
from spead2.tools.send_asyncio import Sender

PROG = "spead2_bench.py"
MAX_MESSAGE = 1 << 20  # bytes; control lines are small, so anything bigger is an error
_logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- control channel


class Control:
    """One JSON-lines request/reply connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def receive(self) -> dict[str, Any] | None:
        """The next message, or None at end of connection."""
        try:
            line = await self.reader.readline()
        except (ValueError, asyncio.LimitOverrunError) as exc:
            raise ToolError(f"control message too long: {exc}") from exc
        if not line:
            return None
        try:
            message = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ToolError(f"bad control message: {exc}") from exc
        if not isinstance(message, dict):
            raise ToolError("bad control message: not an object")
        return message

    async def send(self, message: dict[str, Any]) -> None:
        """Writes one message."""
        self.writer.write(json.dumps(message).encode() + b"\n")
        await self.writer.drain()

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Sends a request and returns the successful reply; raises ToolError otherwise."""
        await self.send(message)
        reply = await self.receive()
        if reply is None:
            raise ToolError("the agent closed the control connection")
        if not reply.get("ok"):
            raise ToolError(f"agent: {reply.get('error', 'unknown error')}")
        return reply

    async def close(self) -> None:
        """Closes the connection."""
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


# --------------------------------------------------------------------------------- agent side


class Session:
    """One measurement on the agent: a receive stream and the task counting its heaps."""

    def __init__(self, protocol: ProtocolOptions, receiver: ReceiverOptions) -> None:
        self.thread_pool = receiver.make_thread_pool()
        self.stream = receiver.make_stream(self.thread_pool, protocol)
        self.heaps = 0
        self.incomplete = 0
        self.expected: int | None = None
        self._enough = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def open(
        self,
        protocol: ProtocolOptions,
        receiver: ReceiverOptions,
        multicast: str | None,
        port: int,
    ) -> int:
        """Adds the UDP reader and starts counting; returns the port it receives on."""
        if multicast:
            receiver.add_reader(self.stream, Source(multicast, host=multicast, port=port), protocol)
        else:
            port = self._add_unicast_reader(protocol, receiver)
        self.task = asyncio.create_task(self._count())
        return port

    def _add_unicast_reader(self, protocol: ProtocolOptions, receiver: ReceiverOptions) -> int:
        host = receiver.bind or ""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receiver.buffer_size(protocol))
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
            # The stream takes its own duplicate of the socket.
            self.stream.add_udp_reader(sock, receiver.max_size(protocol))
        return port

    async def _count(self) -> None:
        async for heap in self.stream:
            if isinstance(heap, spead2.recv.IncompleteHeap):
                self.incomplete += 1
            else:
                self.heaps += 1
            if self.expected is not None and self.heaps >= self.expected:
                self._enough.set()
        self._enough.set()

    async def finish(self, expected: int | None, drain: float) -> dict[str, Any]:
        """Waits (up to ``drain`` s) for the stream to end or reach ``expected`` heaps, then
        stops it and reports the counts and statistics."""
        self.expected = expected
        if expected is not None and self.heaps >= expected:
            self._enough.set()
        try:
            await asyncio.wait_for(self._enough.wait(), drain)
        except TimeoutError:
            pass
        self.close()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        stats = self.stream.stats
        return {
            "ok": True,
            "heaps": self.heaps,
            "incomplete": self.incomplete
            + stats["incomplete_heaps_evicted"]
            + stats["incomplete_heaps_flushed"],
            "stats": {name: int(value) for name, value in stats.items()},
        }

    def close(self) -> None:
        """Stops the stream (the counting task then ends)."""
        self.stream.stop()


class Agent:
    """Serves measurement requests from masters on a TCP control port."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Runs one control connection until the master disconnects."""
        control = Control(reader, writer)
        session: Session | None = None
        try:
            while True:
                try:
                    message = await control.receive()
                except ToolError as exc:
                    await control.send({"ok": False, "error": str(exc)})
                    break
                if message is None:
                    break
                session, reply = await self._dispatch(message, session)
                await control.send(reply)
        except (ConnectionError, OSError) as exc:
            _logger.info("control connection lost: %s", exc)
        finally:
            if session is not None:
                session.close()
            await control.close()

    async def _dispatch(
        self, message: dict[str, Any], session: Session | None
    ) -> tuple[Session | None, dict[str, Any]]:
        command = message.get("cmd")
        try:
            if command == "start":
                if session is not None:
                    session.close()
                return self._start(message)
            if command == "stop":
                if session is None:
                    raise ToolError("no measurement is running")
                return None, await session.finish(
                    _optional_int(message.get("heaps")), _drain(message.get("drain"))
                )
            raise ToolError(f"unknown command {command!r}")
        except (ToolError, ValueError, TypeError, KeyError) as exc:
            return None, {"ok": False, "error": str(exc)}

    def _start(self, message: dict[str, Any]) -> tuple[Session, dict[str, Any]]:
        protocol = ProtocolOptions.from_dict(dict(message.get("protocol") or {}))
        receiver = ReceiverOptions.from_dict(dict(message.get("receiver") or {}))
        multicast = message.get("multicast")
        port = int(message.get("port", 0))
        session = Session(protocol, receiver)
        try:
            data_port = session.open(protocol, receiver, multicast, port)
        except OSError as exc:
            session.close()
            raise ToolError(f"cannot receive: {exc}") from exc
        except ToolError:
            session.close()
            raise
        _logger.info("receiving on UDP port %d", data_port)
        return session, {"ok": True, "port": data_port}


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _drain(value: Any) -> float:
    drain = float(value if value is not None else 1.0)
    if not 0.0 <= drain <= 3600.0:
        raise ValueError(f"drain time {drain} is out of range")
    return drain


async def run_agent(port: int) -> None:
    """Listens on ``port`` until interrupted."""
    agent = Agent()
    try:
        server = await asyncio.start_server(agent.handle, port=port, limit=MAX_MESSAGE)
    except OSError as exc:
        raise ToolError(f"cannot listen on port {port}: {exc}") from exc
    _logger.info("agent listening on port %d", port)
    async with server:
        await server.serve_forever()


# -------------------------------------------------------------------------------- master side


@dataclass
class MasterArgs:
    """Everything the master needs, taken from the command line."""

    endpoint: tuple[str, int]
    quiet: bool
    heap_size: int
    multicast: str | None
    protocol: ProtocolOptions
    sender: SenderOptions
    receiver: ReceiverOptions
    time: float
    steps: int


@dataclass
class Trial:
    """The outcome of sending at one rate."""

    rate: float
    actual: float
    sent: int
    received: int
    incomplete: int

    @property
    def good(self) -> bool:
        """Every heap arrived, none of them incomplete."""
        return self.received == self.sent and self.incomplete == 0


class Master:
    """Drives trials against one agent."""

    def __init__(self, args: MasterArgs, control: Control) -> None:
        self.args = args
        self.control = control
        self.thread_pool = args.sender.make_thread_pool()
        flavour = args.sender.make_flavour(args.protocol)
        self.heap = _make_heap(args.heap_size, flavour)
        self.end = spead2.send.Heap(flavour)
        self.end.add_end()

    async def trial(self, rate: float, heaps: int | None) -> Trial:
        """Sends ``heaps`` heaps at ``rate`` Gb/s (0: unlimited; None heaps: for ``--time``)."""
        reply = await self.control.request(
            {
                "cmd": "start",
                "protocol": self.args.protocol.to_dict(),
                "receiver": self.args.receiver.to_dict(),
                "multicast": self.args.multicast,
                "port": self.args.endpoint[1],
            }
        )
        host = self.args.multicast or self.args.endpoint[0]
        config = self.args.sender.make_stream_config(rate_gbps=rate)
        stream = await self.args.sender.make_stream(
            self.thread_pool, [(host, int(reply["port"]))], self.args.protocol, config
        )
        sent, elapsed, num_bytes = await self._send(stream, heaps)
        result = await self.control.request(
            {"cmd": "stop", "heaps": sent, "drain": max(1.0, self.args.time)}
        )
        _logger.debug("trial at %.3f Gb/s: sent %d heaps, agent reports %s", rate, sent, result)
        return Trial(
            rate, gbps(num_bytes, elapsed), sent, int(result["heaps"]), int(result["incomplete"])
        )

    async def _send(self, stream: Any, heaps: int | None) -> tuple[int, float, int]:
        sender = Sender(stream, [], self.args.sender.max_heaps)
        start = time.monotonic()
        deadline = start + self.args.time
        sent = 0
        try:
            while (sent < heaps) if heaps is not None else (time.monotonic() < deadline):
                await sender.send(self.heap, 0)
                sent += 1
            await sender.flush()
            elapsed = time.monotonic() - start
            await sender.send(self.end, 0, data=False)
            await sender.flush()
        except OSError as exc:
            raise ToolError(f"send failed: {exc}") from exc
        data_bytes = sender.counts.bytes
        return sent, elapsed, data_bytes

    def heaps_for(self, rate: float) -> int:
        """How many heaps take about ``--time`` seconds at ``rate`` Gb/s (at least 2)."""
        per_second = rate * 1e9 / 8 / self.args.heap_size
        return max(2, math.ceil(per_second * self.args.time))

    async def search(self) -> float:
        """Measures the send limit, then binary-searches; returns the best lossless rate."""
        limit = await self.trial(0.0, None)
        self._say(f"Send rate: {limit.actual:.3f} Gbps")
        low, high, best = 0.0, limit.actual, 0.0
        for _ in range(self.args.steps):
            rate = (low + high) / 2
            trial = await self.trial(rate, self.heaps_for(rate))
            verdict = "GOOD" if trial.good else "BAD"
            self._say(f"Rate: {rate:.3f} Gbps ({trial.actual:.3f} actual): {verdict}")
            if trial.good:
                low, best = rate, trial.actual
            else:
                high = rate
        return best

    def _say(self, line: str) -> None:
        if not self.args.quiet:
            print(line, flush=True)


def _make_heap(heap_size: int, flavour: spead2.Flavour) -> spead2.send.Heap:
    """A heap carrying one byte array of ``heap_size`` bytes (no descriptors)."""
    item_group = spead2.send.ItemGroup(flavour=flavour)
    item_group.add_item(
        0x1000,
        "Test item",
        "A test item with arbitrary value",
        (heap_size,),
        dtype=np.uint8,
        value=np.zeros(heap_size, np.uint8),
    )
    return item_group.get_heap(descriptors="none", data="all")


async def run_master(args: MasterArgs) -> float:
    """Connects to the agent, runs the search and returns the sustainable rate in Gb/s."""
    host, port = args.endpoint
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_MESSAGE)
    except OSError as exc:
        raise ToolError(f"cannot connect to agent at {host}:{port}: {exc}") from exc
    control = Control(reader, writer)
    try:
        return await Master(args, control).search()
    except ConnectionError as exc:
        raise ToolError(f"lost the agent: {exc}") from exc
    finally:
        await control.close()


# ------------------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for spead2_bench.py (subcommands ``master`` and ``agent``)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Find the highest lossless SPEAD rate between two hosts."
    )
    add_log_argument(parser)
    subparsers = parser.add_subparsers(title="subcommands", dest="command", required=True)
    master = subparsers.add_parser("master", help="Send and search for the best rate")
    master.add_argument("endpoint", type=parse_endpoint, metavar="HOST:PORT")
    master.add_argument("--quiet", action="store_true", help="Print only the final result")
    master.add_argument(
        "--heap-size",
        type=int,
        default=4194304,
        metavar="BYTES",
        help="Payload size for heap [4194304]",
    )
    master.add_argument("--multicast", metavar="ADDRESS", help="Send via multicast group [unicast]")
    ProtocolOptions().add_arguments(master, tcp=False)
    master.add_argument(
        "--time",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="Seconds of sending per trial rate [2.0]",
    )
    master.add_argument("--steps", type=int, default=6, help="Number of binary-search steps [6]")
    SenderOptions(prefix="send-").add_arguments(
        master.add_argument_group("sender options"), packet=False, rate=False
    )
    ReceiverOptions(prefix="recv-").add_arguments(
        master.add_argument_group("receiver options"), pool_switch=False
    )
    agent = subparsers.add_parser("agent", help="Receive on behalf of a master")
    agent.add_argument("port", type=_port)
    return parser


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return port


_port.__name__ = "port"


def parse_master(parser: argparse.ArgumentParser, args: argparse.Namespace) -> MasterArgs:
    """Checks the master's options and builds its settings."""
    protocol = ProtocolOptions()
    protocol.notify(parser, args)
    sender = SenderOptions(prefix="send-")
    sender.notify(parser, args)
    receiver = ReceiverOptions(prefix="recv-")
    receiver.notify(parser, args)
    if args.heap_size <= 0:
        parser.error("--heap-size must be positive")
    if not args.time > 0:
        parser.error("--time must be positive")
    if args.steps < 0:
        parser.error("--steps must not be negative")
    # Packets on both ends use --packet; the pool is always on and sized for one heap.
    sender.packet = receiver.packet or SenderOptions.packet
    receiver.mem_pool = True
    receiver.mem_lower = min(receiver.mem_lower, args.heap_size)
    receiver.mem_upper = args.heap_size + 65536
    return MasterArgs(
        endpoint=args.endpoint,
        quiet=args.quiet,
        heap_size=args.heap_size,
        multicast=args.multicast,
        protocol=protocol,
        sender=sender,
        receiver=receiver,
        time=args.time,
        steps=args.steps,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of spead2_bench.py; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log, parser)
    try:
        if args.command == "agent":
            asyncio.run(run_agent(args.port))
            return 0
        master_args = parse_master(parser, args)
        rate = asyncio.run(run_master(master_args))
    except ToolError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"Sustainable rate: {rate:.3f} Gbps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
