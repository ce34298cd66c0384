"""A SPEAD sender for the reliability tests, run as a subprocess with ours or the real spead2.

It imports only the standard library, numpy and whichever ``spead2`` its interpreter has, so
the same file runs in our venv and in the peer venv (spead2 4.5.1). Every data heap carries
two items, ``index`` and ``payload`` (see ``rel_payload.py``), so a receiver can check each
complete heap exactly. Heap cnts are explicit: ``--cnt-start``, then one more per heap (the
stop heap, if any, takes the next cnt).

Transports: UDP (spead2's ``UdpStream``, rate-limited by ``--rate``) or TCP (the packets of
spead2's ``PacketGenerator`` written back to back to a socket, as a TCP stream carries them).

Modes:
  default     send ``--heaps`` heaps (then a stop heap with ``--stop``) and exit
  --duration  send heaps back to back for that many seconds, then exit
  --partial   after the heaps, send the first half of the packets of one more heap and wait
              forever (the test kills the process with SIGKILL: a sender dying mid-heap)

Output: one JSON object per line on stdout: ``{"event": "ready"}`` once the stream exists,
``{"event": "partial", ...}`` in partial mode, ``{"event": "done", ...}`` at the end, with the
number of heaps and packets sent.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import Any

import numpy as np
from rel_payload import INDEX_ID, PAYLOAD_ID, payload

import spead2
import spead2.send

FLAVOUR_BITS = 48


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--heaps", type=int, default=0)
    parser.add_argument("--first-index", type=int, default=0)
    parser.add_argument("--cnt-start", type=int, default=1)
    parser.add_argument("--size", type=int, default=8192, help="payload bytes per heap")
    parser.add_argument("--packet", type=int, default=1472, help="max_packet_size")
    parser.add_argument("--rate", type=float, default=0.0, help="bytes per second (0: unlimited)")
    parser.add_argument("--stop", action="store_true", help="end with a stop heap")
    parser.add_argument("--duration", type=float, default=0.0)
    parser.add_argument("--partial", action="store_true")
    parser.add_argument("--cpu", type=int, default=-1, help="pin the process to this CPU")
    parser.add_argument("--connect-timeout", type=float, default=10.0, help="TCP only")
    return parser.parse_args(argv)


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class Sender:
    """A send stream (UDP: spead2's; TCP: packets from spead2's PacketGenerator written to a
    socket) and an item group with ``index`` and ``payload``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stream: Any = None
        self.tcp: socket.socket | None = None
        if args.transport == "tcp":
            self.tcp = _connect(args.host, args.port, args.connect_timeout)
        else:
            config = spead2.send.StreamConfig(
                max_packet_size=args.packet, rate=args.rate, max_heaps=4
            )
            self.stream = spead2.send.UdpStream(
                spead2.ThreadPool(), [(args.host, args.port)], config
            )
        self.group = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, FLAVOUR_BITS))
        self.group.add_item(INDEX_ID, "index", "heap index", (), format=[("u", 32)])
        self.group.add_item(PAYLOAD_ID, "payload", "heap payload", (args.size,), dtype=np.uint8)
        self.heaps = 0
        self.packets = 0

    def heap(self, index: int) -> Any:
        self.group["index"].value = index
        self.group["payload"].value = payload(index, self.args.size)
        return self.group.get_heap()

    def packets_of(self, heap: Any, cnt: int) -> list[bytes]:
        return [bytes(p) for p in spead2.send.PacketGenerator(heap, cnt, self.args.packet)]

    def _transmit(self, heap: Any, cnt: int, known: int | None) -> None:
        if self.tcp is not None:
            packets = self.packets_of(heap, cnt)
            self.tcp.sendall(b"".join(packets))
            self.packets += len(packets)
        else:
            self.packets += len(self.packets_of(heap, cnt)) if known is None else known
            self.stream.send_heap(heap, cnt)

    def send(self, index: int, cnt: int, packets: int | None = None) -> None:
        """Sends one data heap; ``packets`` is its packet count if already known."""
        self._transmit(self.heap(index), cnt, packets)
        self.heaps += 1

    def send_stop(self, cnt: int) -> None:
        self._transmit(self.group.get_end(), cnt, None)

    def send_partial(self, index: int, cnt: int) -> tuple[int, int]:
        """The first half of a heap's packets (UDP: through a socket of our own); returns
        (packets sent, packets in the heap)."""
        args = self.args
        packets = self.packets_of(self.heap(index), cnt)
        half = len(packets) // 2
        if self.tcp is not None:
            self.tcp.sendall(b"".join(packets[:half]))
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for packet in packets[:half]:
                    sock.sendto(packet, (args.host, args.port))
        self.packets += half
        return half, len(packets)


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to a receiver that may not be listening yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection((host, port), timeout=5)
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _send_partial(sender: Sender, index: int, cnt: int) -> None:
    """Half a heap, then wait to be killed."""
    sent, total = sender.send_partial(index, cnt)
    _emit(
        "partial",
        cnt=cnt,
        index=index,
        sent_packets=sent,
        heap_packets=total,
        heaps=sender.heaps,
        packets=sender.packets,
    )
    while True:
        time.sleep(60)


def main(argv: list[str]) -> int:
    args = _parse_args(argv)
    if args.cpu >= 0:
        # One CPU for every thread: loopback then delivers the packets in the order sent.
        os.sched_setaffinity(0, {args.cpu})
    sender = Sender(args)
    _emit("ready", spead2=str(spead2.__version__))
    cnt = args.cnt_start
    index = args.first_index
    if args.duration > 0:
        deadline = time.monotonic() + args.duration
        steady: int | None = None
        while time.monotonic() < deadline:
            # Every heap after the first (which carries the descriptors) has the same size.
            before = sender.packets
            sender.send(index, cnt, steady)
            if sender.heaps == 2:
                steady = sender.packets - before
            cnt += 1
            index += 1
    else:
        for _ in range(args.heaps):
            sender.send(index, cnt)
            cnt += 1
            index += 1
    if args.partial:
        _send_partial(sender, index, cnt)
    if args.stop:
        sender.send_stop(cnt)
    _emit(
        "done",
        heaps=sender.heaps,
        packets=sender.packets,
        cnt_start=args.cnt_start,
        next_cnt=cnt,
        first_index=args.first_index,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
