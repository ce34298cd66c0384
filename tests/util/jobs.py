"""Receive jobs that run unchanged with our spead2 or the real one, reported as plain data.

A job is ``(function name, keyword arguments)``; the function takes the spead2 module as its
first argument, so the pytest process runs it with ours (:func:`run_ours`) and the peer venv
runs the same code with spead2 4.5.1 (:func:`run_peer`, a subprocess that executes this file).
Results are builtins only (pickled across venvs); an exception becomes
``{"error": <type name>, "message": <text>}`` so that error behaviour compares too.

The module imports only the standard library at top level: it must load in the peer venv.
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

Job = tuple[str, dict[str, Any]]

COMPARED_STATS = (
    "heaps",
    "incomplete_heaps_evicted",
    "incomplete_heaps_flushed",
    "packets",
    "single_packet_heaps",
)
"""Statistics with one right answer for a given packet sequence (batching differs by design)."""

WATCHDOG = 20.0
"""Seconds after which a job's stream is stopped, so a missing stop heap cannot hang a run."""

PEER_EXPECTED_VERSION = "4.5.1"
REPO_ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------- descriptions


def describe_item(item: Any) -> dict[str, Any]:
    """A raw item: ID, immediate flag and value, and its bytes."""
    out: dict[str, Any] = {"id": item.id, "is_immediate": item.is_immediate}
    if item.is_immediate:
        out["immediate_value"] = item.immediate_value
    out["data"] = bytes(memoryview(item))
    return out


def describe_heap(heap: Any) -> dict[str, Any]:
    """Everything observable about a received heap (complete or incomplete)."""
    out: dict[str, Any] = {
        "type": type(heap).__name__,
        "cnt": heap.cnt,
        "flavour": (heap.flavour.heap_address_bits, heap.flavour.bug_compat),
        "is_start": heap.is_start_of_stream(),
        "is_end": heap.is_end_of_stream(),
        "items": [describe_item(item) for item in heap.get_items()],
    }
    if hasattr(heap, "heap_length"):
        out["heap_length"] = heap.heap_length
        out["received_length"] = heap.received_length
        out["payload_ranges"] = [tuple(r) for r in heap.payload_ranges]
    else:
        out["descriptors"] = [
            (d.id, bytes(d.name), bytes(d.description), list(d.shape), list(d.format))
            for d in heap.get_descriptors()
        ]
    return out


def stats_dict(stats: Any) -> dict[str, int]:
    """All statistics by name, in the stream's order."""
    return {name: int(value) for name, value in stats.items()}


def compared(stats: dict[str, int]) -> dict[str, int]:
    """The statistics that must agree between two receivers of the same packets."""
    return {name: stats[name] for name in COMPARED_STATS}


def error_of(exc: BaseException) -> dict[str, Any]:
    """An exception as plain data."""
    return {"error": type(exc).__name__, "message": str(exc)}


# ------------------------------------------------------------------------------- jobs


_POOLS: dict[str, Any] = {}


def thread_pool(sp: ModuleType) -> Any:
    """One ThreadPool per spead2 module for the whole process.

    Streams share it so that dropping a stream never drops (and joins) the pool: our
    ThreadPool's last release joins its workers with the GIL held, which deadlocks if a worker
    is still releasing a reader's Python buffer (tested on its own in
    ``tests/recv/test_stream_behaviour.py``).
    """
    if sp.__name__ not in _POOLS:
        _POOLS[sp.__name__] = sp.ThreadPool()
    return _POOLS[sp.__name__]


def make_stream(
    sp: ModuleType, config: dict[str, Any] | None = None, ring: dict[str, Any] | None = None
) -> Any:
    """A ring stream with the given StreamConfig / RingStreamConfig keyword arguments."""
    recv = importlib.import_module(sp.__name__ + ".recv")
    return recv.Stream(
        thread_pool(sp),
        recv.StreamConfig(**(config or {})),
        recv.RingStreamConfig(**(ring or {})),
    )


def drain(stream: Any) -> list[dict[str, Any]]:
    """Every heap until the stream ends, described; a watchdog stops a stream that hangs."""
    timer = threading.Timer(WATCHDOG, stream.stop)
    timer.daemon = True
    timer.start()
    try:
        return [describe_heap(heap) for heap in stream]
    finally:
        timer.cancel()


