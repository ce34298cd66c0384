"""A sender killed mid-stream (SIGKILL), then a new sender: the receiver carries on.

Sender A sends ``A_HEAPS`` complete heaps, then the first half of the packets of one more
heap, and is killed with SIGKILL (``rel_sender.py --partial``: the kill lands mid-heap every
time). Sender B then starts from scratch, with heap cnts starting again from 1 (a restarted
process) or continuing after A's, and index values A never used, so that a heap mixing A's
and B's packets could not pass the value check. Expected: A's complete heaps and all of B's
arrive exact, the half heap is reported once, as incomplete (evicted by B's heaps), and
nothing else is lost. A last test kills a sender at full speed at an arbitrary moment.

The gateway daemon runs on the host's loopback (no faults are injected, so no namespace).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from gateway_harness import Daemon, collect, metric_value, wait_subscribers, wait_until
from rel_payload import payload
from rel_support import (
    LiveReceiver,
    daemon_config,
    daemon_on_free_port,
    metric,
    ours_python,
    peer_python,
    report,
    run_sender,
    start_sender,
)
from spead2_gateway.client import ReceivedHeap
from util.peer import Peer
from util.ports import free_tcp_port

A_HEAPS = 10
B_HEAPS = 20
B_FIRST_INDEX = 100
SIZE = 16384
RATE = "20e6"
MAX_HEAPS = 4


def _config(port: int) -> str:
    return daemon_config(
        port,
        stream=f"""max_heaps = {MAX_HEAPS}
