"""Packet loss, duplication and reordering on the way to our receiver (``spead2.recv.Stream``).

Every test runs in a private network namespace (``tests/util/netns.py``) with its own
loopback interface, so the faults touch nothing else. A sender (ours, or the real spead2
4.5.1) sends ``HEAPS`` data heaps of known contents over UDP; faults are injected by

* the user-space :class:`~rel_support.Proxy` (deterministic: every lost or duplicated packet
  is known, and the exact datagram sequence it forwarded is replayed into spead2 4.5.1 as the
  reference for which heaps come out and every deterministic statistic),
* the kernel (``tc``): a ``u32`` filter that drops chosen packets (deterministic), or an HTB
  class with a short queue that drops what a congested link cannot carry (counted by tc),
* ``netem`` (loss, duplication, reordering), where the kernel has it.

What is asserted, always: no heap is reported complete unless none of its packets was lost,
and every complete heap carries exactly the values that were sent; ``heaps`` = complete +
incomplete heaps, and ``incomplete_heaps_evicted + incomplete_heaps_flushed`` = incomplete
heaps; every packet is accounted for (``packets`` = packets that reached the socket).
"""

from __future__ import annotations

import socket
import time
from types import ModuleType
from typing import Any

import pytest
from rel_support import (
    Faults,
    LiveReceiver,
    Proxy,
    ProxyRecord,
    Received,
    congestion_setup,
    data_packet_offsets,
    in_netns,
    kernel_drop_setup,
    netem_setup,
    ours_python,
    peer_python,
    pinned_cpu,
    report,
    require_netem,
    require_tc,
    run_sender,
    socket_drops,
    stop_packet,
    tc,
    tc_dropped,
)
from util import jobs
from util.peer import Peer

HEAPS = 48
SIZE = 8192
RATE = "20e6"
"""Bytes per second of the proxy tests' sender: far below what the relay carries."""
STOP_CNT = HEAPS + 1
DATA_CNTS = range(1, HEAPS + 1)
REF_RING = {"heaps": 64, "contiguous_only": False}


def _check_common(received: Received, forwarded: int | None, damaged: set[int]) -> None:
    """The assertions every fault test makes (see the module docstring)."""
    assert not set(received.complete) & damaged, "a heap that lost packets was reported complete"
    assert received.exact and all(received.exact.values()), (
        f"complete heaps with wrong values: {[c for c, ok in received.exact.items() if not ok]}"
    )
    assert len(received.complete) == len(set(received.complete)), "a heap completed twice"
    stats = received.stats
    assert stats["heaps"] == len(received.heaps)
    incomplete = stats["incomplete_heaps_evicted"] + stats["incomplete_heaps_flushed"]
    assert incomplete == len(received.incomplete)
    if forwarded is not None:
        assert stats["packets"] == forwarded


# ------------------------------------------------------------------------------------------
# User-space faults (the proxy), compared with spead2 4.5.1 on the same datagrams


def _run_proxy_case(
    ours: ModuleType, sender: tuple[str, dict[str, str]], faults: Faults, config: dict[str, Any]
) -> tuple[Received, ProxyRecord, dict[str, Any]]:
    cpu = pinned_cpu()

    def body() -> tuple[Received, ProxyRecord, dict[str, Any]]:
        receiver = LiveReceiver(ours, SIZE, config)
        proxy = Proxy(faults, ("127.0.0.1", receiver.port), STOP_CNT, cpu).start()
        try:
            done = run_sender(
                sender,
                proxy.port,
                *("--heaps", str(HEAPS), "--size", str(SIZE), "--rate", RATE),
                *("--stop", "--cpu", str(cpu)),
            )
            record = proxy.wait(30.0)
        finally:
            proxy.close()
        return receiver.finish(), record, done

    return in_netns(body)


def _reference(peer: Peer, record: ProxyRecord, config: dict[str, Any]) -> dict[str, Any]:
    """spead2 4.5.1 receiving exactly the datagrams the proxy forwarded."""
    job: jobs.Job = (
        "receive_packets",
        {"packets": record.forwarded, "config": config, "ring": REF_RING},
    )
    (result,) = jobs.run_peer(peer.python, [job])
    assert "error" not in result, result
    return result


