"""Prometheus metrics: stream statistics read at scrape time, and gRPC request metrics.

:class:`StreamCollector` turns the same ``StreamStats`` messages that ``WatchStats`` sends
into metric families when Prometheus scrapes, so nothing is sampled in between. Counters
never go backwards: the last value exported for each series is remembered and a smaller
reading (which summing over stream restarts should already prevent) is never exported.

:class:`GrpcMetrics` follows the usual gRPC server names (``grpc_server_started_total``,
``grpc_server_handled_total``, ``grpc_server_handling_seconds``). Labels are bounded: stream
names come from the configuration, subscriber ids only exist while the subscriber does (at
most ``subscribe.max_subscribers``), and no client address or heap id is ever a label.

To add metrics, extend :meth:`StreamCollector.collect` (or register another collector on
:attr:`Metrics.registry`).
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.config import split_host_port

__all__ = ["BuildInfoCollector", "GrpcMetrics", "Metrics", "StreamCollector", "StreamSnapshot"]

PREFIX = "spead2_gateway"
# spead2 statistics that are maxima, not counters.
_MAXIMUM_STATS = frozenset({"max_batch"})
_POOL_GAUGES = frozenset({"free", "in_use", "allocated"})
# Send-stream statistics that are levels, not counters: stat -> (metric, help).
_SEND_GAUGES = {
    "queued_heaps": ("send_queued_heaps", "Heaps queued for transmission"),
    "active_sessions": ("send_active_sessions", "Send calls in progress"),
    "achieved_rate_bytes_per_second": (
        "send_achieved_rate_bytes_per_second",
        "Bytes sent per second over the last 10 s, measured by the sender",
    ),
}


@dataclass(frozen=True)
class StreamSnapshot:
    """One stream as the collector sees it."""

    name: str
    kind: str  # "receive" or "send"
    state: str
    stats: pb.StreamStats


class _Monotonic:
    """The largest value seen per series, so exported counters never decrease.

    Series that a scrape no longer produces (a subscriber that left) are forgotten at the
    end of that scrape, so the cache holds only live series: subscriber ids only ever grow,
    and remembering each one would leak memory over the daemon's lifetime.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, tuple[str, ...]], float] = {}
        self._seen: set[tuple[str, tuple[str, ...]]] = set()
        self._lock = threading.Lock()

    def __call__(self, metric: str, labels: tuple[str, ...], value: float) -> float:
        key = (metric, labels)
        with self._lock:
            best = max(self._last.get(key, 0.0), value)
            self._last[key] = best
            self._seen.add(key)
        return best

    def forget_unseen(self) -> None:
        """Drops every series not produced since the previous call."""
        with self._lock:
            self._last = {k: v for k, v in self._last.items() if k in self._seen}
            self._seen = set()

    def __len__(self) -> int:
        with self._lock:
            return len(self._last)


class _Families:
    """Metric families created on first use, in a stable order."""

    def __init__(self, monotonic: _Monotonic) -> None:
        self._families: dict[str, Metric] = {}
        self._monotonic = monotonic

    def counter(
        self, name: str, doc: str, labels: Sequence[str], values: Sequence[str], value: float
    ) -> None:
        family = self._families.get(name)
        if family is None:
            family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))
            self._families[name] = family
        assert isinstance(family, CounterMetricFamily)
        family.add_metric(list(values), self._monotonic(name, tuple(values), value))

    def gauge(
        self, name: str, doc: str, labels: Sequence[str], values: Sequence[str], value: float
    ) -> None:
        family = self._families.get(name)
        if family is None:
            family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))
            self._families[name] = family
        assert isinstance(family, GaugeMetricFamily)
        family.add_metric(list(values), value)

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


class StreamCollector(Collector):
    """Per-stream metrics, read from ``snapshot()`` at each scrape."""

    def __init__(self, snapshot: Callable[[], list[StreamSnapshot]]) -> None:
        self._snapshot = snapshot
        self._monotonic = _Monotonic()

    def collect(self) -> Iterator[Metric]:
        """Builds every family from the current stream statistics."""
        families = _Families(self._monotonic)
        for stream in self._snapshot():
            families.gauge(
                "stream_up",
                "1 if the stream is running",
                ["stream", "kind"],
                [stream.name, stream.kind],
                1.0 if stream.state == "running" else 0.0,
            )
            if stream.kind == "receive":
                _receive(families, stream.name, stream.stats)
            else:
                _send(families, stream.name, stream.stats)
        self._monotonic.forget_unseen()
        yield from families

    def describe(self) -> list[Metric]:
        """Nothing: the families depend on the streams, so the registry must not cache."""
        return []


