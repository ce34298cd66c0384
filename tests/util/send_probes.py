"""API probes and loopback scenarios that run unchanged with our spead2 or spead2 4.5.1.

Like ``send_scenarios``, every public function takes the ``spead2`` module under test and
returns plain data (exceptions included, as type, errno and message), so the same code runs in
the pytest process with ours and in the peer venv (``("send_probes:<function>", {})``):

* probes of constructors, properties, validation and error reporting (``*_probe``);
* asyncio sends refused for a full queue and transport errors reaching futures;
* loopback round trips through an ``InprocQueue``, including two senders interleaved.

Only the standard library and numpy are imported at module level.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np

from .jobs import thread_pool
from .peer import load_catalogue
from .send_scenarios import (
    BufferItem,
    Outcome,
    attempt,
    error_of,
    flavour,
    make_heap,
    packet_cnt,
    pattern,
    send_api,
)

STOP_AFTER = 20.0
"""Seconds after which a loopback receiver is stopped, so a lost heap fails instead of hangs."""

# --------------------------------------------------------------------------------- probes


def _config_fields(config: Any) -> dict[str, Any]:
    return {
        "max_packet_size": config.max_packet_size,
        "rate": config.rate,
        "burst_size": config.burst_size,
        "max_heaps": config.max_heaps,
        "burst_rate_ratio": config.burst_rate_ratio,
        "rate_method": config.rate_method.name,
        "burst_rate": config.burst_rate,
    }


def _make_config(cls: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    return _config_fields(cls(**kwargs))


def _num_substreams(make: Callable[[], Any]) -> int:
    return int(make().num_substreams)


CONFIG_KWARGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything": {
        "max_packet_size": 9000,
        "rate": 1e9,
        "burst_size": 1000,
        "max_heaps": 7,
        "burst_rate_ratio": 2.0,
        "rate_method": "SW",
    },
    "rate_int": {"rate": 5},
    "rate_negative": {"rate": -1.0},
    "rate_nan": {"rate": float("nan")},
    "rate_inf": {"rate": float("inf")},
    "max_heaps_zero": {"max_heaps": 0},
    "max_heaps_negative": {"max_heaps": -1},
    "packet_size_zero": {"max_packet_size": 0},
    "packet_size_negative": {"max_packet_size": -1},
    "packet_size_float": {"max_packet_size": 1472.0},
    "burst_size_zero": {"burst_size": 0},
    "ratio_one": {"burst_rate_ratio": 1.0},
    "ratio_below_one": {"burst_rate_ratio": 0.99},
    "ratio_nan": {"burst_rate_ratio": float("nan")},
    "ratio_inf": {"burst_rate_ratio": float("inf")},
    "rate_method_hw": {"rate_method": "HW"},
    "rate_method_int": {"rate_method": 1},
    "unknown_keyword": {"bogus": 1},
}
"""StreamConfig keyword sets; a string ``rate_method`` names a RateMethod member."""

CONFIG_SETTERS: tuple[tuple[str, Any], ...] = (
    ("rate", 10.0),
    ("rate", -1.0),
    ("max_heaps", 0),
    ("max_heaps", 3),
    ("burst_rate_ratio", 0.5),
    ("burst_rate_ratio", 3.0),
    ("burst_rate", 5.0),
    ("max_packet_size", 9000),
    ("burst_size", 17),
    ("rate_method", "HW"),
)


def stream_config_probe(sp: ModuleType) -> dict[str, Any]:
    """send.StreamConfig: defaults, constants, keyword validation, setters and burst_rate."""
    send = send_api(sp)
    cls = send.StreamConfig
    out: dict[str, Any] = {
        "constants": {
            name: attempt(partial(getattr, cls, name))
            for name in (
                "DEFAULT_MAX_PACKET_SIZE",
                "DEFAULT_MAX_HEAPS",
                "DEFAULT_BURST_SIZE",
                "DEFAULT_BURST_RATE_RATIO",
            )
        },
        "default_rate_method": attempt(lambda: cls.DEFAULT_RATE_METHOD.name),
        "rate_methods": attempt(lambda: {m.name: m.value for m in send.RateMethod}),
        "group_modes": attempt(lambda: {m.name: m.value for m in send.GroupMode}),
        "positional": attempt(lambda: cls(1472)),
    }
    for label, kwargs in CONFIG_KWARGS.items():
        kw = dict(kwargs)
        if isinstance(kw.get("rate_method"), str):
            kw["rate_method"] = getattr(send.RateMethod, kw["rate_method"])
        out[label] = attempt(partial(_make_config, cls, kw))
    for name, value in CONFIG_SETTERS:
        if name == "rate_method":
            value = getattr(send.RateMethod, value)

        def set_one(name: str = name, value: Any = value) -> dict[str, Any]:
            config = cls(rate=100.0)
            setattr(config, name, value)
            return _config_fields(config)

        out[f"set_{name}_{value}"] = attempt(set_one)
    return out


def heap_reference_probe(sp: ModuleType) -> dict[str, Any]:
    """HeapReference and HeapReferenceList behaviour."""
    send = send_api(sp)
    heap = send.Heap()
    ref = send.HeapReference(heap, cnt=5, substream_index=2, rate=3.5)

    def fields(r: Any) -> list[Any]:
        return [r.cnt, r.substream_index, r.rate, r.heap is heap]

    def modify() -> list[Any]:
        r = send.HeapReference(heap)
        r.cnt, r.substream_index, r.rate = 7, 1, 1.0
        return fields(r)

    refs = [send.HeapReference(heap, cnt=i) for i in range(5)]
    lst = send.HeapReferenceList(refs)
    bytes_stream = send.BytesStream(thread_pool(sp))
    return {
        "fields": attempt(lambda: fields(ref)),
        "defaults": attempt(lambda: fields(send.HeapReference(heap))),
        "modify": attempt(modify),
        "negative_cnt": attempt(lambda: send.HeapReference(heap, cnt=-5).cnt),
        "positional_cnt": attempt(lambda: send.HeapReference(heap, 5).cnt),
        "set_heap": attempt(lambda: setattr(ref, "heap", send.Heap())),
        "heap_none": attempt(lambda: send.HeapReference(None)),
        "heap_int": attempt(lambda: send.HeapReference(5)),
        "len": attempt(lambda: len(lst)),
        "empty_len": attempt(lambda: len(send.HeapReferenceList([]))),
        "from_tuple": attempt(lambda: len(send.HeapReferenceList(tuple(refs)))),
        "from_generator": attempt(lambda: len(send.HeapReferenceList(r for r in refs))),
        "slice_type": attempt(lambda: type(lst[1:4]).__name__),
        "slice_lengths": attempt(
            lambda: [len(lst[1:4]), len(lst[::2]), len(lst[::-1]), len(lst[10:]), len(lst[-2:])]
        ),
        "zero_step": attempt(lambda: lst[::0]),
        "int_index": attempt(lambda: lst[0]),
        "heap_element": attempt(lambda: send.HeapReferenceList([refs[0], heap])),
        "int_element": attempt(lambda: send.HeapReferenceList([1])),
        "not_iterable": attempt(lambda: send.HeapReferenceList(5)),
        "send_heap_list": attempt(lambda: bytes_stream.send_heaps([heap], send.GroupMode.SERIAL)),
        "send_int_mode": attempt(lambda: bytes_stream.send_heaps(refs, 0)),
        "send_slice": attempt(lambda: bytes_stream.send_heaps(lst[::-2], send.GroupMode.SERIAL)),
    }


def heap_probe(sp: ModuleType) -> dict[str, Any]:
    """send.Heap attributes and what add_item / add_descriptor do with bad arguments."""
    send = send_api(sp)
    heap = send.Heap()

    def repeat() -> bool:
        h = send.Heap(flavour(sp, 48))
        h.repeat_pointers = True
        return bool(h.repeat_pointers)

    class NoAllowImmediate:
        id = 0x1000

        def to_buffer(self) -> Any:
            return np.zeros(3, np.uint8)

    noncontiguous = BufferItem(0x1000, np.zeros((4, 4), np.uint8)[:, ::2])
    return {
        "defaults": attempt(lambda: [heap.flavour.heap_address_bits, heap.repeat_pointers]),
        "flavour": attempt(lambda: send.Heap(flavour(sp, 48)).flavour.heap_address_bits),
        "repeat": attempt(repeat),
        "set_flavour": attempt(lambda: setattr(heap, "flavour", flavour(sp, 48))),
        "bad_flavour": attempt(lambda: send.Heap(5)),
        "add_item_int": attempt(lambda: heap.add_item(5)),
        "add_descriptor_int": attempt(lambda: heap.add_descriptor(5)),
        "no_allow_immediate": attempt(lambda: heap.add_item(NoAllowImmediate())),
        "noncontiguous": attempt(lambda: heap.add_item(noncontiguous)),
        "big_id": attempt(lambda: heap.add_item(BufferItem(2**40, b"abc"))),
    }


def argument_types_probe(sp: ModuleType) -> dict[str, Any]:
    """Arguments that do not convert to the C++ parameter types (negative unsigned, too big)."""
    send = send_api(sp)
    stream = send.BytesStream(thread_pool(sp))
    heap = send.Heap()

    def set_substream() -> None:
        send.HeapReference(heap).substream_index = -1

    return {
        "send_heap_substream_negative": attempt(lambda: stream.send_heap(heap, substream_index=-1)),
        "send_heap_cnt_huge": attempt(lambda: stream.send_heap(heap, cnt=2**64)),
        "reference_cnt_huge": attempt(lambda: send.HeapReference(heap, cnt=2**63)),
        "reference_substream_negative": attempt(set_substream),
        "set_cnt_sequence_negative": attempt(lambda: stream.set_cnt_sequence(-1, 1)),
        "set_cnt_sequence_zero_step": attempt(lambda: stream.set_cnt_sequence(1, 0)),
        "stream_base": attempt(lambda: send.Stream()),
    }


def _sink() -> socket.socket:
    """A bound loopback UDP socket to aim senders at (never read unless asked)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def _heap_cnts_received(sock: socket.socket, heaps: int) -> list[int]:
    """The distinct cnts of the first ``heaps`` heaps arriving on ``sock``, in order."""
    sock.settimeout(5.0)
    cnts: list[int] = []
    while len(cnts) < heaps:
        cnt = packet_cnt(sock.recv(65536))
        if cnt not in cnts:
            cnts.append(cnt)
    return cnts


