"""Packet loss, duplication and reordering on the way to the gateway daemon.

The daemon, the sender and two gRPC subscribers (``rel_subscriber.py``: one takes incomplete
heaps, one does not) all run as processes started from the thread of a private network
namespace, so they share its loopback and nothing else; the test reads the daemon's metrics
over HTTP from that thread. Faults come from the user-space proxy (deterministic; the exact
datagrams it forwarded are replayed into spead2 4.5.1 and into our library as the reference),
from the kernel (``tc`` ``u32`` drop of chosen packets), or from ``netem`` where it exists.

The receive stream keeps incomplete heaps (``contiguous_only = false``) and does not stop at
the stop heap, which subscribers see as the end-of-stream heap. The last heaps before it are
never damaged, so every incomplete heap has been evicted (and delivered) by then.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from gateway_harness import Daemon
from rel_support import (
    Faults,
    JsonProcess,
    Proxy,
    ProxyRecord,
    daemon_config,
    daemon_in,
    data_packet_offsets,
    in_netns,
    kernel_drop_setup,
    metric,
    metric_or_zero,
    metrics,
    netem_setup,
    ours_python,
    peer_python,
    pinned_cpu,
    report,
    require_netem,
    require_tc,
    run_sender,
    socket_drops,
    start_subscriber,
    stop_packet,
    tc,
    tc_dropped,
    wait_metric,
)
from util import jobs
from util.peer import Peer

PORT = 7148
"""The SPEAD port inside the namespace (a fresh namespace has every port free)."""
HEAPS = 48
SIZE = 8192
RATE = "20e6"
MAX_HEAPS = 4
STOP_CNT = HEAPS + 1
CLEAN_TAIL = MAX_HEAPS + 2
"""Undamaged heaps before the stop heap: enough to evict every incomplete heap."""
DROP_REASONS = ("duplicate", "out_of_order", "incomplete_heap", "after_stop")


def _config(allow_out_of_order: bool = False) -> str:
    return daemon_config(
        PORT,
        stream=f"""host = "127.0.0.1"