ring_heaps = 64
contiguous_only = false
""",
    )


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, int]]:
    yield from daemon_on_free_port(tmp_path, _config)


def _kill_mid_heap(python: tuple[str, dict[str, str]], port: int) -> dict[str, Any]:
    """Sender A: complete heaps, half a heap, SIGKILL. Returns its ``partial`` report."""
    sender = start_sender(
        python,
        port,
        *("--heaps", str(A_HEAPS), "--size", str(SIZE), "--rate", RATE, "--partial"),
    )
    with sender:
        partial = sender.expect("partial")
        sender.kill(signal.SIGKILL)
        assert sender.finish() == -signal.SIGKILL
    assert partial["heaps"] == A_HEAPS and 0 < partial["sent_packets"] < partial["heap_packets"]
    return partial


def _b_args(cnts: str) -> list[str]:
    start = 1 if cnts == "restart" else A_HEAPS + 2
    return [
        *("--heaps", str(B_HEAPS), "--first-index", str(B_FIRST_INDEX)),
        *("--cnt-start", str(start), "--size", str(SIZE), "--rate", RATE, "--stop"),
    ]


def _exact(heap: ReceivedHeap) -> bool:
    index = int(heap["index"])
    return heap["payload"].tobytes() == payload(index, SIZE).tobytes()


@pytest.mark.parametrize(
    ("sender", "cnts"),
    [("ours", "restart"), ("ours", "continue"), ("spead2", "restart")],
)
def test_gateway_sender_killed_mid_heap(
    sender: str, cnts: str, daemon: tuple[Daemon, int], peer: Peer
) -> None:
    d, port = daemon
    python = ours_python() if sender == "ours" else peer_python(peer)
    with d.client() as client:
        every = client.subscribe("rx", include_incomplete=True)
        complete = client.subscribe("rx")
        wait_subscribers(client, "rx", 2)
        results: dict[str, list[ReceivedHeap]] = {}

        def gather(name: str, sub: Any) -> None:
            results[name] = collect(sub, 1, 60.0)

        threads = [
            threading.Thread(target=gather, args=(n, s), daemon=True)
            for n, s in (("every", every), ("complete", complete))
        ]
        for t in threads:
            t.start()
        partial = _kill_mid_heap(python, port)
        done = run_sender(python, port, *_b_args(cnts))
        for t in threads:
            t.join(60)
        assert d.proc.poll() is None, "the daemon died"
        assert client.health() == "SERVING"
        assert client.health("receive/rx") == "SERVING"
    text = d.scrape()

    indices = list(range(A_HEAPS)) + list(range(B_FIRST_INDEX, B_FIRST_INDEX + B_HEAPS))
    for name in ("every", "complete"):
        heaps = results[name]
        assert [h.sequence for h in heaps] == list(range(1, len(heaps) + 1))
        assert heaps[-1].end_of_stream
        whole = [h for h in heaps[:-1] if not h.incomplete]
        assert [int(h["index"]) for h in whole] == indices
        assert all(_exact(h) for h in whole)
    assert [h.cnt for h in results["every"] if h.incomplete] == [partial["cnt"]]
    assert not any(h.incomplete for h in results["complete"])

    packets = partial["packets"] + done["packets"]
    stream = {"stream": "rx"}
    assert metric(text, "spead2_gateway_receive_packets_total", **stream) == packets
    assert metric(text, "spead2_gateway_receive_incomplete_heaps_evicted_total", **stream) == 1
    heaps_total = metric(text, "spead2_gateway_receive_heaps_total", **stream)
    assert heaps_total == A_HEAPS + 1 + B_HEAPS + 1  # with the half heap and the stop heap
    assert metric(text, "spead2_gateway_published_heaps_total", **stream) == heaps_total
    assert metric(text, "spead2_gateway_receive_restarts_total", **stream) == 0
    report(
        f"sender_restart/gateway/{sender}_{cnts}",
        a_heaps=A_HEAPS,
        partial_packets=f"{partial['sent_packets']}/{partial['heap_packets']}",
        b_heaps=B_HEAPS,
        packets=int(packets),
        heaps_total=int(heaps_total),
        incomplete_evicted=1,
    )


@pytest.mark.parametrize("cnts", ["restart", "continue"])
def test_library_sender_killed_mid_heap(cnts: str, ours: ModuleType) -> None:
    """The same with our ``spead2.recv.Stream`` as the receiver."""
    receiver = LiveReceiver(ours, SIZE, {"max_heaps": MAX_HEAPS})
    partial = _kill_mid_heap(ours_python(), receiver.port)
    done = run_sender(ours_python(), receiver.port, *_b_args(cnts))
    received = receiver.finish()
    assert received.incomplete == [partial["cnt"]]
    assert len(received.complete) == A_HEAPS + B_HEAPS
    assert all(received.exact.values())
    stats = received.stats
    assert stats["packets"] == partial["packets"] + done["packets"]
    assert stats["incomplete_heaps_evicted"] == 1
    assert stats["heaps"] == A_HEAPS + 1 + B_HEAPS
    report(
        f"sender_restart/library/{cnts}",
        packets=stats["packets"],
        heaps=stats["heaps"],
        incomplete_evicted=stats["incomplete_heaps_evicted"],
    )


def test_gateway_sender_killed_at_full_speed(daemon: tuple[Daemon, int]) -> None:
    """Sender A streams 64 KiB heaps at 40 MB/s and is killed once the subscriber has seen 30
    of them, wherever it is; B then sends 20 heaps. The daemon accounts for every heap it
    produced (published = heaps), everything delivered complete is exact, and B's heaps
    all arrive."""
    d, port = daemon
    size = 65536
    b_first = 10_000  # far beyond any index A reaches
    with d.client() as client:
        sub = client.subscribe("rx", include_incomplete=True)
        wait_subscribers(client, "rx", 1)
        heaps: list[ReceivedHeap] = []
        seen_30 = threading.Event()

        def gather() -> None:
            timer = threading.Timer(60.0, sub.cancel)
            timer.start()
            try:
                for heap in sub:
                    heaps.append(heap)
                    if len(heaps) >= 30:
                        seen_30.set()
                    if heap.end_of_stream:
                        return
            finally:
                timer.cancel()

        thread = threading.Thread(target=gather, daemon=True)
        thread.start()
        a = start_sender(
            ours_python(), port, "--duration", "30", "--size", str(size), "--rate", "40e6"
        )
        with a:
            assert seen_30.wait(30), "the first sender's heaps did not arrive"
            a.kill(signal.SIGKILL)
            assert a.finish() == -signal.SIGKILL
        time.sleep(0.2)
        done = run_sender(
            ours_python(),
            port,
            *("--heaps", str(B_HEAPS), "--first-index", str(b_first), "--cnt-start", "1"),
            *("--size", str(size), "--rate", RATE, "--stop"),
        )
        thread.join(60)
        assert heaps and heaps[-1].end_of_stream
        assert client.health() == "SERVING"
    text = d.scrape()
    whole = [h for h in heaps[:-1] if not h.incomplete]
    wrong = [
        h.cnt for h in whole if h["payload"].tobytes() != payload(int(h["index"]), size).tobytes()
    ]
    assert wrong == []
    b_indices = [int(h["index"]) for h in whole if int(h["index"]) >= b_first]
    assert b_indices == list(range(b_first, b_first + B_HEAPS))
    assert done["heaps"] == B_HEAPS
    stream = {"stream": "rx"}
    heaps_total = metric(text, "spead2_gateway_receive_heaps_total", **stream)
    incomplete = metric(text, "spead2_gateway_receive_incomplete_heaps_evicted_total", **stream)
    assert heaps_total == len(heaps)
    assert metric(text, "spead2_gateway_published_heaps_total", **stream) == heaps_total
    assert incomplete == sum(h.incomplete for h in heaps)
    assert metric_value(text, "spead2_gateway_subscriber_dropped_heaps_all_total", **stream) == 0
    report(
        "sender_restart/gateway/killed_at_full_speed",
        heaps_delivered=len(heaps),
        complete=len(whole),
        incomplete=int(incomplete),
    )


def test_gateway_tcp_sender_killed_mid_heap(tmp_path: Path) -> None:
    """Over TCP, the kill closes the connection: the daemon's spead2 stream ends, flushing
    the half heap as incomplete, and is reopened for the next sender, whose heaps arrive
    exact."""
    port = free_tcp_port()
    config = f"""
