"""End to end, against the real daemon process: SPEAD in over UDP, heaps out over gRPC.

One daemon serves the whole module (streams ``cat``, ``slow``, ``stats``, send streams
``tx`` and ``tx_slow``). Senders are the real spead2 4.5.1 (a subprocess) and ours (in this
process); a receiver is the real spead2. Values are compared exactly with the shared
catalogue (type, dtype, shape and bytes, as ``spead2.ItemGroup`` presents them).
"""

from __future__ import annotations

import pickle
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import numpy as np
import pytest
from gateway_harness import (
    AsyncCollector,
    Daemon,
    as_catalogue_received,
    collect,
    daemon_env,
    metric_value,
    payload,
    run_threads,
    udp_sender,
    wait_subscribers,
)
from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.client import GatewayClient, ReceivedHeap
from util.peer import Peer
from util.ports import free_udp_port

BITS = 48
MAX_RECEIVE = 1024 * 1024


def _config(ports: dict[str, int]) -> str:
    receive = "".join(
        f"""
[[receive.streams]]
name = "{name}"
transport = "udp"
port = {ports[name]}
max_heaps = 8
ring_heaps = 64
"""
        for name in ("cat", "slow", "stats")
    )
    receive += f"""
[[receive.streams]]
name = "partial"
transport = "udp"
port = {ports["partial"]}
max_heaps = 1
contiguous_only = false
"""
    return f"""
[server]
listen = "127.0.0.1:0"
max_send_message_bytes = 1048576
max_receive_message_bytes = {MAX_RECEIVE}
grace_period = 3.0

[metrics]
listen = "127.0.0.1:0"

[subscribe]
fragment_bytes = 65536
default_queue_depth = 256
max_queue_depth = 512
min_stats_interval = 0.05
{receive}
[[send.streams]]
name = "tx"
transport = "udp"
destinations = ["127.0.0.1:{ports["tx"]}"]
flavour = "64-{BITS}"
rate = 50e6

[[send.streams]]
name = "tx_slow"
transport = "udp"
destinations = ["127.0.0.1:{ports["tx_slow"]}"]
rate = 20000.0
burst_size = 1472
max_heaps = 1
queue_timeout = 0.2
"""


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    """Free UDP ports for every stream of the module's daemon."""
    return {name: free_udp_port() for name in ("cat", "slow", "stats", "partial", "tx", "tx_slow")}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int]) -> Iterator[Daemon]:
    """The daemon of this module; it must exit 0 on SIGTERM at the end."""
    with Daemon(tmp_path_factory.mktemp("gateway"), _config(ports)) as d:
        d.wait_ready()
        yield d
        status = d.terminate()
        assert status == 0, d.log()


@pytest.fixture
def client(daemon: Daemon) -> Iterator[GatewayClient]:
    """A synchronous client of the module's daemon."""
    with daemon.client() as c:
        yield c


# ------------------------------------------------------------------------------------------
# Helpers


def _split_runs(heaps: list[ReceivedHeap]) -> list[list[ReceivedHeap]]:
    """Heaps of consecutive catalogue sends, each ending with its end-of-stream heap."""
    runs: list[list[ReceivedHeap]] = [[]]
    for heap in heaps:
        runs[-1].append(heap)
        if heap.end_of_stream:
            runs.append([])
    assert runs[-1] == []
    return runs[:-1]


def _same_items(a: ReceivedHeap, b: ReceivedHeap, names: set[str] | None = None) -> None:
    wanted = set(a.items) if names is None else set(a.items) & names
    assert set(b.items) == wanted, (a.cnt, sorted(b.items), sorted(wanted))
    for name in wanted:
        x, y = a.items[name].value, b.items[name].value
        assert (x.dtype, x.shape) == (y.dtype, y.shape), name
        assert x.tobytes() == y.tobytes(), name