def receive_packets(
    sp: ModuleType,
    packets: Sequence[bytes],
    config: dict[str, Any] | None = None,
    ring: dict[str, Any] | None = None,
    reader: str = "buffer",
) -> dict[str, Any]:
    """Feed ``packets`` back to back (``buffer``) or one per queue entry (``inproc``)."""
    stream = make_stream(sp, config, ring)
    if reader == "buffer":
        stream.add_buffer_reader(b"".join(packets))
    elif reader == "inproc":
        queue = sp.InprocQueue()
        for p in packets:
            queue.add_packet(p)
        queue.stop()
        stream.add_inproc_reader(queue)
    else:
        raise ValueError(f"unknown reader {reader}")
    heaps = drain(stream)
    stream.stop()
    return {"heaps": heaps, "stats": stats_dict(stream.stats)}


def evaluate(sp: ModuleType, expressions: Sequence[str]) -> list[Any]:
    """Evaluate Python expressions with ``sp``, ``recv`` and ``send`` bound; each result is
    ``repr`` of its value or the exception it raised (``error_of``)."""
    recv = importlib.import_module(sp.__name__ + ".recv")
    send = importlib.import_module(sp.__name__ + ".send")
    names = {"sp": sp, "recv": recv, "send": send}
    out: list[Any] = []
    for expr in expressions:
        try:
            out.append({"value": repr(eval(expr, dict(names)))})
        except Exception as exc:  # noqa: BLE001 - the exception is the result
            out.append(error_of(exc))
    return out


def execute(sp: ModuleType, source: str) -> Any:
    """Run ``source`` (with ``sp``, ``recv``, ``send`` bound); returns its ``result`` variable."""
    recv = importlib.import_module(sp.__name__ + ".recv")
    send = importlib.import_module(sp.__name__ + ".send")
    names: dict[str, Any] = {"sp": sp, "recv": recv, "send": send, "jobs": sys.modules[__name__]}
    exec(source, names)
    return names.get("result")


JOBS: dict[str, Callable[..., Any]] = {
    "receive_packets": receive_packets,
    "evaluate": evaluate,
    "execute": execute,
}


def run_job(sp: ModuleType, job: Job) -> Any:
    """One job with the given spead2 module; an exception is the result."""
    name, kwargs = job
    try:
        return JOBS[name](sp, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the exception is the result
        return error_of(exc)


def run_ours(job: Job) -> Any:
    """A job with our spead2 (the pytest process)."""
    import spead2
    import spead2.recv

    return run_job(spead2, job)


def run_peer(python: Path, jobs: Iterable[Job], timeout: float = 120.0) -> list[Any]:
    """Jobs with the real spead2, in one subprocess of the peer interpreter ``python``."""
    from .peer import peer_env  # only the pytest side needs it

    proc = subprocess.run(
        [str(python), str(Path(__file__).resolve())],
        input=pickle.dumps(list(jobs)),
        capture_output=True,
        timeout=timeout,
        env=peer_env(),
        cwd=Path(__file__).resolve().parent,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"peer jobs failed ({proc.returncode}):\n{proc.stderr.decode()}")
    return list(pickle.loads(proc.stdout))


def _peer_main() -> None:
    """Run pickled jobs from stdin with the real spead2; pickle the results to stdout."""
    import spead2
    import spead2.recv
    import spead2.send

    location = Path(spead2.__file__).resolve()
    if spead2.__version__ != PEER_EXPECTED_VERSION or location.is_relative_to(REPO_ROOT / "spead2"):
        raise SystemExit(f"not the real spead2 {PEER_EXPECTED_VERSION}: {location}")
    jobs = pickle.loads(sys.stdin.buffer.read())
    results = [run_job(spead2, job) for job in jobs]
    sys.stdout.buffer.write(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.flush()
    sys.stderr.flush()
    # spead2 4.5.1 can crash during interpreter finalisation when its log thread still has
    # records to deliver (seen after out-of-order packets); the results are complete here.
    os._exit(0)


if __name__ == "__main__":
    _peer_main()
