"""Reconnecting clients: the daemon killed with SIGKILL and restarted while clients run.

A thread of this process feeds the daemon numbered heaps over UDP with our spead2, every heap
with its descriptors (so a restarted daemon decodes the very next one) and values that follow
from its index. A reconnecting subscription (sync and asyncio) must notice the kill, call
again by itself once a new daemon listens on the same gRPC port, report the outage once, on
the first heap after it, with values that agree with what the test saw, and then deliver heaps
with exact values again. Also: what is never retried (NOT_FOUND, the caller's deadline), an
exhausted policy, cancel() during a backoff wait, and a reconnection to the same daemon (an
in-process fake gateway).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import numpy as np
import pytest
from gateway_harness import (
    Daemon,
    payload,
    udp_sender,
    wait_subscribers,
    wait_until,
)
from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.client import (
    AsyncGatewayClient,
    AsyncReconnectingSubscription,
    GatewayClient,
    ReceivedHeap,
    Reconnect,
    ReconnectingSubscription,
    ReconnectPolicy,
    StatsUpdate,
    _Reconnector,
)
from util.ports import free_tcp_port, free_udp_port

SIZE = 1000
PERIOD = 0.01  # seconds between heaps of the feeder
# Fast retries, but bounded: a broken reconnection fails the test instead of hanging it.
POLICY = ReconnectPolicy(initial_backoff=0.05, max_backoff=0.5, max_elapsed=60.0)
WAIT = 30.0


def _config(grpc_port: int, udp_port: int) -> str:
    return f"""
[server]
listen = "127.0.0.1:{grpc_port}"
grace_period = 1.0

[metrics]
enabled = false

[subscribe]
min_stats_interval = 0.05

[[receive.streams]]
name = "rx"
transport = "udp"
port = {udp_port}
ring_heaps = 64
"""


class Feeder:
    """Sends heap ``i`` (items ``index`` = i and ``data`` = payload(i)) every PERIOD seconds."""

    def __init__(self, spead2: ModuleType, port: int) -> None:
        self._stream = udp_sender(spead2, port)
        self._group = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, 48))
        self._group.add_item(0x1000, "index", "", (), format=[("u", 32)])
        self._group.add_item(0x1001, "data", "", (SIZE,), dtype=np.uint8)
        self._stop = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(PERIOD):
                self._group["index"].value = self.sent
                self._group["data"].value = payload(self.sent, SIZE)
                self._stream.send_heap(self._group.get_heap(descriptors="all", data="all"))
                self.sent += 1
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "feeder still running"
        assert self.error is None, repr(self.error)


def _index(heap: ReceivedHeap) -> int:
    """The heap's index, after checking that its values are exactly the feeder's."""
    index = int(heap["index"])
    assert heap["data"].dtype == np.uint8 and heap["data"].shape == (SIZE,)
    assert np.array_equal(heap["data"], payload(index, SIZE)), f"heap {index}: wrong data"
    return index


@pytest.fixture
def ports() -> tuple[int, int]:
    """A gRPC port kept across the restart, and the stream's UDP port."""
    return free_tcp_port(), free_udp_port()


@pytest.fixture
def feeder(ours: ModuleType, ports: tuple[int, int]) -> Iterator[Feeder]:
    """Heaps into the stream's UDP port, whether or not a daemon is listening."""
    f = Feeder(ours, ports[1])
    yield f
    f.stop()


# ------------------------------------------------------------------------------------------
# Consumers: the same interface for a sync subscription (in a thread) and an asyncio one (in a
# thread with its own event loop).


class Consumer:
    """Collects (monotonic time, heap) pairs and the reconnection reports of a subscription."""

    def __init__(self) -> None:
        self.heaps: list[tuple[float, ReceivedHeap]] = []
        self.reports: list[Reconnect] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        raise NotImplementedError

    def _got(self, heap: ReceivedHeap) -> None:
        self.heaps.append((time.monotonic(), heap))

    @property
    def connected(self) -> bool:
        raise NotImplementedError

    @property
    def reconnects(self) -> int:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError

    def finish(self) -> list[tuple[float, ReceivedHeap]]:
        """Cancels the subscription; its heaps once the consumer ended without error."""
        self.cancel()
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "consumer did not end after cancel()"
        assert self.error is None, repr(self.error)
        return self.heaps


