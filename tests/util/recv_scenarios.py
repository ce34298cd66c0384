"""Receive-stream scenarios run unchanged by our spead2 and the real one (see ``jobs.py``).

Each function takes the spead2 module first and returns plain data, so a test can run it in the
pytest process with ours and, as job ``"recv_scenarios:<name>"``, in the peer venv with spead2
4.5.1, and compare. Outcomes of individual calls are recorded as ``("ok", value)`` or
``("err", exception type name)``. Statistics that depend on batching (``batches``,
``max_batch``, ``search_dist``) are left out; the rest must agree.

Standard library only at top level (the peer venv imports this too).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from util import jobs

POLL = 0.005
"""Seconds between checks while waiting for a worker to reach a state."""
STATE_TIMEOUT = 10.0
"""Upper bound on such waits (only reached when something is broken)."""
LOG_WAIT = 3.0
"""Longest wait for expected log records (they are forwarded from worker threads)."""
QUIET = 0.3
"""How long a stream that must not receive anything is watched before checking."""


def attempt(fn: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", value)`` or ``("err", exception type name)``."""
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome
        return ("err", type(exc).__name__)


def wait_until(predicate: Callable[[], bool], timeout: float = STATE_TIMEOUT) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
    return True


def _recv(sp: ModuleType) -> ModuleType:
    return importlib.import_module(sp.__name__ + ".recv")


def _queue(sp: ModuleType, packets: Sequence[bytes], stop: bool) -> Any:
    queue = sp.InprocQueue()
    for packet in packets:
        queue.add_packet(packet)
    if stop:
        queue.stop()
    return queue


def _stats(stream: Any) -> dict[str, int]:
    return jobs.compared(jobs.stats_dict(stream.stats))


def explicit_start(sp: ModuleType, packets: Sequence[bytes]) -> dict[str, Any]:
    """With ``explicit_start``, readers wait for ``start()``; readers cannot be added after it.

    ``packets`` must hold at least two complete heaps and no stop heap.
    """
    out: dict[str, Any] = {}
    stream = jobs.make_stream(sp, {"explicit_start": True})
    queue = _queue(sp, packets, stop=False)
    stream.add_inproc_reader(queue)
    time.sleep(QUIET)
    out["before_start"] = attempt(lambda: stream.get_nowait().cnt)
    out["packets_before_start"] = stream.stats["packets"]
    with jobs.watched(stream):
        stream.start()
        out["first"] = attempt(lambda: stream.get().cnt)
        out["add_inproc_after_start"] = attempt(lambda: stream.add_inproc_reader(sp.InprocQueue()))
        out["add_buffer_after_start"] = attempt(lambda: stream.add_buffer_reader(b""))
        out["start_again"] = attempt(stream.start)
        out["second"] = attempt(lambda: stream.get().cnt)
        out["nothing_yet"] = attempt(stream.get_nowait)
        queue.stop()
        out["after_queue_stop"] = attempt(stream.get)
    stream.stop()
    out["stats"] = _stats(stream)
    return out


def start_without_explicit_start(sp: ModuleType) -> dict[str, Any]:
    """``start()`` is harmless on a normal stream, which keeps accepting readers."""
    stream = jobs.make_stream(sp)
    out = {
        "start": attempt(stream.start),
        "add_after_start": attempt(lambda: stream.add_inproc_reader(sp.InprocQueue())),
    }
    stream.stop()
    return out


def explicit_start_never_started(sp: ModuleType, data: bytes) -> dict[str, Any]:
    """A stream stopped before ``start()`` delivers nothing and counts nothing."""
    stream = jobs.make_stream(sp, {"explicit_start": True})
    stream.add_buffer_reader(data)
    stream.stop()
    return {"heaps": [h.cnt for h in stream], "stats": _stats(stream)}


