"""Malformed and hostile input: dropped, counted, logged (rate-limited), and harmless.

Every bad packet sits between two valid heaps. Where the real spead2 4.5.1 survives the input,
our heaps (every byte) and deterministic statistics must equal its; in every case the valid
heaps must arrive intact and our ``Stream.drop_counts`` extension must count each drop under
its reason. Inputs that spead2 itself cannot survive (an allocation of 2^48 bytes, an empty
inproc packet) are checked against fixed expectations, including a bound on memory growth.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from util import jobs
from util import packets as P
from util.jobs import Job
from util.peer import Peer

import spead2
import spead2.recv

S = "recv_scenarios:"
SIZE = 2500
H1 = P.simple_heap(1, SIZE)
H2 = P.simple_heap(2, SIZE)
STOP = [P.stop_heap(99)]
VALID_CNTS = [("Heap", 1), ("Heap", 2)]
KEEP_RANGES = {"contiguous_only": False, "incomplete_keep_payload_ranges": True}
CNT, OFFSET, LENGTH = P.HEAP_CNT_ID, P.PAYLOAD_OFFSET_ID, P.PAYLOAD_LENGTH_ID
MINIMAL = [P.immediate(CNT, 4), P.immediate(OFFSET, 0), P.immediate(LENGTH, 1)]
"""Item pointers of a one-byte packet of heap 4 (without HEAP_LENGTH)."""
RSS_LIMIT = 64 << 20
"""Bytes the process may grow by while dropping packets that claim enormous heaps."""
LOG_LIMIT = 40
"""Most ``spead2`` log records a flood of bad packets may produce."""
LOG_CASES_PER_PROCESS = 8
"""Fewer than the 10 records per call site per second that our log rate limiter passes."""
SETTLE = 0.5
"""Seconds for log records still queued by worker threads to reach Python's logging."""


def _random_packets() -> list[bytes]:
    rng = random.Random(20240601)
    return [rng.randbytes(n) for n in (1, 7, 8, 9, 100, 1500)]


BAD: dict[str, tuple[list[bytes], dict[str, int]]] = {
    # name: (bad packets, our drop counts for them)
    "random_bytes": (_random_packets(), {"too_short": 2, "bad_magic": 4}),
    "truncated": (
        [P.simple_heap(3, 100)[0][:n] for n in (8, 20, 40, 60, 100)],
        {"pointers_overflow": 3, "payload_overflows_packet": 2},
    ),
    "bad_magic": ([P.packet(MINIMAL, b"x", magic=0x52)], {"bad_magic": 1}),
    "bad_version": ([P.packet(MINIMAL, b"x", version=3)], {"bad_magic": 1}),
    "widths_not_64_bits": (
        [P.packet(MINIMAL, b"x", id_bytes=3, address_bytes=3)],
        {"bad_flavour": 1},
    ),
    "zero_id_width": ([P.packet(MINIMAL, b"x", id_bytes=0, address_bytes=8)], {"bad_flavour": 1}),
    "pointer_count_overflows_packet": (
        [P.packet(MINIMAL, b"x", n_items=4), P.packet(MINIMAL, b"", n_items=65535)],
        {"pointers_overflow": 2},
    ),
    "payload_length_past_packet": (
        [P.data_packet(4, 100, 0, b"x" * 50, payload_length=60)],
        {"payload_overflows_packet": 1},
    ),
    "payload_length_short_of_packet": (
        [P.data_packet(4, 100, 0, b"x" * 50, payload_length=40)],
        {"size_mismatch": 1},
    ),
    "no_heap_cnt": ([P.packet(MINIMAL[1:], b"x")], {"no_heap_cnt": 1}),
    "no_payload_offset": ([P.packet([MINIMAL[0], MINIMAL[2]], b"x")], {"no_payload_offset": 1}),
    "no_payload_length": ([P.packet(MINIMAL[:2], b"x")], {"no_payload_length": 1}),
    "payload_past_heap_length": (
        [P.data_packet(4, 10, 5, b"x" * 50)],
        {"payload_overflows_heap": 1},
    ),
    "offset_near_2_48": (
        [P.data_packet(4, 3000, (1 << 48) - 1, b"x" * 100)],
        {"payload_overflows_heap": 1},
    ),
    "heap_length_changes": (
        [P.data_packet(4, 100, 0, b"x" * 50), P.data_packet(4, 120, 50, b"y" * 50)],
        {"heap_length_mismatch": 1},
    ),
}