def _closed_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def udp_constructor_probe(sp: ModuleType) -> dict[str, Any]:
    """The UdpStream overloads and their errors (nothing is sent)."""
    send = send_api(sp)
    pool = thread_pool(sp)
    config = send.StreamConfig()
    out: dict[str, Any] = {
        "default_buffer_size": attempt(lambda: send.UdpStream.DEFAULT_BUFFER_SIZE)
    }
    with _sink() as sink, _sink() as sink2:
        here = [sink.getsockname(), sink2.getsockname()]
        cases: dict[str, Callable[[], Any]] = {
            "endpoints": lambda: send.UdpStream(pool, here),
            "one_endpoint": lambda: send.UdpStream(pool, here[:1]),
            "hostname": lambda: send.UdpStream(pool, [("localhost", here[0][1])]),
            "config": lambda: send.UdpStream(pool, here, config),
            "buffer_size": lambda: send.UdpStream(pool, here, config, 100000),
            "interface_address": lambda: send.UdpStream(pool, here, config, 100000, "127.0.0.1"),
            "interface_keyword": lambda: send.UdpStream(
                pool, here, config, buffer_size=100000, interface_address="127.0.0.1"
            ),
            "ttl_unicast": lambda: send.UdpStream(pool, here, config, 100000, 4),
            "ttl_keyword_unicast": lambda: send.UdpStream(
                pool, here, config, buffer_size=100000, ttl=4
            ),
            "ttl_multicast": lambda: send.UdpStream(pool, [("239.1.2.3", 7148)], config, 1000, 4),
            "ttl_interface_v4": lambda: send.UdpStream(
                pool, [("239.1.2.3", 7148)], config, 100000, 4, "127.0.0.1"
            ),
            "ttl_interface_unicast": lambda: send.UdpStream(
                pool, here, config, 100000, 4, "127.0.0.1"
            ),
            "empty": lambda: send.UdpStream(pool, []),
            "mixed_families": lambda: send.UdpStream(pool, [here[0], ("::1", here[0][1])]),
            "bad_host": lambda: send.UdpStream(pool, [("no.such.host.invalid", 9)]),
            "socket": lambda: send.UdpStream(pool, sink, here),
            "socket_config": lambda: send.UdpStream(pool, sink, here[:1], config),
            "socket_empty": lambda: send.UdpStream(pool, sink, []),
            "socket_v6_endpoint": lambda: send.UdpStream(pool, sink, [("::1", 9)]),
        }
        for label, make in cases.items():
            out[label] = attempt(partial(_num_substreams, make))
    return out