class SyncConsumer(Consumer):
    def __init__(self, target: str, **kwargs: Any) -> None:
        super().__init__()
        self.client = GatewayClient(target)
        sub = self.client.subscribe("rx", on_reconnect=self.reports.append, **kwargs)
        assert isinstance(sub, ReconnectingSubscription)
        self.sub = sub
        self._thread.start()

    def _main(self) -> None:
        try:
            for heap in self.sub:
                self._got(heap)
        except BaseException as exc:
            self.error = exc
        finally:
            self.client.close()

    @property
    def connected(self) -> bool:
        return self.sub.connected

    @property
    def reconnects(self) -> int:
        return self.sub.reconnects

    def cancel(self) -> None:
        self.sub.cancel()


class AsyncConsumer(Consumer):
    def __init__(self, target: str, **kwargs: Any) -> None:
        super().__init__()
        self._target = target
        self._kwargs = kwargs
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sub: AsyncReconnectingSubscription | None = None
        self._thread.start()
        assert self._ready.wait(WAIT), "async consumer did not start"

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:
            self.error = exc

    async def _run(self) -> None:
        async with AsyncGatewayClient(self._target) as client:
            sub = client.subscribe("rx", on_reconnect=self.reports.append, **self._kwargs)
            assert isinstance(sub, AsyncReconnectingSubscription)
            self.sub = sub
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            async for heap in sub:
                self._got(heap)

    @property
    def connected(self) -> bool:
        return self.sub is not None and self.sub.connected

    @property
    def reconnects(self) -> int:
        assert self.sub is not None
        return self.sub.reconnects

    def cancel(self) -> None:
        assert self._loop is not None and self.sub is not None
        if self._thread.is_alive():
            try:
                self._loop.call_soon_threadsafe(self.sub.cancel)
            except RuntimeError:  # the loop has just finished
                pass


CONSUMERS: dict[str, Callable[..., Consumer]] = {"sync": SyncConsumer, "async": AsyncConsumer}


# ------------------------------------------------------------------------------------------
# The daemon killed and restarted


