"""Receive jobs that run unchanged with our spead2 or the real one, reported as plain data.

A job is ``(function name, keyword arguments)``; the function takes the spead2 module as its
first argument, so the pytest process runs it with ours (:func:`run_ours`) and the peer venv
runs the same code with spead2 4.5.1 (:func:`run_peer`, a subprocess that executes this file;
:func:`run_ours_isolated` does the same with ours).
Results are builtins only (pickled across venvs); an exception becomes
``{"error": <type name>, "message": <text>}`` so that error behaviour compares too.

The module imports only the standard library at top level: it must load in the peer venv.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
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

    Streams share it, so that a job never pays for starting and joining worker threads, and
    dropping a stream never joins a pool. (Dropping the last reference to a pool while a
    worker still releases a reader's Python buffer once deadlocked ours; that case is tested
    on its own in ``tests/recv/test_stream_behaviour.py``.)
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


@contextmanager
def watched(stream: Any, timeout: float = WATCHDOG) -> Iterator[None]:
    """Stop ``stream`` if the block is still running after ``timeout`` seconds, so that a
    missing heap or end of stream makes a result wrong instead of hanging the run."""
    timer = threading.Timer(timeout, stream.stop)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def drain(stream: Any, limit: int | None = None) -> list[dict[str, Any]]:
    """Every heap until the stream ends (or ``limit`` heaps), described; a watchdog stops a
    stream that hangs."""
    out: list[dict[str, Any]] = []
    with watched(stream):
        for heap in stream:
            out.append(describe_heap(heap))
            if len(out) == limit:
                break
    return out


def result(stream: Any, heaps: list[dict[str, Any]]) -> dict[str, Any]:
    """A receive job's result: heaps, statistics and (ours only, an extension) the nonzero
    drop counts by reason."""
    out: dict[str, Any] = {"heaps": heaps, "stats": stats_dict(stream.stats)}
    if hasattr(stream, "drop_counts"):
        out["drops"] = {k: v for k, v in dict(stream.drop_counts).items() if v}
    return out


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
    return result(stream, heaps)


def receive_tcp(
    sp: ModuleType,
    chunks: Sequence[bytes],
    config: dict[str, Any] | None = None,
    ring: dict[str, Any] | None = None,
    max_size: int | None = None,
    reset_after: int | None = None,
) -> dict[str, Any]:
    """Send ``chunks`` over one loopback TCP connection to a stream's TCP reader and receive.

    Normally the connection is then closed and the stream read to its end. With
    ``reset_after=n``, ``n`` heaps are read first, then the connection is reset (RST) and the
    stream stopped: what happens after a reset differs (spead2 4.5.1 never ends the stream), so
    only what arrived before it is compared.
    """
    stream = make_stream(sp, config, ring)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as acceptor:
        acceptor.bind(("127.0.0.1", 0))
        acceptor.listen(1)
        port = acceptor.getsockname()[1]
        if max_size is None:
            stream.add_tcp_reader(acceptor)
        else:
            stream.add_tcp_reader(acceptor, max_size=max_size)
    heaps: list[dict[str, Any]] = []
    with socket.create_connection(("127.0.0.1", port)) as client:
        for chunk in chunks:
            client.sendall(chunk)
        if reset_after is not None:
            heaps = drain(stream, reset_after)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if reset_after is not None:
        stream.stop()
    heaps += drain(stream)
    stream.stop()
    return result(stream, heaps)


def receive_udp(
    sp: ModuleType,
    datagrams: Sequence[bytes],
    config: dict[str, Any] | None = None,
    ring: dict[str, Any] | None = None,
    max_size: int | None = None,
) -> dict[str, Any]:
    """Send ``datagrams`` over loopback UDP to a stream's UDP reader and receive them; the
    last datagram must end the stream (a stop heap)."""
    stream = make_stream(sp, config, ring)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        if max_size is None:
            stream.add_udp_reader(sock)
        else:
            stream.add_udp_reader(sock, max_size=max_size)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for datagram in datagrams:
            sender.sendto(datagram, ("127.0.0.1", port))
    heaps = drain(stream)
    stream.stop()
    return result(stream, heaps)


def plain(value: Any) -> dict[str, Any]:
    """A value as comparable plain data: builtins as themselves, other objects by type name
    (their repr may hold an address)."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return {"value": value}
    if isinstance(value, (list, tuple)):
        return {"sequence": [plain(v) for v in value]}
    return {"type": type(value).__name__}


