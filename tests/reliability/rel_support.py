"""Shared machinery of the reliability tests: fault injection, senders, subscribers, figures.

Fault injection, three ways:

* **Kernel, deterministic** (``tc``): in a private network namespace, a ``u32`` filter on the
  loopback interface picks SPEAD packets by their bytes (UDP port, heap cnt, payload offset)
  and classifies them into an HTB class whose ``pfifo`` has room for zero packets, so the
  kernel drops exactly those packets and ``tc -s`` counts them. A second set-up shapes the
  SPEAD port with HTB to a rate below the sender's and gives it a short ``pfifo``: real
  congestion loss, counted by the kernel.
* **Kernel, random** (``tc qdisc ... netem``): loss, duplication, reordering. This kernel has
  no ``sch_netem`` (see :func:`netem_unavailable`), so those tests skip with the proof.
* **User space, deterministic** (:class:`Proxy`): a UDP relay between sender and receiver
  that drops, duplicates and reorders packets by rule (a seeded choice per heap cnt and packet
  number), records every datagram it forwards, and so gives exact expected counts; the
  recorded sequence is also replayed into the real spead2 4.5.1 as a reference.

Processes that must live in a namespace (the daemon, senders, gRPC subscribers) are started
from the namespace thread; gRPC is never used from that thread in the pytest process (grpc's
own threads would stay in the host namespace, or worse, be created in the private one).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

RELIABILITY_DIR = Path(__file__).resolve().parent
TESTS_DIR = RELIABILITY_DIR.parent
REPO_ROOT = TESTS_DIR.parent
for _extra in (TESTS_DIR, TESTS_DIR / "gateway"):
    if str(_extra) not in sys.path:
        sys.path.insert(0, str(_extra))

from gateway_harness import Daemon, daemon_env, metric_value  # noqa: E402
from rel_payload import INDEX_ID, PAYLOAD_ID, payload  # noqa: E402
from util.netns import NetnsUnavailable, run_in_netns  # noqa: E402
from util.peer import peer_env  # noqa: E402
from util.ports import free_udp_port  # noqa: E402

T = TypeVar("T")

TC = shutil.which("tc") or "/usr/sbin/tc"
LO_UP: list[list[str]] = [["link", "set", "lo", "up"]]
SENDER = RELIABILITY_DIR / "rel_sender.py"
SUBSCRIBER = RELIABILITY_DIR / "rel_subscriber.py"
PROCESS_TIMEOUT = 60.0
"""Seconds any helper process may take before the test fails (they normally take 1-5 s)."""


# ------------------------------------------------------------------------------------------
# Figures


def report(test: str, **figures: Any) -> None:
    """Prints the figures a test measured (``pytest -s`` shows them; docs/reliability.md
    quotes them)."""
    text = " ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\nRELIABILITY {test}: {text}", flush=True)


# ------------------------------------------------------------------------------------------
# Namespaces and tc


def in_netns(fn: Callable[[], T], setup: Sequence[Sequence[str]] = LO_UP) -> T:
    """``fn()`` in a private network namespace, or skip the test saying why there is none."""
    try:
        return run_in_netns(fn, setup)
    except NetnsUnavailable as exc:
        pytest.skip(f"no private network namespace: {exc}")


def require_tc() -> None:
    """Skips the test where iproute2's ``tc`` is not installed."""
    if not os.path.exists(TC):
        pytest.skip("the 'tc' command (iproute2) is not installed")


def tc(*args: str) -> str:
    """Runs ``tc`` (in the calling thread's namespace); fails the test on error."""
    proc = subprocess.run([TC, *args], capture_output=True, text=True, check=False, timeout=30)
    if proc.returncode != 0:
        raise AssertionError(f"'tc {' '.join(args)}' failed: {proc.stderr.strip()}")
    return proc.stdout


_NETEM_REASON: list[str | None] = []


def netem_unavailable() -> str | None:
    """None if ``netem`` works in a private namespace here, else the proof that it does not
    (each command tried and its error). Cached for the session."""
    if not _NETEM_REASON:
        _NETEM_REASON.append(_probe_netem())
    return _NETEM_REASON[0]


