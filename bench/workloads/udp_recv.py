"""UDP receiver over loopback: a ring stream with a memory pool on a socket bound to 127.0.0.1.

Prints ``READY <port>`` once the reader is attached, then a JSON result when the stream stops
(on the sender's stop heap, or when the --timeout watchdog fires).
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time

from _common import emit

import spead2
import spead2.recv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heap-size", type=int, required=True)
    parser.add_argument("--buffer-size", type=int, default=8 * 1024 * 1024)
    parser.add_argument("--ring-heaps", type=int, default=64)
    parser.add_argument("--max-heaps", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.buffer_size)
    sock.bind(("127.0.0.1", 0))
    config = spead2.recv.StreamConfig(max_heaps=args.max_heaps)
    free = args.ring_heaps + args.max_heaps + 2
    config.memory_allocator = spead2.MemoryPool(args.heap_size, args.heap_size, free, free)
    stream = spead2.recv.Stream(
        spead2.ThreadPool(1), config, spead2.recv.RingStreamConfig(heaps=args.ring_heaps)
    )
    stream.add_udp_reader(sock, max_size=9200)
    watchdog = threading.Timer(args.timeout, stream.stop)
    watchdog.start()
    sys.stdout.write(f"READY {sock.getsockname()[1]}\n")
    sys.stdout.flush()

    complete = incomplete = 0
    t_first = t_last = 0.0
    for heap in stream:
        now = time.perf_counter()
        if isinstance(heap, spead2.recv.IncompleteHeap):
            incomplete += 1
            continue
        if complete == 0:
            t_first = now
        t_last = now
        complete += 1
    timed_out = not watchdog.is_alive()
    watchdog.cancel()
    stream.stop()
    stats = stream.stats
    span = t_last - t_first
    emit(
        {
            "heaps_complete": complete,
            "heaps_incomplete_delivered": incomplete,
            "timed_out": timed_out,
            "span_s": span,
            "gbps": (complete - 1) * args.heap_size * 8 / span / 1e9 if span > 0 else 0.0,
            "stats": {
                name: stats[name]
                for name in (
                    "heaps",
                    "packets",
                    "incomplete_heaps_evicted",
                    "incomplete_heaps_flushed",
                    "worker_blocked",
                )
            },
            "rcvbuf": sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
        }
    )


if __name__ == "__main__":
    main()
