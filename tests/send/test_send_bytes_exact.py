"""Byte-exact sending: our BytesStream output equals spead2 4.5.1's for the same API calls.

Every case of ``util.send_scenarios.BYTE_CASES`` runs twice: in this process with our spead2
and in the peer venv with the real wheel (one subprocess for all cases). The bytes must be
identical, and so must the outcome of every send call (bytes sent, or the exception's type and
errno). The cases cover both common flavours, the interop catalogues (numpy-header and legacy
descriptors, immediates, variable shapes, multi-packet heaps) at several packet sizes,
padding, empty and control heaps, repeat_pointers, groups in both modes, cnt sequences and
explicit cnts, rejected groups, and the zero-copy reference to item buffers.

The remaining tests pin down what some cases mean, with values that do not come from the peer,
so that a case that silently stopped exercising its feature would be noticed.
"""

from __future__ import annotations

from typing import Any

import pytest
from util import jobs
from util.peer import Peer
from util.send_compare import error_kind, mismatches, normal
from util.send_scenarios import (
    BYTE_CASES,
    first_difference,
    heap_cnts,
    item_pointers,
    packet_cnt,
    pattern,
    split_packets,
)

CASES = sorted(BYTE_CASES)
EINVAL = 22
EAGAIN = 11


def byte_job(name: str) -> jobs.Job:
    """The job that runs byte case ``name``."""
    return ("send_scenarios:byte_case", {"name": name})


@pytest.fixture(scope="module")
def peer_results(peer: Peer) -> dict[str, Any]:
    """Every byte case run by spead2 4.5.1."""
    results = jobs.run_peer(peer.python, [byte_job(name) for name in CASES], timeout=120.0)
    return dict(zip(CASES, results, strict=True))


def ours(name: str) -> Any:
    """Byte case ``name`` run by our spead2 (a failure to run at all fails the test)."""
    result = jobs.run_ours(byte_job(name))
    assert "error" not in result or "errno" in result, f"case crashed: {result}"
    return result


@pytest.mark.parametrize("name", CASES)
def test_bytes_match_peer(name: str, peer_results: dict[str, Any]) -> None:
    """Same bytes, same return values and errors as spead2 4.5.1."""
    theirs = peer_results[name]
    assert "error" not in theirs or "errno" in theirs, f"peer case crashed: {theirs}"
    mine = ours(name)
    streams = {"bytes", "packets"}  # compared below, with a readable report
    problems = mismatches(mine, theirs, sorted((set(mine) | set(theirs)) - streams))
    assert not problems, "\n".join(problems)
    if "bytes" in theirs:
        assert mine["bytes"] == theirs["bytes"], first_difference(mine["bytes"], theirs["bytes"])
    if "packets" in theirs:  # PacketGenerator: an outcome holding a list of packets
        a, b = mine["packets"], theirs["packets"]
        if "ok" in a and "ok" in b:
            assert a == b, first_difference(b"".join(a["ok"]), b"".join(b["ok"]))
        assert normal(a) == normal(b), f"ours {a!r}, peer {b!r}"


def step_kinds(result: dict[str, Any]) -> list[Any]:
    """Each send call's outcome: an error's (type, errno), or "ok"."""
    return [error_kind(step) or "ok" for step in result["steps"]]


@pytest.mark.parametrize("bits", [40, 48])
def test_cnt_sequence_case(bits: int) -> None:
    """set_cnt_sequence steps and wraps modulo 2**64, cnts are masked to the flavour, explicit
    cnts leave the sequence alone and negative cnts mean 'next in sequence'."""
    result = ours(f"cnt_sequence_{bits}")
    mask = 2**bits - 1
    assert step_kinds(result) == ["ok"] * 15
    assert heap_cnts(result["bytes"]) == [
        1,
        10,
        13,
        1000,
        16,
        mask - 1,
        mask,
        0,
        5,
        mask,
        1,
        3,
        5,
        mask,
        7,
    ]


@pytest.mark.parametrize("bits", [40, 48])
def test_explicit_cnt_case(bits: int) -> None:
    """An explicit cnt must fit the flavour's heap address bits (EINVAL otherwise)."""
    result = ours(f"explicit_cnt_{bits}")
    assert (
        step_kinds(result)
        == ["ok", "ok", "ok", ("OSError", EINVAL), ("OSError", EINVAL)] + ["ok"] * 2
    )
    assert heap_cnts(result["bytes"]) == [0, 1, 2**bits - 1, 123456789, 1]


def test_all_or_nothing_case() -> None:
    """Rejected sends (bad cnt or substream, empty or oversized group) send nothing and use no
    cnt: the next heaps get cnts 2, 3 and 4 after heap 1."""
    result = ours("all_or_nothing")
    assert step_kinds(result) == [
        "ok",
        ("OSError", EINVAL),
        ("OSError", EINVAL),
        ("OSError", EINVAL),
        ("BlockingIOError", EAGAIN),
        ("OSError", EINVAL),
        ("OSError", EINVAL),
        "ok",
        "ok",
    ]
    packets = split_packets(result["bytes"])
    assert [packet_cnt(p) for p in packets[:3]] == [1, 1, 1]  # heap 1: 3000 bytes, 3 packets
    assert heap_cnts(result["bytes"]) == [1, 2, 3, 4, 3, 4, 3, 4]  # the last two round robin


@pytest.mark.parametrize("size", [200, 1472])
def test_group_modes_case(size: int) -> None:
    """ROUND_ROBIN takes one packet from each unfinished heap in turn, SERIAL one heap after
    another; auto cnts are allocated in list order, skipping explicit ones."""
    serial = heap_cnts(ours(f"group_SERIAL_{size}")["bytes"])
    assert serial == [1, 77, 2, 3, 5, 4, 5]
    packets = split_packets(ours(f"group_ROUND_ROBIN_{size}")["bytes"])
    cnts = [packet_cnt(p) for p in packets]
    assert cnts[:5] == [1, 77, 2, 3, 5]  # one packet of each heap of the first group
    assert set(cnts) == {1, 2, 3, 4, 5, 77}
    # the second group's heap got cnt 4, the single heap after it cnt 5
    assert heap_cnts(b"".join(packets))[-2:] == [4, 5]


def test_zero_copy_case() -> None:
    """Heaps reference the buffers given by items: in-place changes made before the send are
    sent, replacing an item's value is not, and the buffer stays exported until sent."""
    result = ours("zero_copy")
    assert step_kinds(result) == ["ok"] * 4
    payloads = [p[-16:] for p in split_packets(result["bytes"])]
    assert payloads[0] == bytes([7] * 16)
    assert payloads[1] == bytes(range(16))
    assert payloads[2] == bytes.fromhex("00000005" * 4)
    assert payloads[3].endswith(b"ZZcdefgh")
    assert error_kind(result["resize"]) == ("BufferError", None)


@pytest.mark.parametrize("bits", [40, 48])
def test_immediates_case(bits: int) -> None:
    """Up to bits/8 bytes travel inside the item pointer, and only if the item allows it."""
    packets = split_packets(ours(f"immediates_{bits}")["bytes"])
    limit = bits // 8
    allowed = packets[: limit + 2]
    refused = packets[limit + 3 : 2 * limit + 5]
    assert [item_pointers(p)[0][0] for p in allowed] == [True] * (limit + 1) + [False]
    assert [item_pointers(p)[0][0] for p in refused] == [False] * (limit + 2)
    # An immediate is right-aligned: 2 bytes 0x1b 0x22 (n = 2) become the value 0x1b22.
    assert item_pointers(allowed[2])[0] == (True, 0x1002, int.from_bytes(pattern(2, 2), "big"))
