"""UDP sender to 127.0.0.1:<port>, unlimited or at a configured rate.

Sends batches of --batch heaps with send_heaps (SERIAL) until --heaps have gone or --duration
has passed, then optionally a few stop heaps. The figure is measured at the sender: wall time
from the first send_heaps call until the last one returns (sync calls return once sent).
"""

from __future__ import annotations

import argparse
import time

from _common import data_heap, emit, make_item_group

import spead2
import spead2.send


def wire_bytes_per_heap(heap: spead2.send.Heap, packet_size: int) -> int:
    """SPEAD bytes (headers + payload, excluding UDP/IP) of one heap at this packet size."""
    config = spead2.send.StreamConfig(max_packet_size=packet_size)
    stream = spead2.send.BytesStream(spead2.ThreadPool(1), config)
    stream.send_heap(heap)
    return len(stream.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--heap-size", type=int, required=True)
    parser.add_argument("--packet-size", type=int, required=True)
    parser.add_argument("--rate-gbps", type=float, default=0.0, help="0 = unlimited")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--heaps", type=int, default=0, help="stop after this many (0 = no limit)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this long")
    parser.add_argument(
        "--end",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send stop heaps afterwards",
    )
    args = parser.parse_args()

    thread_pool = spead2.ThreadPool(1)
    ig = make_item_group(args.heap_size)
    heap = data_heap(ig)
    per_heap = wire_bytes_per_heap(heap, args.packet_size)
    rate = args.rate_gbps * 1e9 / 8
    config = spead2.send.StreamConfig(
        max_packet_size=args.packet_size, rate=rate, max_heaps=max(args.batch, 4)
    )
    stream = spead2.send.UdpStream(thread_pool, [("127.0.0.1", args.port)], config)
    batch = spead2.send.HeapReferenceList([spead2.send.HeapReference(heap)] * args.batch)

    sent = 0
    start = time.perf_counter()
    while True:
        stream.send_heaps(batch, spead2.send.GroupMode.SERIAL)
        sent += args.batch
        elapsed = time.perf_counter() - start
        if (args.heaps and sent >= args.heaps) or (args.duration and elapsed >= args.duration):
            break
    if args.end:
        end = ig.get_end()
        for _ in range(5):
            time.sleep(0.02)
            stream.send_heap(end)
    achieved = sent * per_heap / elapsed
    emit(
        {
            "heaps_sent": sent,
            "wire_bytes_per_heap": per_heap,
            "elapsed_s": elapsed,
            "gbps": sent * args.heap_size * 8 / elapsed / 1e9,
            "wire_bytes_per_s": achieved,
            "configured_bytes_per_s": rate,
            "rate_error": achieved / rate - 1 if rate else None,
        }
    )


if __name__ == "__main__":
    main()
