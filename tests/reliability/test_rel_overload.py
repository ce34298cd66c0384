"""Overload: a sender with no rate limit against a daemon with a 4-heap ring, for 5 seconds.

The daemon decodes and fans out every heap in Python, so a sender with no rate limit (our
spead2, 64 KiB heaps in 8972-byte packets) outruns it several times over. Two subscribers:
one reads as fast as it can (in this process), one never reads (queue depth 8). The test
asserts that the daemon

* stays up and keeps answering RPCs (health SERVING, GetStream) during the overload,
* stays within a memory bound derived from its configuration (below),
* counts every loss where it happened: packets the kernel dropped because the socket was
  full (``/proc/net/udp``: outside the daemon's metrics), ring full
  (``receive_worker_blocked_total``), heaps left incomplete by those losses
  (``receive_discarded_total{reason="incomplete_heap"}``, as ``contiguous_only`` is on) and
  heaps a subscriber's queue could not hold (``subscriber_dropped_heaps_total``),
* keeps its accounting identities exact, and delivers exact heaps after the overload.

Memory bound: peak RSS (VmHWM) <= baseline RSS (measured after start-up, with both
subscribers connected and 50 heaps through) + heap memory + ALLOWANCE, where heap memory =
(ring_heaps + max_heaps + memory pool max_free + 2 in the reader's hands) x heap size +
(each subscriber's queue depth) x heap size + GRPC_WINDOW per subscriber (HTTP/2 buffers).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_harness import Daemon, wait_subscribers, wait_until
from rel_payload import payload
from rel_support import (
    daemon_config,
    daemon_on_free_port,
    metric,
    metric_or_zero,
    ours_python,
    report,
    rss_kib,
    run_sender,
    socket_drops,
    start_sender,
)
from spead2_gateway.client import GatewayClient

SIZE = 65536
PACKET = "8972"
RING_HEAPS = 4
MAX_HEAPS = 4
POOL_MAX_FREE = 8
FAST_DEPTH = 64
STALLED_DEPTH = 8
OVERLOAD_SECONDS = 5.0
MiB = 1024 * 1024
GRPC_WINDOW = 8 * MiB
ALLOWANCE = 64 * MiB
"""Python, grpc and allocator slack on top of the measured baseline."""


def _config(port: int) -> str:
    return daemon_config(
        port,
        queue_depth=FAST_DEPTH,
        stream=f"""max_heaps = {MAX_HEAPS}
ring_heaps = {RING_HEAPS}