def tcp_constructor_probe(sp: ModuleType) -> dict[str, Any]:
    """TcpStream errors: refused connection, endpoint counts."""
    send = send_api(sp)
    pool = thread_pool(sp)
    port = _closed_port()
    return {
        "default_buffer_size": attempt(lambda: send.TcpStream.DEFAULT_BUFFER_SIZE),
        "refused": attempt(lambda: send.TcpStream(pool, [("127.0.0.1", port)])),
        "two_endpoints": attempt(
            lambda: send.TcpStream(pool, [("127.0.0.1", port), ("127.0.0.1", port)])
        ),
        "no_endpoints": attempt(lambda: send.TcpStream(pool, [])),
    }


def inproc_constructor_probe(sp: ModuleType) -> dict[str, Any]:
    """InprocStream: queues property identity, substreams, empty list."""
    send = send_api(sp)
    pool = thread_pool(sp)
    queues = [sp.InprocQueue(), sp.InprocQueue()]
    stream = send.InprocStream(pool, queues)
    return {
        "same_queues": attempt(
            lambda: [a is b for a, b in zip(stream.queues, queues, strict=True)]
        ),
        "num_substreams": attempt(lambda: stream.num_substreams),
        "empty": attempt(lambda: send.InprocStream(pool, [])),
    }


