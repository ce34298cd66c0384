"""Raw TCP input for the gateway suite's input floor and input bound.

Connects to 127.0.0.1:--port and writes blocks of --heap-size bytes with ``sendall``,
nothing else: no SPEAD, the least a sender can do to move the payload.

- With --heaps (the input floor, into ``gateway_bare.py --relay-port``): that many blocks as
  fast as the socket's own flow control lets them go.
- With --rate and --seconds (the input bound, into ``gateway_bare.py --sink-port``): one
  block every 1/rate seconds until the time is up, SIGTERM arrives or the reader goes away.
  It never sends faster than that: a slot it is too late for is skipped, not made up.

Prints ``feeding`` on stderr once connected, and one JSON line with its CPU per block, the
blocks sent and the slots skipped.
"""

from __future__ import annotations

import argparse
import math
import resource
import signal
import socket
import sys
import time


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _paced(sock: socket.socket, block: bytes, rate: float, seconds: float) -> tuple[int, int]:
    """Sends at ``rate`` blocks/s for ``seconds``; returns (blocks sent, slots skipped).

    SIGTERM is blocked (see ``main``) and only ever taken here, between blocks, so it ends
    the loop cleanly whenever it arrives.
    """
    start = time.monotonic()
    sent = skipped = slot = 0
    slots = math.ceil(seconds * rate)
    while slot < slots:
        wait = start + slot / rate - time.monotonic()
        if signal.sigtimedwait([signal.SIGTERM], max(wait, 0.0)) is not None:
            break
        try:
            sock.sendall(block)
        except (BrokenPipeError, ConnectionResetError):
            break  # the reader stopped first
        sent += 1
        due_now = int((time.monotonic() - start) * rate)  # the latest slot already due
        following = min(max(slot + 1, due_now), slots)
        skipped += following - slot - 1
        slot = following
    return sent, skipped


def main() -> None:
    # Before anything else, so that a SIGTERM from the runner can never kill it half-way.
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    from _common import emit

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
    skipped = 0
    with socket.create_connection(("127.0.0.1", args.port)) as sock:
        print("feeding", file=sys.stderr, flush=True)
        cpu, start = _cpu_seconds(), time.monotonic()
        if args.rate:
            sent, skipped = _paced(sock, block, args.rate, args.seconds)
        else:
            for _ in range(args.heaps):
                sock.sendall(block)
            sent = args.heaps
        cpu, elapsed = _cpu_seconds() - cpu, time.monotonic() - start
    emit(
        {
            "cpu_ms_per_heap": cpu * 1000 / max(sent, 1),
            "heaps": sent,
            "skipped": skipped,
            "heaps_per_s": sent / elapsed,
        }
    )


if __name__ == "__main__":
    main()
