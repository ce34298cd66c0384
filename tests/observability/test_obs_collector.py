"""The stream collector in-process: counters never go backwards, vanished series are
forgotten, build info is exported."""

from __future__ import annotations

from gateway_harness import metric_value
from prometheus_client import CollectorRegistry, generate_latest
from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.metrics import Metrics, StreamSnapshot


def _stats(heaps: int, subscriber_ids: list[int]) -> pb.StreamStats:
    stats = pb.StreamStats(stream="beam", kind=pb.STREAM_KIND_RECEIVE)
    stats.counters.update({"heaps": heaps, "max_batch": heaps})
    stats.drops.update({"bad_magic": heaps})
    for sub_id in subscriber_ids:
        stats.subscribers.add(id=sub_id, delivered_heaps=heaps)
    return stats


def test_counters_hold_and_gauges_follow() -> None:
    """A smaller reading (a counter reset) exports the previous counter value, while a gauge
    (``max_batch``) reports what it reads."""
    current = [_stats(10, [])]
    metrics = Metrics(lambda: [StreamSnapshot("beam", "receive", "running", current[0])])
    registry: CollectorRegistry = metrics.registry
    text = generate_latest(registry).decode()
    assert metric_value(text, "spead2_gateway_receive_heaps_total", stream="beam") == 10
    current[0] = _stats(3, [])
    text = generate_latest(registry).decode()
    assert metric_value(text, "spead2_gateway_receive_heaps_total", stream="beam") == 10
    assert metric_value(text, "spead2_gateway_receive_discarded_total", reason="bad_magic") == 10
    assert metric_value(text, "spead2_gateway_receive_max_batch", stream="beam") == 3
    assert metric_value(text, "spead2_gateway_build_info") == 1


def test_departed_subscribers_are_forgotten() -> None:
    """Per-subscriber series exist only while the subscriber does, and the cache that keeps
    counters monotonic does not grow with every subscriber ever seen."""
    current = [_stats(5, [1, 2])]
    metrics = Metrics(lambda: [StreamSnapshot("beam", "receive", "running", current[0])])
    text = generate_latest(metrics.registry).decode()
    assert (
        metric_value(text, "spead2_gateway_subscriber_delivered_heaps_total", subscriber="2") == 5
    )
    size_with_two = len(metrics.streams._monotonic)
    for sub_id in range(3, 200):
        current[0] = _stats(5, [sub_id])
        text = generate_latest(metrics.registry).decode()
    assert len(metrics.streams._monotonic) == size_with_two - 3  # three counters per subscriber
    assert (
        metric_value(text, "spead2_gateway_subscriber_delivered_heaps_total", subscriber="2")
        is None
    )
    assert metric_value(text, "spead2_gateway_subscribers", stream="beam") == 1


def _send_stats(rate: int, heaps: int) -> pb.StreamStats:
    stats = pb.StreamStats(stream="tx", kind=pb.STREAM_KIND_SEND)
    stats.counters.update(
        {
            "heaps": heaps,
            "achieved_rate_bytes_per_second": rate,
            "active_sessions": 1,
            "refused_sessions": 2,
        }
    )
    return stats


def test_send_achieved_rate_is_a_gauge_read_from_the_sender() -> None:
    """The achieved rate is exported as the sender reports it: it falls when the sender's
    window does (a counter would be held at its maximum), and repeated scrapes of the same
    reading export the same value (scrapers do not interfere)."""
    current = [_send_stats(5000, 10)]
    metrics = Metrics(lambda: [StreamSnapshot("tx", "send", "running", current[0])])
    name = "spead2_gateway_send_achieved_rate_bytes_per_second"
    text = generate_latest(metrics.registry).decode()
    assert f"# TYPE {name} gauge" in text
    assert metric_value(text, name, stream="tx") == 5000
    assert metric_value(text, "spead2_gateway_send_active_sessions", stream="tx") == 1
    assert metric_value(text, "spead2_gateway_send_refused_sessions_total", stream="tx") == 2
    current[0] = _send_stats(1200, 12)
    for _ in range(3):
        text = generate_latest(metrics.registry).decode()
        assert metric_value(text, name, stream="tx") == 1200
        assert metric_value(text, "spead2_gateway_send_heaps_total", stream="tx") == 12
    assert "spead2_gateway_send_achieved_rate_bytes_per_second_total" not in text
