"""Raw TCP input for the gateway suite's input floor (``gateway_bare.py --relay-port``).

Connects to 127.0.0.1:--port and writes --heaps blocks of --heap-size bytes with
``sendall``, nothing else: no SPEAD, the least a sender can do to move the payload. The
relay listens before it reports ready, and the socket's own flow control paces the feed.
Prints one JSON line with its CPU per heap.
"""

from __future__ import annotations

import argparse
import resource
import socket

from _common import emit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--heap-size", type=int, required=True)
    parser.add_argument("--heaps", type=int, required=True)
    args = parser.parse_args()
    block = bytes(range(256)) * (args.heap_size // 256) + bytes(args.heap_size % 256)
    with socket.create_connection(("127.0.0.1", args.port)) as sock:
        start = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(args.heaps):
            sock.sendall(block)
        end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = end.ru_utime + end.ru_stime - start.ru_utime - start.ru_stime
    emit({"cpu_ms_per_heap": cpu * 1000 / args.heaps})


if __name__ == "__main__":
    main()
