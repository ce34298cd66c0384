"""Graceful shutdown of the real daemon: SIGTERM (or SIGINT) mid-stream.

Health turns NOT_SERVING, new calls are refused with UNAVAILABLE, a subscriber still gets
every heap that was already queued for it (no gap in the sequence numbers) before its call
ends with UNAVAILABLE, and the process exits 0.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import ModuleType

import grpc
import numpy as np
import pytest
from gateway_harness import Daemon, udp_sender, wait_subscribers, wait_until
from grpc_health.v1 import health_pb2, health_pb2_grpc
from util.ports import free_udp_port

HEAPS = 20
SIZE = 10_000


def _config(port: int) -> str:
    return f"""
[server]
listen = "127.0.0.1:0"
grace_period = 10.0

[metrics]
listen = "127.0.0.1:0"

[[receive.streams]]
name = "rx"
transport = "udp"
port = {port}
ring_heaps = 64
"""


class HealthWatcher:
    """Records the overall health statuses streamed by ``Health.Watch``."""

    def __init__(self, channel: grpc.Channel) -> None:
        stub = health_pb2_grpc.HealthStub(channel)
        self.call = stub.Watch(health_pb2.HealthCheckRequest(service=""))
        self.statuses: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for response in self.call:
                name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                self.statuses.append(name)
        except grpc.RpcError:
            pass

    def stop(self) -> None:
        self.call.cancel()
        self._thread.join(10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_stream_drains_and_exits_zero(
    tmp_path: Path, ours: ModuleType, sig: signal.Signals
) -> None:
    port = free_udp_port()
    with Daemon(tmp_path, _config(port)) as daemon:
        daemon.wait_ready()
        with (
            daemon.client() as client,
            daemon.client(
                # A small flow-control window, so most heaps wait in the gateway's queue.
                options=[("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0)]
            ) as reader,
        ):
            watcher = HealthWatcher(client.channel)
            wait_until(lambda: watcher.statuses == ["SERVING"], 10, "health SERVING")
            sub = reader.subscribe("rx")
            wait_subscribers(client, "rx", 1)

            # Heaps reach the subscriber's queue while it does not read.
            stream = udp_sender(ours, port)
            group = ours.send.ItemGroup(flavour=ours.Flavour(4, 64, 48))
            index = group.add_item(0x1000, "index", "", (), format=[("u", 32)])
            values = group.add_item(0x1001, "values", "", (SIZE,), dtype=np.int32)
            stream.send_heap(group.get_start())
            for i in range(HEAPS):
                index.value = i
                values.value = np.arange(SIZE, dtype=np.int32) * i
                stream.send_heap(group.get_heap())
            wait_until(
                lambda: client.get_stream("rx").stats.published_heaps == HEAPS + 1,
                10,
                "every heap captured",
            )
            queued = client.get_stream("rx").stats.subscribers[0]["queued_heaps"]
            assert queued >= HEAPS // 2, "heaps should be waiting in the subscriber's queue"

            daemon.proc.send_signal(sig)
            wait_until(lambda: "NOT_SERVING" in watcher.statuses, 10, "health NOT_SERVING")
            watcher.stop()
            with pytest.raises(grpc.RpcError) as refused:
                next(iter(client.subscribe("rx")))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

            heaps = []
            timer = threading.Timer(20, sub.cancel)
            timer.start()
            with pytest.raises(grpc.RpcError) as ended:
                for heap in sub:
                    heaps.append(heap)
            timer.cancel()
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE, ended.value.details()
        assert [h.sequence for h in heaps] == list(range(1, HEAPS + 2))
        assert heaps[0].start_of_stream
        for i, heap in enumerate(heaps[1:]):
            assert int(heap["index"]) == i
            assert np.array_equal(heap["values"], np.arange(SIZE, dtype=np.int32) * i)
        assert daemon.wait_exit(30) == 0, daemon.log()
        assert "stopped" in daemon.log()
