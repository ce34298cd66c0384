"""The receiving end of the gateway suite's input bound: reads raw blocks and discards them.

Listens on 127.0.0.1 (an ephemeral port, announced as ``READY <port>``), accepts one
connection, and reads it block by block (one ``MSG_WAITALL`` read of --heap-size bytes into
the same buffer) until the peer closes: the least a gateway can do to take its input in.
Prints one JSON line with the blocks read and its CPU per block.
"""

from __future__ import annotations

import argparse
import resource
import socket

from _common import emit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heap-size", type=int, required=True)
    args = parser.parse_args()
    buffer = memoryview(bytearray(args.heap_size))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        print(f"READY {listener.getsockname()[1]}", flush=True)
        conn, _ = listener.accept()
    start = resource.getrusage(resource.RUSAGE_SELF)
    total = 0
    with conn:
        while received := conn.recv_into(buffer, args.heap_size, socket.MSG_WAITALL):
            total += received
    end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = end.ru_utime + end.ru_stime - start.ru_utime - start.ru_stime
    heaps = total / args.heap_size
    emit({"heaps": heaps, "cpu_ms_per_heap": cpu * 1000 / max(heaps, 1)})


if __name__ == "__main__":
    main()
