"""Library-neutral UDP sink: counts datagrams and uses kernel receive timestamps (SO_TIMESTAMPNS).

Kernel timestamps measure when packets reached the socket, so the rate is right even if this
Python loop lags behind (as long as the socket buffer does not overflow; drops are reported via
the kernel's per-socket drop counter, SO_RXQ_OVFL). Prints ``READY <port>``, then JSON once no
packet has arrived for --idle seconds after the first one.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buffer-size", type=int, default=8 * 1024 * 1024)
    parser.add_argument("--idle", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.buffer_size)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
    sock.bind(("127.0.0.1", 0))
    sys.stdout.write(f"READY {sock.getsockname()[1]}\n")
    sys.stdout.flush()

    sock.settimeout(args.timeout)
    packets = total = first_size = 0
    ts_first = ts_last = 0
    dropped = 0
    deadline = time.monotonic() + args.timeout
    cmsg_space = socket.CMSG_SPACE(16) + socket.CMSG_SPACE(4)
    while time.monotonic() < deadline:
        try:
            data, ancdata, _flags, _addr = sock.recvmsg(65536, cmsg_space)
        except TimeoutError:
            break
        ts = 0
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", payload[:16])
                ts = sec * 1_000_000_000 + nsec
            elif level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL:
                dropped = struct.unpack("I", payload[:4])[0]
        if packets == 0:
            ts_first, first_size = ts, len(data)
            sock.settimeout(args.idle)
        ts_last = ts
        packets += 1
        total += len(data)
    span = (ts_last - ts_first) / 1e9
    result = {
        "packets": packets,
        "bytes": total,
        "span_s": span,
        "bytes_per_s": (total - first_size) / span if span > 0 else 0.0,
        "socket_drops": dropped,
        "rcvbuf": sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
    }
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