SCENARIOS: dict[str, tuple[Faults, dict[str, Any]]] = {
    # name: (faults, StreamConfig keywords)
    "duplicate_all": (Faults(DATA_CNTS, duplicate=1.0), {}),
    "duplicate_all_out_of_order_allowed": (
        Faults(DATA_CNTS, duplicate=1.0),
        {"allow_out_of_order": True},
    ),
    "loss_5pct": (Faults(DATA_CNTS, seed=5, loss=0.05, lose_heaps=frozenset({7})), {}),
    "loss_5pct_out_of_order_allowed": (
        Faults(DATA_CNTS, seed=5, loss=0.05, lose_heaps=frozenset({7})),
        {"allow_out_of_order": True},
    ),
    "interleave_4_heaps_max_heaps_4": (Faults(DATA_CNTS, interleave=4), {"max_heaps": 4}),
    "interleave_4_heaps_max_heaps_2": (Faults(DATA_CNTS, interleave=4), {"max_heaps": 2}),
    "reverse_each_heap_out_of_order_allowed": (
        Faults(DATA_CNTS, reverse=True),
        {"allow_out_of_order": True},
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_proxy_faults(name: str, ours: ModuleType, peer: Peer) -> None:
    """Our sender, deterministic faults by the proxy, our receiver; then the same datagrams
    into spead2 4.5.1, which must produce the same heaps and statistics."""
    faults, config = SCENARIOS[name]
    received, record, done = _run_proxy_case(ours, ours_python(), faults, config)
    assert done["heaps"] == HEAPS
    assert record.received == done["packets"], "the sender's packets did not all reach the proxy"
    _check_common(received, len(record.forwarded), record.damaged)

    reference = _reference(peer, record, config)
    assert received.heaps == [(h["cnt"], h["type"]) for h in reference["heaps"]]
    assert jobs.compared(received.stats) == jobs.compared(reference["stats"])

    lost, dups = len(record.lost), len(record.duplicated)
    undamaged = [cnt for cnt in DATA_CNTS if cnt not in record.damaged]
    if name.startswith("duplicate_all"):
        assert dups == done["packets"] - 1 and lost == 0  # every data packet, not the stop
        assert sorted(received.complete) == list(DATA_CNTS)
        if name == "duplicate_all":
            # In-order mode: each copy is rejected as out of order; nothing else happens.
            assert received.incomplete == []
            assert received.drops == {"out_of_order": dups}
        else:
            # The copy of a heap's last packet arrives after the heap completed and opens a
            # new one-packet heap (spead2 does the same); every other copy is a duplicate.
            ghosts = received.incomplete
            assert sorted(ghosts) == list(DATA_CNTS)
            assert received.drops == {"duplicate": dups - len(ghosts)}
    elif name.startswith("loss"):
        assert lost > 0 and 7 in record.wholly_lost
        assert sorted(received.complete) == undamaged
        assert set(received.incomplete) <= record.damaged - record.wholly_lost
    elif name == "interleave_4_heaps_max_heaps_2":
        # Four heaps in flight, two slots: heaps are evicted incomplete (and their later
        # packets start new incomplete heaps). Nothing is lost, nothing is wrong.
        assert received.stats["incomplete_heaps_evicted"] > 0
        assert len(received.complete) < HEAPS
    else:
        assert sorted(received.complete) == list(DATA_CNTS)
        assert received.incomplete == []
        assert received.drops == {}
    report(
        f"proxy/{name}",
        forwarded=len(record.forwarded),
        lost=lost,
        duplicated=dups,
        damaged_heaps=len(record.damaged),
        complete=len(received.complete),
        incomplete=len(received.incomplete),
        stats=jobs.compared(received.stats),
        drops=received.drops,
    )


def test_real_spead2_sender_through_mixed_faults(ours: ModuleType, peer: Peer) -> None:
    """The real spead2 sends; the proxy loses 3 % of packets, duplicates 20 % and interleaves
    three heaps at a time; our receiver must agree with spead2 4.5.1 on the same datagrams."""
    faults = Faults(DATA_CNTS, seed=11, loss=0.03, duplicate=0.2, interleave=3)
    config = {"allow_out_of_order": True, "max_heaps": 4}
    received, record, done = _run_proxy_case(ours, peer_python(peer), faults, config)
    assert done["heaps"] == HEAPS
    assert record.received == done["packets"]
    assert record.lost and record.duplicated
    _check_common(received, len(record.forwarded), record.damaged)
    reference = _reference(peer, record, config)
    assert received.heaps == [(h["cnt"], h["type"]) for h in reference["heaps"]]
    assert jobs.compared(received.stats) == jobs.compared(reference["stats"])
    assert sorted(received.complete) == [c for c in DATA_CNTS if c not in record.damaged]
    report(
        "proxy/real_spead2_sender_mixed",
        forwarded=len(record.forwarded),
        lost=len(record.lost),
        duplicated=len(record.duplicated),
        damaged_heaps=len(record.damaged),
        complete=len(received.complete),
        incomplete=len(received.incomplete),
        stats=jobs.compared(received.stats),
        drops=received.drops,
    )


# ------------------------------------------------------------------------------------------
# Kernel faults (tc)


def _wait_quiet(receiver: LiveReceiver, seconds: float = 0.3, timeout: float = 15.0) -> None:
    """Until the receiver's packet count has not moved for ``seconds``."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = int(receiver.stream.stats["packets"])
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(0.05)
    raise AssertionError("the receiver never went quiet")


def _run_kernel_case(
    ours: ModuleType,
    setup: Any,
    heaps: int,
    rate: str,
    config: dict[str, Any],
    drop_handle: str = "20:",
) -> tuple[Received, dict[str, Any], int, int]:
    """Sender -> tc on lo -> our receiver. The stop heap is sent by the test after the qdisc
    is removed, so that it cannot be lost. Returns (received, sender summary, packets the
    qdisc dropped, packets the receiving socket dropped)."""

    def body() -> tuple[Received, dict[str, Any], int, int]:
        receiver = LiveReceiver(ours, SIZE, config)
        setup(receiver.port)
        done = run_sender(
            ours_python(),
            receiver.port,
            *("--heaps", str(heaps), "--size", str(SIZE), "--rate", rate),
        )
        _wait_quiet(receiver)
        dropped = tc_dropped(drop_handle)
        tc("qdisc", "del", "dev", "lo", "root")
        sock_dropped = socket_drops(receiver.port, netns_thread=True)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(stop_packet(ours, heaps + 1), ("127.0.0.1", receiver.port))
        return receiver.finish(), done, dropped, sock_dropped

    return in_netns(body)


def test_kernel_drops_chosen_packets(ours: ModuleType) -> None:
    """tc drops the third packet of every heap whose cnt is 2 mod 8 (u32 match on the SPEAD
    header): exactly those heaps are incomplete, all others complete and exact. (Out-of-order
    packets are allowed: with a root qdisc on lo, loopback may reorder packets.)"""
    require_tc()
    offsets = data_packet_offsets(ours, SIZE)
    assert len(offsets) >= 4
    heaps = 40
    damaged = {cnt for cnt in range(1, heaps + 1) if cnt % 8 == 2}
    received, done, dropped, sock_dropped = _run_kernel_case(
        ours,
        lambda port: kernel_drop_setup(port, 8, 2, offsets[2]),
        heaps,
        RATE,
        {"allow_out_of_order": True},
    )
    assert dropped == len(damaged), "the kernel did not drop exactly the chosen packets"
    assert sock_dropped == 0
    _check_common(received, done["packets"] - dropped + 1, damaged)
    assert sorted(received.complete) == [c for c in range(1, heaps + 1) if c not in damaged]
    assert sorted(received.incomplete) == sorted(damaged)
    assert received.drops == {}
    report(
        "kernel/u32_drop",
        heaps=heaps,
        packets_sent=done["packets"],
        kernel_dropped=dropped,
        complete=len(received.complete),
        incomplete=len(received.incomplete),
        drops=received.drops,
    )


def test_kernel_congestion_loss_is_accounted(ours: ModuleType) -> None:
    """A link shaped to 60 Mbit/s with a 64-packet queue, a sender at 9 MB/s (72 Mbit/s):
    the kernel drops what does not fit. Every packet sent is either counted by the receiver
    or dropped by the qdisc or the socket; every complete heap is exact."""
    require_tc()
    heaps = 300
    received, done, dropped, sock_dropped = _run_kernel_case(
        ours, lambda port: congestion_setup(port, "60mbit", 64), heaps, "9e6", {}
    )
    assert dropped > 0, "the shaped link dropped nothing: no loss was injected"
    sent = done["packets"] + 1  # and the stop packet, sent by the test
    assert received.stats["packets"] + dropped + sock_dropped == sent
    _check_common(received, None, set())
    unseen = heaps - len(received.complete) - len(set(received.incomplete))
    assert unseen >= 0
    report(
        "kernel/congestion",
        heaps=heaps,
        packets_sent=sent,
        kernel_dropped=dropped,
        loss_pct=round(100 * dropped / sent, 1),
        socket_dropped=sock_dropped,
        complete=len(received.complete),
        incomplete=len(received.incomplete),
        unseen=unseen,
        drops=received.drops,
    )


# ------------------------------------------------------------------------------------------
# netem (kernels that have it)


@pytest.mark.parametrize(
    ("name", "params", "config"),
    [
        pytest.param("loss_10pct", ("loss", "10%"), {}, id="loss_10pct"),
        pytest.param("duplicate_100pct", ("duplicate", "100%"), {}, id="duplicate_100pct"),
        pytest.param(
            "reorder",
            ("delay", "2ms", "reorder", "25%", "50%"),
            {"allow_out_of_order": True, "max_heaps": 32},
            id="reorder",
        ),
    ],
)
def test_netem(
    name: str, params: tuple[str, ...], config: dict[str, Any], ours: ModuleType
) -> None:
    """netem on the namespace's loopback: random loss, duplication or reordering."""
    require_netem()
    heaps = 200
    received, done, dropped, sock_dropped = _run_kernel_case(
        ours, lambda port: netem_setup(*params), heaps, "10e6", config, drop_handle="1:"
    )
    _check_common(received, None, set())
    stats = received.stats
    if name == "loss_10pct":
        assert dropped > 0 and 0 < len(received.complete) < heaps
        assert stats["packets"] + dropped + sock_dropped == done["packets"] + 1
    elif name == "duplicate_100pct":
        assert sorted(received.complete) == list(range(1, heaps + 1))
        assert stats["packets"] == 2 * done["packets"] + 1
    else:
        assert sorted(received.complete) == list(range(1, heaps + 1))
        assert stats["packets"] == done["packets"] + 1
    report(
        f"netem/{name}",
        packets_sent=done["packets"],
        netem_dropped=dropped,
        complete=len(received.complete),
        incomplete=len(received.incomplete),
        stats=jobs.compared(stats),
    )