def stop_semantics(
    sp: ModuleType, complete: Sequence[bytes], incomplete: Sequence[bytes], n_complete: int
) -> dict[str, Any]:
    """``stop()`` while ``n_complete`` heaps wait in the ring and one heap is incomplete.

    Heaps already in the ring are still delivered after ``stop()``; then ``get`` and
    ``get_nowait`` raise ``Stopped``; the incomplete heap counts as flushed (and as a heap).
    """
    out: dict[str, Any] = {}
    stream = jobs.make_stream(sp, {}, {"heaps": n_complete + 2})
    stream.add_inproc_reader(_queue(sp, [*complete, *incomplete], stop=False))
    out["filled"] = wait_until(lambda: stream.ringbuffer.size() >= n_complete)
    out["nowait_running"] = attempt(lambda: stream.get_nowait().cnt)
    stream.stop()
    out["after_stop"] = [h.cnt for h in stream]
    out["get"] = attempt(stream.get)
    out["get_nowait"] = attempt(stream.get_nowait)
    out["stop_again"] = attempt(stream.stop)
    out["add_after_stop"] = attempt(lambda: stream.add_inproc_reader(sp.InprocQueue()))
    out["ring_size"] = stream.ringbuffer.size()
    out["stats"] = _stats(stream)
    return out


def stop_before_anything(sp: ModuleType) -> dict[str, Any]:
    """A stream stopped at once: ``get`` raises ``Stopped`` and every statistic is 0."""
    stream = jobs.make_stream(sp)
    stream.stop()
    return {"get": attempt(stream.get), "stats": jobs.stats_dict(stream.stats)}


def ring_full(sp: ModuleType, data: bytes, heaps: int) -> dict[str, Any]:
    """A one-slot ring that the consumer leaves full: the worker blocks (``worker_blocked``)
    and, once the consumer catches up, every heap still arrives in order."""
    stream = jobs.make_stream(sp, {}, {"heaps": 1})
    stream.add_buffer_reader(data)
    out: dict[str, Any] = {"capacity": stream.ringbuffer.capacity()}
    out["filled"] = wait_until(lambda: stream.ringbuffer.size() == 1)
    out["size_when_full"] = stream.ringbuffer.size()
    time.sleep(QUIET)  # the worker now waits on the full ring
    out["still_full"] = stream.ringbuffer.size()
    with jobs.watched(stream):
        out["heaps"] = [h.cnt for h in stream]
    out["size_after"] = stream.ringbuffer.size()
    stream.stop()  # spead2 merges a batch's statistics late; stop() brings them up to date
    stats = jobs.stats_dict(stream.stats)
    out["worker_blocked"] = stats["worker_blocked"] > 0
    out["stats"] = jobs.compared(stats)
    assert len(out["heaps"]) == heaps
    return out


def _stats_after(sp: ModuleType, data: bytes, config: Any = None) -> Any:
    recv = _recv(sp)
    stream = recv.Stream(jobs.thread_pool(sp), config or recv.StreamConfig())
    stream.add_buffer_reader(data)
    with jobs.watched(stream):
        for _ in stream:
            pass
    stream.stop()
    return stream.stats


def _set(stats: Any, key: Any, value: Any) -> Any:
    stats[key] = value
    return stats[key]


def _set_attribute(stats: Any, name: str, value: int) -> Any:
    setattr(stats, name, value)
    return stats[name]


def _iadd(stats: Any, other: Any) -> list[int]:
    stats += other
    return list(stats.values())