def _probe_netem() -> str | None:
    if not os.path.exists(TC):
        return "the 'tc' command (iproute2) is not installed"
    steps: list[str] = []
    try:
        modprobe = subprocess.run(
            ["modprobe", "sch_netem"], capture_output=True, text=True, check=False, timeout=30
        )
        steps.append(f"'modprobe sch_netem' -> {modprobe.returncode} {modprobe.stderr.strip()!r}")
    except OSError as exc:
        steps.append(f"'modprobe sch_netem' -> {exc}")

    def probe() -> str | None:
        argv = [TC, "qdisc", "add", "dev", "lo", "root", "netem", "loss", "10%"]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
        if proc.returncode == 0:
            return None
        return f"'{' '.join(argv)}' in a private namespace -> {proc.stderr.strip()!r}"

    try:
        failure = run_in_netns(probe, LO_UP)
    except NetnsUnavailable as exc:
        return f"no private network namespace: {exc}"
    if failure is None:
        return None
    return "; ".join([failure, *steps])


def require_netem() -> None:
    """Skips the test, with the proof, where the kernel has no netem."""
    reason = netem_unavailable()
    if reason is not None:
        pytest.skip(f"netem is unavailable: {reason}")


def netem_setup(*params: str) -> None:
    """``tc qdisc add dev lo root handle 1: netem <params>`` (namespace thread)."""
    tc("qdisc", "add", "dev", "lo", "root", "handle", "1:", "netem", *params)


# SPEAD packet layout seen by u32 (offsets from the IPv4 header, which has no options on
# loopback): UDP header at 20, SPEAD header at 28, item pointers from 36. Ours and spead2
# both put HEAP_CNT first and HEAP_OFFSET third; the filter also matches their ids, so a
# different layout matches nothing (and the test sees no drops) instead of the wrong packets.
_CNT_POINTER_AT = 36
_OFFSET_POINTER_AT = 52


def _htb_root(default_class: str) -> None:
    tc("qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", default_class)
    tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit")


def kernel_drop_setup(port: int, cnt_modulus: int, cnt_remainder: int, offset: int) -> None:
    """Kernel drops every packet to UDP ``port`` whose heap cnt is ``cnt_remainder`` modulo
    ``cnt_modulus`` (a power of two) and whose payload offset is ``offset`` (namespace
    thread). Counted by :func:`tc_dropped`."""
    assert cnt_modulus & (cnt_modulus - 1) == 0, "the modulus must be a power of two"
    _htb_root("1")
    tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:2", "htb", "rate", "10gbit")
    tc("qdisc", "add", "dev", "lo", "parent", "1:2", "handle", "20:", "pfifo", "limit", "0")
    tc(
        "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
        "match", "ip", "protocol", "17", "0xff",
        "match", "ip", "dport", str(port), "0xffff",
        "match", "u32", "0x80010000", "0xffff0000", "at", str(_CNT_POINTER_AT),
        "match", "u32", f"{cnt_remainder:#x}", f"{cnt_modulus - 1:#x}",
        "at", str(_CNT_POINTER_AT + 4),
        "match", "u32", "0x80030000", "0xffff0000", "at", str(_OFFSET_POINTER_AT),
        "match", "u32", f"{offset:#x}", "0xffffffff", "at", str(_OFFSET_POINTER_AT + 4),
        "flowid", "1:2",
    )  # fmt: skip


def congestion_setup(port: int, rate: str, limit: int) -> None:
    """UDP ``port`` shaped to ``rate`` through a ``pfifo`` of ``limit`` packets: a congested
    link that drops what does not fit (namespace thread). Counted by :func:`tc_dropped`."""
    _htb_root("1")
    tc(
        "class", "add", "dev", "lo", "parent", "1:", "classid", "1:2", "htb",
        "rate", rate, "ceil", rate, "burst", "16k",
    )  # fmt: skip
    tc("qdisc", "add", "dev", "lo", "parent", "1:2", "handle", "20:", "pfifo", "limit", str(limit))
    tc(
        "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
        "match", "ip", "protocol", "17", "0xff",
        "match", "ip", "dport", str(port), "0xffff",
        "flowid", "1:2",
    )  # fmt: skip


def tc_dropped(handle: str = "20:") -> int:
    """Packets the qdisc ``handle`` on lo dropped (namespace thread)."""
    text = tc("-s", "qdisc", "show", "dev", "lo")
    blocks = re.split(r"\n(?=qdisc )", text)
    for block in blocks:
        if re.match(rf"qdisc \S+ {re.escape(handle)}( |$)", block):
            found = re.search(r"dropped (\d+)", block)
            assert found, block
            return int(found.group(1))
    raise AssertionError(f"no qdisc {handle} on lo:\n{text}")


