"""Receive-stream behaviour of our spead2, compared with the real spead2 4.5.1.

Hand-made packets (``tests/util/packets.py``) go through our receiver in this process and through
the peer's in one subprocess per module (``tests/util/jobs.py``): heap types, cnts, every item's
bytes, ``heap_length``/``received_length``/``payload_ranges`` of incomplete heaps and the
statistics that do not depend on batching must be identical. Scenario functions
(``tests/util/recv_scenarios.py``) cover the stream life cycle the same way. A few behaviours are
also pinned to explicit values, so that the tests say what spead2 does, not only that we agree.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from util import jobs
from util import packets as P
from util.jobs import Job
from util.peer import Peer
from util.receive import stop_after
from util.reference import PeerReference

import spead2
import spead2.recv

S = "recv_scenarios:"
CHUNK = 1024
SIZE = 2500
"""Payload bytes of the standard test heap: three packets of at most ``CHUNK`` bytes."""
KEEP_RANGES = {"contiguous_only": False, "incomplete_keep_payload_ranges": True}


def heap(cnt: int, size: int = SIZE) -> list[bytes]:
    """Packets of the standard test heap ``cnt`` (see ``packets.simple_heap``)."""
    return P.simple_heap(cnt, size, chunk=CHUNK)


H = {cnt: heap(cnt) for cnt in range(1, 10)}
STOP = [P.stop_heap(99)]
UNSIZED = P.heap_packets(5, [P.Item(0x1000, P.value_bytes(5, SIZE))], chunk=CHUNK, sized=False)
SHUFFLED = [heap(6, 5000)[i] for i in (3, 0, 4, 2, 1)]


def interleave(*heaps: list[bytes]) -> list[bytes]:
    """Packet 0 of every heap, then packet 1 of every heap, and so on."""
    return [p for group in zip(*heaps, strict=True) for p in group]


def rp(
    packets: list[bytes],
    config: dict[str, Any] | None = None,
    ring: dict[str, Any] | None = None,
    reader: str = "buffer",
) -> Job:
    """A ``receive_packets`` job."""
    return (
        "receive_packets",
        {"packets": packets, "config": config, "ring": ring, "reader": reader},
    )


RECEIVE_CASES: dict[str, Job] = {
    "complete": rp(H[1] + H[2] + STOP),
    "complete_inproc": rp(H[1] + H[2] + STOP, reader="inproc"),
    "start_heap": rp([P.start_heap(1)] + H[2] + STOP),
    "flavour_40": rp(P.simple_heap(1, SIZE, 40, chunk=CHUNK) + [P.stop_heap(2, 40)]),
    "packets_after_stop_ignored": rp(H[1] + STOP + H[2]),
    "end_of_buffer_without_stop": rp(H[1] + H[2]),
    "incomplete_ranges": rp(
        [H[1][0], H[1][2]] + H[2] + STOP, {"allow_out_of_order": True}, KEEP_RANGES
    ),
    "incomplete_no_ranges": rp(
        [H[1][0], H[1][2]] + H[2] + STOP, {"allow_out_of_order": True}, {"contiguous_only": False}
    ),
    "incomplete_contiguous_only": rp([H[1][0], H[1][2]] + H[2] + STOP),
    "incomplete_gap_in_order": rp([H[1][0], H[1][2]] + H[2] + STOP, ring=KEEP_RANGES),
    "incomplete_flushed_at_end": rp(H[1] + H[2][:2], ring=KEEP_RANGES),
    "evicted_max_heaps_1": rp(interleave(H[1], H[2]) + STOP, {"max_heaps": 1}, KEEP_RANGES),
    "evicted_max_heaps_2": rp(interleave(H[1], H[2], H[3]) + STOP, {"max_heaps": 2}, KEEP_RANGES),
    "not_evicted_max_heaps_3": rp(
        interleave(H[1], H[2], H[3]) + STOP, {"max_heaps": 3}, KEEP_RANGES
    ),
    "substreams_apart": rp(
        interleave(H[1], H[2]) + STOP, {"max_heaps": 1, "substreams": 2}, KEEP_RANGES
    ),
    "substreams_shared": rp(
        interleave(H[1], H[3]) + STOP, {"max_heaps": 1, "substreams": 2}, KEEP_RANGES
    ),
    "out_of_order_allowed": rp(SHUFFLED + STOP, {"allow_out_of_order": True}, KEEP_RANGES),
    "out_of_order_rejected": rp(SHUFFLED + STOP, ring=KEEP_RANGES),
    "reversed_allowed": rp(H[1][::-1] + STOP, {"allow_out_of_order": True}),
    "stop_item_delivered": rp(H[1] + STOP + H[2], {"stop_on_stop_item": False}, KEEP_RANGES),
    "unsized_allowed": rp(UNSIZED + H[2] + STOP, ring=KEEP_RANGES),
    "unsized_evicted": rp(UNSIZED + H[2], {"max_heaps": 1}, KEEP_RANGES),
    "unsized_rejected": rp(UNSIZED + H[2] + STOP, {"allow_unsized_heaps": False}, KEEP_RANGES),
    "duplicate_packets": rp([H[1][0], H[1][0], H[1][1], H[1][1], H[1][2]] + STOP),
    "tcp": ("receive_tcp", {"chunks": H[1] + H[2] + STOP}),
    "tcp_reset_after_heaps": ("receive_tcp", {"chunks": H[1] + H[2], "reset_after": 2}),
    "udp_socket_closed_by_caller": ("receive_udp", {"datagrams": H[1] + H[2] + STOP}),
}

SCENARIOS: dict[str, Job] = {
    "explicit_start": (S + "explicit_start", {"packets": H[1] + H[2]}),
    "start_without_explicit_start": (S + "start_without_explicit_start", {}),
    "explicit_start_never_started": (
        S + "explicit_start_never_started",
        {"data": b"".join(H[1] + STOP)},
    ),
    "stop_semantics": (
        S + "stop_semantics",
        {"complete": H[1] + H[2], "incomplete": H[3][:2], "n_complete": 2},
    ),
    "stop_before_anything": (S + "stop_before_anything", {}),
    "ring_full": (
        S + "ring_full",
        {"data": b"".join([p for c in range(1, 9) for p in H[c]] + STOP), "heaps": 8},
    ),
    "stats_mapping": (S + "stats_mapping", {"data": b"".join(H[1] + H[2] + STOP)}),
    "inproc_queue_stop": (S + "inproc_queue_stop", {"packets": H[1] + H[2]}),
}


@pytest.fixture(scope="module")
def peer_results(peer: Peer) -> dict[str, Any]:
    """Every case and scenario of this module, run once by the real spead2."""
    cases = {**RECEIVE_CASES, **SCENARIOS}
    return dict(zip(cases, jobs.run_peer(peer.python, cases.values()), strict=True))


def run(name: str) -> Any:
    """A case or scenario of this module, run by ours; fails the test on an exception."""
    result = jobs.run_ours({**RECEIVE_CASES, **SCENARIOS}[name])
    assert not (isinstance(result, dict) and "error" in result), result
    return result


def comparable(result: Any) -> Any:
    """A receive result with only the statistics that must agree."""
    if isinstance(result, dict) and "stats" in result and "heaps" in result:
        return {"heaps": result["heaps"], "stats": jobs.compared(result["stats"])}
    return result


def cnts(result: dict[str, Any]) -> list[tuple[str, int]]:
    return [(h["type"], h["cnt"]) for h in result["heaps"]]


@pytest.mark.parametrize("case", RECEIVE_CASES)
def test_receive_matches_peer(case: str, peer_results: dict[str, Any]) -> None:
    expected = peer_results[case]
    assert "error" not in expected, f"the peer failed: {expected}"
    assert comparable(run(case)) == comparable(expected)


@pytest.mark.parametrize("case", SCENARIOS)
def test_scenario_matches_peer(case: str, peer_results: dict[str, Any]) -> None:
    expected = peer_results[case]
    assert "error" not in expected, f"the peer failed: {expected}"
    ours = run(case)
    differing = {k: (ours.get(k), v) for k, v in expected.items() if ours.get(k) != v}
    assert not differing, f"(ours, peer) where they differ: {differing}"


# --------------------------------------------------------------------------------------------
# The same behaviours pinned to explicit values (ours; the peer agrees by the tests above).


def test_complete_heaps_exact() -> None:
    result = run("complete")
    assert cnts(result) == [("Heap", 1), ("Heap", 2)]
    first = result["heaps"][0]
    assert first["items"] == [
        {"id": 0x1000, "is_immediate": False, "data": P.value_bytes(1, SIZE)},
        {"id": 0x1001, "is_immediate": True, "immediate_value": 1, "data": (1).to_bytes(6, "big")},
    ]
    assert first["flavour"] == (48, 0)
    assert result["stats"]["packets"] == 7  # the stop heap's packet counts
    assert result["stats"]["heaps"] == 2  # the stop heap does not


def test_incomplete_heap_payload_ranges() -> None:
    """Packets 0 and 2 of a three-packet heap: an IncompleteHeap with the exact ranges."""
    result = run("incomplete_ranges")
    assert cnts(result) == [("Heap", 2), ("IncompleteHeap", 1)]
    incomplete = result["heaps"][1]
    assert incomplete["heap_length"] == SIZE
    assert incomplete["received_length"] == CHUNK + (SIZE - 2 * CHUNK)
    assert incomplete["payload_ranges"] == [(0, CHUNK), (2 * CHUNK, SIZE)]
    # only immediates of an incomplete heap are items
    assert [i["id"] for i in incomplete["items"]] == [0x1001]
    stats = result["stats"]
    assert (stats["heaps"], stats["incomplete_heaps_flushed"]) == (2, 1)
    assert run("incomplete_no_ranges")["heaps"][1]["payload_ranges"] == []
    # contiguous_only: the incomplete heap is counted but never delivered
    only = run("incomplete_contiguous_only")
    assert cnts(only) == [("Heap", 2)]
    assert only["stats"]["incomplete_heaps_flushed"] == 1


def test_eviction_counts() -> None:
    one = run("evicted_max_heaps_1")
    assert cnts(one) == [("IncompleteHeap", 1), ("Heap", 2)]
    assert one["stats"]["incomplete_heaps_evicted"] == 1
    three = run("not_evicted_max_heaps_3")
    assert three["stats"]["incomplete_heaps_evicted"] == 0
    assert [c for _, c in cnts(three)] == [1, 2, 3]


def test_substreams() -> None:
    """cnt mod substreams picks the substream; each has its own max_heaps slots."""
    assert run("substreams_apart")["stats"]["incomplete_heaps_evicted"] == 0
    assert run("substreams_shared")["stats"]["incomplete_heaps_evicted"] == 1


def test_out_of_order() -> None:
    assert cnts(run("out_of_order_allowed")) == [("Heap", 6)]
    rejected = run("out_of_order_rejected")
    assert cnts(rejected) == [("IncompleteHeap", 6)]
    # without allow_out_of_order a heap must start at offset 0 and continue contiguously:
    # of packets 3, 0, 4, 2, 1 only 0 and then 1 are accepted
    assert rejected["heaps"][0]["payload_ranges"] == [(0, 2 * CHUNK)]


def test_stop_on_stop_item_false() -> None:
    result = run("stop_item_delivered")
    assert [(c, h["is_end"]) for (_, c), h in zip(cnts(result), result["heaps"], strict=True)] == [
        (1, False),
        (99, True),
        (2, False),
    ]


def test_unsized_heaps() -> None:
    """An unsized heap completes only when flushed; with allow_unsized_heaps=False it is
    dropped packet by packet."""
    assert cnts(run("unsized_allowed")) == [("Heap", 2), ("Heap", 5)]
    assert run("unsized_allowed")["stats"]["incomplete_heaps_flushed"] == 1
    assert cnts(run("unsized_rejected")) == [("Heap", 2)]


def test_explicit_start() -> None:
    result = run("explicit_start")
    assert result["before_start"] == ("err", "Empty")
    assert result["packets_before_start"] == 0
    assert result["first"] == ("ok", 1) and result["second"] == ("ok", 2)
    assert result["add_inproc_after_start"] == ("err", "RuntimeError")
    assert result["add_buffer_after_start"] == ("err", "RuntimeError")
    assert result["nothing_yet"] == ("err", "Empty")
    assert result["after_queue_stop"] == ("err", "Stopped")


def test_stop_semantics() -> None:
    result = run("stop_semantics")
    assert result["filled"]
    assert result["nowait_running"] == ("ok", 1)
    assert result["after_stop"] == [2]  # still in the ring at stop(): delivered
    assert result["get"] == ("err", "Stopped")
    assert result["get_nowait"] == ("err", "Stopped")
    assert result["stats"]["incomplete_heaps_flushed"] == 1
    assert result["stats"]["heaps"] == 3  # two complete + the flushed incomplete one


def test_ring_full_blocks_worker() -> None:
    result = run("ring_full")
    assert (result["capacity"], result["size_when_full"], result["still_full"]) == (1, 1, 1)
    assert result["heaps"] == list(range(1, 9))
    assert result["size_after"] == 0
    assert result["worker_blocked"]


def test_custom_stats_start_at_zero() -> None:
    config = spead2.recv.StreamConfig()
    index = config.add_stat("test.custom")
    stream = spead2.recv.Stream(jobs.thread_pool(spead2), config)
    stream.add_buffer_reader(b"".join(H[1] + STOP))
    assert [h.cnt for h in stream] == [1]
    stats = stream.stats
    assert index == 9 and list(stats.keys())[index] == "test.custom"
    assert stats["test.custom"] == 0 and stats[index] == 0
    assert "test.custom" in stats and len(stats) == 10


# --------------------------------------------------------------------------------------------
# Sockets, queues and buffers handed over by the caller.


def test_add_udp_reader_port_out_of_range() -> None:
    stream = spead2.recv.Stream(jobs.thread_pool(spead2))
    with pytest.raises(TypeError):
        stream.add_udp_reader(100000)
    with pytest.raises(TypeError):
        stream.add_tcp_reader(100000)
    stream.stop()


def test_udp_socket_survives_caller_close() -> None:
    """The socket overload dups the fd: closing ours right away leaves the stream working."""
    result = run("udp_socket_closed_by_caller")
    assert cnts(result) == [("Heap", 1), ("Heap", 2)]
    assert result["heaps"][0]["items"][0]["data"] == P.value_bytes(1, SIZE)


def test_tcp_reset_keeps_complete_heaps() -> None:
    assert cnts(run("tcp_reset_after_heaps")) == [("Heap", 1), ("Heap", 2)]


@pytest.mark.parametrize("partial", [False, True])
def test_tcp_reset_ends_stream(partial: bool) -> None:
    """Ours ends the stream when its only connection is reset, after delivering the heaps
    completed before the reset (spead2 4.5.1 keeps such a stream open until ``stop()``)."""
    stream = spead2.recv.Stream(jobs.thread_pool(spead2))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as acceptor:
        acceptor.bind(("127.0.0.1", 0))
        acceptor.listen(1)
        stream.add_tcp_reader(acceptor)
        address = acceptor.getsockname()
    with socket.create_connection(address) as client:
        client.sendall(b"".join(H[1]))
        assert stream.get().cnt == 1
        if partial:
            client.sendall(H[2][0] + H[2][1][:100])
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with stop_after(stream, 20.0):
        rest = [h.cnt for h in stream]
    assert rest == []
    assert stream.stats["heaps"] in ((1, 2) if partial else (1,))
    stream.stop()


def test_tcp_peer_bytes_then_reset(peer_reference: PeerReference, catalogue: Any) -> None:
    """The real spead2's byte stream for a catalogue, cut before its stop heap and followed by
    a reset: every heap before the reset arrives exactly, as it does for the peer."""
    data = peer_reference.stream_bytes("small", 48).read_bytes()
    packets = P.split_packets(data)
    n_heaps = len(catalogue.build("small", 48).heaps) + 1  # and the start heap
    job: Job = ("receive_tcp", {"chunks": packets[:-1], "reset_after": n_heaps})
    ours = jobs.run_ours(job)
    (peer,) = jobs.run_peer(peer_reference.peer.python, [job])
    assert comparable(ours) == comparable(peer)
    assert [h["cnt"] for h in ours["heaps"]] == list(range(1, n_heaps + 1))


def test_inproc_queue_from_peer_bytes(peer_reference: PeerReference, catalogue: Any) -> None:
    """Packets cut from the peer's BytesStream output, added to an InprocQueue from Python;
    ``queue.stop()`` ends the stream, and every value equals the catalogue's."""
    data = peer_reference.stream_bytes("small", 40).read_bytes()
    packets = P.split_packets(data)
    assert b"".join(packets) == data
    stream = spead2.recv.Stream(
        jobs.thread_pool(spead2),
        spead2.recv.StreamConfig(),
        spead2.recv.RingStreamConfig(heaps=64),
    )
    queue = spead2.InprocQueue()
    stream.add_inproc_reader(queue)
    for packet in packets[:-1]:  # no stop heap: queue.stop() must end the stream
        queue.add_packet(packet)
    queue.stop()
    received = catalogue.collect(stream, spead2.ItemGroup())
    stream.stop()
    problems = catalogue.check_received(catalogue.build("small", 40), received)
    assert not problems, "\n".join(problems)