class StatsWatcher:
    """A reconnecting sync stats watch in a thread, until stopped."""

    def __init__(self, target: str) -> None:
        self.updates: list[StatsUpdate] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._client = GatewayClient(target)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for update in self._client.watch_stats(["rx"], 0.1, reconnect=POLICY, timeout=4 * WAIT):
                self.updates.append(update)
                if self._stop.is_set():
                    return
        except BaseException as exc:
            self.error = exc
        finally:
            self._client.close()

    def stop(self) -> list[StatsUpdate]:
        """Stops after an update that follows the first one with a report."""

        def reported_and_more() -> bool:
            flags = [u.reconnect is not None for u in self.updates]
            return True in flags[:-1] or self.error is not None

        wait_until(reported_and_more, WAIT, "stats updates after the restart")
        self._stop.set()
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "stats watcher did not stop"
        assert self.error is None, repr(self.error)
        return self.updates


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sigkill_and_restart_on_the_same_port(
    tmp_path: Path, ports: tuple[int, int], feeder: Feeder, mode: str
) -> None:
    """The subscription reconnects by itself; the first heap after the outage carries one
    report whose times lie between what the test observed, whose last heap and heap counter
    are those of the last heap before the kill, and which says the daemon restarted (subscriber
    ids started again); sequence numbers start again from 1; every value is exact."""
    config = _config(*ports)
    first = Daemon(tmp_path, config, name="first").wait_ready()
    second: Daemon | None = None
    watcher = StatsWatcher(first.target) if mode == "sync" else None
    consumer = CONSUMERS[mode](first.target, reconnect=POLICY, queue_depth=4096)
    try:
        wait_until(lambda: len(consumer.heaps) >= 5, WAIT, "heaps before the kill")
        killed = time.monotonic()
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(WAIT)
        wait_until(lambda: not consumer.connected, WAIT, "the client to notice the kill")
        noticed = time.monotonic()
        before = len(consumer.heaps)
        time.sleep(0.3)  # an outage the feeder keeps sending through: heaps are lost
        restarted = time.monotonic()
        second = Daemon(tmp_path, config, name="second").wait_ready()
        assert second.target == first.target
        wait_until(lambda: len(consumer.heaps) >= before + 5, WAIT, "heaps after the restart")
        heaps = consumer.finish()
        updates = watcher.stop() if watcher is not None else []
    finally:
        consumer.cancel()
        first.close()
        if second is not None:
            assert second.terminate() == 0, second.log()

    old = [h for _, h in heaps[:before]]
    new = [h for _, h in heaps[before:]]
    back_at = heaps[before][0]
    # Each call numbers its heaps from 1 without gaps; the values are exact.
    assert [h.sequence for h in old] == list(range(1, len(old) + 1))
    assert [h.sequence for h in new] == list(range(1, len(new) + 1))
    assert all(h.dropped == 0 for h in old + new)
    old_index = [_index(h) for h in old]
    new_index = [_index(h) for h in new]
    assert old_index == list(range(old_index[0], old_index[0] + len(old)))
    assert new_index == list(range(new_index[0], new_index[0] + len(new)))
    assert new_index[0] > old_index[-1] + 1, "heaps sent during the outage cannot arrive"

    # One report, on the first heap after the outage, and the same one given to on_reconnect.
    assert [h.reconnect is not None for h in old + new] == [False] * len(old) + [True] + [False] * (
        len(new) - 1
    )
    report = new[0].reconnect
    assert report is not None and consumer.reports == [report]
    assert consumer.reconnects == 1
    assert report.code == grpc.StatusCode.UNAVAILABLE
    assert report.attempts >= 1
    assert report.last_sequence == old[-1].sequence
    assert report.last_cnt == old[-1].cnt
    # The heap counters say how many heaps were lost, as the indices do.
    assert new[0].cnt - report.last_cnt == new_index[0] - old_index[-1]
    assert (report.previous_subscriber_id, report.subscriber_id) == (1, 1)
    assert report.server_restarted is True
    # Broken no earlier than the kill and no later than the test saw it; back no earlier than
    # the second daemon started and no later than its first heap arrived.
    assert restarted - noticed <= report.downtime <= back_at - killed
    assert report.disconnected < report.reconnected

    if watcher is not None:
        reports = [u.reconnect for u in updates if u.reconnect is not None]
        assert len(reports) == 1, reports
        assert reports[0].code == grpc.StatusCode.UNAVAILABLE
        assert reports[0].server_restarted is None
        assert updates[-1].reconnect is None and "rx" in updates[-1].streams


# ------------------------------------------------------------------------------------------
# What ends a reconnecting call


@pytest.fixture
def daemon(tmp_path: Path, ports: tuple[int, int]) -> Iterator[Daemon]:
    """A daemon on the test's ports; it must exit 0 on SIGTERM."""
    with Daemon(tmp_path, _config(*ports)) as d:
        d.wait_ready()
        yield d
        assert d.terminate() == 0, d.log()