def socket_drops(port: int, netns_thread: bool = False) -> int:
    """The kernel's drop count of the UDP socket bound to ``port`` (``/proc/net/udp``; from
    the namespace thread, its own namespace's table)."""
    table = Path("/proc/thread-self/net/udp" if netns_thread else "/proc/net/udp")
    total = 0
    found = False
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port:
            total += int(fields[-1])
            found = True
    assert found, f"no UDP socket on port {port} in {table}"
    return total


# ------------------------------------------------------------------------------------------
# SPEAD packets


@dataclass(frozen=True)
class PacketInfo:
    """The fields of a SPEAD packet header that the fault rules use."""

    cnt: int
    offset: int


def parse_packet(datagram: bytes) -> PacketInfo | None:
    """Heap cnt and payload offset of a SPEAD packet, or None if it is not one."""
    if len(datagram) < 8 or datagram[0] != 0x53 or datagram[1] != 4:
        return None
    id_bytes, address_bytes = datagram[2], datagram[3]  # SPEAD-64-48: 2 and 6
    if id_bytes + address_bytes != 8 or not 1 <= address_bytes <= 7:
        return None
    (n_items,) = struct.unpack_from(">H", datagram, 6)
    if len(datagram) < 8 + 8 * n_items:
        return None
    address_bits = 8 * address_bytes
    cnt = offset = None
    for i in range(n_items):
        (pointer,) = struct.unpack_from(">Q", datagram, 8 + 8 * i)
        item_id = (pointer >> address_bits) & ((1 << (63 - address_bits)) - 1)
        value = pointer & ((1 << address_bits) - 1)
        if item_id == 1:
            cnt = value
        elif item_id == 3:
            offset = value
    if cnt is None or offset is None:
        return None
    return PacketInfo(cnt, offset)


def data_packet_offsets(spead2: Any, size: int, packet: int = 1472) -> list[int]:
    """Payload offsets of the packets of a data heap that is not a sender's first (which
    also carries the descriptors), as ``rel_sender.py`` cuts them."""
    import numpy as np

    group = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, 48))
    group.add_item(INDEX_ID, "index", "", (), format=[("u", 32)])
    group.add_item(PAYLOAD_ID, "payload", "", (size,), dtype=np.uint8)
    heap = None
    for index in range(2):
        group["index"].value = index
        group["payload"].value = payload(index, size)
        heap = group.get_heap()
    offsets = []
    for raw in spead2.send.PacketGenerator(heap, 2, packet):
        info = parse_packet(bytes(raw))
        assert info is not None
        offsets.append(info.offset)
    return offsets


def stop_packet(spead2: Any, cnt: int) -> bytes:
    """The one packet of a stop heap with ``cnt``."""
    group = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, 48))
    (packet,) = list(spead2.send.PacketGenerator(group.get_end(), cnt, 1472))
    return bytes(packet)


# ------------------------------------------------------------------------------------------
# The user-space fault injector


@dataclass(frozen=True)
class Faults:
    """Deterministic faults for the data heaps with cnt in ``cnts``.

    Each packet (heap cnt, number of the packet within its heap) draws from a generator
    seeded with ``seed``: lost with probability ``loss``, else sent twice with probability
    ``duplicate``. Heaps in ``lose_heaps`` lose every packet. Then the packets of each run of
    ``interleave`` consecutive heaps are sent round-robin (packet 0 of each heap, then packet
    1 of each, ...), and with ``reverse`` each heap's packets go last to first. Packets
    outside ``cnts`` (the stop heap) pass untouched, after everything held before them.
    """

    cnts: range
    seed: int = 1
    loss: float = 0.0
    duplicate: float = 0.0
    lose_heaps: frozenset[int] = frozenset()
    interleave: int = 1
    reverse: bool = False

    def copies(self, cnt: int, number: int) -> int:
        """How many times packet ``number`` of heap ``cnt`` is forwarded (0, 1 or 2)."""
        if cnt in self.lose_heaps:
            return 0
        draw = random.Random(f"{self.seed}:{cnt}:{number}")
        if draw.random() < self.loss:
            return 0
        return 2 if draw.random() < self.duplicate else 1

    @property
    def reorders(self) -> bool:
        return self.interleave > 1 or self.reverse


