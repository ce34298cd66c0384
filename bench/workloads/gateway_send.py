"""SPEAD sender feeding the gateway daemon in the ``gateway`` suite (our spead2 only).

Each data heap carries two items: ``payload`` (uint8, --heap-size bytes) and ``timestamp``
(uint64, ``time.time_ns()`` taken just before the heap is handed to ``send_heap``), so a
subscriber can compute the end-to-end delay. Descriptors go out in their own heap before any
subscriber connects. Then the sender waits for a ``hello`` datagram from each of the
--subscribers subscribers (on the control socket announced as ``READY <port>``) and sends
--heaps heaps in one of two modes:

* closed loop (--window W): at most W heaps are in flight, i.e. sent but not yet reported
  received by the slowest subscriber (each subscriber sends ``<id> <index>`` per heap, the
  index being ``cnt - FIRST_CNT + 1``, so a lost heap does not stall the loop). The input then
  runs as fast as the gateway delivers, nothing is dropped for lack of CPU, and the
  subscriber's rate is the capacity of the path.
* open loop (--heap-rate R): heap i is sent at t0 + i/R (each heap at full speed). Used for
  latency at a moderate rate.

Finally a few stop heaps (delivered as ``end_of_stream``) end the subscribers' loops.
"""

from __future__ import annotations

import argparse
import resource
import select
import socket
import sys
import time

import numpy as np
from _common import emit

import spead2
import spead2.send

PAYLOAD_ID = 0x1000
TIMESTAMP_ID = 0x1001
FIRST_CNT = 1000  # heap cnt of data heap 0 (the subscribers know it too)


def make_item_group(heap_size: int) -> spead2.send.ItemGroup:
    ig = spead2.send.ItemGroup()
    payload = np.arange(heap_size, dtype=np.uint64).astype(np.uint8)
    ig.add_item(PAYLOAD_ID, "payload", "benchmark payload", (heap_size,), np.uint8, value=payload)
    ig.add_item(TIMESTAMP_ID, "timestamp", "time.time_ns() at send", (), np.uint64, value=0)
    return ig


def make_stream(args: argparse.Namespace) -> spead2.send.UdpStream | spead2.send.TcpStream:
    config = spead2.send.StreamConfig(max_packet_size=args.packet_size, max_heaps=4)
    pool = spead2.ThreadPool(1)
    if args.transport == "tcp":
        return spead2.send.TcpStream(pool, [("127.0.0.1", args.port)], config)
    return spead2.send.UdpStream(pool, [("127.0.0.1", args.port)], config, buffer_size=1 << 22)


class Feedback:
    """Counts of heaps received, reported by each subscriber over UDP."""

    def __init__(self, subscribers: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.expected = subscribers
        self.counts: dict[str, int] = {}

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def drain(self, timeout: float) -> bool:
        """Reads every pending report, waiting up to timeout for the first; False if none."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return False
        while True:
            try:
                data = self.sock.recv(256)
            except BlockingIOError:
                return True
            sub_id, index = data.decode().split()
            self.counts[sub_id] = max(self.counts.get(sub_id, 0), int(index))

    def slowest(self) -> int:
        if len(self.counts) < self.expected:
            return 0
        return min(self.counts.values())

    def wait_hellos(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.counts) < self.expected:
            left = deadline - time.monotonic()
            if left <= 0:
                sys.exit(f"only {len(self.counts)} of {self.expected} subscribers said hello")
            self.drain(left)


def cpu_seconds() -> float:
    """User + system CPU of this process, all threads (loopback delivery counts as ours)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--heap-size", type=int, required=True)
    parser.add_argument("--packet-size", type=int, default=8972)
    parser.add_argument("--heaps", type=int, required=True)
    parser.add_argument("--subscribers", type=int, default=1)
    parser.add_argument("--window", type=int, default=0, help="closed loop: heaps in flight")
    parser.add_argument("--heap-rate", type=float, default=0.0, help="open loop: heaps/s")
    parser.add_argument("--stall-timeout", type=float, default=10.0)
    args = parser.parse_args()
    if bool(args.window) == bool(args.heap_rate):
        sys.exit("give exactly one of --window and --heap-rate")

    feedback = Feedback(args.subscribers)
    print(f"READY {feedback.port}", flush=True)
    ig = make_item_group(args.heap_size)
    stream = make_stream(args)
    descriptors = ig.get_heap(descriptors="all", data="none")
    for cnt in range(1, 4):
        stream.send_heap(descriptors, cnt)
        time.sleep(0.05)
    feedback.wait_hellos(60.0)
    feedback.counts = dict.fromkeys(feedback.counts, 0)

    stalls = 0
    cpu_start = cpu_seconds()
    start = time.perf_counter()
    for i in range(args.heaps):
        if args.window:
            while i - feedback.slowest() >= args.window:
                if not feedback.drain(args.stall_timeout):
                    stalls += 1  # e.g. the last heaps in flight were all lost: carry on
                    feedback.counts = dict.fromkeys(feedback.counts, i)
                    break
        else:
            delay = start + i / args.heap_rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        ig["timestamp"].value = time.time_ns()
        stream.send_heap(ig.get_heap(descriptors="none", data="all"), FIRST_CNT + i)
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_start
    end = ig.get_end()
    for k in range(5):
        time.sleep(0.05)
        stream.send_heap(end, FIRST_CNT + args.heaps + k)
    emit(
        {
            "heaps_sent": args.heaps,
            "elapsed_s": elapsed,
            "send_gbps": args.heaps * args.heap_size * 8 / elapsed / 1e9,
            "window_stalls": stalls,
            "cpu_ms_per_heap": cpu * 1000 / args.heaps,
        }
    )


if __name__ == "__main__":
    main()
