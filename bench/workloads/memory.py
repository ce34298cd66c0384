"""Peak resident memory of a ring stream with a memory pool receiving a large in-memory buffer.

The input buffer is loaded and the peak-RSS counter reset before the pool and stream exist, so
``peak - baseline`` is what the receive path added: pool buffers, ring and live heaps, and
anything else (e.g. a copy of the input). The consumer sleeps per heap so the ring stays full,
which is the worst case for memory.
"""

from __future__ import annotations

import argparse
import time

from _common import emit, reset_peak_rss, vm_status

import spead2
import spead2.recv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", required=True)
    parser.add_argument("--heap-size", type=int, required=True)
    parser.add_argument("--lower", type=int, required=True)
    parser.add_argument("--upper", type=int, required=True)
    parser.add_argument("--max-free", type=int, required=True)
    parser.add_argument("--initial", type=int, required=True)
    parser.add_argument("--ring-heaps", type=int, required=True)
    parser.add_argument("--max-heaps", type=int, default=4)
    parser.add_argument("--consumer-delay", type=float, default=0.0005)
    args = parser.parse_args()

    with open(args.file, "rb") as f:
        data = f.read()
    thread_pool = spead2.ThreadPool(1)
    resettable = reset_peak_rss()
    baseline = vm_status("VmHWM") if resettable else vm_status("VmRSS")

    pool = spead2.MemoryPool(args.lower, args.upper, args.max_free, args.initial)
    config = spead2.recv.StreamConfig(max_heaps=args.max_heaps, memory_allocator=pool)
    ring = spead2.recv.RingStreamConfig(heaps=args.ring_heaps)
    stream = spead2.recv.Stream(thread_pool, config, ring)
    after_setup = vm_status("VmRSS")
    stream.add_buffer_reader(data)
    heaps = 0
    for _heap in stream:
        heaps += 1
        time.sleep(args.consumer_delay)
    stream.stop()
    peak = vm_status("VmHWM")
    emit(
        {
            "heaps": heaps,
            "peak_rss_reset": resettable,
            "baseline_bytes": baseline,
            "setup_bytes": after_setup - baseline,
            "peak_minus_baseline_bytes": peak - baseline,
            "pool_bytes": args.max_free * args.upper,
            "ring_bytes": args.ring_heaps * args.heap_size,
        }
    )


if __name__ == "__main__":
    main()