def test_short_deadline_ends_one_subscriber_and_not_the_others(
    daemon: Daemon, feeder: Feeder
) -> None:
    """A subscriber with a short deadline (sync and asyncio, reconnecting or not) gets
    DEADLINE_EXCEEDED, never retried; another subscriber keeps getting every heap, exactly."""
    with daemon.client() as client:
        steady = client.subscribe("rx", queue_depth=4096)
        short = client.subscribe("rx", timeout=1.0, reconnect=POLICY)
        wait_subscribers(client, "rx", 2)

        with pytest.raises(grpc.RpcError) as ended:
            for heap in short:
                _index(heap)
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        async def short_async() -> grpc.StatusCode:
            async with AsyncGatewayClient(daemon.target) as aclient:
                try:
                    async for heap in aclient.subscribe("rx", timeout=1.0):
                        _index(heap)
                except grpc.RpcError as exc:
                    return exc.code()  # type: ignore[no-any-return,attr-defined]
            raise AssertionError("the subscription ended without an error")

        assert asyncio.run(asyncio.wait_for(short_async(), WAIT)) == (
            grpc.StatusCode.DEADLINE_EXCEEDED
        )
        wait_subscribers(client, "rx", 1)
        assert daemon.proc.poll() is None

        # The steady subscriber got every heap, and still does.
        heaps: list[ReceivedHeap] = []
        timer = threading.Timer(WAIT, steady.cancel)
        timer.start()
        try:
            for heap in steady:
                heaps.append(heap)
                if len(heaps) >= 150:  # 1.5 s of heaps: past both deadlines
                    break
        finally:
            timer.cancel()
            steady.cancel()
        assert len(heaps) >= 150
        assert [h.sequence for h in heaps] == list(range(1, len(heaps) + 1))
        indices = [_index(h) for h in heaps]
        assert indices == list(range(indices[0], indices[0] + len(heaps)))


def test_not_found_is_never_retried(daemon: Daemon) -> None:
    """NOT_FOUND ends a reconnecting subscription at once (a retry loop would end with the
    overall deadline instead); the policy refuses to retry such codes at all."""
    with daemon.client() as client:
        sub = client.subscribe("nope", reconnect=POLICY, timeout=WAIT)
        with pytest.raises(grpc.RpcError) as ended:
            next(iter(sub))
        assert ended.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(ValueError):
            client.subscribe("rx", on_reconnect=print)
    for code in (
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    ):
        with pytest.raises(ValueError, match=code.name):
            ReconnectPolicy(retry_codes=frozenset({grpc.StatusCode.UNAVAILABLE, code}))