@dataclass
class ProxyRecord:
    """What the proxy did: every forwarded datagram in order, and each fault it injected."""

    received: int = 0
    forwarded: list[bytes] = field(default_factory=list)
    lost: list[tuple[int, int]] = field(default_factory=list)
    duplicated: list[tuple[int, int]] = field(default_factory=list)
    heap_packets: Counter[int] = field(default_factory=Counter)

    @property
    def damaged(self) -> set[int]:
        """Heaps that lost at least one packet."""
        return {cnt for cnt, _ in self.lost}

    @property
    def wholly_lost(self) -> set[int]:
        """Heaps that lost every packet."""
        lost = Counter(cnt for cnt, _ in self.lost)
        return {cnt for cnt, n in lost.items() if n == self.heap_packets[cnt]}


class Proxy:
    """A UDP relay on 127.0.0.1 applying :class:`Faults`, until it forwards ``stop_cnt``.

    Create it (and so its sockets) in the namespace thread. The relay thread is pinned to one
    CPU: loopback delivers a datagram on the sending CPU, so one CPU keeps the order sent.
    """

    def __init__(self, faults: Faults, target: tuple[str, int], stop_cnt: int, cpu: int) -> None:
        self.faults = faults
        self.target = target
        self.stop_cnt = stop_cnt
        self.cpu = cpu
        self.record = ProxyRecord()
        self._in = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._in.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._in.bind(("127.0.0.1", 0))
        self.port = int(self._in.getsockname()[1])
        self._out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._out.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self._arrivals: Counter[int] = Counter()
        self._held: dict[int, list[bytes]] = {}
        self._group: int | None = None
        self._done = threading.Event()
        self._closing = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="proxy", daemon=True)

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def wait(self, timeout: float) -> ProxyRecord:
        """The record, once the stop heap went through; fails after ``timeout`` seconds."""
        finished = self._done.wait(timeout)
        self.close()
        if self._error is not None:
            raise AssertionError(f"the proxy failed: {self._error!r}") from self._error
        assert finished, f"the proxy saw no stop heap in {timeout} s ({self.record.received} in)"
        return self.record

    def close(self) -> None:
        self._closing.set()
        self._thread.join(10)
        self._in.close()
        self._out.close()

    def _main(self) -> None:
        try:
            os.sched_setaffinity(0, {self.cpu})  # this thread only
            while not self._done.is_set() and not self._closing.is_set():
                ready, _, _ = select.select([self._in], [], [], 0.1)
                if ready:
                    self._handle(self._in.recv(65536))
        except BaseException as exc:  # reported by wait()
            self._error = exc

    def _send(self, datagram: bytes) -> None:
        self._out.sendto(datagram, self.target)
        self.record.forwarded.append(datagram)

    def _handle(self, datagram: bytes) -> None:
        self.record.received += 1
        info = parse_packet(datagram)
        if info is None or info.cnt not in self.faults.cnts:
            self._flush()
            self._send(datagram)
            if info is not None and info.cnt == self.stop_cnt:
                self._done.set()
            return
        number = self._arrivals[info.cnt]
        self._arrivals[info.cnt] += 1
        self.record.heap_packets[info.cnt] += 1
        copies = self.faults.copies(info.cnt, number)
        if copies == 0:
            self.record.lost.append((info.cnt, number))
        elif copies == 2:
            self.record.duplicated.append((info.cnt, number))
        if not self.faults.reorders:
            for _ in range(copies):
                self._send(datagram)
            return
        group = (info.cnt - self.faults.cnts.start) // self.faults.interleave
        if group != self._group:
            self._flush()
            self._group = group
        self._held.setdefault(info.cnt, []).extend([datagram] * copies)

    def _flush(self) -> None:
        """Sends the held heaps: reversed if asked, then round-robin across heaps."""
        lists = [self._held[cnt] for cnt in sorted(self._held)]
        if self.faults.reverse:
            lists = [list(reversed(packets)) for packets in lists]
        for i in range(max((len(p) for p in lists), default=0)):
            for packets in lists:
                if i < len(packets):
                    self._send(packets[i])
        self._held.clear()
        self._group = None


# ------------------------------------------------------------------------------------------
# Helper processes


def daemon_config(port: int, *, queue_depth: int = 1024, server: str = "", stream: str = "") -> str:
    """A daemon config for these tests: gRPC and metrics on free loopback ports, one UDP
    receive stream ``rx`` on ``port``; ``server`` and ``stream`` are extra TOML lines for the
    ``[server]`` section and the stream's table (sub-tables may follow the stream's lines)."""
    return f"""
[server]
listen = "127.0.0.1:0"
grace_period = 2.0
{server}
[metrics]
listen = "127.0.0.1:0"

[subscribe]
default_queue_depth = {queue_depth}

[[receive.streams]]
name = "rx"
transport = "udp"
port = {port}
{stream}"""


