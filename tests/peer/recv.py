"""Receive with the real spead2 and dump what arrived (run in the peer venv only).

Used to validate the sender script and the catalogue (peer to peer), to compute reference
statistics, and to check captures and our sender against the reference implementation.

For network transports the reader is added first, then ``READY`` is printed on stdout, so the
caller knows the sender may start. Every heap goes through ``spead2.ItemGroup.update``; the
result (see ``catalogue.Received.to_plain``) is pickled to --output together with the stream
statistics (or, with --report-errors, the exception that adding the reader raised). A watchdog
stops the stream after --timeout seconds; that is reported as a failure.
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
    parser.add_argument("--transport", choices=["udp", "tcp", "buffer", "pcap"], required=True)
    parser.add_argument("--host", default="127.0.0.1", help="bind address")
    parser.add_argument("--port", type=int)
    parser.add_argument("--input", type=Path, help="file for buffer and pcap")
    parser.add_argument("--filter", default="", help="pcap filter expression")
    parser.add_argument("--output", type=Path, required=True, help="pickle to write")
    parser.add_argument("--max-heaps", type=int, default=4)
    parser.add_argument("--ring-heaps", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument(
        "--report-errors",
        action="store_true",
        help="if adding the reader raises, record the exception in --output and exit 0",
    )
    args = parser.parse_args(argv)
    if args.transport in ("udp", "tcp") and args.port is None:
        parser.error("--port is required for udp and tcp")
    if args.transport in ("buffer", "pcap") and args.input is None:
        parser.error("--input is required for buffer and pcap")
    return args


def _add_reader(stream: spead2.recv.Stream, args: argparse.Namespace) -> None:
    if args.transport == "udp":
        stream.add_udp_reader(args.port, bind_hostname=args.host)
    elif args.transport == "tcp":
        stream.add_tcp_reader(args.port, bind_hostname=args.host)
    elif args.transport == "buffer":
        stream.add_buffer_reader(args.input.read_bytes())
    else:
        stream.add_udp_pcap_file_reader(str(args.input), args.filter)


def main(argv: list[str]) -> int:
    args = _parse_args(argv)
    stream = spead2.recv.Stream(
        spead2.ThreadPool(),
        spead2.recv.StreamConfig(max_heaps=args.max_heaps),
        spead2.recv.RingStreamConfig(heaps=args.ring_heaps),
    )
    try:
        _add_reader(stream, args)
    except Exception as exc:
        if not args.report_errors:
            raise
        peer_common.dump(args.output, {"error": type(exc).__name__, "message": str(exc)})
        return 0
    print("READY", flush=True)
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        stream.stop()

    watchdog = threading.Timer(args.timeout, expire)
    watchdog.start()
    try:
        received = catalogue.collect(stream, spead2.ItemGroup())
    finally:
        watchdog.cancel()
    stream.stop()
    received.stats = catalogue.stats_dict(stream.stats)
    payload: dict[str, Any] = received.to_plain()
    payload["timed_out"] = fired.is_set()
    peer_common.dump(args.output, payload)
    if fired.is_set():
        print(f"receive timed out after {args.timeout} s", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
