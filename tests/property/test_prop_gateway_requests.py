"""Property tests: the gateway's request validation never fails with anything undocumented.

Random ``SubscribeRequest`` filters go through ``GatewayServicer._validate_subscribe`` and
random ``SendRequest`` streams through ``GatewayServicer.send`` (with a send stream whose
transmit is faked, so no socket is opened). Each request must either be accepted or be
aborted with the status code docs/gateway.md documents for it (INVALID_ARGUMENT for a bad
filter, item or descriptor or a first message without a stream, NOT_FOUND for an unknown
stream); any other exception is a bug.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.config import SendStreamConfig, SubscribeConfig
from spead2_gateway.sender import SendCounters, SendSession
from spead2_gateway.service import MAX_FILTER_ENTRIES, MAX_ITEM_ID, GatewayServicer, Streams

import spead2
import spead2.send

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HEAP_ADDRESS_BITS = 40
STREAM_MAX_ITEM_ID = (1 << (63 - HEAP_ADDRESS_BITS)) - 1


class Aborted(Exception):
    """What our fake ``context.abort`` raises (grpc.aio raises its own AbortError)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code


class FakeContext:
    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise Aborted(code, details)


@dataclass
class FakeSendStream:
    """The parts of ``SendStream`` a ``SendSession`` uses; transmit records the heap."""

    name: str = "tx"
    flavour: spead2.Flavour = field(
        default_factory=lambda: spead2.Flavour(4, 64, HEAP_ADDRESS_BITS, 0)
    )
    max_item_id: int = STREAM_MAX_ITEM_ID
    counters: SendCounters = field(default_factory=SendCounters)
    config: SendStreamConfig = field(
        default_factory=lambda: SendStreamConfig("tx", "udp", (("127.0.0.1", 8888),))
    )
    transmitted: list[spead2.send.Heap] = field(default_factory=list)

    def session(self) -> SendSession:
        return SendSession(self)  # type: ignore[arg-type]

    async def transmit(self, heap: spead2.send.Heap, cnt: int) -> asyncio.Future[int]:
        self.transmitted.append(heap)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.set_result(100)
        return future


def servicer(send: dict[str, FakeSendStream] | None = None) -> GatewayServicer:
    streams = Streams(receive={}, send=send or {})  # type: ignore[arg-type]
    return GatewayServicer(streams, SubscribeConfig(), grace_period=0.0)


# Subscribe -----------------------------------------------------------------------------

item_ids = st.one_of(
    st.integers(0, 3),
    st.integers(1, MAX_ITEM_ID),
    st.integers(MAX_ITEM_ID - 2, (1 << 64) - 1),
)


def subscribe_problem(request: pb.SubscribeRequest) -> bool:
    """True if docs/gateway.md says this filter is INVALID_ARGUMENT."""
    return (
        len(request.item_names) + len(request.item_ids) > MAX_FILTER_ENTRIES
        or any(not name for name in request.item_names)
        or any(not 1 <= i <= MAX_ITEM_ID for i in request.item_ids)
    )


@SETTINGS
@given(
    names=st.lists(st.text(max_size=8), max_size=6),
    ids=st.lists(item_ids, max_size=6),
    every_nth=st.integers(0, (1 << 32) - 1),
    queue_depth=st.integers(0, (1 << 32) - 1),
    include_incomplete=st.booleans(),
)
def test_subscribe_filter_validation(
    names: list[str], ids: list[int], every_nth: int, queue_depth: int, include_incomplete: bool
) -> None:
    request = pb.SubscribeRequest(
        stream="rx",
        item_names=names,
        item_ids=ids,
        every_nth=every_nth,
        queue_depth=queue_depth,
        include_incomplete=include_incomplete,
    )
    invalid = subscribe_problem(request)
    try:
        asyncio.run(servicer()._validate_subscribe(request, FakeContext()))  # type: ignore[arg-type]
    except Aborted as exc:
        assert exc.code == grpc.StatusCode.INVALID_ARGUMENT
        assert invalid
    else:
        assert not invalid


