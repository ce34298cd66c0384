"""Gateway configuration: a TOML file, validated field by field.

Every error names the file and the field, as in
``gateway.toml: receive.streams[0].max_heaps: must be a positive integer (got 0)``; keys the
validator does not know are errors too, so a typo never silently falls back to a default.
Without a file the daemon runs :data:`DEFAULT_CONFIG_TOML`, parsed by the same validator.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "DEFAULT_CONFIG_TOML",
    "ConfigError",
    "GatewayConfig",
    "MemoryPoolConfig",
    "MetricsConfig",
    "ReceiveStreamConfig",
    "SendStreamConfig",
    "ServerConfig",
    "SubscribeConfig",
    "TlsConfig",
    "load_config",
    "parse_config",
]

DEFAULT_SOURCE = "<embedded default>"

DEFAULT_CONFIG_TOML = """\
# The embedded default: one UDP receive stream on loopback, gRPC and metrics on loopback.
[server]
listen = "127.0.0.1:50051"

[metrics]
listen = "127.0.0.1:9464"

[[receive.streams]]
name = "default"
transport = "udp"
host = "127.0.0.1"
port = 8888
flavour = "64-48"
"""

MiB = 1024 * 1024
# Bytes of a Heap message kept free for its header and item metadata when fragmenting.
FRAGMENT_HEADROOM = 65536
GiB = 1024 * MiB
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
FLAVOUR_RE = re.compile(r"^(?:SPEAD-)?64-(\d+)$")
MEMCPY_CHOICES = ("std", "nontemporal")

# Defaults of spead2 4.5.1 (spead2.recv.Stream.DEFAULT_*), repeated here so that validation
# does not need the native module.
UDP_DEFAULT_MAX_SIZE = 9200
UDP_DEFAULT_BUFFER_SIZE = 8 * MiB
TCP_DEFAULT_MAX_SIZE = 65536
TCP_DEFAULT_BUFFER_SIZE = 212992
SEND_UDP_DEFAULT_BUFFER_SIZE = 524288
SEND_TCP_DEFAULT_BUFFER_SIZE = 212992


class ConfigError(ValueError):
    """An invalid configuration; the message names the file and the field."""


# ------------------------------------------------------------------------------------------
# The configuration, as plain frozen dataclasses.


@dataclass(frozen=True)
class TlsConfig:
    """Server TLS: certificate chain and key, and a CA for client certificates (mutual TLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


@dataclass(frozen=True)
class ServerConfig:
    """The gRPC server."""

    listen: str = "127.0.0.1:50051"
    max_send_message_bytes: int = 4 * MiB
    max_receive_message_bytes: int = 64 * MiB
    grace_period: float = 5.0
    # Client pings closer together than this count as abuse ("too_many_pings"); clients that
    # ping every 10 s (common for Go) must stay above it.
    min_ping_interval: float = 5.0
    keepalive_time: float = 60.0
    keepalive_timeout: float = 20.0
    token_file: Path | None = None
    token_env: str | None = None
    tls: TlsConfig | None = None


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus endpoint; ``listen`` None disables it."""

    listen: str | None = "127.0.0.1:9464"


@dataclass(frozen=True)
class SubscribeConfig:
    """Limits for subscriptions and stats watchers."""

    default_queue_depth: int = 64
    max_queue_depth: int = 4096
    max_queue_bytes: int = 256 * MiB
    # The loader's default is server.max_send_message_bytes - FRAGMENT_HEADROOM.
    fragment_bytes: int = 4 * MiB - FRAGMENT_HEADROOM
    max_subscribers: int = 64
    min_stats_interval: float = 0.05


@dataclass(frozen=True)
class MemoryPoolConfig:
    """Arguments of ``spead2.MemoryPool(lower, upper, max_free, initial)``."""

    lower: int
    upper: int
    max_free: int
    initial: int


@dataclass(frozen=True)
class ReceiveStreamConfig:
    """A receive stream: transport, spead2 StreamConfig / RingStreamConfig, memory pool."""

    name: str
    transport: str
    host: str = "127.0.0.1"
    port: int = 0
    group: str | None = None
    interface_address: str | None = None
    interface_index: int | None = None
    max_size: int = 0
    buffer_size: int = 0
    file: Path | None = None
    filter: str = ""
    flavour: str = "64-48"
    restart: bool = True
    threads: int = 1
    # spead2.recv.StreamConfig
    max_heaps: int = 4
    # Heaps that claim more than this (HEAP_LENGTH, payload or item addresses) are refused
    # before anything is allocated; 4 GiB is the spead2 core's own default.
    max_heap_size: int = 4 * GiB
    substreams: int = 1
    bug_compat: int = 0
    memcpy: str = "std"
    stop_on_stop_item: bool = False
    allow_unsized_heaps: bool = True
    allow_out_of_order: bool = False
    stream_id: int = 0
    explicit_start: bool = False
    # spead2.recv.RingStreamConfig
    ring_heaps: int = 16
    contiguous_only: bool = True
    incomplete_keep_payload_ranges: bool = False
    memory_pool: MemoryPoolConfig | None = None

    @property
    def endpoint(self) -> str:
        """A short description of where the stream reads from."""
        if self.transport == "pcap":
            return f"pcap {self.file}"
        if self.group is not None:
            return f"udp multicast {self.group}:{self.port}"
        return f"{self.transport} {_join_host_port(self.host, self.port)}"

    @property
    def heap_address_bits(self) -> int:
        """The address width of :attr:`flavour` (used by the demo sender)."""
        return _flavour_bits(self.flavour)


@dataclass(frozen=True)
class SendStreamConfig:
    """A send stream: destinations, rate and packetisation."""

    name: str
    transport: str
    destinations: tuple[tuple[str, int], ...]
    flavour: str = "64-48"
    bug_compat: int = 0
    rate: float = 0.0
    max_packet_size: int = 1472
    max_heaps: int = 16
    burst_size: int = 65536
    burst_rate_ratio: float = 1.05
    ttl: int = 1
    interface_address: str = ""
    buffer_size: int = 0
    queue_timeout: float = 5.0
    threads: int = 1
    # Limits per Send call: bytes of SendRequest messages per second (0: none) with a
    # token-bucket burst (0: one second's worth), and Send calls open at once per stream.
    max_client_rate: float = 0.0
    max_client_burst: int = 0
    max_concurrent_sends: int = 16

    @property
    def client_burst(self) -> int:
        """The token-bucket capacity of one Send call (bytes); 0 when there is no rate cap."""
        if self.max_client_rate == 0:
            return 0
        return self.max_client_burst or max(math.ceil(self.max_client_rate), 1)

    @property
    def endpoint(self) -> str:
        """A short description of where the stream sends to."""
        hosts = ", ".join(_join_host_port(h, p) for h, p in self.destinations)
        return f"{self.transport} {hosts}"

    @property
    def heap_address_bits(self) -> int:
        """The address width of :attr:`flavour`."""
        return _flavour_bits(self.flavour)


@dataclass(frozen=True)
class GatewayConfig:
    """The whole daemon configuration; ``source`` is the file it came from."""

    source: str
    server: ServerConfig = field(default_factory=ServerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    subscribe: SubscribeConfig = field(default_factory=SubscribeConfig)
    receive: tuple[ReceiveStreamConfig, ...] = ()
    send: tuple[SendStreamConfig, ...] = ()
    log_level: str = "info"

    def stream_names(self) -> list[str]:
        """Every stream name, receive streams first."""
        return [s.name for s in self.receive] + [s.name for s in self.send]


def to_plain(obj: Any) -> Any:
    """A dataclass config as JSON-compatible builtins (for GetStream and logging)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ------------------------------------------------------------------------------------------
# Small parsing helpers.


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(text: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` to a pair; raises ValueError with the reason."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("expected [address]:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError("expected host:port")
        if ":" in host:
            raise ValueError("IPv6 addresses must be written [address]:port")
    if not host:
        raise ValueError("missing host")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("port must be a number from 0 to 65535")
    return host, int(port_text)


def _flavour_bits(flavour: str) -> int:
    match = FLAVOUR_RE.match(flavour)
    if match is None:
        raise ValueError(f"bad flavour {flavour!r}")
    return int(match.group(1))


T = TypeVar("T")


class _Table:
    """A TOML table being validated: typed getters that record which keys were read."""

    def __init__(self, source: str, path: str, data: Mapping[str, Any]) -> None:
        self.source = source
        self.path = path
        self.data = data
        self._used: set[str] = set()

    def error(self, key: str | None, message: str) -> ConfigError:
        """An error about ``key`` of this table (or the table itself)."""
        where = self.path if key is None else (f"{self.path}.{key}" if self.path else key)
        return ConfigError(f"{self.source}: {where}: {message}")

    def _bad(self, key: str, message: str) -> ConfigError:
        return self.error(key, f"{message} (got {self.data[key]!r})")

    def has(self, key: str) -> bool:
        """Whether ``key`` is present."""
        return key in self.data

    def _get(self, key: str, default: T, check: Callable[[Any], T]) -> T:
        self._used.add(key)
        if key not in self.data:
            return default
        return check(self.data[key])

    def get_int(self, key: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        """An integer in [minimum, maximum]."""

        def check(value: Any) -> int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self._bad(key, "must be an integer")
            if value < minimum or (maximum is not None and value > maximum):
                if minimum == 1 and maximum is None:
                    raise self._bad(key, "must be a positive integer")
                if maximum is None:
                    raise self._bad(key, f"must be an integer >= {minimum}")
                raise self._bad(key, f"must be an integer from {minimum} to {maximum}")
            return value

        return self._get(key, default, check)

    def optional_int(self, key: str, minimum: int = 0, maximum: int | None = None) -> int | None:
        """An integer, or None when absent."""
        if key not in self.data:
            self._used.add(key)
            return None
        return self.get_int(key, 0, minimum, maximum)

    def get_float(
        self, key: str, default: float, minimum: float = 0.0, positive: bool = False
    ) -> float:
        """A finite number >= minimum (> minimum if ``positive``); integers are accepted."""

        def check(value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self._bad(key, "must be a number")
            number = float(value)
            if not math.isfinite(number) or number < minimum or (positive and number <= minimum):
                relation = ">" if positive else ">="
                raise self._bad(key, f"must be a finite number {relation} {minimum:g}")
            return number

        return self._get(key, default, check)

    def get_bool(self, key: str, default: bool) -> bool:
        """A boolean."""

        def check(value: Any) -> bool:
            if not isinstance(value, bool):
                raise self._bad(key, "must be true or false")
            return value

        return self._get(key, default, check)

    def get_str(self, key: str, default: str, allow_empty: bool = True) -> str:
        """A string."""

        def check(value: Any) -> str:
            if not isinstance(value, str):
                raise self._bad(key, "must be a string")
            if not allow_empty and not value:
                raise self._bad(key, "must not be empty")
            return value

        return self._get(key, default, check)

    def optional_str(self, key: str) -> str | None:
        """A non-empty string, or None when absent."""
        if key not in self.data:
            self._used.add(key)
            return None
        return self.get_str(key, "", allow_empty=False)

    def choice(
        self, key: str, default: str, choices: tuple[str, ...], required: bool = False
    ) -> str:
        """One of ``choices``."""
        if required and key not in self.data:
            raise self.error(key, f"is required (one of {', '.join(choices)})")
        value = self.get_str(key, default)
        if value not in choices:
            raise self._bad(key, f"must be one of {', '.join(choices)}")
        return value

    def required_str(self, key: str) -> str:
        """A non-empty string that must be present."""
        if key not in self.data:
            raise self.error(key, "is required")
        return self.get_str(key, "", allow_empty=False)

    def table(self, key: str) -> _Table | None:
        """A sub-table, or None when absent."""
        self._used.add(key)
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, dict):
            raise self._bad(key, "must be a table")
        return _Table(self.source, f"{self.path}.{key}" if self.path else key, value)

    def tables(self, key: str) -> list[_Table]:
        """An array of tables (``[[key]]``), empty when absent."""
        self._used.add(key)
        if key not in self.data:
            return []
        value = self.data[key]
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self._bad(key, "must be an array of tables")
        prefix = f"{self.path}.{key}" if self.path else key
        return [_Table(self.source, f"{prefix}[{i}]", v) for i, v in enumerate(value)]

    def take(self, key: str) -> Any:
        """The raw value of ``key`` (which must be present), for fields with custom checks."""
        self._used.add(key)
        return self.data[key]

    def forbid(self, keys: tuple[str, ...], reason: str) -> None:
        """Reject any of ``keys`` that is present (e.g. fields of another transport)."""
        for key in keys:
            if key in self.data:
                raise self.error(key, f"is not allowed {reason}")

    def finish(self) -> None:
        """Reject keys that no getter asked for."""
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            allowed = ", ".join(sorted(self._used)) or "none"
            raise self.error(unknown[0], f"unknown key (allowed here: {allowed})")


# ------------------------------------------------------------------------------------------
# Section validators.


def _listen(t: _Table, key: str, default: str) -> str:
    text = t.get_str(key, default, allow_empty=False)
    try:
        split_host_port(text)
    except ValueError as exc:
        raise t.error(key, f"{exc} (got {text!r})") from None
    return text


def _path(t: _Table, key: str, base: Path | None) -> Path | None:
    text = t.optional_str(key)
    if text is None:
        return None
    path = Path(text)
    return path if path.is_absolute() or base is None else base / path


def _ip(
    t: _Table, key: str, default: str | None, multicast: bool = False, allow_empty: bool = False
) -> str | None:
    if allow_empty and t.has(key) and t.get_str(key, "") == "":
        return ""
    text = t.optional_str(key)
    if text is None:
        return default
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise t.error(key, f"must be an IP address (got {text!r})") from None
    if multicast and not address.is_multicast:
        raise t.error(key, f"must be a multicast address (got {text!r})")
    return text


def _flavour(t: _Table) -> str:
    text = t.get_str("flavour", "64-48", allow_empty=False)
    match = FLAVOUR_RE.match(text)
    bits = int(match.group(1)) if match else 0
    if match is None or bits % 8 != 0 or not 8 <= bits <= 56:
        raise t.error(
            "flavour",
            f'must be "64-N" with N a multiple of 8 from 8 to 56, e.g. "64-48" (got {text!r})',
        )
    return f"64-{bits}"


def _server(t: _Table | None, base: Path | None) -> ServerConfig:
    d = ServerConfig()
    if t is None:
        return d
    tls_table = t.table("tls")
    tls = None
    if tls_table is not None:
        cert = _path(tls_table, "cert", base)
        key = _path(tls_table, "key", base)
        if cert is None or key is None:
            raise tls_table.error("cert" if cert is None else "key", "is required for TLS")
        tls = TlsConfig(cert, key, _path(tls_table, "client_ca", base))
        tls_table.finish()
    config = ServerConfig(
        listen=_listen(t, "listen", d.listen),
        max_send_message_bytes=t.get_int("max_send_message_bytes", d.max_send_message_bytes, 65536),
        max_receive_message_bytes=t.get_int(
            "max_receive_message_bytes", d.max_receive_message_bytes, 65536
        ),
        grace_period=t.get_float("grace_period", d.grace_period),
        min_ping_interval=t.get_float("min_ping_interval", d.min_ping_interval),
        keepalive_time=t.get_float("keepalive_time", d.keepalive_time, positive=True),
        keepalive_timeout=t.get_float("keepalive_timeout", d.keepalive_timeout, positive=True),
        token_file=_path(t, "token_file", base),
        token_env=t.optional_str("token_env"),
        tls=tls,
    )
    if config.min_ping_interval > 10.0:
        raise t.error(
            "min_ping_interval",
            f"must be at most 10 so clients may ping every 10 s (got {config.min_ping_interval!r})",
        )
    if config.token_file is not None and config.token_env is not None:
        raise t.error("token_env", "set token_file or token_env, not both")
    t.finish()
    return config


def _metrics(t: _Table | None) -> MetricsConfig:
    if t is None:
        return MetricsConfig()
    enabled = t.get_bool("enabled", True)
    listen = _listen(t, "listen", MetricsConfig().listen or "")
    t.finish()
    return MetricsConfig(listen if enabled else None)


def _subscribe(t: _Table | None, server: ServerConfig, source: str) -> SubscribeConfig:
    d = SubscribeConfig()
    if t is None:
        t = _Table(source, "subscribe", {})
    # Room for the heap header, item metadata and the per-subscriber sequence fields. Fewer
    # fragments per heap cost clients less (each fragmented heap is copied once more), so
    # the default is as large as the server's message limit allows.
    limit = server.max_send_message_bytes - FRAGMENT_HEADROOM
    config = SubscribeConfig(
        default_queue_depth=t.get_int("default_queue_depth", d.default_queue_depth, 1),
        max_queue_depth=t.get_int("max_queue_depth", d.max_queue_depth, 1),
        max_queue_bytes=t.get_int("max_queue_bytes", d.max_queue_bytes, 1),
        fragment_bytes=t.get_int("fragment_bytes", limit, 4096),
        max_subscribers=t.get_int("max_subscribers", d.max_subscribers, 1),
        min_stats_interval=t.get_float("min_stats_interval", d.min_stats_interval, positive=True),
    )
    if config.default_queue_depth > config.max_queue_depth:
        raise t.error(
            "default_queue_depth",
            f"must not exceed max_queue_depth ({config.max_queue_depth}) "
            f"(got {config.default_queue_depth})",
        )
    if config.fragment_bytes > limit:
        raise t.error(
            "fragment_bytes",
            f"must be at most server.max_send_message_bytes - {FRAGMENT_HEADROOM} = {limit} "
            f"(got {config.fragment_bytes})",
        )
    t.finish()
    return config


def _memory_pool(t: _Table | None) -> MemoryPoolConfig | None:
    if t is None:
        return None
    if not t.has("upper"):
        raise t.error("upper", "is required")
    lower = t.get_int("lower", 0, 0)
    upper = t.get_int("upper", 0, 1)
    max_free = t.get_int("max_free", 8, 0)
    initial = t.get_int("initial", 0, 0)
    if lower > upper:
        raise t.error("lower", f"must not exceed upper ({upper}) (got {lower})")
    if initial > max_free:
        raise t.error("initial", f"must not exceed max_free ({max_free}) (got {initial})")
    t.finish()
    return MemoryPoolConfig(lower, upper, max_free, initial)


_NETWORK_KEYS = (
    "host",
    "port",
    "group",
    "interface_address",
    "interface_index",
    "max_size",
    "buffer_size",
)
_PCAP_KEYS = ("file", "filter")


def _receive_transport(t: _Table, transport: str, base: Path | None) -> dict[str, Any]:
    if transport == "pcap":
        t.forbid(_NETWORK_KEYS, 'for transport "pcap"')
        file = _path(t, "file", base)
        if file is None:
            raise t.error("file", 'is required for transport "pcap"')
        return {
            "file": file,
            "filter": t.get_str("filter", ""),
            "restart": t.get_bool("restart", False),
        }
    t.forbid(_PCAP_KEYS, f"for transport {transport!r}")
    if not t.has("port"):
        raise t.error("port", f"is required for transport {transport!r}")
    values: dict[str, Any] = {
        "port": t.get_int("port", 0, 1, 65535),
        "restart": t.get_bool("restart", True),
    }
    udp = transport == "udp"
    values["max_size"] = t.get_int(
        "max_size", UDP_DEFAULT_MAX_SIZE if udp else TCP_DEFAULT_MAX_SIZE, 64
    )
    values["buffer_size"] = t.get_int(
        "buffer_size", UDP_DEFAULT_BUFFER_SIZE if udp else TCP_DEFAULT_BUFFER_SIZE, 0
    )
    if udp and t.has("group"):
        values["group"] = _ip(t, "group", None, multicast=True)
        t.forbid(("host",), "with group (multicast streams bind the group address)")
        if t.has("interface_address") and t.has("interface_index"):
            raise t.error("interface_index", "set interface_address or interface_index, not both")
        values["interface_address"] = _ip(t, "interface_address", None)
        values["interface_index"] = t.optional_int("interface_index", 0)
    else:
        if not udp:
            t.forbid(("group",), 'for transport "tcp"')
        t.forbid(("interface_address", "interface_index"), "without group (multicast only)")
        values["host"] = _ip(t, "host", "127.0.0.1")
    return values


def _receive_stream(t: _Table, base: Path | None) -> ReceiveStreamConfig:
    d = ReceiveStreamConfig(name="", transport="udp")
    name = _name(t)
    transport = t.choice("transport", "", ("udp", "tcp", "pcap"), required=True)
    values = _receive_transport(t, transport, base)
    memcpy = t.choice("memcpy", d.memcpy, MEMCPY_CHOICES)
    config = ReceiveStreamConfig(
        name=name,
        transport=transport,
        flavour=_flavour(t),
        threads=t.get_int("threads", d.threads, 1, 64),
        max_heaps=t.get_int("max_heaps", d.max_heaps, 1),
        max_heap_size=t.get_int("max_heap_size", d.max_heap_size, 1),
        substreams=t.get_int("substreams", d.substreams, 1),
        bug_compat=t.get_int("bug_compat", d.bug_compat, 0, 15),
        memcpy=memcpy,
        stop_on_stop_item=t.get_bool("stop_on_stop_item", d.stop_on_stop_item),
        allow_unsized_heaps=t.get_bool("allow_unsized_heaps", d.allow_unsized_heaps),
        allow_out_of_order=t.get_bool("allow_out_of_order", d.allow_out_of_order),
        stream_id=t.get_int("stream_id", d.stream_id, 0, 2**64 - 1),
        explicit_start=t.get_bool("explicit_start", d.explicit_start),
        ring_heaps=t.get_int("ring_heaps", d.ring_heaps, 1),
        contiguous_only=t.get_bool("contiguous_only", d.contiguous_only),
        incomplete_keep_payload_ranges=t.get_bool(
            "incomplete_keep_payload_ranges", d.incomplete_keep_payload_ranges
        ),
        memory_pool=_memory_pool(t.table("memory_pool")),
        **values,
    )
    t.finish()
    return config


def _destinations(t: _Table) -> tuple[tuple[str, int], ...]:
    if not t.has("destinations"):
        raise t.error("destinations", 'is required (a list of "host:port" strings)')
    raw = t.take("destinations")
    if not isinstance(raw, list) or not raw:
        raise t.error("destinations", f'must be a non-empty list of "host:port" (got {raw!r})')
    result = []
    for i, item in enumerate(raw):
        try:
            if not isinstance(item, str):
                raise ValueError('must be a "host:port" string')
            host, port = split_host_port(item)
            ipaddress.ip_address(host)
            if port == 0:
                raise ValueError("port must not be 0")
        except ValueError as exc:
            raise t.error(f"destinations[{i}]", f"{exc} (got {item!r})") from None
        result.append((host, port))
    return tuple(result)


def _send_stream(t: _Table) -> SendStreamConfig:
    d = SendStreamConfig(name="", transport="udp", destinations=())
    name = _name(t)
    transport = t.choice("transport", "", ("udp", "tcp"), required=True)
    destinations = _destinations(t)
    if transport == "tcp":
        if len(destinations) != 1:
            raise t.error("destinations", 'must have exactly one entry for transport "tcp"')
        t.forbid(("ttl",), 'for transport "tcp"')
    default_buffer = (
        SEND_UDP_DEFAULT_BUFFER_SIZE if transport == "udp" else SEND_TCP_DEFAULT_BUFFER_SIZE
    )
    config = SendStreamConfig(
        name=name,
        transport=transport,
        destinations=destinations,
        flavour=_flavour(t),
        bug_compat=t.get_int("bug_compat", d.bug_compat, 0, 15),
        rate=t.get_float("rate", d.rate),
        max_packet_size=t.get_int("max_packet_size", d.max_packet_size, 128, 65507),
        max_heaps=t.get_int("max_heaps", d.max_heaps, 1, 65536),
        burst_size=t.get_int("burst_size", d.burst_size, 0),
        burst_rate_ratio=t.get_float("burst_rate_ratio", d.burst_rate_ratio, 1.0),
        ttl=t.get_int("ttl", d.ttl, 0, 255),
        interface_address=_ip(t, "interface_address", "", allow_empty=True) or "",
        buffer_size=t.get_int("buffer_size", default_buffer, 0),
        queue_timeout=t.get_float("queue_timeout", d.queue_timeout),
        threads=t.get_int("threads", d.threads, 1, 64),
        max_client_rate=t.get_float("max_client_rate", d.max_client_rate),
        max_client_burst=t.get_int("max_client_burst", d.max_client_burst, 0),
        max_concurrent_sends=t.get_int("max_concurrent_sends", d.max_concurrent_sends, 1, 65536),
    )
    if config.max_client_burst and not config.max_client_rate:
        raise t.error(
            "max_client_burst",
            f"has no effect without max_client_rate (got {config.max_client_burst})",
        )
    t.finish()
    return config


def _name(t: _Table) -> str:
    name = t.required_str("name")
    if not NAME_RE.match(name):
        raise t.error(
            "name",
            f"must be 1-63 letters, digits, '_', '.' or '-', starting with a letter or "
            f"digit (got {name!r})",
        )
    return name


def _streams(t: _Table | None) -> list[_Table]:
    if t is None:
        return []
    streams = t.tables("streams")
    t.finish()
    return streams


def _check_unique(config: GatewayConfig, tables: list[_Table]) -> None:
    seen: dict[str, int] = {}
    for index, name in enumerate(config.stream_names()):
        if name in seen:
            raise tables[index].error("name", f"duplicate stream name {name!r}")
        seen[name] = index


def parse_config(
    text: str, source: str = DEFAULT_SOURCE, base: Path | None = None
) -> GatewayConfig:
    """Validate TOML ``text``; ``source`` names it in errors, ``base`` resolves relative paths.

    Raises
    ------
    ConfigError
        With the source, the dotted path of the field and the reason.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    root = _Table(source, "", data)
    log_level = root.choice("log_level", "info", ("debug", "info", "warning", "error"))
    server = _server(root.table("server"), base)
    metrics = _metrics(root.table("metrics"))
    subscribe = _subscribe(root.table("subscribe"), server, source)
    receive_tables = _streams(root.table("receive"))
    send_tables = _streams(root.table("send"))
    root.finish()
    config = GatewayConfig(
        source=source,
        server=server,
        metrics=metrics,
        subscribe=subscribe,
        receive=tuple(_receive_stream(t, base) for t in receive_tables),
        send=tuple(_send_stream(t) for t in send_tables),
        log_level=log_level,
    )
    if not config.receive and not config.send:
        raise root.error("receive", "the configuration defines no streams")
    _check_unique(config, receive_tables + send_tables)
    return config


def load_config(path: Path | None) -> GatewayConfig:
    """Read and validate ``path``, or the embedded default when ``path`` is None."""
    if path is None:
        return parse_config(DEFAULT_CONFIG_TOML)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse_config(text, str(path), path.parent)