[server]
listen = "127.0.0.1:0"
grace_period = 2.0

[metrics]
listen = "127.0.0.1:0"

[subscribe]
default_queue_depth = 1024

[[receive.streams]]
name = "rx"
transport = "tcp"
port = {port}
max_heaps = {MAX_HEAPS}
ring_heaps = 64
contiguous_only = false
"""
    python = ours_python()
    with Daemon(tmp_path, config) as d:
        d.wait_ready()
        with d.client() as client:
            sub = client.subscribe("rx", include_incomplete=True)
            wait_subscribers(client, "rx", 1)
            results: list[list[ReceivedHeap]] = []
            thread = threading.Thread(
                target=lambda: results.append(collect(sub, 1, 60.0)), daemon=True
            )
            thread.start()
            a = start_sender(
                python,
                port,
                *("--transport", "tcp", "--heaps", str(A_HEAPS), "--size", str(SIZE)),
                "--partial",
            )
            with a:
                partial = a.expect("partial")
                a.kill(signal.SIGKILL)
                assert a.finish() == -signal.SIGKILL
            done = run_sender(python, port, "--transport", "tcp", *_b_args("restart"))
            thread.join(60)
            assert results, "the subscriber did not finish"
            wait_until(lambda: client.get_stream("rx").stats.restarts >= 2, 10.0, "two reopenings")
            assert client.health() == "SERVING"
        text = d.scrape()
        assert d.terminate() == 0, d.log()
    heaps = results[0]
    indices = list(range(A_HEAPS)) + list(range(B_FIRST_INDEX, B_FIRST_INDEX + B_HEAPS))
    assert [h.sequence for h in heaps] == list(range(1, len(heaps) + 1))
    whole = [h for h in heaps[:-1] if not h.incomplete]
    assert [int(h["index"]) for h in whole] == indices
    assert all(_exact(h) for h in whole)
    assert [(h.cnt, h.incomplete) for h in heaps if h.incomplete] == [(partial["cnt"], True)]
    stream = {"stream": "rx"}
    assert metric(text, "spead2_gateway_receive_packets_total", **stream) == (
        partial["packets"] + done["packets"]
    )
    assert metric(text, "spead2_gateway_receive_incomplete_heaps_flushed_total", **stream) == 1
    assert metric(text, "spead2_gateway_receive_incomplete_heaps_evicted_total", **stream) == 0
    report(
        "sender_restart/gateway/tcp_killed_mid_heap",
        partial_packets=f"{partial['sent_packets']}/{partial['heap_packets']}",
        delivered=len(heaps),
        incomplete_flushed=1,
        restarts=int(metric(text, "spead2_gateway_receive_restarts_total", **stream)),
    )
