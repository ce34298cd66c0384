"""A reference for the recv suite: the same payload bytes moved with libc memcpy, nothing else.

Any receiver of a memory buffer copies each packet's payload into its heap's buffer once. This
workload does only that, with numpy (whose copy of a row is a libc memcpy): it parses the
packet headers of the file once, up front, then per pass copies every heap's payload runs from
the file into one of two reused heap-sized buffers (as a pool hands back a recently freed one).
No parsing, no heap bookkeeping, no hand-off to a consumer. The first heap (descriptors) is
left out. A receiver that copies with memcpy cannot beat this figure on the same file and
machine; ours prefetches the source ahead of its copy (native/src/memory/copy.rs), so it can.
"""

from __future__ import annotations

import argparse
import struct
import time
from collections.abc import Callable

import numpy as np
from _common import emit, timed_passes

HEAP_CNT = 0x01
PAYLOAD_OFFSET = 0x03
PAYLOAD_LENGTH = 0x04


def packet_layout(data: bytes, offset: int) -> tuple[int, int, int, int, int]:
    """(heap cnt, payload offset in heap, payload start in data, payload length, packet size)."""
    magic, version, item_width, heap_width, _, n_items = struct.unpack_from(">BBBBHH", data, offset)
    if (magic, version, item_width + heap_width) != (0x53, 4, 8):
        raise ValueError(f"not a SPEAD packet at byte {offset}")
    address_bits = heap_width * 8
    fields: dict[int, int] = {}
    for i in range(n_items):
        (pointer,) = struct.unpack_from(">Q", data, offset + 8 + 8 * i)
        fields[(pointer >> address_bits) & 0x7FFF] = pointer & ((1 << address_bits) - 1)
    start = offset + 8 + 8 * n_items
    length = fields[PAYLOAD_LENGTH]
    return fields[HEAP_CNT], fields[PAYLOAD_OFFSET], start, length, start + length - offset


def heap_copiers(data: bytes, heap_size: int) -> list[Callable[[np.ndarray], None]]:
    """One function per heap (after the first) that copies its payload runs into a buffer.

    Runs of equal-sized packets at a constant stride are copied with one 2-D ``copyto`` so
    that numpy's per-call overhead (about a microsecond) stays out of the figure."""
    source = np.frombuffer(data, np.uint8)
    heaps: dict[int, list[tuple[int, int, int]]] = {}
    offset = 0
    while offset < len(data):
        cnt, dest, start, length, size = packet_layout(data, offset)
        heaps.setdefault(cnt, []).append((dest, start, length))
        offset += size
    copiers = []
    for runs in list(heaps.values())[1:]:
        copiers.append(heap_copier(source, runs, heap_size))
    return copiers


def heap_copier(
    source: np.ndarray, runs: list[tuple[int, int, int]], heap_size: int
) -> Callable[[np.ndarray], None]:
    """Copies one heap's runs, each block of equal runs at a constant stride in one call."""
    if any(dest + length > heap_size for dest, _, length in runs):
        raise ValueError("payload beyond the heap size")
    blocks = [uniform_block(source, group) for group in uniform_groups(runs)]

    def copy(buffer: np.ndarray) -> None:
        for dest, rows, block in blocks:
            np.copyto(buffer[dest : dest + block.size].reshape(rows, -1), block)

    return copy


def uniform_groups(runs: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
    """Splits runs into groups of equal length, constant source stride, adjacent in the heap."""
    groups: list[list[tuple[int, int, int]]] = []
    for run in runs:
        group = groups[-1] if groups else None
        if group and run[2] == group[0][2] and run[0] == group[-1][0] + group[-1][2]:
            stride = group[1][1] - group[0][1] if len(group) > 1 else run[1] - group[0][1]
            if run[1] == group[-1][1] + stride:
                group.append(run)
                continue
        groups.append([run])
    return groups


def uniform_block(
    source: np.ndarray, group: list[tuple[int, int, int]]
) -> tuple[int, int, np.ndarray]:
    """(heap offset, rows, read-only 2-D view of the source) for one group."""
    dest, start, length = group[0]
    stride = group[1][1] - start if len(group) > 1 else length
    view = np.lib.stride_tricks.as_strided(
        source[start:], shape=(len(group), length), strides=(stride, 1), writeable=False
    )
    return dest, len(group), view


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", required=True)
    parser.add_argument("--heap-size", type=int, required=True)
    parser.add_argument("--min-time", type=float, default=1.0)
    args = parser.parse_args()

    with open(args.file, "rb") as f:
        data = f.read()
    copiers = heap_copiers(data, args.heap_size)
    buffers = [np.empty(args.heap_size, np.uint8) for _ in range(2)]

    def run_pass() -> float:
        start = time.perf_counter()
        for i, copy in enumerate(copiers):
            copy(buffers[i & 1])
        return time.perf_counter() - start

    times = timed_passes(run_pass, args.min_time, min_passes=3, max_passes=1000)
    heaps = len(copiers) * len(times)
    total = sum(times)
    emit(
        {
            "heaps_per_pass": len(copiers),
            "passes": len(times),
            "gbps": heaps * args.heap_size * 8 / total / 1e9,
            "heaps_per_s": heaps / total,
        }
    )


if __name__ == "__main__":
    main()
