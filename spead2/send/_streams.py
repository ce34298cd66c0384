"""The send stream classes: each resolves spead2's constructor overloads and builds the
native stream over the matching transport."""

from __future__ import annotations

import socket as _socket
from collections.abc import Sequence
from typing import Any

from spead2._spead2 import InprocQueue, ThreadPool
from spead2._spead2.send import (
    Stream,
    StreamConfig,
    _BytesBuffer,
    bytes_writer,
    inproc_writer,
    tcp_connect_writer,
    tcp_socket_writer,
    udp_socket_writer,
    udp_writer,
)

Endpoint = tuple[str, int]

UDP_DEFAULT_BUFFER_SIZE = 524288
TCP_DEFAULT_BUFFER_SIZE = 212992


def _bind(
    names: Sequence[str], args: tuple[Any, ...], kwargs: dict[str, Any], what: str
) -> dict[str, Any]:
    """Maps positional and keyword arguments onto `names`, rejecting extras and duplicates."""
    if len(args) > len(names):
        raise TypeError(f"{what}(): too many arguments")
    bound = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names or key in bound:
            raise TypeError(f"{what}(): unexpected or repeated argument {key!r}")
        bound[key] = value
    return bound


def _is_socket(value: object) -> bool:
    return isinstance(value, _socket.socket)


def _endpoints(value: object) -> list[Endpoint]:
    try:
        return [(str(host), int(port)) for host, port in value]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise TypeError("endpoints must be a list of (host, port) tuples") from None


def _config(bound: dict[str, Any]) -> StreamConfig:
    config = bound.get("config")
    return StreamConfig() if config is None else config


def _udp_writer(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, StreamConfig]:
    first = args[0] if args else kwargs.get("socket", kwargs.get("endpoints"))
    if _is_socket(first):
        bound = _bind(("socket", "endpoints", "config"), args, kwargs, "UdpStream")
        writer = udp_socket_writer(bound["socket"], _endpoints(bound["endpoints"]))
        return writer, _config(bound)
    names = ("endpoints", "config", "buffer_size", "ttl", "interface")
    kwargs = dict(kwargs)
    interface_key = next((k for k in ("interface_address", "interface_index") if k in kwargs), None)
    if interface_key is not None:
        kwargs["interface"] = kwargs.pop(interface_key)
    bound = _bind(names, args, kwargs, "UdpStream")
    endpoints = _endpoints(bound["endpoints"])
    buffer_size = bound.get("buffer_size", UDP_DEFAULT_BUFFER_SIZE)
    ttl = bound.get("ttl")
    interface = bound.get("interface")
    if isinstance(ttl, str):
        # (endpoints, config, buffer_size, interface_address): unicast from an interface.
        ttl, interface = None, ttl
    if ttl is None:
        address = str(interface or "")
        writer = udp_writer(endpoints, buffer_size, "unicast", interface_address=address)
    elif interface is None:
        writer = udp_writer(endpoints, buffer_size, "multicast", ttl=ttl)
    elif isinstance(interface, str):
        writer = udp_writer(
            endpoints, buffer_size, "multicast_v4", ttl=ttl, interface_address=interface
        )
    else:
        writer = udp_writer(
            endpoints, buffer_size, "multicast_v6", ttl=ttl, interface_index=int(interface)
        )
    return writer, _config(bound)


class UdpStream(Stream):
    """Sends heaps as UDP datagrams, one destination per substream.

    Overloads: ``(thread_pool, endpoints, config, buffer_size, interface_address)``,
    ``(..., buffer_size, ttl)``, ``(..., ttl, interface_address)`` (IPv4 multicast),
    ``(..., ttl, interface_index)`` (IPv6 multicast), ``(thread_pool, socket, endpoints,
    config)``.
    """

    DEFAULT_BUFFER_SIZE = UDP_DEFAULT_BUFFER_SIZE

    def __new__(cls, thread_pool: ThreadPool, *args: Any, **kwargs: Any) -> UdpStream:
        writer, config = _udp_writer(args, kwargs)
        return super().__new__(cls, thread_pool, writer, config)


class TcpStream(Stream):
    """Sends heaps over one TCP connection: ``(thread_pool, socket, config)`` or
    ``(thread_pool, endpoints, config, buffer_size, interface_address)`` (connects now)."""

    DEFAULT_BUFFER_SIZE = TCP_DEFAULT_BUFFER_SIZE

    def __new__(cls, thread_pool: ThreadPool, *args: Any, **kwargs: Any) -> TcpStream:
        first = args[0] if args else kwargs.get("socket", kwargs.get("endpoints"))
        if _is_socket(first):
            bound = _bind(("socket", "config"), args, kwargs, "TcpStream")
            writer = tcp_socket_writer(bound["socket"])
        else:
            names = ("endpoints", "config", "buffer_size", "interface_address")
            bound = _bind(names, args, kwargs, "TcpStream")
            writer = tcp_connect_writer(
                _endpoints(bound["endpoints"]),
                bound.get("buffer_size", TCP_DEFAULT_BUFFER_SIZE),
                bound.get("interface_address", ""),
            )
        return super().__new__(cls, thread_pool, writer, _config(bound))


class BytesStream(Stream):
    """Collects the packets in memory; :meth:`getvalue` returns them."""

    _buffer: _BytesBuffer

    def __new__(cls, thread_pool: ThreadPool, config: StreamConfig | None = None) -> BytesStream:
        writer, buffer = bytes_writer()
        self = super().__new__(cls, thread_pool, writer, config or StreamConfig())
        self._buffer = buffer
        return self

    def getvalue(self) -> bytes:
        """All packets sent so far, back to back."""
        return self._buffer.getvalue()


class InprocStream(Stream):
    """Sends packets into :class:`spead2.InprocQueue` objects, one per substream."""

    _queues: list[InprocQueue]

    def __new__(
        cls,
        thread_pool: ThreadPool,
        queues: Sequence[InprocQueue],
        config: StreamConfig | None = None,
    ) -> InprocStream:
        queues = list(queues)
        self = super().__new__(cls, thread_pool, inproc_writer(queues), config or StreamConfig())
        self._queues = queues
        return self

    @property
    def queues(self) -> list[InprocQueue]:
        """The queues given at construction (the same objects)."""
        return list(self._queues)