def evaluate(sp: ModuleType, expressions: Sequence[str]) -> list[Any]:
    """Evaluate Python expressions with ``sp``, ``recv`` and ``send`` bound; each result is
    its value (see :func:`plain`) or the exception it raised (``error_of``)."""
    recv = importlib.import_module(sp.__name__ + ".recv")
    send = importlib.import_module(sp.__name__ + ".send")
    names = {"sp": sp, "recv": recv, "send": send}
    out: list[Any] = []
    for expr in expressions:
        try:
            out.append(plain(eval(expr, dict(names))))
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
    "receive_tcp": receive_tcp,
    "receive_udp": receive_udp,
    "evaluate": evaluate,
    "execute": execute,
}


def job_function(name: str) -> Callable[..., Any]:
    """A job by name: one of :data:`JOBS`, or ``"<module>:<function>"`` for a function of a
    module of ``tests/util`` (such as ``recv_scenarios``)."""
    if ":" not in name:
        return JOBS[name]
    module, function = name.split(":", 1)
    return getattr(importlib.import_module(f"util.{module}"), function)  # type: ignore[no-any-return]


def run_job(sp: ModuleType, job: Job) -> Any:
    """One job with the given spead2 module; an exception is the result."""
    name, kwargs = job
    try:
        return job_function(name)(sp, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the exception is the result
        return error_of(exc)


def run_ours(job: Job) -> Any:
    """A job with our spead2 (the pytest process)."""
    import spead2
    import spead2.recv

    return run_job(spead2, job)


def run_peer(python: Path, jobs: Iterable[Job], timeout: float = 120.0) -> list[Any]:
    """Jobs with the real spead2, in subprocesses of the peer interpreter ``python``.

    Results stream back one pickle per job. If the peer crashes (spead2 4.5.1 segfaults on
    some invalid arguments), that job's result is ``{"error": "Crash", ...}`` and the
    remaining jobs run in a fresh subprocess.
    """
    from .peer import peer_env  # only the pytest side needs it

    return _run_subprocess([str(python)], list(jobs), peer_env(), timeout)


def run_ours_isolated(jobs: Iterable[Job], timeout: float = 120.0) -> list[Any]:
    """Jobs with our spead2 in a fresh subprocess: for behaviour that depends on process-wide
    state, such as the log rate limiter."""
    return _run_subprocess([sys.executable], list(jobs), None, timeout, ours=True)


def _run_subprocess(
    argv: list[str],
    pending: list[Job],
    env: dict[str, str] | None,
    timeout: float,
    ours: bool = False,
) -> list[Any]:
    results: list[Any] = []
    script = [str(Path(__file__).resolve())] + (["--ours"] if ours else [])
    while pending:
        proc = subprocess.run(
            argv + script,
            input=pickle.dumps(pending),
            capture_output=True,
            timeout=timeout,
            env=env,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
        done = _unpickle_all(proc.stdout)
        results += done
        pending = pending[len(done) :]
        if proc.returncode == 0 and not pending:
            break
        if proc.returncode >= 0 or not pending:
            raise RuntimeError(f"peer jobs failed ({proc.returncode}):\n{proc.stderr.decode()}")
        message = f"the subprocess died of signal {-proc.returncode} running {pending[0][0]}"
        results.append({"error": "Crash", "message": message})
        pending = pending[1:]
    return results


def _unpickle_all(data: bytes) -> list[Any]:
    """Every complete pickle in ``data``, in order (a crash may cut the last one short)."""
    stream = io.BytesIO(data)
    out = []
    while stream.tell() < len(data):
        try:
            out.append(pickle.load(stream))
        except (EOFError, pickle.UnpicklingError):
            break
    return out


def _subprocess_main() -> None:
    """Run pickled jobs from stdin with the real spead2 (or ours, with ``--ours``); pickle each
    result to stdout as soon as it is known."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for util.<module> jobs
    import spead2
    import spead2.recv
    import spead2.send

    location = Path(spead2.__file__).resolve()
    ours = location.is_relative_to(REPO_ROOT / "spead2")
    if "--ours" in sys.argv[1:]:
        if not ours:
            raise SystemExit(f"not our spead2: {location}")
    elif spead2.__version__ != PEER_EXPECTED_VERSION or ours:
        raise SystemExit(f"not the real spead2 {PEER_EXPECTED_VERSION}: {location}")
    for job in pickle.loads(sys.stdin.buffer.read()):
        result = run_job(spead2, job)
        sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        sys.stdout.flush()
    sys.stderr.flush()
    # spead2 4.5.1 can crash during interpreter finalisation when its log thread still has
    # records to deliver (seen after out-of-order packets); the results are complete here.
    os._exit(0)


if __name__ == "__main__":
    _subprocess_main()