def _check_sequences(heaps: list[ReceivedHeap]) -> None:
    assert [h.sequence for h in heaps] == list(range(1, len(heaps) + 1))
    assert all(h.dropped == 0 for h in heaps)


# ------------------------------------------------------------------------------------------
# Receiving


def test_peer_and_ours_send_to_two_subscribers_with_filters(
    daemon: Daemon,
    client: GatewayClient,
    peer: Peer,
    catalogue: ModuleType,
    ours: ModuleType,
    ports: dict[str, int],
) -> None:
    """The real spead2, then ours, send the full catalogue over UDP; two subscribers get every
    heap with exact values, a decimating one every second heap, a filtering one only the
    chosen items (by name and by id). Heaps are split into 64 KiB messages on the way."""
    cat = catalogue.build("full", BITS)
    filter_names = {"arr_u1", "big_f4", "fmt_u8", "str_var"}
    subs = {
        "a": client.subscribe("cat"),
        "c": client.subscribe("cat", every_nth=2),
    }
    b = AsyncCollector(daemon.target, "cat", 2, 60.0)
    d = AsyncCollector(daemon.target, "cat", 2, 60.0, items=["arr_u1", "big_f4", 0x1050, 0x105D])
    wait_subscribers(client, "cat", 4)
    a_heaps, c_heaps = run_threads(
        lambda: collect(subs["a"], 2, 30.0),
        lambda: collect(subs["c"], 2, 30.0, count=8),
        lambda: peer_then_ours(peer, catalogue, ours, ports["cat"]),
    )[:2]
    b_heaps = b.result(60.0)
    d_heaps = d.result(60.0)

    detail = client.get_stream("cat")
    for heaps in (a_heaps, b_heaps):
        _check_sequences(heaps)
        runs = _split_runs(heaps)
        assert len(runs) == 2
        for run in runs:
            assert run[-1].end_of_stream and not run[-1].items
            problems = catalogue.check_received(
                cat, as_catalogue_received(catalogue, run[:-1], detail)
            )
            assert problems == []
    assert any(h.fragments > 1 for h in a_heaps), "no heap was split"

    # Every second heap, in order, with the same values.
    _check_sequences(c_heaps)
    assert [h.cnt for h in c_heaps] == [h.cnt for h in a_heaps[0 : 2 * len(c_heaps) : 2]]
    for full, decimated in zip(a_heaps[::2], c_heaps, strict=False):
        _same_items(full, decimated)

    # Only the chosen items (matched by name or id), every heap.
    _check_sequences(d_heaps)
    assert [h.cnt for h in d_heaps] == [h.cnt for h in a_heaps]
    for full, filtered in zip(a_heaps, d_heaps, strict=True):
        _same_items(full, filtered, filter_names)
    assert any(h.items for h in d_heaps)


def peer_then_ours(peer: Peer, catalogue: ModuleType, ours: ModuleType, port: int) -> None:
    """The real spead2 sends the catalogue, then our spead2 sends it again."""
    peer.run(
        "send.py", "--transport", "udp", "--port", str(port), "--bits", str(BITS), "--rate", "50e6"
    )
    stream = udp_sender(ours, port)
    group = ours.send.ItemGroup(flavour=ours.Flavour(4, 64, BITS))
    catalogue.send_all(catalogue.build("full", BITS), group, stream)


