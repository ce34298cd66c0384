"""Raw TCP input for the gateway suite's input floor and input bound.

Connects to 127.0.0.1:--port and writes blocks of --heap-size bytes with ``sendall``,
nothing else: no SPEAD, the least a sender can do to move the payload.

- With --heaps (the input floor, into ``gateway_bare.py --relay-port``): that many blocks as
  fast as the socket's own flow control lets them go.
- With --rate and --seconds (the input bound, into ``raw_sink.py``): one block every 1/rate
  seconds until the time is up or SIGTERM arrives; a block that falls behind its time is
  sent at once, so the achieved rate is lower if the machine cannot keep up.

Prints one JSON line with its CPU per block and the rate achieved.
"""

from __future__ import annotations

import argparse
import resource
import signal
import socket
import threading
import time

from _common import emit


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _paced(sock: socket.socket, block: bytes, rate: float, seconds: float) -> int:
    """Sends at ``rate`` blocks/s for ``seconds`` or until SIGTERM; returns the blocks sent."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    start = time.monotonic()
    sent = 0
    while not stop.is_set():
        due = start + sent / rate
        if due - start >= seconds:
            break
        if stop.wait(due - time.monotonic()):
            break
        sock.sendall(block)
        sent += 1
    return sent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--heap-size", type=int, required=True)
    parser.add_argument("--heaps", type=int, default=0, help="blocks, as fast as possible")
    parser.add_argument("--rate", type=float, default=0, help="blocks/s (with --seconds)")
    parser.add_argument("--seconds", type=float, default=0)
    args = parser.parse_args()
    if (args.heaps > 0) == (args.rate > 0):
        parser.error("give either --heaps or --rate and --seconds")
    block = bytes(range(256)) * (args.heap_size // 256) + bytes(args.heap_size % 256)
    with socket.create_connection(("127.0.0.1", args.port)) as sock:
        cpu, start = _cpu_seconds(), time.monotonic()
        if args.rate:
            sent = _paced(sock, block, args.rate, args.seconds)
        else:
            for _ in range(args.heaps):
                sock.sendall(block)
            sent = args.heaps
        cpu, elapsed = _cpu_seconds() - cpu, time.monotonic() - start
    emit(
        {"cpu_ms_per_heap": cpu * 1000 / max(sent, 1), "heaps": sent, "heaps_per_s": sent / elapsed}
    )


if __name__ == "__main__":
    main()
