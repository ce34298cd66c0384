"""Subscribers that leave mid-stream, politely or not; the one that stays loses nothing.

Four subscribers on one stream while a sender streams heaps: a keeper (this process, reads
everything), one that cancels its call, a subprocess killed with SIGKILL (its socket is
closed by the kernel: the daemon sees a reset), and a subprocess frozen with SIGSTOP (its
connection stays open but nothing answers: only the daemon's keepalive pings, every second
here, find it). After each departure the daemon's subscriber count goes down by one and the
departed subscriber's metric series disappear; the keeper receives every heap, exactly,
with no gap in its sequence numbers.

A slow subscriber that stays connected is covered by
``tests/gateway/test_gateway_e2e.py::test_slow_subscriber_costs_the_other_nothing``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_harness import Daemon, metric_value, wait_subscribers, wait_until
from rel_payload import payload
from rel_support import (
    JsonProcess,
    daemon_config,
    daemon_on_free_port,
    metric,
    ours_python,
    report,
    run_sender,
    start_sender,
    start_subscriber,
)
from spead2_gateway.client import GatewayClient, ReceivedHeap

SIZE = 4096
KEEPALIVE = 1.0


def _config(port: int) -> str:
    return daemon_config(
        port,
        queue_depth=4096,
        server=f"keepalive_time = {KEEPALIVE}\nkeepalive_timeout = {KEEPALIVE}\n",
        stream="ring_heaps = 64\n",
    )


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, int]]:
    yield from daemon_on_free_port(tmp_path, _config)


def _wait_heaps(process: JsonProcess, count: int) -> None:
    for _ in range(count):
        process.expect("heap", timeout=30.0)


def _series(text: str, sub_id: int) -> bool:
    """Whether any per-subscriber series of ``sub_id`` is exported."""
    return f'subscriber="{sub_id}"' in text


def test_subscribers_leave_mid_stream(daemon: tuple[Daemon, int]) -> None:
    d, port = daemon
    size_args = ("--size", str(SIZE))
    with d.client() as client, d.client() as keeper_client, d.client() as leaver_client:
        keeper = keeper_client.subscribe("rx")
        leaver = leaver_client.subscribe("rx")
        killed = start_subscriber(d.target, "rx", SIZE, "--progress", "--timeout", "120")
        frozen = start_subscriber(d.target, "rx", SIZE, "--progress", "--timeout", "120")
        with killed, frozen:
            killed_id = killed.expect("subscribed")["id"]
            frozen_id = frozen.expect("subscribed")["id"]
            ids = {
                "keeper": keeper.subscriber_id,
                "cancelled": leaver.subscriber_id,
                "killed": killed_id,
                "frozen": frozen_id,
            }
            wait_subscribers(client, "rx", 4)
            kept: list[ReceivedHeap] = []

            def keep() -> None:
                for heap in keeper:
                    kept.append(heap)
                    if heap.end_of_stream:
                        return

            keeper_thread = threading.Thread(target=keep, daemon=True)
            keeper_thread.start()
            timings: dict[str, float] = {}
            sender = start_sender(
                ours_python(),
                port,
                *("--duration", "60", "--rate", "2e6", *size_args),
            )
            with sender:
                # A polite cancel, after 20 heaps.
                for count, _ in enumerate(leaver, 1):
                    if count == 20:
                        break
                start = time.monotonic()
                leaver.cancel()
                wait_subscribers(client, "rx", 3)
                timings["cancelled"] = time.monotonic() - start

                # An abrupt end: SIGKILL.
                _wait_heaps(killed, 20)
                start = time.monotonic()
                killed.kill(signal.SIGKILL)
                wait_subscribers(client, "rx", 2)
                timings["killed"] = time.monotonic() - start

                # A peer that stops answering: SIGSTOP (found by keepalive pings).
                _wait_heaps(frozen, 20)
                start = time.monotonic()
                frozen.kill(signal.SIGSTOP)
                wait_until(
                    lambda: client.get_stream("rx").info.subscribers == 1,
                    10 * KEEPALIVE + 10,
                    "the frozen subscriber to be dropped",
                )
                timings["frozen"] = time.monotonic() - start
                frozen.kill(signal.SIGKILL)

                time.sleep(0.5)  # the keeper keeps receiving meanwhile
                before = len(kept)
                wait_until(lambda: len(kept) > before + 10, 30.0, "heaps after the departures")
                text = d.scrape()
                sender.kill(signal.SIGTERM)
                sender.finish()
            run_sender(
                ours_python(),
                port,
                *("--heaps", "5", "--first-index", "7000", "--cnt-start", "1000000"),
                *("--rate", "2e6", "--stop", *size_args),
            )
            keeper_thread.join(30)
            assert not keeper_thread.is_alive(), "the keeper never saw the end of the stream"
        final_text = d.scrape()
        assert client.health() == "SERVING"
    keeper.cancel()

    assert metric(text, "spead2_gateway_subscribers", stream="rx") == 1
    for name in ("cancelled", "killed", "frozen"):
        assert not _series(text, ids[name]), f"the {name} subscriber's series remain"
    assert _series(text, ids["keeper"])

    # The keeper: every heap published, in order, exact, no gaps, nothing dropped.
    published = metric(final_text, "spead2_gateway_published_heaps_total", stream="rx")
    assert [h.sequence for h in kept] == list(range(1, len(kept) + 1))
    assert len(kept) == published
    assert all(h.dropped == 0 for h in kept)
    whole = kept[:-1]
    assert all(h["payload"].tobytes() == payload(int(h["index"]), SIZE).tobytes() for h in whole)
    assert [int(h["index"]) for h in whole[-5:]] == list(range(7000, 7005))
    cnts = [h.cnt for h in whole]
    assert cnts == sorted(cnts)
    dropped_all = metric_value(
        final_text, "spead2_gateway_subscriber_dropped_heaps_all_total", stream="rx"
    )
    report(
        "subscribers/leave_mid_stream",
        keeper_heaps=len(kept),
        published=int(published),
        removed_after_cancel_s=round(timings["cancelled"], 2),
        removed_after_sigkill_s=round(timings["killed"], 2),
        removed_after_sigstop_s=round(timings["frozen"], 2),
        subscriber_dropped_heaps_all=int(dropped_all or 0),
    )


def test_closed_channel_removes_the_subscriber(daemon: tuple[Daemon, int]) -> None:
    """A client that closes its channel without cancelling (as a process exiting normally
    does) is removed at once as well."""
    d, port = daemon
    with d.client() as client:
        other = GatewayClient(d.target)
        sub = other.subscribe("rx")
        wait_subscribers(client, "rx", 1)
        assert sub.subscriber_id > 0
        other.close()
        wait_subscribers(client, "rx", 0)
        assert client.health() == "SERVING"
