"""Prints one JSON line with a gateway receive stream's statistics (``GetStream``)."""

from __future__ import annotations

import argparse
import json
import sys

from spead2_gateway.client import GatewayClient


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--stream", default="bench")
    args = parser.parse_args()
    with GatewayClient(args.target) as client:
        stats = client.get_stream(args.stream).stats
    sys.stdout.write(
        json.dumps(
            {
                "counters": stats.counters,
                "drops": stats.drops,
                "published_heaps": stats.published_heaps,
                "subscriber_dropped_heaps": stats.subscriber_dropped_heaps,
                "ring_high_water": stats.ring_high_water,
                "ring_capacity": stats.ring_capacity,
            }
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