def with_valid(bad: list[bytes]) -> list[bytes]:
    return H1 + bad + H2 + STOP


CASES: dict[str, Job] = {
    name: ("receive_packets", {"packets": with_valid(bad), "ring": KEEP_RANGES, "reader": "inproc"})
    for name, (bad, _) in BAD.items()
}

GARBAGE = random.Random(7).randbytes(40)
BIG = P.simple_heap(5, 9000, chunk=9000)
"""A heap in one packet of more than 9000 bytes: beyond a ``max_size`` of 4096."""

TCP_CASES: dict[str, tuple[list[bytes], dict[str, Any]]] = {
    "garbage_before_first_packet": ([GARBAGE] + H1 + H2 + STOP, {}),
    "garbage_between_heaps": (H1 + [GARBAGE] + H2 + STOP, {}),
    "eight_zero_bytes": (H1 + [b"\0" * 8] + H2 + STOP, {}),
    "thirteen_zero_bytes": (H1 + [b"\0" * 13] + H2 + STOP, {}),
    "header_without_items": (H1 + [P.header(0)] + H2 + STOP, {}),
    "packet_over_max_size": (H1 + BIG + H2 + STOP, {"max_size": 4096}),
    "cut_mid_packet": (H1 + H2 + [P.simple_heap(3, 100)[0][:100]], {}),
}
for name, (chunks, options) in TCP_CASES.items():
    CASES["tcp_" + name] = ("receive_tcp", {"chunks": chunks, **options})

UDP_CASES: dict[str, tuple[list[bytes], dict[str, Any]]] = {
    "oversized_datagram": (H1 + BIG + H2 + STOP, {"max_size": 4096}),
    "garbage_datagrams": (H1 + [GARBAGE, b"", b"S", P.header(0)] + H2 + STOP, {}),
}
for name, (datagrams, options) in UDP_CASES.items():
    CASES["udp_" + name] = ("receive_udp", {"datagrams": datagrams, **options})

LOG_CASES: dict[str, Job] = {
    name: (S + "log_records", {"packets": with_valid(bad[:1])})
    for name, (bad, _) in BAD.items()
    if name not in ("random_bytes", "truncated")
}
H3 = P.simple_heap(3, SIZE)
HEAP_LEVEL: dict[str, tuple[list[bytes], dict[str, Any] | None, int]] = {
    # name: (packets, StreamConfig keywords, records spead2 logs)
    "skips_ahead_in_heap": ([H3[0], H3[2]], None, 1),
    "heap_in_reverse": (H3[::-1], None, 1),
    "heap_starts_mid_payload": ([H3[1]], None, 0),
    "duplicate_packet": ([H3[0], H3[0], H3[1], H3[2]], None, 1),
    "evicted_heap_continues": (
        [p for pair in zip(H3, P.simple_heap(4, SIZE), strict=True) for p in pair],
        {"max_heaps": 1},
        1,
    ),
}
"""Packets dropped by heap assembly, and how many records the real spead2 logs for them
(records that arrive later than ``SETTLE`` would be missed, so the count is waited for)."""
for name, (packets, config, count) in HEAP_LEVEL.items():
    LOG_CASES[name] = (
        S + "log_records",
        {"packets": packets + STOP, "config": config, "expect": count, "settle": SETTLE},
    )


@pytest.fixture(scope="module")
def peer_results(peer: Peer) -> dict[str, Any]:
    every = {**CASES, **{"log_" + k: v for k, v in LOG_CASES.items()}}
    return dict(zip(every, jobs.run_peer(peer.python, every.values()), strict=True))