def socket_errors_probe(sp: ModuleType) -> dict[str, Any]:
    """Errors from the transport reach the caller: EMSGSIZE over UDP, a stopped InprocQueue."""
    send = send_api(sp)
    pool = thread_pool(sp)
    out: dict[str, Any] = {}
    with _sink() as sink:
        sink.settimeout(5.0)
        config = send.StreamConfig(max_packet_size=70000)
        stream = send.UdpStream(pool, [sink.getsockname()], config)
        out["too_long"] = attempt(
            lambda: stream.send_heap(make_heap(sp, [(0x1000, bytes(69000), False)]))
        )
        # The stream still works afterwards, and the next auto cnt follows the failed heap's.
        out["after"] = attempt(lambda: stream.send_heap(make_heap(sp, [(0x1000, b"abc", False)])))
        out["received"] = attempt(lambda: _heap_cnts_received(sink, 1))
    queue = sp.InprocQueue()
    inproc = send.InprocStream(pool, [queue])
    queue.stop()
    out["stopped_queue"] = attempt(lambda: inproc.send_heap(make_heap(sp)))
    return out


def sync_errors_probe(sp: ModuleType) -> dict[str, Any]:
    """The errno of each refusal of a synchronous send."""
    send = send_api(sp)
    stream = send.BytesStream(thread_pool(sp), send.StreamConfig(max_heaps=2))
    heap = make_heap(sp, [(0x1000, b"abc", False)])
    ref = send.HeapReference(heap)
    return {
        "cnt_out_of_range": attempt(lambda: stream.send_heap(heap, cnt=2**40)),
        "bad_substream": attempt(lambda: stream.send_heap(heap, substream_index=1)),
        "empty_group": attempt(lambda: stream.send_heaps([], send.GroupMode.SERIAL)),
        "group_too_big": attempt(lambda: stream.send_heaps([ref] * 3, send.GroupMode.SERIAL)),
        "group_bad_cnt": attempt(
            lambda: stream.send_heaps(
                [ref, send.HeapReference(heap, cnt=2**45)], send.GroupMode.ROUND_ROBIN
            )
        ),
        "bytes": attempt(stream.getvalue),
    }


def _drain_datagrams(sock: socket.socket, count: int) -> list[int]:
    """The cnts of ``count`` datagrams from ``sock``, then of any that arrive right after."""
    sock.settimeout(5.0)
    cnts = [packet_cnt(sock.recv(65536)) for _ in range(count)]
    sock.settimeout(0.05)
    try:
        while True:
            cnts.append(packet_cnt(sock.recv(65536)))
    except TimeoutError:
        return cnts