@pytest.mark.parametrize(
    ("names", "ids", "invalid"),
    [
        (["a"] * MAX_FILTER_ENTRIES, [], False),
        (["a"] * MAX_FILTER_ENTRIES, [7], True),
        ([""], [], True),
        ([], [0], True),
        ([], [MAX_ITEM_ID], False),
        ([], [MAX_ITEM_ID + 1], True),
    ],
)
def test_subscribe_filter_boundaries(names: list[str], ids: list[int], invalid: bool) -> None:
    request = pb.SubscribeRequest(stream="rx", item_names=names, item_ids=ids)
    assert subscribe_problem(request) == invalid
    validate = servicer()._validate_subscribe(request, FakeContext())  # type: ignore[arg-type]
    if invalid:
        with pytest.raises(Aborted) as info:
            asyncio.run(validate)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    else:
        asyncio.run(validate)


# Send ----------------------------------------------------------------------------------

GOOD_DTYPE_TEXTS = ["<f4", ">f8", "|u1", "<i2", ">c16", "|b1", "<u8"]
# Malformed or refused ones.
BAD_DTYPE_TEXTS = ["", "O", "|O", "garbage", "<M8[s]", "|V0", "[]", "[[1]]", "{}", "<f4x", "S0"]
DTYPE_TEXTS = [
    *GOOD_DTYPE_TEXTS,
    json.dumps([["a", "<i4"], ["b", "|u1", [2]]]),
    *BAD_DTYPE_TEXTS,
    "<U0",
]
FORMATS = [
    [],
    [("u", 8)],
    [("i", 32)],
    [("f", 64)],
    [("c", 8)],
    [("u", 3)],
    [("x", 8)],
    [("f", 16)],
    [("u", 0)],
    [("u", 8), ("f", 32)],
]
NAMES = ["a", "b", "c", ""]
descriptor_ids = st.one_of(
    st.sampled_from([0, 1, 6, 7, 0x1000, 0x1001, STREAM_MAX_ITEM_ID, STREAM_MAX_ITEM_ID + 1]),
    st.integers(0, (1 << 64) - 1),
)
shapes = st.lists(st.integers(-3, 5), max_size=3)


@st.composite
def descriptors(draw: st.DrawFn) -> pb.Descriptor:
    return pb.Descriptor(
        id=draw(descriptor_ids),
        name=draw(st.sampled_from(NAMES)),
        description=draw(st.text(max_size=5)),
        shape=draw(shapes),
        dtype=draw(st.sampled_from(DTYPE_TEXTS)),
        format=[pb.FormatField(code=c, bits=b) for c, b in draw(st.sampled_from(FORMATS))],
        fortran_order=draw(st.booleans()),
    )


@st.composite
def items(draw: st.DrawFn) -> pb.Item:
    """An item with data that often matches its dtype and shape."""
    dtype_text = draw(st.sampled_from(DTYPE_TEXTS))
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    try:
        itemsize = np.dtype(json.loads(dtype_text) if dtype_text.startswith("[") else dtype_text)
        size = int(np.prod(shape)) * itemsize.itemsize
    except Exception:
        size = draw(st.integers(0, 16))
    if draw(st.integers(0, 3)) == 0:
        size = draw(st.integers(0, 64))
    return pb.Item(
        id=draw(st.sampled_from([0, 7, 0x1000, 0x1001])),
        name=draw(st.sampled_from(NAMES)),
        dtype=dtype_text,
        shape=shape,
        fortran_order=draw(st.booleans()),
        offset=draw(st.sampled_from([0, 0, 0, 1])),
        size=draw(st.sampled_from([0, 0, 0, 8])),
        data=draw(st.binary(min_size=size, max_size=size)),
    )


