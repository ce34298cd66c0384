"""The ``spead2.gateway.v1.Gateway`` service.

Registered as generic handlers rather than through generated ``*_pb2_grpc`` stubs, because
``Subscribe`` sends bytes that are already serialised (see ``wire.py``): its response
serializer is None, so grpcio sends the bytes as they are. The other methods use the
ordinary protobuf (de)serialisers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.config import SubscribeConfig, to_plain
from spead2_gateway.hub import SubscriptionClosed, make_filter
from spead2_gateway.receiver import ReceiveStream
from spead2_gateway.sender import SendError, SendStream

__all__ = ["SERVICE_NAME", "GatewayServicer", "generic_handler"]

SERVICE_NAME = "spead2.gateway.v1.Gateway"
# Largest item ID of any SPEAD-64-XX flavour (XX >= 8).
MAX_ITEM_ID = (1 << 55) - 1
MAX_FILTER_ENTRIES = 4096

Context = grpc.aio.ServicerContext


@dataclass
class Streams:
    """The streams the daemon owns, by name."""

    receive: Mapping[str, ReceiveStream]
    send: Mapping[str, SendStream]


class GatewayServicer:
    """Implements the five Gateway methods over the daemon's streams."""

    def __init__(self, streams: Streams, limits: SubscribeConfig, grace_period: float) -> None:
        self.streams = streams
        self.limits = limits
        self.grace_period = grace_period
        self.closing = asyncio.Event()
        # Told to every subscriber, so a reconnecting client knows for certain whether it
        # reached the same daemon process or a restarted one.
        self.instance = uuid.uuid4().hex

    # Lookup ----------------------------------------------------------------------------

    async def _receive_stream(self, name: str, context: Context[Any, Any]) -> ReceiveStream:
        stream = self.streams.receive.get(name)
        if stream is not None:
            return stream
        if name in self.streams.send:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{name!r} is a send stream")
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no receive stream named {name!r}")
        raise AssertionError("unreachable")

    async def _check_open(self, context: Context[Any, Any]) -> None:
        if self.closing.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the gateway is shutting down")

    def _info(self, stream: ReceiveStream | SendStream) -> pb.StreamInfo:
        info = pb.StreamInfo(
            name=stream.name,
            transport=stream.config.transport,
            endpoint=stream.config.endpoint,
            state=stream.state,
        )
        if isinstance(stream, ReceiveStream):
            info.kind = pb.STREAM_KIND_RECEIVE
            info.subscribers = len(stream.hub)
        else:
            info.kind = pb.STREAM_KIND_SEND
        return info

    def _all(self) -> list[ReceiveStream | SendStream]:
        return [*self.streams.receive.values(), *self.streams.send.values()]

    # Unary methods ---------------------------------------------------------------------

    async def list_streams(
        self, request: pb.ListStreamsRequest, context: Context[Any, Any]
    ) -> pb.ListStreamsResponse:
        """Every stream with its kind, transport, endpoint and state."""
        return pb.ListStreamsResponse(streams=[self._info(s) for s in self._all()])

    async def get_stream(
        self, request: pb.GetStreamRequest, context: Context[Any, Any]
    ) -> pb.StreamDetail:
        """Configuration, descriptors and statistics of one stream."""
        stream: ReceiveStream | SendStream | None = self.streams.receive.get(request.name)
        if stream is None:
            stream = self.streams.send.get(request.name)
        if stream is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no stream named {request.name!r}")
            raise AssertionError("unreachable")
        config = Struct()
        config.update(to_plain(stream.config))
        detail = pb.StreamDetail(info=self._info(stream), config=config, stats=stream.stats())
        if isinstance(stream, ReceiveStream):
            detail.descriptors.extend(stream.descriptors)
        return detail

    # Subscribe -------------------------------------------------------------------------

    async def _validate_subscribe(
        self, request: pb.SubscribeRequest, context: Context[Any, Any]
    ) -> None:
        problem = None
        if len(request.item_names) + len(request.item_ids) > MAX_FILTER_ENTRIES:
            problem = f"at most {MAX_FILTER_ENTRIES} item names and ids"
        elif any(not name for name in request.item_names):
            problem = "item_names must not contain an empty name"
        else:
            bad = [i for i in request.item_ids if not 1 <= i <= MAX_ITEM_ID]
            if bad:
                problem = f"item id {bad[0]} out of range 1..{MAX_ITEM_ID}"
        if problem is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad filter: {problem}")

    async def subscribe(
        self, request: pb.SubscribeRequest, context: Context[Any, Any]
    ) -> AsyncIterator[bytes]:
        """Serialised Heap messages of one receive stream, until it ends or we shut down."""
        await self._check_open(context)
        stream = await self._receive_stream(request.stream, context)
        await self._validate_subscribe(request, context)
        if len(stream.hub) >= self.limits.max_subscribers:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"stream {stream.name!r} already has {self.limits.max_subscribers} subscribers",
            )
        depth = request.queue_depth or self.limits.default_queue_depth
        depth = min(depth, self.limits.max_queue_depth)
        sub = stream.hub.subscribe(
            make_filter(request.item_names, request.item_ids),
            request.every_nth,
            request.include_incomplete,
            depth,
            self.limits.max_queue_bytes,
        )
        try:
            await context.send_initial_metadata(
                (
                    ("x-queue-depth", str(depth)),
                    ("x-subscriber-id", str(sub.id)),
                    ("x-gateway-instance", self.instance),
                )
            )
            while True:
                try:
                    messages = await sub.next()
                except SubscriptionClosed as closed:
                    if closed.shutdown:
                        await context.abort(grpc.StatusCode.UNAVAILABLE, closed.reason)
                    return
                for message in messages:
                    yield message
        finally:
            stream.hub.unsubscribe(sub)

    # WatchStats ------------------------------------------------------------------------

    async def watch_stats(
        self, request: pb.WatchStatsRequest, context: Context[Any, Any]
    ) -> AsyncIterator[pb.StatsUpdate]:
        """A StatsUpdate now and then every interval, until the daemon shuts down."""
        await self._check_open(context)
        wanted = list(request.streams)
        streams = {s.name: s for s in self._all()}
        unknown = [name for name in wanted if name not in streams]
        if unknown:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no stream named {unknown[0]!r}")
        if request.interval_seconds < 0 or request.interval_seconds != request.interval_seconds:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "interval_seconds must be >= 0")
        interval = max(request.interval_seconds or 1.0, self.limits.min_stats_interval)
        chosen = [streams[name] for name in wanted] if wanted else list(streams.values())
        while True:
            stamp = Timestamp()
            stamp.GetCurrentTime()
            yield pb.StatsUpdate(time=stamp, streams=[s.stats() for s in chosen])
            try:
                await asyncio.wait_for(self.closing.wait(), interval)
            except TimeoutError:
                continue
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the gateway is shutting down")

    # Send ------------------------------------------------------------------------------

    async def send(
        self, requests: AsyncIterator[pb.SendRequest], context: Context[Any, Any]
    ) -> pb.SendResponse:
        """Transmits the client's heaps; the response counts them once all are sent."""
        await self._check_open(context)
        session = None
        try:
            async for request in requests:
                if session is None:
                    if not request.stream:
                        await context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            "the first request must name the send stream",
                        )
                    stream = self.streams.send.get(request.stream)
                    if stream is None:
                        await context.abort(
                            grpc.StatusCode.NOT_FOUND, f"no send stream named {request.stream!r}"
                        )
                        raise AssertionError("unreachable")
                    session = stream.session()
                elif request.stream and request.stream != session.stream.name:
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"stream changed from {session.stream.name!r} to {request.stream!r}",
                    )
                await session.submit(request)
            if session is None:
                return pb.SendResponse()
            heaps, nbytes = await session.finish(self.grace_period + 60.0)
        except SendError as exc:
            await context.abort(exc.code, exc.message)
            raise AssertionError("unreachable") from None
        return pb.SendResponse(heaps=heaps, bytes=nbytes)