def udp_substreams_probe(sp: ModuleType) -> dict[str, Any]:
    """A UdpStream with three endpoints sends each heap to its substream's endpoint only.

    Six single heaps go to substreams 0, 1, 2, 0, 1, 2 (cnts 1-6), then a ROUND_ROBIN group
    with explicit cnts 100, 101, 102 to substreams 2, 1, 0. Returns the cnts each endpoint got.
    """
    send = send_api(sp)
    sinks = [_sink() for _ in range(3)]
    try:
        endpoints = [s.getsockname() for s in sinks]
        stream = send.UdpStream(send_pool(sp), endpoints, send.StreamConfig(max_heaps=8))
        outcomes = []
        for i in range(6):
            heap = make_heap(sp, [(0x1000, pattern(10, i), False)])
            outcomes.append(attempt(partial(stream.send_heap, heap, substream_index=i % 3)))
        heap = make_heap(sp, [(0x1000, b"group", False)])
        refs = [send.HeapReference(heap, cnt=100 + i, substream_index=2 - i) for i in range(3)]
        outcomes.append(attempt(lambda: stream.send_heaps(refs, send.GroupMode.ROUND_ROBIN)))
        outcomes.append(attempt(lambda: stream.send_heap(heap, substream_index=3)))
        received = [_drain_datagrams(s, 3) for s in sinks]
        return {"num_substreams": stream.num_substreams, "outcomes": outcomes, "received": received}
    finally:
        for s in sinks:
            s.close()


# --------------------------------------------------------------------------------- asyncio


def _future_outcome(future: asyncio.Future[Any]) -> Outcome:
    if future.cancelled():
        return {"error": "cancelled", "errno": None, "message": ""}
    exc = future.exception()
    return {"ok": future.result()} if exc is None else error_of(exc)


async def _async_queue_full(sp: ModuleType) -> dict[str, Any]:
    send = send_api(sp)
    send_asyncio = importlib.import_module(sp.__name__ + ".send.asyncio")
    pool = thread_pool(sp)
    with _sink() as sink:
        # 20 kB at 100 kB/s in bursts of one packet: the first heap is in flight for about
        # 0.2 s, so the second (submitted at once) finds the queue full.
        config = send.StreamConfig(max_heaps=1, rate=1e5, burst_size=1500)
        stream = send_asyncio.UdpStream(pool, [sink.getsockname()], config)
        heap = make_heap(sp, [(0x1000, bytes(20_000), False)])
        small = make_heap(sp, [(0x1000, b"abc", False)])
        first = stream.async_send_heap(heap)
        second = stream.async_send_heap(heap)
        await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), STOP_AFTER)
        refs = [send.HeapReference(small), send.HeapReference(small)]
        futures = [
            stream.async_send_heaps(refs, send.GroupMode.SERIAL),  # more than max_heaps
            stream.async_send_heap(small, cnt=2**40),
            stream.async_send_heap(small, substream_index=1),
            stream.async_send_heaps([], send.GroupMode.SERIAL),
        ]
        await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), STOP_AFTER)
        last = stream.async_send_heap(small)
        flushed = await asyncio.wait_for(stream.async_flush(), STOP_AFTER)
        # The futures resolve with the bytes sent, and the failed sends used no cnt.
        cnts = _heap_cnts_received(sink, 2)
        return {
            "first": _future_outcome(first),
            "second": _future_outcome(second),
            "group_too_big": _future_outcome(futures[0]),
            "cnt_out_of_range": _future_outcome(futures[1]),
            "bad_substream": _future_outcome(futures[2]),
            "empty_group": _future_outcome(futures[3]),
            "last_done_after_flush": last.done(),
            "last": _future_outcome(last),
            "flush_result": flushed,
            "received_cnts": cnts,
        }