@st.composite
def coherent_requests(draw: st.DrawFn) -> pb.SendRequest:
    """A request that should be accepted: one described item and matching data."""
    dtype = draw(st.sampled_from(["<f4", ">f8", "|u1", "<i2", ">c16", "<u8"]))
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return pb.SendRequest(
        stream="tx",
        start_of_stream=draw(st.booleans()),
        end_of_stream=draw(st.booleans()),
        cnt=draw(st.integers(0, 1 << 20)),
        descriptors=[pb.Descriptor(id=0x1000, name="a", shape=shape, dtype=dtype)],
        items=[
            pb.Item(
                id=0x1000,
                dtype=dtype,
                shape=shape,
                data=draw(st.binary(min_size=size, max_size=size)),
            )
        ],
    )


random_requests = st.builds(
    pb.SendRequest,
    stream=st.sampled_from(["tx", "tx", "", "nope"]),
    start_of_stream=st.booleans(),
    end_of_stream=st.booleans(),
    cnt=st.integers(0, (1 << 64) - 1),
    descriptors=st.lists(descriptors(), max_size=3),
    items=st.lists(items(), max_size=3),
)


async def run_send(gateway: GatewayServicer, requests: list[pb.SendRequest]) -> pb.SendResponse:
    async def stream() -> AsyncIterator[pb.SendRequest]:
        for request in requests:
            yield request

    return await gateway.send(stream(), FakeContext())  # type: ignore[arg-type]


def expected_lookup_error(requests: list[pb.SendRequest]) -> grpc.StatusCode | None:
    """The documented code for a stream problem in the first message, if any."""
    if not requests:
        return None
    if not requests[0].stream:
        return grpc.StatusCode.INVALID_ARGUMENT
    if requests[0].stream != "tx":
        return grpc.StatusCode.NOT_FOUND
    return None


@SETTINGS
@given(requests=st.lists(st.one_of(coherent_requests(), random_requests), max_size=3))
def test_send_requests_accepted_or_documented_error(requests: list[pb.SendRequest]) -> None:
    tx = FakeSendStream()
    try:
        response = asyncio.run(run_send(servicer({"tx": tx}), requests))
    except Aborted as exc:
        event(f"aborted {exc.code.name}")
        lookup = expected_lookup_error(requests)
        if lookup is not None:
            assert exc.code == lookup
        else:
            # Bad descriptor or item, or a later message naming another stream.
            assert exc.code == grpc.StatusCode.INVALID_ARGUMENT
            assert tx.counters.rejected_heaps <= 1
    else:
        event(f"accepted {len(requests)} messages")
        assert expected_lookup_error(requests) is None
        assert response.heaps == len(tx.transmitted) == len(requests)
        assert tx.counters.rejected_heaps == 0


@SETTINGS
@given(request=coherent_requests())
def test_coherent_send_request_is_accepted(request: pb.SendRequest) -> None:
    """Anchor for the property above: well-formed requests are never refused."""
    tx = FakeSendStream()
    response = asyncio.run(run_send(servicer({"tx": tx}), [request]))
    assert response.heaps == 1
    assert response.bytes == 100
    assert len(tx.transmitted) == 1


def test_send_item_without_descriptor_is_invalid_argument() -> None:
    tx = FakeSendStream()
    request = pb.SendRequest(stream="tx", items=[pb.Item(id=0x1000, dtype="|u1", data=b"x")])
    with pytest.raises(Aborted) as info:
        asyncio.run(run_send(servicer({"tx": tx}), [request]))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert tx.counters.rejected_heaps == 1
    assert tx.transmitted == []


def test_send_reserved_descriptor_id_is_invalid_argument() -> None:
    request = pb.SendRequest(stream="tx", descriptors=[pb.Descriptor(id=6, name="a", dtype="|u1")])
    with pytest.raises(Aborted) as info:
        asyncio.run(run_send(servicer({"tx": FakeSendStream()}), [request]))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