def ours_python() -> tuple[str, dict[str, str]]:
    """Interpreter and environment that import our spead2 (and the gateway).

    UDP GSO is off (``SPEAD2_UDP_GSO=0``): the faults here are injected per packet by tc on
    the sending side of loopback, which sees a GSO message as one packet, and the kernel's
    socket drop counter counts such a message once."""
    return sys.executable, {**daemon_env(), "SPEAD2_UDP_GSO": "0"}


def peer_python(peer: Any) -> tuple[str, dict[str, str]]:
    """Interpreter and environment of the real spead2 4.5.1."""
    return str(peer.python), peer_env()


def pinned_cpu() -> int:
    """The CPU the proxy and the sender share (the first one this process may use)."""
    return min(os.sched_getaffinity(0))


class JsonProcess:
    """A helper script printing one JSON object per line; read with :meth:`expect`."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=RELIABILITY_DIR,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def stderr(self) -> str:
        return "".join(self._stderr[-50:])

    def expect(self, event: str, timeout: float = PROCESS_TIMEOUT) -> dict[str, Any]:
        """The next line with ``event`` (others are skipped); fails on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise AssertionError(
                    f"no '{event}' from {self.argv[1]} in {timeout} s:\n{self.stderr()}"
                ) from None
            if line is None:
                self.proc.wait(10)
                raise AssertionError(
                    f"{self.argv[1]} exited ({self.proc.returncode}) before '{event}':\n"
                    f"{self.stderr()}"
                )
            message: dict[str, Any] = json.loads(line)
            if message["event"] == event:
                return message

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Sends ``sig`` (SIGKILL by default) if the process is still running."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def finish(self, timeout: float = PROCESS_TIMEOUT) -> int:
        """Waits for the exit status (kills and fails after ``timeout``)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.argv[1]} still running after {timeout} s") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> JsonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_sender(python: tuple[str, dict[str, str]], port: int, *args: str) -> JsonProcess:
    """``rel_sender.py`` to 127.0.0.1:``port`` under ``python`` (see that file's options).

    The sender is pinned to :func:`pinned_cpu` unless ``--cpu`` is given: a sender whose
    thread moves between CPUs can have loopback deliver its packets out of order (each CPU
    has its own backlog queue), which in spead2's default in-order mode damages heaps."""
    exe, env = python
    if "--cpu" not in args:
        args = (*args, "--cpu", str(pinned_cpu()))
    process = JsonProcess([exe, str(SENDER), "--port", str(port), *args], env)
    process.expect("ready")
    return process


def run_sender(python: tuple[str, dict[str, str]], port: int, *args: str) -> dict[str, Any]:
    """Runs ``rel_sender.py`` to completion; its ``done`` summary."""
    with start_sender(python, port, *args) as sender:
        done = sender.expect("done")
        assert sender.finish() == 0, sender.stderr()
    return done


def start_subscriber(target: str, stream: str, size: int, *args: str) -> JsonProcess:
    """``rel_subscriber.py`` on ``stream``, once subscribed."""
    exe, env = ours_python()
    argv = [exe, str(SUBSCRIBER), "--target", target, "--stream", stream, "--size", str(size)]
    process = JsonProcess([*argv, *args], env)
    return process


# ------------------------------------------------------------------------------------------
# Receiving with our library


@dataclass
class Received:
    """A live receive: each heap as (cnt, type name), complete heaps' values, statistics."""

    heaps: list[tuple[int, str]] = field(default_factory=list)
    exact: dict[int, bool] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> list[int]:
        return [cnt for cnt, kind in self.heaps if kind == "Heap"]

    @property
    def incomplete(self) -> list[int]:
        return [cnt for cnt, kind in self.heaps if kind == "IncompleteHeap"]


def raw_values(heap: Any) -> tuple[int | None, bytes | None]:
    """``index`` and ``payload`` of a heap from its raw items (no descriptors needed)."""
    index = data = None
    for item in heap.get_items():
        if item.id == INDEX_ID:
            raw = bytes(memoryview(item))
            index = item.immediate_value if item.is_immediate else int.from_bytes(raw, "big")
        elif item.id == PAYLOAD_ID:
            data = bytes(memoryview(item))
    return index, data


def heap_is_exact(heap: Any, size: int) -> bool:
    """Whether a complete heap carries an index and exactly that index's payload."""
    index, data = raw_values(heap)
    return index is not None and data == payload(index, size).tobytes()


class LiveReceiver:
    """Our ``spead2.recv.Stream`` on a UDP socket, drained by a thread as heaps arrive (so
    the ring never fills); create it in the namespace thread if it should live there."""

    def __init__(
        self,
        spead2: Any,
        size: int,
        config: dict[str, Any] | None = None,
        ring_heaps: int = 64,
        watchdog: float = 30.0,
    ) -> None:
        self.size = size
        self.received = Received()
        self._thread_pool = spead2.ThreadPool(1)
        self.stream = spead2.recv.Stream(
            self._thread_pool,
            spead2.recv.StreamConfig(**(config or {})),
            spead2.recv.RingStreamConfig(heaps=ring_heaps, contiguous_only=False),
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        self.stream.add_udp_reader(sock)
        sock.close()  # the stream keeps its own duplicate
        self._timer = threading.Timer(watchdog, self.stream.stop)
        self._timer.daemon = True
        self._timer.start()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        for heap in self.stream:
            kind = type(heap).__name__
            self.received.heaps.append((heap.cnt, kind))
            if kind == "Heap":
                self.received.exact[heap.cnt] = heap_is_exact(heap, self.size)

    def finish(self, timeout: float = 30.0) -> Received:
        """Waits for the stop heap (the watchdog stops a stream that never gets one)."""
        self._thread.join(timeout)
        self._timer.cancel()
        self.stream.stop()
        self._thread.join(5)
        assert not self._thread.is_alive(), "the receiver did not stop"
        self.received.stats = {k: int(v) for k, v in self.stream.stats.items()}
        self.received.drops = {k: v for k, v in dict(self.stream.drop_counts).items() if v}
        return self.received


# ------------------------------------------------------------------------------------------
# The daemon without gRPC in this process


def wait_daemon_ready(daemon: Daemon, stream: str, timeout: float = 30.0) -> None:
    """Ready file read and ``stream`` up, judged from the metrics endpoint only (usable from
    the namespace thread, where this process must not use gRPC)."""
    deadline = time.monotonic() + timeout
    while not daemon.ready_path.exists():
        if daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {daemon.proc.returncode}:\n{daemon.log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"daemon not ready after {timeout} s:\n{daemon.log()}")
        time.sleep(0.02)
    daemon.info = json.loads(daemon.ready_path.read_text(encoding="utf-8"))
    wait_metric(daemon, "spead2_gateway_stream_up", 1.0, timeout, stream=stream, kind="receive")


def metrics(daemon: Daemon) -> str:
    """One scrape (urllib: the socket lives in the calling thread's namespace)."""
    with urllib.request.urlopen(daemon.metrics_url, timeout=10) as response:
        return str(response.read().decode())


def metric(text: str, name: str, **labels: str) -> float:
    """A sample that must exist (0 for a counter not exported yet is not assumed)."""
    value = metric_value(text, name, **labels)
    assert value is not None, f"no sample {name}{labels}"
    return value


def metric_or_zero(text: str, name: str, **labels: str) -> float:
    """A sample, or 0 if the series does not exist (a drop reason never seen)."""
    value = metric_value(text, name, **labels)
    return 0.0 if value is None else value


def wait_metric(
    daemon: Daemon, name: str, value: float, timeout: float = 20.0, **labels: str
) -> str:
    """Scrapes until ``name{labels} == value``; returns that scrape."""
    deadline = time.monotonic() + timeout
    last: float | None = None
    while True:
        try:
            text = metrics(daemon)
            last = metric_value(text, name, **labels)
            if last == value:
                return text
        except OSError:
            pass
        if daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {daemon.proc.returncode}:\n{daemon.log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} is {last}, not {value}, after {timeout} s")
        time.sleep(0.05)


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def daemon_on_free_port(
    workdir: Path, config_for: Callable[[int], str]
) -> Iterator[tuple[Daemon, int]]:
    """For a fixture: a daemon receiving UDP on a free port (config_for(port)), ready; on
    teardown it must stop cleanly on SIGTERM."""
    port = free_udp_port()
    with Daemon(workdir, config_for(port)) as daemon:
        daemon.wait_ready()
        yield daemon, port
        assert daemon.terminate() == 0, daemon.log()


@contextlib.contextmanager
def daemon_in(workdir: Path, config: str, stream: str) -> Iterator[Daemon]:
    """A daemon (started from the calling thread, so in its namespace), ready, killed after."""
    with Daemon(workdir, config) as daemon:
        wait_daemon_ready(daemon, stream)
        yield daemon
