"""Send a catalogue with the real spead2 (run in the peer venv only).

The stream is: a start heap, every heap of the catalogue (built with ``spead2.send.ItemGroup``,
so descriptors travel with the first heap that needs them), then a stop heap. Heap cnts are
allocated by the stream, starting at 1. On success one JSON line is printed with what was sent.

Transports:
  udp     UdpStream to --host/--port (IPv4 or IPv6 literal), rate-limited by --rate
  tcp     TcpStream connecting to --host/--port, retrying until --connect-timeout
  buffer  BytesStream whose bytes are written to --output
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import catalogue
import peer_common

import spead2
import spead2.send


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transport", choices=["udp", "tcp", "buffer"], required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--output", type=Path, help="file for the buffer transport")
    parser.add_argument("--bits", type=int, choices=catalogue.FLAVOUR_BITS, default=40)
    parser.add_argument("--catalogue", choices=sorted(catalogue.CATALOGUES), default="full")
    parser.add_argument("--packet-size", type=int, default=1472, help="max_packet_size")
    parser.add_argument("--rate", type=float, default=0.0, help="bytes per second (0: no limit)")
    parser.add_argument("--connect-timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.transport in ("udp", "tcp") and args.port is None:
        parser.error("--port is required for udp and tcp")
    if args.transport == "buffer" and args.output is None:
        parser.error("--output is required for buffer")
    return args


def _connect_tcp(
    thread_pool: spead2.ThreadPool, args: argparse.Namespace, config: spead2.send.StreamConfig
) -> spead2.send.TcpStream:
    """Connect to a receiver that may not be listening yet."""
    deadline = time.monotonic() + args.connect_timeout
    while True:
        try:
            return spead2.send.TcpStream(thread_pool, [(args.host, args.port)], config)
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _make_stream(thread_pool: spead2.ThreadPool, args: argparse.Namespace) -> Any:
    config = spead2.send.StreamConfig(max_packet_size=args.packet_size, rate=args.rate, max_heaps=8)
    if args.transport == "udp":
        return spead2.send.UdpStream(thread_pool, [(args.host, args.port)], config)
    if args.transport == "tcp":
        return _connect_tcp(thread_pool, args, config)
    return spead2.send.BytesStream(thread_pool, config)


def main(argv: list[str]) -> int:
    args = _parse_args(argv)
    cat = catalogue.build(args.catalogue, args.bits)
    thread_pool = spead2.ThreadPool()
    stream = _make_stream(thread_pool, args)
    item_group = spead2.send.ItemGroup(flavour=peer_common.flavour(cat.heap_address_bits))
    heaps = catalogue.send_all(cat, item_group, stream)
    summary: dict[str, Any] = {"heaps": heaps}
    if args.transport == "buffer":
        data = stream.getvalue()
        args.output.write_bytes(data)
        summary["bytes"] = len(data)
    del stream  # closes the socket (TCP: the receiver sees end of stream)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