async def _async_transport_errors(sp: ModuleType) -> dict[str, Any]:
    send = send_api(sp)
    send_asyncio = importlib.import_module(sp.__name__ + ".send.asyncio")
    pool = thread_pool(sp)
    out: dict[str, Any] = {}
    with _sink() as sink:
        config = send.StreamConfig(max_packet_size=70000)
        stream = send_asyncio.UdpStream(pool, [sink.getsockname()], config)
        too_long = stream.async_send_heap(make_heap(sp, [(0x1000, bytes(69000), False)]))
        await asyncio.wait_for(asyncio.gather(too_long, return_exceptions=True), STOP_AFTER)
        out["too_long"] = _future_outcome(too_long)
        after = stream.async_send_heap(make_heap(sp, [(0x1000, b"abc", False)]))
        await asyncio.wait_for(asyncio.gather(after, return_exceptions=True), STOP_AFTER)
        out["after"] = _future_outcome(after)
    queue = sp.InprocQueue()
    queue.stop()
    inproc = send_asyncio.InprocStream(pool, [queue])
    stopped = inproc.async_send_heap(make_heap(sp))
    await asyncio.wait_for(asyncio.gather(stopped, return_exceptions=True), STOP_AFTER)
    out["stopped_queue"] = _future_outcome(stopped)
    try:
        await asyncio.wait_for(
            send_asyncio.TcpStream.connect(pool, [("127.0.0.1", _closed_port())]), STOP_AFTER
        )
        out["refused"] = {"ok": None}
    except Exception as exc:  # noqa: BLE001 - the exception is the result
        out["refused"] = error_of(exc)
    return out


async def _async_lifetime(sp: ModuleType) -> dict[str, Any]:
    send = send_api(sp)
    send_asyncio = importlib.import_module(sp.__name__ + ".send.asyncio")
    queue = sp.InprocQueue()
    # 4 x 5000 bytes at 1 MB/s in one-packet bursts: about 20 ms in flight.
    config = send.StreamConfig(max_heaps=8, rate=1e6, burst_size=1500)
    stream = send_asyncio.InprocStream(send_pool(sp), [queue], config)

    def submit(index: int) -> asyncio.Future[int]:
        data = np.frombuffer(pattern(5000, index), np.uint8).copy()
        heap = send.Heap()
        heap.add_item(BufferItem(0x1000, data))
        return stream.async_send_heap(heap)  # from here only the stream refers to the heap

    futures = [submit(i) for i in range(4)]
    gc.collect()
    await asyncio.wait_for(stream.async_flush(), STOP_AFTER)
    queue.stop()
    receiver = _recv_stream(sp)
    receiver.add_inproc_reader(queue)
    payloads = []
    with _watchdog(receiver):
        for heap in receiver:
            items = {item.id: bytes(memoryview(item)) for item in heap.get_items()}
            payloads.append([heap.cnt, items.get(0x1000) == pattern(5000, heap.cnt - 1)])
    receiver.stop()
    return {"futures": [_future_outcome(f) for f in futures], "payloads": payloads}


def async_lifetime_probe(sp: ModuleType) -> dict[str, Any]:
    """Heaps and their item buffers referenced only by the stream stay alive until sent."""
    return asyncio.run(_async_lifetime(sp))


def async_queue_full_probe(sp: ModuleType) -> dict[str, Any]:
    """asyncio sends refused for a full queue, bad cnt or substream, empty group."""
    return asyncio.run(_async_queue_full(sp))


def async_transport_errors_probe(sp: ModuleType) -> dict[str, Any]:
    """asyncio: EMSGSIZE, a stopped InprocQueue and a refused TCP connect."""
    return asyncio.run(_async_transport_errors(sp))


# --------------------------------------------------------------------------------- loopback

_SEND_POOLS: dict[str, Any] = {}


def send_pool(sp: ModuleType) -> Any:
    """A thread pool for senders, apart from the receivers' (``jobs.thread_pool``).

    spead2's default pool has one thread; a sender and a receiver sharing it deadlock once the
    receiver's ring is full (its reader blocks the only thread the sender needs). Kept for the
    whole process, like ``jobs.thread_pool``, so that no pool is dropped while in use.
    """
    if sp.__name__ not in _SEND_POOLS:
        _SEND_POOLS[sp.__name__] = sp.ThreadPool()
    return _SEND_POOLS[sp.__name__]


@contextmanager
def _watchdog(stream: Any, timeout: float = STOP_AFTER) -> Iterator[threading.Event]:
    """Stop ``stream`` after ``timeout`` seconds; yields the flag that says it fired."""
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        stream.stop()

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def _recv_stream(sp: ModuleType, **config: Any) -> Any:
    recv = importlib.import_module(sp.__name__ + ".recv")
    return recv.Stream(thread_pool(sp), recv.StreamConfig(**config), recv.RingStreamConfig(heaps=8))