[receive.streams.memory_pool]
lower = 0
upper = {2 * SIZE}
max_free = {POOL_MAX_FREE}
initial = {POOL_MAX_FREE}
""",
    )


def memory_bound(baseline: int) -> int:
    """The RSS bound in bytes for a measured baseline in bytes (see the module docstring)."""
    heap_slots = RING_HEAPS + MAX_HEAPS + POOL_MAX_FREE + 2
    queues = FAST_DEPTH + STALLED_DEPTH
    return baseline + (heap_slots + queues) * SIZE + 2 * GRPC_WINDOW + ALLOWANCE


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, int]]:
    yield from daemon_on_free_port(tmp_path, _config)


class FastReader:
    """A subscriber reading as fast as it can, keeping one small record per heap."""

    def __init__(self, client: GatewayClient) -> None:
        self.sub = client.subscribe("rx")
        self.records: list[tuple[int, int, int, bool]] = []  # sequence, dropped, index, exact
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for heap in self.sub:
                if heap.end_of_stream:
                    self.records.append((heap.sequence, heap.dropped, -1, True))
                    return
                index = int(heap["index"])
                exact = heap["payload"].tobytes() == payload(index, SIZE).tobytes()
                self.records.append((heap.sequence, heap.dropped, index, exact))
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        self.sub.cancel()
        assert not alive, f"the fast subscriber did not finish ({len(self.records)} heaps)"
        assert self.error is None, repr(self.error)


class Watch:
    """Samples the daemon's RSS and times health and GetStream calls while it is loaded."""

    def __init__(self, d: Daemon, client: GatewayClient) -> None:
        self.d = d
        self.client = client
        self.rss: list[int] = []
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.rss.append(rss_kib(self.d.proc.pid)[0])
            start = time.monotonic()
            try:
                health = self.client.health()
                self.client.get_stream("rx")
            except Exception as exc:  # a failure to answer is what is being measured
                self.failures.append(repr(exc))
                continue
            self.latencies.append(time.monotonic() - start)
            if health != "SERVING":
                self.failures.append(f"health {health}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _stalled_client(d: Daemon) -> GatewayClient:
    # No BDP probing: the call's flow-control window stays small, so heaps back up in the
    # daemon's queue for this subscriber instead of in HTTP/2 buffers.
    return d.client(options=[("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0)])


def _settle(d: Daemon, port: int, sent: int) -> tuple[str, int]:
    """Until every packet sent is either counted by the daemon or dropped by the socket."""
    state: dict[str, Any] = {}

    def settled() -> bool:
        text = d.scrape()
        drops = socket_drops(port)
        state.update(text=text, drops=drops)
        return metric(text, "spead2_gateway_receive_packets_total", stream="rx") + drops == sent

    wait_until(settled, 30.0, "packets counted or dropped = packets sent", step=0.2)
    return state["text"], state["drops"]


def test_overload(daemon: tuple[Daemon, int]) -> None:
    d, port = daemon
    size_args = ("--size", str(SIZE), "--packet", PACKET)
    with d.client() as client, d.client() as fast_client, _stalled_client(d) as stalled_client:
        fast = FastReader(fast_client)
        stalled = stalled_client.subscribe("rx", queue_depth=STALLED_DEPTH)
        wait_subscribers(client, "rx", 2)
        fast_id, stalled_id = fast.sub.subscriber_id, stalled.subscriber_id

        warm = run_sender(ours_python(), port, "--heaps", "50", "--rate", "20e6", *size_args)
        wait_until(lambda: len(fast.records) >= 50, 30.0, "the warm-up heaps")
        time.sleep(0.5)
        baseline_kib = rss_kib(d.proc.pid)[0]

        watch = Watch(d, client)
        with start_sender(
            ours_python(),
            port,
            *("--duration", str(OVERLOAD_SECONDS), "--rate", "0"),
            *("--first-index", "1000", "--cnt-start", "1000", *size_args),
        ) as sender:
            flood = sender.expect("done", timeout=OVERLOAD_SECONDS + 60)
            assert sender.finish() == 0
        watch.stop()
        assert d.proc.poll() is None, f"the daemon died:\n{d.log()}"
        sent = warm["packets"] + flood["packets"]
        text, sock_drops = _settle(d, port, sent)
        wait_until(
            lambda: _fast_queue(client, fast_id) == 0, 30.0, "the fast subscriber to catch up"
        )

        # After the overload: heaps at a sane rate arrive, exact.
        final = run_sender(
            ours_python(),
            port,
            *("--heaps", "20", "--first-index", "5000", "--cnt-start", "100000"),
            *("--rate", "20e6", "--stop", *size_args),
        )
        fast.join(60.0)
        assert client.health() == "SERVING"
        sent += final["packets"]
        text, sock_drops = _settle(d, port, sent)
        stalled_stats = next(
            s for s in client.get_stream("rx").stats.subscribers if s["id"] == stalled_id
        )
        stalled.cancel()
    peak_rss_kib = rss_kib(d.proc.pid)[1]

    m = {
        name: metric(text, f"spead2_gateway_{name}", stream="rx")
        for name in (
            "receive_heaps_total",
            "receive_packets_total",
            "receive_incomplete_heaps_evicted_total",
            "receive_incomplete_heaps_flushed_total",
            "receive_worker_blocked_total",
            "receive_decode_errors_total",
            "published_heaps_total",
            "subscriber_dropped_heaps_all_total",
            "ring_heaps",
        )
    }
    incomplete = metric_or_zero(
        text, "spead2_gateway_receive_discarded_total", stream="rx", reason="incomplete_heap"
    )
    published = m["published_heaps_total"]

    # Every packet: counted by the daemon or dropped by the kernel (socket full).
    assert m["receive_packets_total"] + sock_drops == sent
    # Every heap spead2 produced: published, dropped as incomplete, or undecodable.
    assert m["ring_heaps"] == 0
    assert m["receive_heaps_total"] == published + incomplete + m["receive_decode_errors_total"]
    assert (
        m["receive_incomplete_heaps_evicted_total"] + m["receive_incomplete_heaps_flushed_total"]
        == incomplete
    )
    # Every heap published: delivered to the fast subscriber or counted as dropped for it.
    last_sequence, last_dropped = fast.records[-1][0], fast.records[-1][1]
    assert last_sequence == published
    assert len(fast.records) + last_dropped == published
    assert all(exact for _, _, _, exact in fast.records), "a delivered heap had wrong values"
    assert [r[2] for r in fast.records[-21:-1]] == list(range(5000, 5020))
    # ... and for the stalled one: delivered (into HTTP/2 buffers) + dropped + queued.
    s = stalled_stats
    assert s["delivered_heaps"] + s["dropped_heaps"] + s["queued_heaps"] == published
    assert m["subscriber_dropped_heaps_all_total"] == last_dropped + s["dropped_heaps"]

    # The overload happened, and its losses landed in the right counters.
    assert sock_drops > 0, "the socket never overflowed: the sender did not overload the daemon"
    assert m["receive_worker_blocked_total"] > 0, "the ring never filled"
    assert incomplete > 0
    assert s["dropped_heaps"] > 0

    # Up and answering throughout, within the memory bound.
    assert watch.failures == []
    bound = memory_bound(baseline_kib * 1024)
    assert peak_rss_kib * 1024 <= bound
    report(
        "overload",
        seconds=OVERLOAD_SECONDS,
        heaps_sent=flood["heaps"],
        packets_sent=flood["packets"],
        offered_MBps=round(flood["heaps"] * SIZE / OVERLOAD_SECONDS / 1e6),
        socket_drops=sock_drops,
        heaps_total=int(m["receive_heaps_total"]),
        overload_factor=round(
            flood["heaps"] / (m["receive_heaps_total"] - warm["heaps"] - final["heaps"] - 1), 1
        ),
        published=int(published),
        incomplete_dropped=int(incomplete),
        worker_blocked=int(m["receive_worker_blocked_total"]),
        fast_delivered=len(fast.records),
        fast_dropped=last_dropped,
        stalled_delivered=s["delivered_heaps"],
        stalled_dropped=s["dropped_heaps"],
        rpc_checks=len(watch.latencies),
        rpc_max_ms=round(1000 * max(watch.latencies), 1),
        baseline_MiB=round(baseline_kib / 1024, 1),
        peak_MiB=round(peak_rss_kib / 1024, 1),
        max_sampled_MiB=round(max(watch.rss) / 1024, 1),
        bound_MiB=round(bound / MiB, 1),
    )


def _fast_queue(client: GatewayClient, sub_id: int) -> int:
    for s in client.get_stream("rx").stats.subscribers:
        if s["id"] == sub_id:
            return int(s["queued_heaps"])
    return 0