def test_inproc_queue_add_after_stop_raises() -> None:
    result = run("inproc_queue_stop")
    assert not result["ended_before_queue_stop"] and result["ended"]
    assert cnts(result) == [("Heap", 1), ("Heap", 2)]
    assert result["add_after_stop"][0] == "err"


# --------------------------------------------------------------------------------------------
# Dropping streams.

DROP_STREAMS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from util import packets as P
    import spead2, spead2.recv
    data = b"".join(P.simple_heap(1, 100) + [P.stop_heap(2)])
    for i in range(50):
        stream = spead2.recv.Stream(spead2.ThreadPool(), spead2.recv.StreamConfig())
        stream.add_buffer_reader(data)
        assert [h.cnt for h in stream] == [1]
        del stream  # the last reference to its ThreadPool too
    print("done")
    """
)


def test_dropping_stream_with_own_thread_pool_does_not_deadlock() -> None:
    """Create, drain and drop 50 streams, each with its own ThreadPool and a buffer reader.

    Runs in a subprocess so that a deadlock fails this test instead of hanging the suite.
    """
    tests = str(Path(__file__).resolve().parents[1])
    try:
        proc = subprocess.run(
            [sys.executable, "-c", DROP_STREAMS.format(tests=tests)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            "deadlock: dropping a Stream (and with it the last reference to its ThreadPool) "
            "joins the worker threads with the GIL held, while a worker needs the GIL to "
            "release the reader's Python buffer"
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"


def test_port_in_use_raises_runtime_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        stream = spead2.recv.Stream(jobs.thread_pool(spead2))
        with pytest.raises(RuntimeError):
            stream.add_udp_reader(port, bind_hostname="127.0.0.1")
        stream.stop()