def _receive(f: _Families, name: str, stats: pb.StreamStats) -> None:
    labels = ["stream"]
    for stat, value in sorted(stats.counters.items()):
        if stat in _MAXIMUM_STATS:
            f.gauge(
                f"receive_{stat}",
                f"spead2 receive statistic {stat} (maximum)",
                labels,
                [name],
                value,
            )
        else:
            f.counter(f"receive_{stat}", f"spead2 receive statistic {stat}", labels, [name], value)
    for reason, count in sorted(stats.drops.items()):
        f.counter(
            "receive_discarded",
            "Packets or heaps discarded by the receiver, by reason",
            ["stream", "reason"],
            [name, reason],
            count,
        )
    f.counter(
        "receive_restarts",
        "Times the spead2 stream was reopened after stopping",
        labels,
        [name],
        stats.restarts,
    )
    f.gauge("ring_heaps", "Heaps waiting in the ringbuffer", labels, [name], stats.ring_depth)
    f.gauge("ring_capacity_heaps", "Ringbuffer capacity", labels, [name], stats.ring_capacity)
    f.gauge(
        "ring_high_water_heaps",
        "Most heaps seen in the ringbuffer",
        labels,
        [name],
        stats.ring_high_water,
    )
    for key, value in sorted(stats.memory_pool.items()):
        if key in _POOL_GAUGES:
            f.gauge(
                "memory_pool_buffers",
                "Memory pool buffers by state",
                ["stream", "state"],
                [name, key],
                value,
            )
        else:
            f.counter(f"memory_pool_{key}", f"Memory pool statistic {key}", labels, [name], value)
    f.counter(
        "published_heaps", "Heaps offered to subscribers", labels, [name], stats.published_heaps
    )
    f.counter(
        "subscriber_dropped_heaps_all",
        "Heaps dropped from any subscriber queue",
        labels,
        [name],
        stats.subscriber_dropped_heaps,
    )
    f.gauge("subscribers", "Live subscriptions", labels, [name], len(stats.subscribers))
    sub_labels = ["stream", "subscriber"]
    for sub in stats.subscribers:
        values = [name, str(sub.id)]
        f.gauge(
            "subscriber_queue_heaps",
            "Heaps queued for a subscriber",
            sub_labels,
            values,
            sub.queued_heaps,
        )
        f.gauge(
            "subscriber_queue_bytes",
            "Bytes queued for a subscriber",
            sub_labels,
            values,
            sub.queued_bytes,
        )
        f.gauge(
            "subscriber_queue_depth",
            "Queue limit of a subscriber (heaps)",
            sub_labels,
            values,
            sub.queue_depth,
        )
        f.counter(
            "subscriber_delivered_heaps",
            "Heaps delivered to a subscriber",
            sub_labels,
            values,
            sub.delivered_heaps,
        )
        f.counter(
            "subscriber_delivered_bytes",
            "Bytes of heap messages delivered to a subscriber",
            sub_labels,
            values,
            sub.delivered_bytes,
        )
        f.counter(
            "subscriber_dropped_heaps",
            "Heaps a subscriber lost (queue full)",
            sub_labels,
            values,
            sub.dropped_heaps,
        )


def _send(f: _Families, name: str, stats: pb.StreamStats) -> None:
    for stat, value in sorted(stats.counters.items()):
        gauge = _SEND_GAUGES.get(stat)
        if gauge is not None:
            f.gauge(gauge[0], gauge[1], ["stream"], [name], value)
        else:
            f.counter(f"send_{stat}", f"Send stream statistic {stat}", ["stream"], [name], value)


class BuildInfoCollector(Collector):
    """``spead2_gateway_build_info``: versions as labels, value 1 (a constant series)."""

    def __init__(self) -> None:
        import spead2

        from spead2_gateway import __version__

        self._labels = {
            "version": __version__,
            "spead2_version": str(spead2.__version__),
            "python_version": platform.python_version(),
        }

    def collect(self) -> Iterator[Metric]:
        """One series with the versions of the gateway, spead2 and Python."""
        family = InfoMetricFamily(f"{PREFIX}_build", "Versions of the gateway, spead2 and Python")
        family.add_metric([], self._labels)
        yield family


class GrpcMetrics:
    """Request counts and latencies per gRPC method and status code."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter(
            "grpc_server_started", "RPCs started on the server", labels, registry=registry
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code",
            [*labels, "grpc_code"],
            registry=registry,
        )
        self.seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its end",
            labels,
            registry=registry,
            buckets=(0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10, 60, 600, 3600, float("inf")),
        )

    @staticmethod
    def labels(rpc_type: str, full_method: str) -> tuple[str, str, str]:
        """Labels of a method given as ``/package.Service/Method``."""
        service, _, method = full_method.lstrip("/").partition("/")
        return rpc_type, service, method

    def start(self, labels: tuple[str, str, str]) -> None:
        """Counts an RPC that started."""
        self.started.labels(*labels).inc()

    def done(self, labels: tuple[str, str, str], code: str, seconds: float) -> None:
        """Counts an RPC that finished with status ``code`` (e.g. "OK")."""
        self.handled.labels(*labels, code).inc()
        self.seconds.labels(*labels).observe(seconds)


class Metrics:
    """The daemon's registry, its collectors and the HTTP endpoint."""

    def __init__(self, snapshot: Callable[[], list[StreamSnapshot]]) -> None:
        self.registry = CollectorRegistry()
        self.streams = StreamCollector(snapshot)
        self.registry.register(self.streams)
        self.registry.register(BuildInfoCollector())
        self.grpc = GrpcMetrics(self.registry)
        self._server: Any = None
        self.address: str | None = None

    def serve(self, listen: str) -> str:
        """Starts the HTTP endpoint; returns the bound ``host:port`` (OSError if taken)."""
        host, port = split_host_port(listen)
        server, _thread = start_http_server(port, host, registry=self.registry)
        self._server = server
        bound = server.server_address[1]
        self.address = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"
        return self.address

    def close(self) -> None:
        """Stops the HTTP endpoint."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
