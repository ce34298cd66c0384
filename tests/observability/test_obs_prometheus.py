"""A real Prometheus server scrapes the real daemon: heap counts, incomplete heaps, ring
occupancy and capacity, drops and build info arrive through the Prometheus query API with the
values that were sent."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from types import ModuleType

import grpc
import numpy as np
import pytest
from gateway_harness import Daemon
from obs_support import (
    PROMETHEUS,
    PROMETHEUS_MISSING,
    RING_HEAPS,
    PrometheusServer,
    gateway_config,
)
from util.ours import import_ours
from util.ports import free_udp_port

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason=PROMETHEUS_MISSING)

BITS = 48


@pytest.fixture(scope="module")
def ours() -> ModuleType:
    """Our spead2, with ``send`` imported."""
    return import_ours("send", "recv")


@pytest.fixture(scope="module")
def udp_port() -> int:
    """The daemon's receive port."""
    return free_udp_port()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, udp_port: int) -> Iterator[Daemon]:
    """The daemon; it must exit 0 on SIGTERM at the end."""
    config = gateway_config(udp_port, free_udp_port())
    with Daemon(tmp_path_factory.mktemp("gateway"), config) as d:
        d.wait_ready()
        yield d
        assert d.terminate() == 0, d.log()


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, daemon: Daemon
) -> Iterator[PrometheusServer]:
    """Prometheus scraping the daemon's metrics endpoint."""
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), daemon.info["metrics"])
    yield server
    server.close()


def _packets(ours: ModuleType) -> tuple[list[bytes], int]:
    """Five heaps of two packets each; heap cnt 3 lacks its last packet. Returns the
    datagrams and how many there are."""
    group = ours.send.ItemGroup(flavour=ours.Flavour(4, 64, BITS))
    data = group.add_item(0x3000, "data", "", (2000,), dtype=np.uint8)
    datagrams: list[bytes] = []
    for cnt in range(1, 6):
        data.value = np.full(2000, cnt, np.uint8)
        heap = list(ours.send.PacketGenerator(group.get_heap(), cnt, 1472))
        assert len(heap) == 2
        datagrams += [bytes(p) for p in (heap[:-1] if cnt == 3 else heap)]
    return datagrams, len(datagrams)


def test_prometheus_sees_heaps_incomplete_heaps_and_ring(
    daemon: Daemon, prometheus: PrometheusServer, ours: ModuleType, udp_port: int
) -> None:
    """Four complete heaps and one evicted incomplete heap arrive as counters; the ring is
    empty again and its capacity is the configured one; a datagram that is not SPEAD is
    counted as a drop by reason."""
    prometheus.wait_value('up{job="spead2-gateway"}', 1.0)
    prometheus.wait_value('spead2_gateway_receive_heaps_total{stream="beam"}', 0.0)
    datagrams, count = _packets(ours)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            sock.sendto(datagram, ("127.0.0.1", udp_port))
        sock.sendto(b"not a SPEAD packet", ("127.0.0.1", udp_port))
    prometheus.wait_value('spead2_gateway_receive_packets_total{stream="beam"}', float(count))
    # Heap 3 is pushed out incomplete by later heaps (max_heaps = 2); spead2's ``heaps``
    # counts it too, and with contiguous_only = false it is published like the others.
    prometheus.wait_value(
        'spead2_gateway_receive_incomplete_heaps_evicted_total{stream="beam"}', 1.0
    )
    prometheus.wait_value('spead2_gateway_receive_heaps_total{stream="beam"}', 5.0)
    prometheus.wait_value('spead2_gateway_published_heaps_total{stream="beam"}', 5.0)
    prometheus.wait_value('spead2_gateway_ring_heaps{stream="beam"}', 0.0)
    prometheus.wait_value('spead2_gateway_ring_capacity_heaps{stream="beam"}', float(RING_HEAPS))
    prometheus.wait_value('sum(spead2_gateway_receive_discarded_total{stream="beam"})', 1.0)
    build = prometheus.query("spead2_gateway_build_info")
    assert len(build) == 1 and build[0]["value"][1] == "1"
    assert build[0]["metric"]["version"] and build[0]["metric"]["spead2_version"]


def test_prometheus_sees_grpc_calls(daemon: Daemon, prometheus: PrometheusServer) -> None:
    """Three GetStream calls (one for an unknown stream) are counted by method and code."""
    with daemon.client() as client:
        client.get_stream("beam")
        client.get_stream("beam")
        with pytest.raises(grpc.RpcError):
            client.get_stream("nope")
    labels = 'grpc_method="GetStream",grpc_type="unary"'
    prometheus.wait_value(f"sum(grpc_server_started_total{{{labels}}})", 3.0)
    prometheus.wait_value(f'grpc_server_handled_total{{{labels},grpc_code="OK"}}', 2.0)
    prometheus.wait_value(f'grpc_server_handled_total{{{labels},grpc_code="NOT_FOUND"}}', 1.0)
    prometheus.wait_value(f"sum(grpc_server_handling_seconds_count{{{labels}}})", 3.0)