def test_exhausted_policy_raises_the_last_error(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens: a policy of 3 attempts makes 3 calls, then raises UNAVAILABLE."""
    policy = ReconnectPolicy(initial_backoff=0.01, max_backoff=0.02, max_attempts=3)
    target = f"127.0.0.1:{free_tcp_port()}"
    with caplog.at_level(logging.DEBUG, logger="spead2_gateway.client"):
        with GatewayClient(target) as client:
            sub = client.subscribe("rx", reconnect=policy, timeout=WAIT)
            with pytest.raises(grpc.RpcError) as ended:
                next(iter(sub))
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    retries = [r for r in caplog.records if "calling again" in r.getMessage()]
    assert len(retries) == 2
    assert any("giving up after 3 attempt(s)" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_cancel_ends_a_backoff_wait(caplog: pytest.LogCaptureFixture, mode: str) -> None:
    """cancel() during a 60 s backoff wait ends the iteration quietly, and at once."""
    policy = ReconnectPolicy(initial_backoff=60.0, max_backoff=60.0, jitter=0.0)
    with caplog.at_level(logging.DEBUG, logger="spead2_gateway.client"):
        consumer = CONSUMERS[mode](f"127.0.0.1:{free_tcp_port()}", reconnect=policy)
        wait_until(
            lambda: any("calling again in 60" in r.getMessage() for r in caplog.records),
            WAIT,
            "the first call to fail",
        )
        assert consumer.finish() == []


class _Unavailable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "gone"


@pytest.mark.parametrize(
    ("before", "after", "ids", "restarted"),
    [
        ("a", "b", (1, 7), True),  # a new daemon process, though the id grew
        ("a", "a", (7, 1), False),  # the same process, though the id fell
        ("", "", (7, 1), True),  # no instance ids: inferred from subscriber ids
    ],
)
def test_the_daemon_instance_id_decides_server_restarted(
    before: str, after: str, ids: tuple[int, int], restarted: bool
) -> None:
    r = _Reconnector(POLICY, None, "test", None)
    r.accepted(ids[0], before)
    assert r.failed(_Unavailable()) is not None
    r.accepted(ids[1], after)
    report = r.take_report()
    assert report is not None and report.server_restarted is restarted


def test_backoff_grows_to_its_cap_with_bounded_jitter() -> None:
    policy = ReconnectPolicy(initial_backoff=0.1, multiplier=3.0, max_backoff=2.0, jitter=0.25)
    middle = [policy.backoff(n, lambda a, b: (a + b) / 2) for n in range(1, 6)]
    assert middle == pytest.approx([0.1, 0.3, 0.9, 2.0, 2.0])
    assert policy.backoff(2, lambda a, b: a) == pytest.approx(0.3 * 0.75)
    assert policy.backoff(2, lambda a, b: b) == pytest.approx(0.3 * 1.25)
    assert policy.backoff(10_000, lambda a, b: a) == pytest.approx(2.0 * 0.75)


# ------------------------------------------------------------------------------------------
# Reconnecting to the same gateway: an in-process fake whose first call breaks.


def _heap(sequence: int, cnt: int) -> pb.Heap:
    item = pb.Item(id=0x1000, name="x", dtype="|u1", shape=[3], data=bytes([cnt, 1, 2]))
    return pb.Heap(stream="rx", cnt=cnt, sequence=sequence, items=[item])


class FakeGateway:
    """Subscribe: call k gets subscriber id k and two heaps; the first call then ends with
    UNAVAILABLE, the second call with OK."""

    def __init__(self) -> None:
        self.calls = 0
        handler = grpc.unary_stream_rpc_method_handler(
            self._subscribe,
            request_deserializer=pb.SubscribeRequest.FromString,
            response_serializer=pb.Heap.SerializeToString,
        )
        generic = grpc.method_handlers_generic_handler(
            "spead2.gateway.v1.Gateway", {"Subscribe": handler}
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((generic,))
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def _subscribe(self, request: pb.SubscribeRequest, context: Any) -> Iterator[pb.Heap]:
        self.calls += 1
        call = self.calls
        context.send_initial_metadata((("x-subscriber-id", str(call)),))
        yield _heap(1, 10 * call)
        yield _heap(2, 10 * call + 1)
        if call == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset (fake)")


@pytest.fixture
def fake() -> Iterator[FakeGateway]:
    f = FakeGateway()
    yield f
    f.server.stop(None)


def _check_same_gateway(heaps: list[ReceivedHeap], reports: list[Reconnect]) -> None:
    assert [(h.sequence, h.cnt) for h in heaps] == [(1, 10), (2, 11), (1, 20), (2, 21)]
    assert [int(h["x"][0]) for h in heaps] == [10, 11, 20, 21]
    assert [h.reconnect for h in heaps[:2] + heaps[3:]] == [None, None, None]
    report = heaps[2].reconnect
    assert report is not None and reports == [report]
    assert (report.code, report.details) == (grpc.StatusCode.UNAVAILABLE, "connection reset (fake)")
    assert (report.last_sequence, report.last_cnt, report.attempts) == (2, 11, 1)
    assert (report.previous_subscriber_id, report.subscriber_id) == (1, 2)
    assert report.server_restarted is False
    assert report.downtime >= 0


def test_reconnect_to_the_same_gateway_sync(fake: FakeGateway) -> None:
    """Not a restart (the subscriber id grew); the call's normal end ends the iteration."""
    reports: list[Reconnect] = []
    with GatewayClient(fake.target) as client:
        sub = client.subscribe("rx", reconnect=POLICY, on_reconnect=reports.append, timeout=WAIT)
        heaps = list(sub)
    _check_same_gateway(heaps, reports)
    assert fake.calls == 2


def test_reconnect_to_the_same_gateway_async(fake: FakeGateway) -> None:
    reports: list[Reconnect] = []

    async def run() -> list[ReceivedHeap]:
        async with AsyncGatewayClient(fake.target) as client:
            sub = client.subscribe(
                "rx", reconnect=POLICY, on_reconnect=reports.append, timeout=WAIT
            )
            return [heap async for heap in sub]

    _check_same_gateway(asyncio.run(run()), reports)
    assert fake.calls == 2