@pytest.fixture(scope="module")
def our_logs() -> dict[str, Any]:
    """Our log records per case, from fresh processes: the rate limiter is process-wide (so
    records in this one depend on what other tests logged in the last second), and a process
    runs fewer cases than the limiter lets through per call site."""
    names = list(LOG_CASES)
    results: list[Any] = []
    for start in range(0, len(names), LOG_CASES_PER_PROCESS):
        chunk = names[start : start + LOG_CASES_PER_PROCESS]
        results += jobs.run_ours_isolated([LOG_CASES[name] for name in chunk])
    return dict(zip(names, results, strict=True))


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    return {"heaps": result["heaps"], "stats": jobs.compared(result["stats"])}


def cnts(result: dict[str, Any]) -> list[tuple[str, int]]:
    return [(h["type"], h["cnt"]) for h in result["heaps"]]


def run(name: str) -> dict[str, Any]:
    result = jobs.run_ours(CASES[name])
    assert "error" not in result, result
    return dict(result)


@pytest.mark.parametrize("case", CASES)
def test_matches_peer(case: str, peer_results: dict[str, Any]) -> None:
    expected = peer_results[case]
    assert "error" not in expected, f"the peer failed: {expected}"
    assert comparable(run(case)) == comparable(expected)


@pytest.mark.parametrize("case", BAD)
def test_dropped_and_counted(case: str) -> None:
    result = run(case)
    complete = [h for h in result["heaps"] if h["type"] == "Heap"]
    assert [h["cnt"] for h in complete] == [1, 2]
    assert complete[1]["items"][0]["data"] == P.value_bytes(2, SIZE)
    assert result["drops"] == BAD[case][1]


def test_tcp_packet_over_max_size_is_skipped_whole() -> None:
    result = run("tcp_packet_over_max_size")
    assert cnts(result) == VALID_CNTS
    assert result["drops"] == {"too_large": 1}


def test_udp_oversized_datagram_counted() -> None:
    result = run("udp_oversized_datagram")
    assert cnts(result) == VALID_CNTS
    assert result["drops"] == {"too_large": 1}


def test_udp_garbage_counted() -> None:
    result = run("udp_garbage_datagrams")
    assert cnts(result) == VALID_CNTS
    assert sum(result["drops"].values()) == 4


@pytest.mark.parametrize("case", LOG_CASES)
def test_log_records_match_peer(
    case: str, peer_results: dict[str, Any], our_logs: dict[str, Any]
) -> None:
    """The same records (logger, level, message) as spead2 for each kind of bad packet."""
    expected = peer_results["log_" + case]
    count = HEAP_LEVEL[case][2] if case in HEAP_LEVEL else 1
    assert len(expected["records"]) == count, f"the peer logged {expected['records']}"
    assert our_logs[case]["records"] == expected["records"]


# --------------------------------------------------------------------------------------------
# Inputs the real spead2 does not survive: fixed expectations only.