def generic_handler(servicer: GatewayServicer) -> grpc.GenericRpcHandler[Any, Any]:
    """The service's method handlers (Subscribe with a pass-through serializer)."""
    handlers = {
        "ListStreams": grpc.unary_unary_rpc_method_handler(
            servicer.list_streams,
            request_deserializer=pb.ListStreamsRequest.FromString,
            response_serializer=pb.ListStreamsResponse.SerializeToString,
        ),
        "GetStream": grpc.unary_unary_rpc_method_handler(
            servicer.get_stream,
            request_deserializer=pb.GetStreamRequest.FromString,
            response_serializer=pb.StreamDetail.SerializeToString,
        ),
        "Subscribe": grpc.unary_stream_rpc_method_handler(
            servicer.subscribe,
            request_deserializer=pb.SubscribeRequest.FromString,
            response_serializer=None,  # already serialised once per heap
        ),
        "WatchStats": grpc.unary_stream_rpc_method_handler(
            servicer.watch_stats,
            request_deserializer=pb.WatchStatsRequest.FromString,
            response_serializer=pb.StatsUpdate.SerializeToString,
        ),
        "Send": grpc.stream_unary_rpc_method_handler(
            servicer.send,
            request_deserializer=pb.SendRequest.FromString,
            response_serializer=pb.SendResponse.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)