max_heaps = {MAX_HEAPS}
ring_heaps = 64
contiguous_only = false
allow_out_of_order = {str(allow_out_of_order).lower()}
""",
    )


@contextlib.contextmanager
def _subscribers(daemon: Daemon) -> Iterator[tuple[JsonProcess, JsonProcess]]:
    """Two subscriber processes on ``rx``: with and without incomplete heaps."""
    with (
        start_subscriber(daemon.target, "rx", SIZE, "--include-incomplete") as every,
        start_subscriber(daemon.target, "rx", SIZE) as complete,
    ):
        every.expect("subscribed")
        complete.expect("subscribed")
        wait_metric(daemon, "spead2_gateway_subscribers", 2.0, stream="rx")
        yield every, complete


def _heaps_of(process: JsonProcess) -> list[dict[str, Any]]:
    done = process.expect("done")
    assert done["error"] is None, done["error"]
    heaps: list[dict[str, Any]] = done["heaps"]
    return heaps


def _check_subscribers(
    every: list[dict[str, Any]], complete: list[dict[str, Any]], stop_cnt: int | None
) -> None:
    """Both views are gap-free, every complete heap is exact, the complete-only view is the
    other without its incomplete heaps, and each ends with the end-of-stream heap (whose cnt
    is ``stop_cnt`` unless None)."""
    for heaps in (every, complete):
        assert [h["sequence"] for h in heaps] == list(range(1, len(heaps) + 1))
        assert all(h["dropped"] == 0 for h in heaps)
        assert heaps[-1]["end"]
        assert stop_cnt is None or heaps[-1]["cnt"] == stop_cnt
        wrong = [h["cnt"] for h in heaps[:-1] if not h["incomplete"] and not h["exact"]]
        assert wrong == [], f"complete heaps with wrong values: {wrong}"
    assert [h["cnt"] for h in complete] == [h["cnt"] for h in every if not h["incomplete"]]
    assert not any(h["incomplete"] for h in complete)


def _check_metrics(text: str, every: list[dict[str, Any]]) -> dict[str, float]:
    """The daemon's own identities: heaps = published = delivered, incomplete heaps were all
    evicted, no subscriber drops, no decode errors. Returns the figures."""
    m = {
        name: metric(text, f"spead2_gateway_{name}", stream="rx")
        for name in (
            "receive_heaps_total",
            "receive_packets_total",
            "receive_incomplete_heaps_evicted_total",
            "receive_incomplete_heaps_flushed_total",
            "receive_decode_errors_total",
            "published_heaps_total",
            "subscriber_dropped_heaps_all_total",
        )
    }
    for reason in DROP_REASONS:
        m[f"discarded_{reason}"] = metric_or_zero(
            text, "spead2_gateway_receive_discarded_total", stream="rx", reason=reason
        )
    incomplete = sum(h["incomplete"] for h in every)
    assert m["receive_heaps_total"] == m["published_heaps_total"] == len(every)
    assert m["receive_incomplete_heaps_evicted_total"] == incomplete
    assert m["receive_incomplete_heaps_flushed_total"] == 0
    assert m["receive_decode_errors_total"] == 0
    assert m["subscriber_dropped_heaps_all_total"] == 0
    return m


# ------------------------------------------------------------------------------------------
# User-space faults


@pytest.mark.parametrize("sender", ["ours", "spead2"])
def test_gateway_proxy_faults(sender: str, tmp_path: Path, peer: Peer) -> None:
    """Loss (4 % of packets and one whole heap), duplication (20 %) and interleaving of three
    heaps: the subscribers see exactly the heaps spead2 4.5.1 produces from the same
    datagrams, and the metrics count exactly what our library counts from them."""
    python = ours_python() if sender == "ours" else peer_python(peer)
    faults = Faults(
        range(2, HEAPS + 1 - CLEAN_TAIL),  # the first heap carries the descriptors
        seed=3,
        loss=0.04,
        duplicate=0.2,
        interleave=3,
        lose_heaps=frozenset({20}),
    )
    cpu = pinned_cpu()

    def body() -> tuple[ProxyRecord, dict[str, Any], list[Any], list[Any], str]:
        with daemon_in(tmp_path, _config(), "rx") as daemon, _subscribers(daemon) as subs:
            proxy = Proxy(faults, ("127.0.0.1", PORT), STOP_CNT, cpu).start()
            try:
                done = run_sender(
                    python,
                    proxy.port,
                    *("--heaps", str(HEAPS), "--size", str(SIZE), "--rate", RATE),
                    *("--stop", "--cpu", str(cpu)),
                )
                record = proxy.wait(30.0)
            finally:
                proxy.close()
            every, complete = (_heaps_of(p) for p in subs)
            text = metrics(daemon)
            assert daemon.terminate() == 0, daemon.log()
        return record, done, every, complete, text

    record, done, every, complete, text = in_netns(body)
    assert record.received == done["packets"]
    assert record.lost and record.duplicated and 20 in record.wholly_lost
    _check_subscribers(every, complete, STOP_CNT)
    figures = _check_metrics(text, every)

    config = {"max_heaps": MAX_HEAPS, "stop_on_stop_item": False}
    job: jobs.Job = (
        "receive_packets",
        {"packets": record.forwarded, "config": config, "ring": {"contiguous_only": False}},
    )
    (reference,) = jobs.run_peer(peer.python, [job])
    ours_replay = jobs.run_ours(job)
    expected = [(h["cnt"], h["type"] == "IncompleteHeap") for h in reference["heaps"]]
    assert [(h["cnt"], h["incomplete"]) for h in every] == expected
    assert not {h["cnt"] for h in every if not h["incomplete"]} & record.damaged
    ref = reference["stats"]
    assert figures["receive_heaps_total"] == ref["heaps"]
    assert figures["receive_packets_total"] == ref["packets"] == len(record.forwarded)
    assert figures["receive_incomplete_heaps_evicted_total"] == ref["incomplete_heaps_evicted"]
    assert ref["incomplete_heaps_flushed"] == 0
    for reason in DROP_REASONS:
        assert figures[f"discarded_{reason}"] == ours_replay["drops"].get(reason, 0), reason
    report(
        f"gateway/proxy/{sender}_sender",
        forwarded=len(record.forwarded),
        lost=len(record.lost),
        duplicated=len(record.duplicated),
        damaged_heaps=len(record.damaged),
        delivered=len(every),
        incomplete=sum(h["incomplete"] for h in every),
        **{k: int(v) for k, v in figures.items()},
    )


# ------------------------------------------------------------------------------------------
# Kernel faults


def test_gateway_kernel_drops_chosen_packets(tmp_path: Path, ours: ModuleType) -> None:
    """tc drops the third packet of every heap whose cnt is 2 mod 8: exactly those heaps
    reach subscribers as incomplete, the metrics count exactly those packets and heaps.

    Out-of-order packets are allowed here: with a root qdisc on lo, whichever CPU happens to
    run the qdisc transmits the packet, so the daemon's gRPC traffic can make loopback
    reorder SPEAD packets, which in-order mode would count as more damage."""
    require_tc()
    offsets = data_packet_offsets(ours, SIZE)
    heaps = 40
    damaged = {cnt for cnt in range(1, heaps + 1) if cnt % 8 == 2}
    assert max(damaged) <= heaps - CLEAN_TAIL

    def body() -> tuple[dict[str, Any], list[Any], list[Any], str, int, int]:
        kernel_drop_setup(PORT, 8, 2, offsets[2])
        with (
            daemon_in(tmp_path, _config(allow_out_of_order=True), "rx") as daemon,
            _subscribers(daemon) as subs,
        ):
            done = run_sender(
                ours_python(),
                PORT,
                *("--heaps", str(heaps), "--size", str(SIZE), "--rate", RATE, "--stop"),
            )
            every, complete = (_heaps_of(p) for p in subs)
            text = metrics(daemon)
            dropped = tc_dropped()
            sock = socket_drops(PORT, netns_thread=True)
            assert daemon.terminate() == 0, daemon.log()
        return done, every, complete, text, dropped, sock

    done, every, complete, text, dropped, sock = in_netns(body)
    assert sock == 0
    assert dropped == len(damaged)
    assert [h["cnt"] for h in every if h["incomplete"]] == sorted(damaged)
    assert sorted(h["cnt"] for h in complete[:-1]) == [
        c for c in range(1, heaps + 1) if c not in damaged
    ]
    _check_subscribers(every, complete, heaps + 1)
    figures = _check_metrics(text, every)
    assert figures["receive_packets_total"] == done["packets"] - dropped
    assert figures["discarded_out_of_order"] == 0
    report(
        "gateway/kernel/u32_drop",
        heaps=heaps,
        packets_sent=done["packets"],
        kernel_dropped=dropped,
        delivered=len(every),
        incomplete=sum(h["incomplete"] for h in every),
        **{k: int(v) for k, v in figures.items()},
    )


def test_gateway_netem_loss(tmp_path: Path, ours: ModuleType) -> None:
    """netem loses 5 % of all packets on the namespace's loopback (SPEAD, and gRPC, which
    retransmits): every complete heap delivered is exact, and every packet sent is counted
    by the daemon or by netem or the socket as dropped."""
    require_netem()
    heaps = 200

    def body() -> tuple[dict[str, Any], list[Any], list[Any], str, int, int]:
        with (
            daemon_in(tmp_path, _config(allow_out_of_order=True), "rx") as daemon,
            _subscribers(daemon) as subs,
        ):
            netem_setup("loss", "5%")
            done = run_sender(
                ours_python(),
                PORT,
                *("--heaps", str(heaps), "--size", str(SIZE), "--rate", "10e6"),
            )
            _wait_packets_quiet(daemon)
            dropped = tc_dropped("1:")
            tc("qdisc", "del", "dev", "lo", "root")
            sock_dropped = socket_drops(PORT, netns_thread=True)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(stop_packet(ours, heaps + 1), ("127.0.0.1", PORT))
            every, complete = (_heaps_of(p) for p in subs)
            text = metrics(daemon)
            assert daemon.terminate() == 0, daemon.log()
        return done, every, complete, text, dropped, sock_dropped

    done, every, complete, text, dropped, sock_dropped = in_netns(body)
    _check_subscribers(every, complete, None)
    packets = metric(text, "spead2_gateway_receive_packets_total", stream="rx")
    assert dropped > 0
    assert packets + sock_dropped + dropped >= done["packets"] + 1
    heaps_total = metric(text, "spead2_gateway_receive_heaps_total", stream="rx")
    assert heaps_total == metric(text, "spead2_gateway_published_heaps_total", stream="rx")
    report("gateway/netem/loss_5pct", packets_sent=done["packets"], netem_dropped=dropped)


def _wait_packets_quiet(daemon: Daemon, seconds: float = 0.5, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    last, since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        now = metric(metrics(daemon), "spead2_gateway_receive_packets_total", stream="rx")
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(0.1)
    raise AssertionError("the daemon never went quiet")
