"""A Python gRPC subscriber for the ``gateway`` suite (``spead2_gateway.client``, sync API).

Subscribes to --stream, says ``<id> 0`` on the feedback socket once the subscription is in
place, then receives heaps until one marked ``end_of_stream`` (or --idle seconds without a
heap). After each data heap it reports ``<id> <index>`` (index = ``cnt - FIRST_CNT + 1``)
so that a closed-loop sender can keep a fixed number of heaps in flight.

Prints one JSON line: heaps and payload bytes received after the first --warmup heaps, the
first/last arrival times (``time.time_ns``, so the runner can combine several subscribers),
heaps lost (sequence gaps), and the delays of each heap from the sender's ``timestamp`` item
and from the gateway's ``received`` stamp to its arrival here.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import sys
import threading
import time

from spead2_gateway.client import GatewayClient
from spead2_gateway.malloc import tune_malloc

FIRST_CNT = 1000  # heap cnt of the sender's data heap 0 (see gateway_send.py)


def percentiles(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    return {"p50": at(0.5), "p99": at(0.99), "max": ordered[-1] / 1e6}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    tune_malloc()  # as the daemon and the client CLI do (see docs/gateway.md)
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--stream", default="bench")
    parser.add_argument("--id", default="0")
    parser.add_argument("--feedback", type=int, default=0, help="UDP port of the sender")
    parser.add_argument("--warmup", type=int, default=10, help="heaps left out of the figures")
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument(
        "--option", action="append", default=[], help="extra channel option NAME=INT (tuning)"
    )
    args = parser.parse_args()

    feedback = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = ("127.0.0.1", args.feedback)
    options = [(name, int(value)) for name, value in (o.split("=", 1) for o in args.option)]
    client = GatewayClient(args.target, options=options)
    # A watchdog ends the call if the stream stalls (e.g. the stop heaps were all lost).
    last = [time.monotonic()]
    done = threading.Event()

    subscription = client.subscribe(args.stream)
    if subscription.queue_depth <= 0:  # waits for the initial metadata: we are registered
        sys.exit("subscription not established")

    def watchdog() -> None:
        while not done.wait(0.5):
            if time.monotonic() - last[0] > args.idle:
                subscription.cancel()
                return

    threading.Thread(target=watchdog, daemon=True).start()
    if args.feedback:
        feedback.sendto(f"{args.id} 0".encode(), dest)

    count = 0
    payload_bytes = 0
    first_ns = last_ns = 0
    dropped_at_start = dropped = 0
    cnt_at_start = cnt = 0
    cpu_at_start = 0.0
    fragments = 0
    from_sender: list[int] = []
    from_gateway: list[int] = []
    ended = "end_of_stream"
    try:
        for heap in subscription:
            now = time.time_ns()
            last[0] = time.monotonic()
            if heap.end_of_stream:
                break
            if "payload" not in heap:
                continue
            if args.feedback:
                feedback.sendto(f"{args.id} {heap.cnt - FIRST_CNT + 1}".encode(), dest)
            count += 1
            dropped, cnt = heap.dropped, heap.cnt
            if count <= args.warmup:
                first_ns = now
                dropped_at_start, cnt_at_start = dropped, cnt
                cpu_at_start = cpu_seconds()
                continue
            last_ns = now
            payload_bytes += heap["payload"].nbytes
            fragments += heap.fragments
            from_sender.append(now - int(heap["timestamp"]))
            from_gateway.append(now - int(heap.received * 1e9))
    except Exception as exc:  # a cancelled call after --idle seconds
        ended = f"error: {exc.__class__.__name__}"
    finally:
        done.set()
    cpu = cpu_seconds() - cpu_at_start
    measured = max(count - args.warmup, 0)
    seconds = (last_ns - first_ns) / 1e9 if measured else 0.0
    result = {
        "received_total": count,
        "heaps": measured,
        "payload_bytes": payload_bytes,
        "first_ns": first_ns,
        "last_ns": last_ns,
        "gbps": payload_bytes * 8 / seconds / 1e9 if seconds > 0 else None,
        "messages_per_heap": fragments / measured if measured else None,
        "cpu_ms_per_heap": cpu * 1000 / measured if measured else None,
        # Heaps the gateway dropped for this subscriber (queue full), and heaps that never
        # reached it at all (cnt gaps, e.g. UDP loss), both after the warm-up.
        "dropped_by_gateway": dropped - dropped_at_start,
        "missing": (cnt - cnt_at_start) - measured if measured else 0,
        "ended": ended,
        "delay_from_sender_ms": percentiles(from_sender),
        "delay_from_gateway_ms": percentiles(from_gateway),
    }
    sys.stdout.write(json.dumps(result) + "\n")
    subscription.cancel()
    client.close()


if __name__ == "__main__":
    main()