def _in_background(target: Callable[[], None], errors: list[Outcome]) -> threading.Thread:
    """Run ``target`` in a started daemon thread; an exception is appended to ``errors``."""

    def run() -> None:
        outcome = attempt(target)
        if "ok" not in outcome:
            errors.append(outcome)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def inproc_roundtrip(sp: ModuleType, name: str, bits: int, packet_size: int) -> dict[str, Any]:
    """Send a catalogue through an InprocStream while an inproc reader receives it.

    Returns ``catalogue.Received.to_plain()``, the sender's errors and whether the watchdog
    fired. The stop heap ends the receiver's stream.
    """
    catalogue = load_catalogue()
    send = send_api(sp)
    queue = sp.InprocQueue()
    config = send.StreamConfig(max_packet_size=packet_size)
    stream = send.InprocStream(send_pool(sp), [queue], config)
    receiver = _recv_stream(sp, max_heaps=4)
    receiver.add_inproc_reader(queue)
    group = send.ItemGroup(flavour=flavour(sp, bits))
    errors: list[Outcome] = []
    sender = _in_background(
        lambda: catalogue.send_all(catalogue.build(name, bits), group, stream), errors
    )
    with _watchdog(receiver) as fired:
        received = catalogue.collect(receiver, sp.ItemGroup())
    sender.join(STOP_AFTER)
    receiver.stop()
    received.stats = catalogue.stats_dict(receiver.stats)
    return {**received.to_plain(), "errors": errors, "timed_out": fired.is_set()}


INTERLEAVE_ITEM = 0x1000
INTERLEAVE_TAG = 0x1001


def interleave(
    sp: ModuleType, heaps_per_sender: int, payload: int, substreams: int = 2
) -> dict[str, Any]:
    """Two senders share one InprocQueue, with cnt sequences (1, 2) and (2, 2).

    Both send at once (one thread each), so their packets interleave in the queue; the receiver
    has ``substreams=2`` and a single heap slot per substream, so every heap completes only if
    the cnt sequences keep the two senders in separate substreams. Each heap carries its
    sender's tag (an immediate) and ``payload`` bytes derived from the tag and its index.

    Returns ``[cnt, tag, payload ok]`` per heap sorted by cnt, errors and statistics.
    """
    send = send_api(sp)
    queue = sp.InprocQueue()
    config = send.StreamConfig(max_packet_size=1472, max_heaps=2)
    senders = [send.InprocStream(send_pool(sp), [queue], config) for _ in range(2)]
    senders[0].set_cnt_sequence(1, 2)
    senders[1].set_cnt_sequence(2, 2)
    receiver = _recv_stream(sp, max_heaps=1, substreams=substreams)
    receiver.add_inproc_reader(queue)
    errors: list[Outcome] = []

    def run(tag: int) -> None:
        for i in range(heaps_per_sender):
            data = pattern(payload, tag * 1000 + i)
            items = [(INTERLEAVE_TAG, bytes([tag]), True), (INTERLEAVE_ITEM, data, False)]
            senders[tag].send_heap(make_heap(sp, items))

    def drive() -> None:
        threads = [_in_background(partial(run, tag), errors) for tag in (0, 1)]
        for thread in threads:
            thread.join()
        queue.stop()  # ends the receiver's stream once it has read everything

    driver = _in_background(drive, errors)
    heaps: list[list[Any]] = []
    with _watchdog(receiver) as fired:
        for heap in receiver:
            items = {item.id: item for item in heap.get_items()}
            tag = int(items[INTERLEAVE_TAG].immediate_value)
            index = (heap.cnt - 1 - tag) // 2
            ok = bytes(memoryview(items[INTERLEAVE_ITEM])) == pattern(payload, tag * 1000 + index)
            heaps.append([heap.cnt, tag, ok])
    driver.join(STOP_AFTER)
    receiver.stop()
    return {
        "heaps": sorted(heaps),
        "errors": errors,
        "stats": {name: int(value) for name, value in receiver.stats.items()},
        "timed_out": fired.is_set(),
    }
