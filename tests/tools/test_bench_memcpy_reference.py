"""bench/workloads/memcpy_reference.py times exactly a receiver's payload copy.

Its figure only means "what memcpy alone achieves on the recv suite's file" if it moves the
same bytes to the same places, so this checks the result byte for byte (no timing)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import spead2
import spead2.send

WORKLOADS = Path(__file__).resolve().parents[2] / "bench" / "workloads"
sys.path.insert(0, str(WORKLOADS))

import memcpy_reference  # noqa: E402
from _common import make_item_group  # noqa: E402


def stream_bytes(heap_size: int, packet_size: int, heaps: int) -> bytes:
    """What bench/workloads/gen_stream.py writes: descriptors in the first heap only."""
    items = make_item_group(heap_size)
    stream = spead2.send.BytesStream(
        spead2.ThreadPool(), spead2.send.StreamConfig(max_packet_size=packet_size)
    )
    stream.send_heap(items.get_heap(descriptors="all", data="all"))
    for _ in range(heaps - 1):
        stream.send_heap(items.get_heap(descriptors="none", data="all"))
    return stream.getvalue()


@pytest.mark.parametrize(
    ("heap_size", "packet_size"), [(1 << 20, 9000), (4096, 1472), (100_000, 1500)]
)
def test_every_heap_is_copied_whole_and_in_place(heap_size: int, packet_size: int) -> None:
    data = stream_bytes(heap_size, packet_size, heaps=4)
    copiers = memcpy_reference.heap_copiers(data, heap_size)
    assert len(copiers) == 3  # the first heap (descriptors) is left out
    expected = np.arange(heap_size, dtype=np.uint64).astype(np.uint8)
    for copy in copiers:
        buffer = np.zeros(heap_size, np.uint8)
        copy(buffer)
        np.testing.assert_array_equal(buffer, expected)


def test_runs_are_grouped_only_when_equal_strided_and_adjacent() -> None:
    # (offset in heap, offset in data, length)
    runs = [(0, 100, 50), (50, 200, 60), (110, 300, 60), (170, 400, 60), (230, 520, 60)]
    groups = memcpy_reference.uniform_groups(runs)
    assert groups == [[runs[0]], runs[1:4], [runs[4]]]


def test_a_packet_that_is_not_spead_is_named() -> None:
    with pytest.raises(ValueError, match="not a SPEAD packet at byte 0"):
        memcpy_reference.heap_copiers(b"\x00" * 64, 4096)
