"""Demo mode and the metrics collector."""

from __future__ import annotations

import re
from pathlib import Path

from gateway_harness import Daemon
from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.metrics import StreamCollector, StreamSnapshot
from util.ports import free_udp_port


def test_demo_shows_heaps_flowing_and_exits_zero(tmp_path: Path) -> None:
    """``--demo`` sends synthetic spectra into the UDP stream and prints what a gRPC
    subscriber receives; ``--exit-after`` shuts down cleanly (exit 1 if nothing came back)."""
    config = f"""
[server]
listen = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
[[receive.streams]]
name = "default"
transport = "udp"
port = {free_udp_port()}
"""
    with Daemon(tmp_path, config, "--demo", "--exit-after", "2") as daemon:
        assert daemon.wait_exit(30) == 0, daemon.log()
        log = daemon.log()
    heaps = re.findall(r"\[default\] heap +\d+ seq +(\d+) timestamp= *(\d+) spectrum\[1024\]", log)
    assert len(heaps) >= 5, log
    assert [int(seq) for seq, _ in heaps] == list(range(1, len(heaps) + 1))
    sent, back = map(int, re.findall(r"demo: sent (\d+) heaps, (\d+) came back", log)[0])
    assert back >= len(heaps) - 1 and sent >= back


def test_exported_counters_never_go_backwards() -> None:
    """A counter that reads lower than before (a stream replaced, say) keeps its last value;
    gauges follow the reading."""
    readings = iter([(10, 5), (4, 2), (12, 1)])

    def snapshot() -> list[StreamSnapshot]:
        packets, depth = next(readings)
        stats = pb.StreamStats(stream="s", ring_depth=depth, ring_capacity=8)
        stats.counters["packets"] = packets
        return [StreamSnapshot("s", "receive", "running", stats)]

    collector = StreamCollector(snapshot)

    # Each collect() reads the snapshot once.
    values = []
    for _ in range(3):
        families = {s.name: s.value for f in collector.collect() for s in f.samples}
        values.append(
            (
                families["spead2_gateway_receive_packets_total"],
                families["spead2_gateway_ring_heaps"],
            )
        )
    assert values == [(10, 5), (10, 2), (12, 1)]
