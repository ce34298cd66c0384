"""Packetise heaps into a BytesStream (no I/O): the cost of the send path itself.

Modes: ``heap`` calls send_heap once per heap; ``heaps`` calls send_heaps with a
HeapReferenceList of --batch heaps (SERIAL), which amortises the per-call Python overhead.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import data_heap, emit, make_item_group, timed_passes

import spead2
import spead2.send


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heap-size", type=int, required=True)
    parser.add_argument("--packet-size", type=int, required=True)
    parser.add_argument("--heaps", type=int, required=True, help="heaps per pass")
    parser.add_argument("--mode", choices=["heap", "heaps"], default="heap")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--min-time", type=float, default=1.0)
    args = parser.parse_args()

    thread_pool = spead2.ThreadPool(1)
    heap = data_heap(make_item_group(args.heap_size))
    batch = spead2.send.HeapReferenceList([spead2.send.HeapReference(heap)] * args.batch)
    max_heaps = args.batch if args.mode == "heaps" else spead2.send.StreamConfig.DEFAULT_MAX_HEAPS
    config = spead2.send.StreamConfig(max_packet_size=args.packet_size, max_heaps=max_heaps)
    out_bytes: list[int] = []

    def run_pass() -> float:
        stream = spead2.send.BytesStream(thread_pool, config)
        start = time.perf_counter()
        if args.mode == "heap":
            for _ in range(args.heaps):
                stream.send_heap(heap)
        else:
            for _ in range(args.heaps // args.batch):
                stream.send_heaps(batch, spead2.send.GroupMode.SERIAL)
        elapsed = time.perf_counter() - start
        out_bytes.append(len(stream.getvalue()))
        return elapsed

    times = timed_passes(run_pass, args.min_time, min_passes=3, max_passes=1000)
    heaps = args.heaps if args.mode == "heap" else args.heaps // args.batch * args.batch
    total_time = sum(times)
    emit(
        {
            "heaps_per_pass": heaps,
            "bytes_per_pass": out_bytes[-1],
            "passes": len(times),
            "pass_time_median_s": statistics.median(times),
            "gbps": heaps * len(times) * args.heap_size * 8 / total_time / 1e9,
            "heaps_per_s": heaps * len(times) / total_time,
        }
    )


if __name__ == "__main__":
    main()
