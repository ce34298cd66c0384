"""Receive a pre-generated SPEAD byte stream from memory (Stream.add_buffer_reader).

Modes: ``raw`` gets heaps and touches nothing (the primary figure); ``items`` also calls
ItemGroup.update on each heap, i.e. what a typical Python consumer does.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import emit, timed_passes

import spead2
import spead2.recv


def make_pool(args: argparse.Namespace) -> spead2.MemoryPool | None:
    """One pool for the whole process (as a long-running receiver would have), sized so the
    ring, the live heaps and the heap being consumed never have to allocate."""
    if not args.pool:
        return None
    free = args.ring_heaps + args.max_heaps + 2
    return spead2.MemoryPool(args.heap_size, args.heap_size, free, free)


def make_stream(
    args: argparse.Namespace, thread_pool: spead2.ThreadPool, pool: spead2.MemoryPool | None
) -> spead2.recv.Stream:
    config = spead2.recv.StreamConfig(max_heaps=args.max_heaps)
    if pool is not None:
        config.memory_allocator = pool
    ring = spead2.recv.RingStreamConfig(heaps=args.ring_heaps)
    return spead2.recv.Stream(thread_pool, config, ring)


def one_pass(
    args: argparse.Namespace,
    data: bytes,
    thread_pool: spead2.ThreadPool,
    pool: spead2.MemoryPool | None,
) -> tuple[float, int]:
    stream = make_stream(args, thread_pool, pool)
    ig = spead2.ItemGroup()
    heaps = 0
    start = time.perf_counter()
    stream.add_buffer_reader(data)
    if args.mode == "raw":
        for _heap in stream:
            heaps += 1
    else:
        for heap in stream:
            ig.update(heap)
            heaps += 1
    elapsed = time.perf_counter() - start
    stream.stop()
    return elapsed, heaps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", required=True)
    parser.add_argument("--heap-size", type=int, required=True)
    parser.add_argument("--mode", choices=["raw", "items"], default="raw")
    parser.add_argument("--pool", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--ring-heaps", type=int, default=64)
    parser.add_argument("--max-heaps", type=int, default=4)
    parser.add_argument("--min-time", type=float, default=1.0)
    args = parser.parse_args()

    with open(args.file, "rb") as f:
        data = f.read()
    thread_pool = spead2.ThreadPool(1)
    pool = make_pool(args)
    counts: list[int] = []

    def run_pass() -> float:
        elapsed, heaps = one_pass(args, data, thread_pool, pool)
        counts.append(heaps)
        return elapsed

    times = timed_passes(run_pass, args.min_time, min_passes=3, max_passes=1000)
    heaps = counts[-1]
    total_time = sum(times)
    total_heaps = heaps * len(times)
    emit(
        {
            "heaps_per_pass": heaps,
            "passes": len(times),
            "pass_time_median_s": statistics.median(times),
            "gbps": total_heaps * args.heap_size * 8 / total_time / 1e9,
            "heaps_per_s": total_heaps / total_time,
        }
    )


if __name__ == "__main__":
    main()