def stats_mapping(sp: ModuleType, data: bytes) -> dict[str, Any]:
    """The ``StreamStats`` mapping interface, custom statistics and combination rules."""
    recv = _recv(sp)
    a, b = _stats_after(sp, data), _stats_after(sp, data)
    config = recv.StreamConfig()
    custom = config.add_stat("pkg.custom")
    maximum = config.add_stat("pkg.max", recv.StreamStatConfig.Mode.MAXIMUM)
    c = _stats_after(sp, data, config)
    fresh = lambda: _stats_after(sp, data)  # noqa: E731 - a stats object to mutate
    out: dict[str, Any] = {
        "keys": list(a.keys()),
        "values": jobs.compared(dict(a.items())),
        "iter": list(a),
        "len": len(a),
        "custom_indices": (custom, maximum),
        "custom_keys": list(c.keys()),
        "custom_len": len(c),
        "custom_values": (c["pkg.custom"], c[custom], c["pkg.max"], c[maximum]),
        "config": [(s.name, s.mode == recv.StreamStatConfig.Mode.MAXIMUM) for s in c.config],
    }
    checks: dict[str, Callable[[], Any]] = {
        "index": lambda: (a[0], a[3]),
        "name": lambda: (a["heaps"], a["packets"]),
        "attributes": lambda: (a.heaps, a.packets, a.incomplete_heaps_evicted, a.worker_blocked),
        "custom_attribute": lambda: c.pkg,
        "unknown_name": lambda: a["nope"],
        "index_past_end": lambda: a[len(a)],
        "negative_index": lambda: a[-1],
        "float_key": lambda: a[1.0],
        "none_key": lambda: a[None],
        "contains": lambda: ("packets" in a, "nope" in a, "pkg.custom" in c),
        "contains_int": lambda: 3 in a,
        "get": lambda: (a.get("packets"), a.get("nope"), a.get("nope", 42)),
        "get_int": lambda: a.get(3),
        "add": lambda: jobs.compared(dict((a + b).items())),
        "add_type": lambda: type(a + b).__name__,
        "add_different_config": lambda: a + c,
        "add_int": lambda: a + 1,
        "iadd": lambda: jobs.compared(dict(zip(a.keys(), _iadd(fresh(), b), strict=True))),
        "iadd_different_config": lambda: _iadd(fresh(), c),
        "set_name": lambda: _set(fresh(), "packets", 5),
        "set_index": lambda: _set(fresh(), 0, 7),
        "set_attribute": lambda: _set_attribute(fresh(), "heaps", 11),
        "set_unknown": lambda: _set(fresh(), "nope", 1),
        "set_past_end": lambda: _set(fresh(), 99, 1),
        "set_negative_index": lambda: _set(fresh(), -1, 1),
        "set_negative_value": lambda: _set(fresh(), 0, -1),
        "maximum_combines_by_max": lambda: (
            lambda s: (_set(s, "max_batch", 1000), (s + a)["max_batch"], (a + s)["max_batch"])
        )(fresh())[1:],
        "counter_combines_by_sum": lambda: (lambda s: (_set(s, "heaps", 5), (s + a)["heaps"]))(
            fresh()
        )[1],
        "fresh_object_per_read": lambda: (lambda s: s.stats is s.stats)(jobs.make_stream(sp)),
        "construct": lambda: recv.StreamStats(),
    }
    for name, check in checks.items():
        out[name] = attempt(check)
    return out


