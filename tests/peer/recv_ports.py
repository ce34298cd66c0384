"""Receive a catalogue sent to several UDP ports with the real spead2 (peer venv only).

Made for testing a sender with one substream per port: one stream gets a UDP reader per port.
Heaps from different ports may be delivered in any order, so the stream does not stop on the
stop heap (``stop_on_stop_item=False``); it is stopped once --expect heaps (stop heap included)
have arrived. The heaps are then sorted by cnt and fed to ``ItemGroup.update`` in that order,
and the result is pickled to --output like ``recv.py`` does (with ``cnts_arrived``, the arrival
order, in addition). ``READY`` is printed once every reader is bound. A watchdog stops the
stream after --timeout seconds; that is reported as a failure (exit code 3).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

import catalogue
import peer_common

import spead2
import spead2.recv


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address")
    parser.add_argument("--ports", required=True, help="comma-separated UDP ports")
    parser.add_argument("--expect", type=int, required=True, help="heaps, stop heap included")
    parser.add_argument("--output", type=Path, required=True, help="pickle to write")
    parser.add_argument("--max-heaps", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=30.0)
    return parser.parse_args(argv)


def _receive(stream: spead2.recv.Stream, expect: int) -> list[Any]:
    heaps = []
    for heap in stream:
        heaps.append(heap)
        if len(heaps) == expect:
            break
    return heaps


def main(argv: list[str]) -> int:
    args = _parse_args(argv)
    ports = [int(p) for p in args.ports.split(",")]
    stream = spead2.recv.Stream(
        spead2.ThreadPool(),
        spead2.recv.StreamConfig(max_heaps=args.max_heaps, stop_on_stop_item=False),
        spead2.recv.RingStreamConfig(heaps=16),
    )
    for port in ports:
        stream.add_udp_reader(port, bind_hostname=args.host)
    print("READY", flush=True)
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        stream.stop()

    watchdog = threading.Timer(args.timeout, expire)
    watchdog.start()
    try:
        heaps = _receive(stream, args.expect)
    finally:
        watchdog.cancel()
    stream.stop()
    arrived = [int(h.cnt) for h in heaps]
    data_heaps = sorted((h for h in heaps if not h.is_end_of_stream()), key=lambda h: h.cnt)
    received = catalogue.collect(data_heaps, spead2.ItemGroup())
    received.stats = catalogue.stats_dict(stream.stats)
    payload: dict[str, Any] = received.to_plain()
    payload["timed_out"] = fired.is_set()
    payload["cnts_arrived"] = arrived
    payload["stop_heaps"] = sum(1 for h in heaps if h.is_end_of_stream())
    peer_common.dump(args.output, payload)
    if fired.is_set():
        print(f"receive timed out after {args.timeout} s; cnts {arrived}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
