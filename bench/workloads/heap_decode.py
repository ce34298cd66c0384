"""What a Python subscriber spends reading one Heap message (our gateway distribution only).

The gateway suite's messages (a 1 MiB ``payload`` item and an 8-byte ``timestamp``), read two
ways, alternately, in one process:

* ``protobuf``: ``pb.Heap.FromString`` and each item's ``data``, which copies the item data
  out of the message twice (into the parsed message, then into a new ``bytes``);
* ``parse_heap``: ``spead2_gateway.wire.parse_heap``, which the client uses: protobuf parses
  everything but the data, and the payload stays a view of the message.

With ``--tune-malloc`` the process first applies ``spead2_gateway.malloc.tune_malloc()`` (as
the daemon, the command-line client and the gateway suite's subscriber do); without it,
glibc maps and unmaps each large ``bytes``, which is what a user's own program gets as long as
glibc's dynamic mmap threshold has not been raised (it rises to the size of the largest
mapped block freed so far: this script frees no block larger than a message first).
Prints one JSON object: microseconds per message, the median over --rounds rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from gateway_bare import heap_parts
from spead2_gateway import wire
from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.malloc import tune_malloc


def messages(heap_size: int, count: int) -> list[bytes]:
    """``count`` messages of one heap, as the suite's servers send them to one subscriber."""
    payload = memoryview(np.arange(heap_size, dtype=np.uint8))
    (body,) = wire.build_fragments(*heap_parts(payload), 2 * heap_size + 4096)
    return [wire.subscriber_prefix(sequence, 0) + body for sequence in range(1, count + 1)]


def with_protobuf(message: bytes) -> list[Any]:
    heap = pb.Heap.FromString(message)
    return [item.data for item in heap.items]


def with_parse_heap(message: bytes) -> list[Any]:
    return [data for _, data in wire.parse_heap(message).items]


def per_message_us(read: Callable[[bytes], list[Any]], batch: list[bytes], passes: int) -> float:
    start = time.perf_counter()
    for _ in range(passes):
        for message in batch:
            read(message)
    return (time.perf_counter() - start) / (passes * len(batch)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heap-size", type=int, default=1 << 20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--passes", type=int, default=20, help="passes over 64 messages a round")
    parser.add_argument("--tune-malloc", action="store_true")
    args = parser.parse_args()
    tuned = tune_malloc() if args.tune_malloc else False
    batch = messages(args.heap_size, 64)
    readers = {"protobuf": with_protobuf, "parse_heap": with_parse_heap}
    times: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(args.rounds):
        for name, read in readers.items():
            times[name].append(per_message_us(read, batch, args.passes))
    result = {f"{name}_us": statistics.median(t) for name, t in times.items()}
    result["malloc_tuned"] = tuned
    result["ratio"] = result["protobuf_us"] / result["parse_heap_us"]
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