class _Records(logging.Handler):
    """Collects ``(logger, level, message)`` of every record it sees."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelname, record.getMessage()))


def log_records(
    sp: ModuleType,
    packets: Sequence[bytes],
    config: dict[str, Any] | None = None,
    expect: int = 1,
    settle: float = 0.05,
) -> dict[str, Any]:
    """What the ``spead2`` logger records (INFO and above) while ``packets`` arrive through an
    inproc queue, with the heaps and (ours only) drop counts.

    Records from worker threads reach Python asynchronously: this waits for ``expect`` of them
    (at most ``LOG_WAIT``), then ``settle`` seconds more for any others.
    """
    logger = logging.getLogger("spead2")
    handler = _Records()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        stream = jobs.make_stream(sp, config)
        stream.add_inproc_reader(_queue(sp, packets, stop=True))
        with jobs.watched(stream):
            heaps = [h.cnt for h in stream]
        stream.stop()
        wait_until(lambda: len(handler.records) >= expect, LOG_WAIT)
        time.sleep(settle)
        out: dict[str, Any] = {"records": list(handler.records), "heaps": heaps}
        if hasattr(stream, "drop_counts"):
            out["drops"] = {k: v for k, v in dict(stream.drop_counts).items() if v}
        return out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def inproc_queue_stop(sp: ModuleType, packets: Sequence[bytes]) -> dict[str, Any]:
    """Packets added to an InprocQueue from Python; ``queue.stop()`` (no stop heap needed)
    ends the stream once they are read."""
    stream = jobs.make_stream(sp, {}, {"heaps": 64})
    queue = sp.InprocQueue()
    stream.add_inproc_reader(queue)
    for packet in packets:
        queue.add_packet(packet)
    ended = threading.Event()
    heaps: list[Any] = []

    def consume() -> None:
        heaps.extend(jobs.describe_heap(h) for h in stream)
        ended.set()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    early_end = ended.wait(QUIET)
    queue.stop()
    consumer.join(STATE_TIMEOUT)
    out = {"ended_before_queue_stop": early_end, "ended": ended.is_set(), "heaps": heaps}
    out["add_after_stop"] = attempt(lambda: queue.add_packet(packets[0]))
    stream.stop()
    out["stats"] = _stats(stream)
    return out


def make_allocator(sp: ModuleType, kind: str, args: Sequence[Any] = ()) -> Any:
    """``"pool"``: ``MemoryPool(*args)``; ``"pool_mmap"``: the same over an MmapAllocator;
    ``"pool_background"``: ``MemoryPool(thread_pool, *args)`` (``args`` then ends with
    ``low_water``); ``"mmap"``/``"mmap_huge"``: ``MmapAllocator(0, prefer_huge=...)``."""
    if kind == "pool":
        return sp.MemoryPool(*args)
    if kind == "pool_mmap":
        return sp.MemoryPool(*args, allocator=sp.MmapAllocator())
    if kind == "pool_background":
        return sp.MemoryPool(sp.ThreadPool(), *args)
    if kind in ("mmap", "mmap_huge"):
        return sp.MmapAllocator(0, prefer_huge=kind == "mmap_huge")
    raise ValueError(f"unknown allocator kind {kind}")


def allocator_receive(
    sp: ModuleType,
    packets: Sequence[bytes],
    kind: str,
    args: Sequence[Any] = (),
    warn_on_empty: bool | None = None,
    expect_records: int = 0,
) -> dict[str, Any]:
    """Receive ``packets`` (through an inproc queue) with a stream whose memory comes from the
    given allocator, keeping every heap alive until the end, so that a buffer handed out twice
    would show as corrupted values. Also returns the ``spead2`` log records."""
    recv = _recv(sp)
    allocator = make_allocator(sp, kind, args)
    if warn_on_empty is not None:
        allocator.warn_on_empty = warn_on_empty
    logger = logging.getLogger("spead2")
    handler = _Records()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        config = recv.StreamConfig(memory_allocator=allocator)
        stream = recv.Stream(jobs.thread_pool(sp), config, recv.RingStreamConfig(heaps=4))
        stream.add_inproc_reader(_queue(sp, packets, stop=True))
        with jobs.watched(stream):
            kept = list(stream)  # every heap stays referenced while later ones arrive
        stream.stop()
        wait_until(lambda: len(handler.records) >= expect_records, LOG_WAIT)
        time.sleep(0.05)
        return {
            "same_allocator": config.memory_allocator is allocator,
            "heaps": [jobs.describe_heap(h) for h in kept],
            "stats": _stats(stream),
            "messages": sorted({m for _, _, m in handler.records}),
            "levels": sorted({level for _, level, _ in handler.records}),
        }
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def send_multicast(
    sp: ModuleType,
    group: str,
    port: int,
    interface: str | int,
    catalogue_name: str = "small",
    bits: int = 48,
    ttl: int = 1,
    rate: float = 10e6,
) -> int:
    """Send a catalogue (``tests/peer/catalogue.py``) to a multicast group through the
    ``UdpStream`` overload that takes ``ttl`` and an interface: an IPv4 address (str) or an
    IPv6 interface index (int). Returns the number of heaps sent."""
    from util.peer import load_catalogue

    send = importlib.import_module(sp.__name__ + ".send")
    catalogue = load_catalogue()
    config = send.StreamConfig(rate=rate)
    buffer_size = send.UdpStream.DEFAULT_BUFFER_SIZE
    stream = send.UdpStream(sp.ThreadPool(), [(group, port)], config, buffer_size, ttl, interface)
    item_group = send.ItemGroup(flavour=sp.Flavour(4, 64, bits, 0))
    return int(catalogue.send_all(catalogue.build(catalogue_name, bits), item_group, stream))
