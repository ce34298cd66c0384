"""Write a SPEAD byte stream of identical heaps to a file (input for the buffer-reader workloads).

The runner generates it once with the reference library so both libraries parse the same bytes.
"""

from __future__ import annotations

import argparse

from _common import emit, make_item_group

import spead2
import spead2.send


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heap-size", type=int, required=True)
    parser.add_argument("--packet-size", type=int, required=True)
    parser.add_argument("--heaps", type=int, required=True)
    parser.add_argument(
        "--descriptors",
        action="store_true",
        help="first heap also carries the descriptors (for ItemGroup.update)",
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    ig = make_item_group(args.heap_size)
    config = spead2.send.StreamConfig(max_packet_size=args.packet_size)
    stream = spead2.send.BytesStream(spead2.ThreadPool(), config)
    first = ig.get_heap(descriptors="all" if args.descriptors else "none", data="all")
    stream.send_heap(first)
    rest = ig.get_heap(descriptors="none", data="all")
    for _ in range(args.heaps - 1):
        stream.send_heap(rest)
    data = stream.getvalue()
    with open(args.out, "wb") as f:
        f.write(data)
    emit({"bytes": len(data), "heaps": args.heaps})


if __name__ == "__main__":
    main()