def vm_rss() -> int:
    """Resident set size of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def receive_inproc(packets: list[bytes], **config: Any) -> tuple[list[Any], Any]:
    """Our stream fed ``packets`` through an inproc queue: (heaps, stream)."""
    stream = jobs.make_stream(spead2, config, KEEP_RANGES)
    queue = spead2.InprocQueue()
    for packet in packets:
        queue.add_packet(packet)
    queue.stop()
    stream.add_inproc_reader(queue)
    heaps = jobs.drain(stream)
    stream.stop()
    return heaps, stream


def drops(stream: Any) -> dict[str, int]:
    return {k: v for k, v in dict(stream.drop_counts).items() if v}


def hostile_lengths() -> list[bytes]:
    """Packets claiming heaps of up to 2^56 bytes or payload at offsets up to 2^56."""
    b56 = 56
    return [
        P.data_packet(4, (1 << 48) - 1, 0, b"x" * 100),
        P.data_packet(5, (1 << 33) + 1, 0, b"x" * 100),
        P.data_packet(6, None, (1 << 47), b"x" * 100),
        P.data_packet(7, (1 << 56) - 1, 0, b"x" * 100, bits=b56),
        P.data_packet(8, 200, (1 << 56) - 1, b"x" * 100, bits=b56),
        P.data_packet(9, None, (1 << 56) - 200, b"x" * 100, bits=b56),
    ]


def test_enormous_heap_lengths_do_not_allocate() -> None:
    """spead2 4.5.1 tries to allocate such heaps (its reader dies); ours drops the packets
    before allocating, counts them, and carries on."""
    receive_inproc(H1 + H2 + STOP)  # warm up: thread pool, allocator, buffers
    before = vm_rss()
    heaps, stream = receive_inproc(with_valid(hostile_lengths() * 20))
    grown = vm_rss() - before
    assert [(h["type"], h["cnt"]) for h in heaps] == VALID_CNTS
    assert heaps[0]["items"][0]["data"] == P.value_bytes(1, SIZE)
    counted = drops(stream)
    assert sum(counted.values()) == 6 * 20, counted
    assert set(counted) <= {"heap_too_large", "payload_overflows_heap"}, counted
    assert counted.get("heap_too_large", 0) >= 3 * 20, counted
    assert grown < RSS_LIMIT, f"RSS grew by {grown >> 20} MiB"


def test_max_heap_size_rejects_larger_heaps_before_allocating() -> None:
    """``StreamConfig.max_heap_size`` (ours only) caps what one heap may claim or reach."""
    limit = SIZE + 100
    over = [
        P.data_packet(4, limit + 1, 0, b"x" * 100),  # claims one byte too many
        P.data_packet(5, None, limit, b"x" * 100),  # unsized, payload reaches past the cap
    ]
    heaps, stream = receive_inproc(with_valid(over), max_heap_size=limit)
    assert [(h["type"], h["cnt"]) for h in heaps] == VALID_CNTS
    assert heaps[1]["items"][0]["data"] == P.value_bytes(2, SIZE)
    assert drops(stream) == {"heap_too_large": 2}
    assert spead2.recv.StreamConfig(max_heap_size=limit).max_heap_size == limit
    assert (
        spead2.recv.StreamConfig().max_heap_size == spead2.recv.StreamConfig.DEFAULT_MAX_HEAP_SIZE
    )
    with pytest.raises(ValueError, match="max_heap_size cannot be 0"):
        spead2.recv.StreamConfig(max_heap_size=0)


def test_valid_56_bit_heaps_after_hostile_ones() -> None:
    b56 = 56
    items = [P.Item(0x20, P.value_bytes(3, SIZE)), P.Item(0x21, 3)]
    valid = P.heap_packets(3, items, b56)
    heaps, stream = receive_inproc(hostile_lengths()[3:] + valid + [P.stop_heap(9, b56)])
    assert [(h["type"], h["cnt"], h["flavour"]) for h in heaps] == [("Heap", 3, (56, 0))]
    assert heaps[0]["items"][0]["data"] == P.value_bytes(3, SIZE)
    assert sum(drops(stream).values()) == 3


def test_empty_inproc_packet_is_dropped() -> None:
    """An empty packet is too short for a header (spead2 4.5.1 turns it into a broken heap
    whose ``flavour`` raises ValueError)."""
    heaps, stream = receive_inproc(with_valid([b""]))
    assert [(h["type"], h["cnt"]) for h in heaps] == VALID_CNTS
    assert drops(stream) == {"too_short": 1}


def test_flood_of_bad_packets_is_rate_limited() -> None:
    """10000 bad packets: all counted, a few dozen log records at most, valid heaps intact.

    Runs in a fresh process, so that the rate limiter starts from nothing.
    """
    bad = P.packet(MINIMAL, b"x", magic=0x52)
    truncated = H1[0][:20]
    packets = with_valid([bad] * 5000 + [truncated] * 5000)
    job: Job = (S + "log_records", {"packets": packets, "expect": 2, "settle": SETTLE})
    (result,) = jobs.run_ours_isolated([job])
    assert result["heaps"] == [1, 2]
    assert result["drops"] == {"bad_magic": 5000, "pointers_overflow": 5000}
    messages = [message for name, _, message in result["records"] if name == "spead2"]
    assert len(messages) >= 2, "both kinds of bad packet must be logged"
    assert len(messages) <= LOG_LIMIT, messages[:50]