def test_slow_subscriber_costs_the_other_nothing(
    daemon: Daemon, client: GatewayClient, ours: ModuleType, ports: dict[str, int]
) -> None:
    """A subscriber that stops reading loses its oldest heaps (gaps in sequence, counted);
    the other subscriber gets every heap, exactly."""
    heaps, size = 60, 100_000
    fast_client = daemon.client(options=[("grpc.use_local_subchannel_pool", 1)])
    # No BDP probing: the stalled call's flow-control window stays small, so it backs up.
    slow_client = daemon.client(
        options=[("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0)]
    )
    with fast_client, slow_client:
        slow = slow_client.subscribe("slow", queue_depth=4)
        fast = fast_client.subscribe("slow")
        wait_subscribers(client, "slow", 2)
        assert slow.queue_depth == 4

        def send() -> None:
            stream = udp_sender(ours, ports["slow"], rate=20e6, packet=8972)
            group = ours.send.ItemGroup(flavour=ours.Flavour(4, 64, BITS))
            index = group.add_item(0x2000, "index", "", (), format=[("u", 32)])
            data = group.add_item(0x2001, "payload", "", (size,), dtype=np.uint8)
            stream.send_heap(group.get_start())
            for i in range(heaps):
                index.value = i
                data.value = payload(i, size)
                stream.send_heap(group.get_heap())
            stream.send_heap(group.get_end())

        fast_heaps = run_threads(lambda: collect(fast, 1, 60.0), send)[0]
        _check_sequences(fast_heaps)
        assert len(fast_heaps) == heaps + 2
        for i, heap in enumerate(fast_heaps[1:-1]):
            assert int(heap["index"]) == i
            assert heap["payload"].tobytes() == payload(i, size).tobytes()

        # While it still has not read anything, the stalled subscriber's losses show.
        stats = client.get_stream("slow").stats
        slow_stats = next(s for s in stats.subscribers if s["id"] == slow.subscriber_id)
        assert slow_stats["dropped_heaps"] > 0
        assert stats.subscriber_dropped_heaps == slow_stats["dropped_heaps"]
        text = daemon.scrape()
        dropped = metric_value(
            text,
            "spead2_gateway_subscriber_dropped_heaps_total",
            stream="slow",
            subscriber=str(slow.subscriber_id),
        )
        assert dropped == slow_stats["dropped_heaps"]

        slow_heaps = collect(slow, 1, 30.0)
    # Sequence numbers count every heap offered; the gaps are exactly the drops.
    assert slow_heaps[-1].end_of_stream and slow_heaps[-1].sequence == heaps + 2
    for delivered, heap in enumerate(slow_heaps):
        assert heap.sequence == delivered + heap.dropped + 1
    assert slow_heaps[-1].dropped > 0
    assert len(slow_heaps) + slow_heaps[-1].dropped == heaps + 2
    for heap in slow_heaps[:-1]:
        if heap.sequence > 1:
            i = heap.sequence - 2
            assert heap["payload"].tobytes() == payload(i, size).tobytes()


def test_stats_track_packets_and_heaps(
    daemon: Daemon, client: GatewayClient, ours: ModuleType, ports: dict[str, int]
) -> None:
    """WatchStats follows the packet and heap counters to the exact totals sent, without
    going backwards, and the metrics endpoint agrees."""
    heaps, size, packet = 20, 30_000, 1472
    stream = udp_sender(ours, ports["stats"], packet=packet)
    group = ours.send.ItemGroup(flavour=ours.Flavour(4, 64, BITS))
    data = group.add_item(0x3000, "data", "", (size,), dtype=np.uint8)
    to_send = [group.get_start()]
    for i in range(heaps):
        data.value = payload(i, size)
        to_send.append(group.get_heap())
    to_send.append(group.get_end())
    packets = sum(len(list(ours.send.PacketGenerator(h, 1, packet))) for h in to_send)

    updates: list[tuple[int, int]] = []
    watch = client.watch_stats(["stats"], interval=0.05)
    first = next(watch)
    assert first.streams["stats"].counters["packets"] == 0

    def watch_until_done() -> None:
        for update in watch:
            c = update.streams["stats"].counters
            updates.append((c["heaps"], c["packets"]))
            if c["heaps"] >= heaps + 2 and c["packets"] >= packets:
                return

    timer = threading.Timer(30.0, watch.close)
    timer.start()
    try:
        run_threads(watch_until_done, lambda: [stream.send_heap(h) for h in to_send])
    finally:
        timer.cancel()
        watch.close()
    assert updates[-1] == (heaps + 2, packets)
    assert updates == sorted(updates), "counters went backwards"
    text = daemon.scrape()
    assert metric_value(text, "spead2_gateway_receive_packets_total", stream="stats") == packets
    assert metric_value(text, "spead2_gateway_receive_heaps_total", stream="stats") == heaps + 2
    assert metric_value(text, "spead2_gateway_published_heaps_total", stream="stats") == heaps + 2
    assert metric_value(text, "spead2_gateway_ring_capacity_heaps", stream="stats") == 64


# ------------------------------------------------------------------------------------------
# Sending


def _peer_receiver(peer: Peer, port: int, output: Path) -> Any:
    process = peer.start(
        "recv.py",
        "--transport",
        "udp",
        "--port",
        str(port),
        "--output",
        str(output),
        "--timeout",
        "30",
    )
    process.wait_ready()
    return process


def test_send_reaches_the_real_spead2(
    daemon: Daemon, peer: Peer, catalogue: ModuleType, ports: dict[str, int], tmp_path: Path
) -> None:
    """Heaps streamed to the ``tx`` send stream arrive at the real spead2 with exact values
    and descriptors (sync sender: the full catalogue)."""
    cat = catalogue.build("full", BITS)
    output = tmp_path / "received.pickle"
    with _peer_receiver(peer, ports["tx"], output) as process, daemon.client() as client:
        sender = client.sender("tx")
        sent = catalogue.send_all(cat, sender, sender)
        result = sender.close()
        process.finish(timeout=30)
    assert result.heaps == sent
    assert result.bytes > 0
    received = catalogue.Received.from_plain(pickle.loads(output.read_bytes()))
    first = received.heaps[0].cnt
    assert catalogue.check_received(cat, received, first_cnt=first) == []


def test_async_send_reaches_the_real_spead2(
    daemon: Daemon, peer: Peer, catalogue: ModuleType, ports: dict[str, int], tmp_path: Path
) -> None:
    """The asyncio sender, with the small catalogue."""
    import asyncio

    from spead2_gateway.client import AsyncGatewayClient

    cat = catalogue.build("small", BITS)
    output = tmp_path / "received.pickle"

    async def send() -> int:
        async with AsyncGatewayClient(daemon.target) as client:
            sender = client.sender("tx")
            for spec in cat.items:
                sender.add_item(**spec.add_item_kwargs())
            await sender.send_heap(sender.get_start())
            for values in cat.heaps:
                for name, value in values.items():
                    sender[name].value = value
                await sender.send_heap(sender.get_heap())
            await sender.send_heap(sender.get_end())
            return (await sender.close()).heaps

    with _peer_receiver(peer, ports["tx"], output) as process:
        heaps = asyncio.run(asyncio.wait_for(send(), 30))
        process.finish(timeout=30)
    assert heaps == len(cat.heaps) + 2
    received = catalogue.Received.from_plain(pickle.loads(output.read_bytes()))
    first = received.heaps[0].cnt
    assert catalogue.check_received(cat, received, first_cnt=first) == []


def test_full_send_queue_is_resource_exhausted(daemon: Daemon) -> None:
    """``tx_slow`` sends 20 kB/s with one heap in flight and waits 0.2 s for room."""
    with daemon.client() as client:
        sender = client.sender("tx_slow")
        sender.add_item(0x1000, "blob", "", (10_000,), dtype=np.uint8)
        with pytest.raises(grpc.RpcError) as info:
            for i in range(5):
                sender["blob"].value = payload(i, 10_000)
                sender.send_heap(sender.get_heap())
            sender.close()
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "tx_slow" in info.value.details()
        assert client.get_stream("tx_slow").stats.counters["rejected_heaps"] >= 1


# ------------------------------------------------------------------------------------------
# Bad requests: the right status, and the daemon keeps serving


def _send_raw(client: GatewayClient, *requests: pb.SendRequest) -> grpc.RpcError:
    method = client.channel.stream_unary(
        "/spead2.gateway.v1.Gateway/Send",
        request_serializer=pb.SendRequest.SerializeToString,
        response_deserializer=pb.SendResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as info:
        method(iter(requests), timeout=10)
    return info.value


def _subscribe_error(client: GatewayClient, stream: str, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        with client.subscribe(stream, **kwargs) as sub:
            next(iter(sub))
    return info.value


def test_bad_requests_get_the_right_status(daemon: Daemon, client: GatewayClient) -> None:
    """Unknown streams, bad filters, bad items and oversized messages are refused with the
    matching status code, and the daemon carries on."""
    nf = grpc.StatusCode.NOT_FOUND
    bad = grpc.StatusCode.INVALID_ARGUMENT
    assert _subscribe_error(client, "nope").code() == nf
    assert _subscribe_error(client, "tx").code() == nf  # a send stream
    assert _subscribe_error(client, "cat", items=[""]).code() == bad
    assert _subscribe_error(client, "cat", items=[0]).code() == bad
    assert _subscribe_error(client, "cat", items=[1 << 60]).code() == bad
    with pytest.raises(grpc.RpcError) as info:
        client.get_stream("nope")
    assert info.value.code() == nf
    with pytest.raises(grpc.RpcError) as info:
        next(client.watch_stats(["nope"]))
    assert info.value.code() == nf

    descriptor = pb.Descriptor(id=0x1000, name="x", description="", shape=[4], dtype="<u2")
    good_item = pb.Item(id=0x1000, dtype="<u2", shape=[4], data=bytes(8))
    cases = {
        "unknown stream": (nf, [pb.SendRequest(stream="nope")]),
        "no stream name": (bad, [pb.SendRequest()]),
        "undescribed item": (bad, [pb.SendRequest(stream="tx", items=[good_item])]),
        "bad dtype": (
            bad,
            [
                pb.SendRequest(
                    stream="tx",
                    descriptors=[
                        pb.Descriptor(id=0x1000, name="x", shape=[4], dtype="not a dtype")
                    ],
                )
            ],
        ),
        "object dtype": (
            bad,
            [
                pb.SendRequest(
                    stream="tx",
                    descriptors=[descriptor],
                    items=[pb.Item(id=0x1000, dtype="|O", shape=[1], data=bytes(8))],
                )
            ],
        ),
        "short data": (
            bad,
            [
                pb.SendRequest(
                    stream="tx",
                    descriptors=[descriptor],
                    items=[pb.Item(id=0x1000, dtype="<u2", shape=[4], data=bytes(7))],
                )
            ],
        ),
        "wrong shape": (
            bad,
            [
                pb.SendRequest(
                    stream="tx",
                    descriptors=[descriptor],
                    items=[pb.Item(id=0x1000, dtype="<u2", shape=[5], data=bytes(10))],
                )
            ],
        ),
        "reserved id": (
            bad,
            [
                pb.SendRequest(
                    stream="tx", descriptors=[pb.Descriptor(id=5, name="x", shape=[4], dtype="<u2")]
                )
            ],
        ),
        "oversized": (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            [
                pb.SendRequest(
                    stream="tx",
                    descriptors=[pb.Descriptor(id=0x1000, name="x", shape=[-1], dtype="|u1")],
                    items=[
                        pb.Item(
                            id=0x1000, dtype="|u1", shape=[MAX_RECEIVE], data=bytes(MAX_RECEIVE)
                        )
                    ],
                )
            ],
        ),
    }
    for name, (code, requests) in cases.items():
        error = _send_raw(client, *requests)
        assert error.code() == code, (name, error.details())
    assert client.health() == "SERVING"
    assert {s.name for s in client.list_streams()} == {
        "cat",
        "slow",
        "stats",
        "partial",
        "tx",
        "tx_slow",
    }


def test_second_daemon_on_the_same_port_fails_loudly(
    daemon: Daemon, tmp_path: Path, ports: dict[str, int]
) -> None:
    """``grpc.so_reuseport`` is off: the second daemon exits 1 naming the address."""
    config = f"""
[server]
listen = "{daemon.target}"
[metrics]
enabled = false
[[receive.streams]]
name = "other"
transport = "udp"
port = {free_udp_port()}
"""
    with Daemon(tmp_path, config, name="second") as second:
        assert second.wait_exit(30) == 1
        assert daemon.target in second.log()


def test_health_reflection_and_metrics(daemon: Daemon, client: GatewayClient) -> None:
    """Per-stream health, reflection of the Gateway service, gRPC request counters."""
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    assert client.health("receive/cat") == "SERVING"
    assert client.health("send/tx") == "SERVING"
    assert client.health("spead2.gateway.v1.Gateway") == "SERVING"
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    response = next(stub.ServerReflectionInfo(iter([request]), timeout=10))
    services = {s.name for s in response.list_services_response.service}
    assert {"spead2.gateway.v1.Gateway", "grpc.health.v1.Health"} <= services
    client.list_streams()
    text = daemon.scrape()
    handled = metric_value(
        text, "grpc_server_handled_total", grpc_method="ListStreams", grpc_code="OK"
    )
    assert handled is not None and handled >= 1
    assert metric_value(text, "spead2_gateway_stream_up", stream="cat", kind="receive") == 1


def test_keepalive_pings_are_accepted(
    daemon: Daemon, ours: ModuleType, ports: dict[str, int]
) -> None:
    """A client pinging as often as it may (once a second) while its subscription idles keeps
    the connection; grpc's default server policy answers the fourth such ping with GOAWAY
    "too_many_pings" (about 3 s in)."""
    options = [
        ("grpc.keepalive_time_ms", 200),
        ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.min_time_between_pings_ms", 200),
        ("grpc.http2.min_ping_interval_without_data_ms", 200),
        ("grpc.use_local_subchannel_pool", 1),
    ]
    with daemon.client(options=options) as pinging, daemon.client() as client:
        sub = pinging.subscribe("stats", items=["nothing"])
        wait_subscribers(client, "stats", 1)
        threading.Event().wait(4.5)  # idle: only pings on the connection
        stream = udp_sender(ours, ports["stats"])
        group = ours.send.ItemGroup(flavour=ours.Flavour(4, 64, BITS))
        stream.send_heap(group.get_end())
        heaps = collect(sub, 1, 20.0)
    assert heaps[-1].end_of_stream


def test_udp_port_in_use_fails_at_start(tmp_path: Path) -> None:
    """A receive stream that cannot bind stops the daemon at start, naming the stream."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = f"""
[server]
listen = "127.0.0.1:0"
[metrics]
enabled = false
[[receive.streams]]
name = "busy"
transport = "udp"
port = {port}
"""
        with Daemon(tmp_path, config, name="busy") as d:
            assert d.wait_exit(30) == 1
            assert "busy" in d.log()


def test_incomplete_heaps_only_for_those_who_ask(
    daemon: Daemon, client: GatewayClient, ours: ModuleType, ports: dict[str, int]
) -> None:
    """A heap missing its last packet is evicted incomplete (``contiguous_only = false``):
    delivered, flagged and with its immediate items, only to subscribers that asked."""
    group = ours.send.ItemGroup(flavour=ours.Flavour(4, 64, BITS))
    index = group.add_item(0x1000, "index", "", (), format=[("u", 32)])
    data = group.add_item(0x1001, "data", "", (5000,), dtype=np.uint8)
    packets = []
    for cnt in (1, 2, 3):
        index.value = cnt
        data.value = payload(cnt, 5000)
        heap_packets = list(ours.send.PacketGenerator(group.get_heap(), cnt, 1472))
        packets += heap_packets[:-1] if cnt == 2 else heap_packets
    with client.subscribe("partial", include_incomplete=True) as with_incomplete:
        without = client.subscribe("partial")
        wait_subscribers(client, "partial", 2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for packet in packets:
                sock.sendto(bytes(packet), ("127.0.0.1", ports["partial"]))
        got = collect(with_incomplete, 1, 20.0, count=3)
        plain = collect(without, 1, 20.0, count=2)
    assert [(h.cnt, h.sequence, h.incomplete) for h in got] == [
        (1, 1, False),
        (2, 2, True),
        (3, 3, False),
    ]
    partial = got[1]
    assert int(partial["index"]) == 2 and "data" not in partial
    assert 0 < partial.received_length < partial.heap_length
    assert [(h.cnt, h.sequence) for h in plain] == [(1, 1), (3, 2)]
    assert plain[1]["data"].tobytes() == payload(3, 5000).tobytes()
    assert client.get_stream("partial").stats.counters["incomplete_heaps_evicted"] == 1


def test_command_line_subscriber_prints_heaps_and_stats(
    daemon: Daemon, client: GatewayClient, ours: ModuleType, ports: dict[str, int]
) -> None:
    """``spead2-gateway-client subscribe`` prints each heap and periodic stats lines."""
    argv = [
        sys.executable,
        "-c",
        "from spead2_gateway.client_cli import main; exit(main())",
        "--target",
        daemon.target,
    ]
    listed = subprocess.run(
        [*argv, "list"], capture_output=True, text=True, timeout=60, env=daemon_env()
    )
    assert listed.returncode == 0, listed.stderr
    assert "slow" in listed.stdout and "tx_slow" in listed.stdout
    proc = subprocess.Popen(
        [*argv, "subscribe", "slow", "--count", "3", "--stats", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=daemon_env(),
    )
    try:
        wait_subscribers(client, "slow", 1)
        stream = udp_sender(ours, ports["slow"])
        group = ours.send.ItemGroup(flavour=ours.Flavour(4, 64, BITS))
        item = group.add_item(0x2000, "index", "", (), format=[("u", 32)])
        for i in range(3):
            item.value = 100 + i
            stream.send_heap(group.get_heap())
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    heap_lines = [line for line in out.splitlines() if " heap " in line]
    assert [line.split(": ", 1)[1] for line in heap_lines] == [
        "index=100",
        "index=101",
        "index=102",
    ]
    assert any("slow: heaps=" in line and "packets=" in line for line in out.splitlines())


def test_undecodable_heap_is_counted_and_skipped(
    daemon: Daemon, client: GatewayClient, ours: ModuleType, ports: dict[str, int]
) -> None:
    """A heap whose value does not fit its descriptor is counted and skipped; the stream and
    its subscribers carry on."""
    stream = udp_sender(ours, ports["partial"])
    good = ours.send.ItemGroup(flavour=ours.Flavour(4, 64, BITS))
    good.add_item(0x3000, "vec", "", (100,), format=[("u", 8)])
    liar = ours.send.ItemGroup(flavour=ours.Flavour(4, 64, BITS))
    liar.add_item(0x3000, "vec", "", (None,), format=[("u", 8)])
    before = client.get_stream("partial").stats.counters["decode_errors"]
    with client.subscribe("partial") as sub:
        wait_subscribers(client, "partial", 1)
        good["vec"].value = payload(1, 100)
        stream.send_heap(good.get_heap())
        liar["vec"].value = payload(2, 10)
        stream.send_heap(liar.get_heap(descriptors="none"))  # 10 bytes for a (100,) item
        good["vec"].value = payload(3, 100)
        stream.send_heap(good.get_heap())
        heaps = collect(sub, 1, 20.0, count=2)
    assert [h["vec"].tobytes() for h in heaps] == [payload(i, 100).tobytes() for i in (1, 3)]
    assert [h.sequence for h in heaps] == [1, 2]
    assert client.get_stream("partial").stats.counters["decode_errors"] == before + 1
