"""Receive streams over TCP (reopened after each sender) and pcap replay, on the real daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import grpc
import pytest
from gateway_harness import (
    Daemon,
    as_catalogue_received,
    collect,
    run_threads,
    wait_subscribers,
    wait_until,
)
from util.pcapgen import Datagram, frames_from_datagrams, write_pcap
from util.peer import Peer
from util.ports import free_tcp_port

BITS = 40


def _pcap(path: Path, catalogue: ModuleType, ours: ModuleType) -> int:
    """The small catalogue as a capture of UDP datagrams; returns the heaps in it."""
    group = ours.send.ItemGroup(flavour=ours.Flavour(4, 64, BITS))
    cat = catalogue.build("small", BITS)
    for spec in cat.items:
        group.add_item(**spec.add_item_kwargs())
    heaps = [group.get_start()]
    for values in cat.heaps:
        for name, value in values.items():
            group[name].value = value
        heaps.append(group.get_heap())
    heaps.append(group.get_end())
    datagrams = [
        Datagram(("127.0.0.1", 9000), ("127.0.0.1", 7148), bytes(packet), 1.0 + cnt)
        for cnt, heap in enumerate(heaps, start=1)
        for packet in ours.send.PacketGenerator(heap, cnt, 1472)
    ]
    write_pcap(path, frames_from_datagrams(datagrams))
    return len(heaps)


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, catalogue: ModuleType, ours: ModuleType
) -> Iterator[tuple[Daemon, int, int]]:
    workdir = tmp_path_factory.mktemp("transports")
    heaps = _pcap(workdir / "capture.pcap", catalogue, ours)
    port = free_tcp_port()
    config = f"""
[server]
listen = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
[[receive.streams]]
name = "tcp"
transport = "tcp"
port = {port}
[[receive.streams]]
name = "replay"
transport = "pcap"
file = "capture.pcap"
filter = "udp dst port 7148"
ring_heaps = 64
[receive.streams.memory_pool]
lower = 0
upper = 1048576
max_free = 8
initial = 4
"""
    with Daemon(workdir, config) as d:
        d.wait_ready()
        yield d, port, heaps
        assert d.terminate() == 0, d.log()


def test_tcp_stream_reopens_for_each_sender(
    setup: tuple[Daemon, int, int], peer: Peer, catalogue: ModuleType
) -> None:
    """The real spead2 sends the small catalogue twice over TCP; the stream is reopened after
    each connection and the subscriber gets both runs exactly."""
    daemon, port, _ = setup
    cat = catalogue.build("small", BITS)
    with daemon.client() as client:
        sub = client.subscribe("tcp")
        wait_subscribers(client, "tcp", 1)

        def send_twice() -> None:
            for _ in range(2):
                peer.run(
                    "send.py",
                    "--transport",
                    "tcp",
                    "--port",
                    str(port),
                    "--bits",
                    str(BITS),
                    "--catalogue",
                    "small",
                )

        heaps = run_threads(lambda: collect(sub, 2, 60.0), send_twice)[0]
        detail = client.get_stream("tcp")
    assert [h.sequence for h in heaps] == list(range(1, len(heaps) + 1))
    ends = [i for i, h in enumerate(heaps) if h.end_of_stream]
    assert len(ends) == 2
    for run in (heaps[: ends[0]], heaps[ends[0] + 1 : ends[1]]):
        assert catalogue.check_received(cat, as_catalogue_received(catalogue, run, detail)) == []
    wait_until(lambda: daemon.client().get_stream("tcp").stats.restarts >= 2, 10, "restarts")


def test_pcap_replay_then_stopped(setup: tuple[Daemon, int, int], catalogue: ModuleType) -> None:
    """A replayed capture is counted and described; the ended stream reports NOT_SERVING,
    and a subscription to it ends at once with OK."""
    daemon, _, heaps = setup
    with daemon.client() as client:
        wait_until(lambda: client.health("receive/replay") == "NOT_SERVING", 10, "replay end")
        detail = client.get_stream("replay")
        assert detail.info.state == "stopped"
        assert detail.stats.counters["heaps"] == heaps
        assert detail.stats.published_heaps == heaps
        assert detail.stats.memory_pool["allocated"] >= 4
        names = {d.name for d in detail.descriptors}
        assert names == {s.name for s in catalogue.build("small", BITS).items}
        assert client.health("receive/tcp") == "SERVING"
        assert client.health() == "SERVING"
        with client.subscribe("replay") as sub:
            assert list(sub) == []
        with pytest.raises(grpc.RpcError) as info:
            client.health("receive/nope")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
