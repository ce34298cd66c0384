"""Heap messages built from pre-encoded parts, splitting, and the item value codec."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from spead2_gateway import codec, wire
from spead2_gateway._proto import gateway_pb2 as pb
from spead2_gateway.client import Reassembler


def encoded(item_id: int, name: str, array: np.ndarray) -> wire.EncodedItem:
    fortran, data = codec.array_to_bytes(array)
    meta = pb.Item(
        id=item_id,
        name=name,
        dtype=codec.dtype_to_wire(array.dtype),
        shape=array.shape,
        fortran_order=fortran,
    )
    return wire.EncodedItem.from_proto(meta, data)


ARRAYS = {
    "small": np.arange(10, dtype="<i4"),
    "big": (np.arange(300_000, dtype=np.uint32) * 2654435761).astype(">u4"),
    "fortran": np.asfortranarray(np.arange(12, dtype="<f8").reshape(3, 4)),
    "empty": np.zeros((0, 3), dtype="<u2"),
    "medium": np.arange(20_000, dtype=np.uint8),
    "scalar": np.array(7, dtype="<u2"),
}


def items() -> list[wire.EncodedItem]:
    return [encoded(0x1000 + i, name, a) for i, (name, a) in enumerate(ARRAYS.items())]


def test_varint() -> None:
    assert wire.varint(0) == b"\x00"
    assert wire.varint(127) == b"\x7f"
    assert wire.varint(300) == b"\xac\x02"
    assert wire.varint(2**64 - 1) == b"\xff" * 9 + b"\x01"
    with pytest.raises(ValueError):
        wire.varint(-1)


def test_prefix_plus_body_is_one_protobuf_heap() -> None:
    header = wire.encode_header(pb.Heap(stream="s", cnt=42, start_of_stream=True))
    (body,) = wire.build_fragments(header, items()[:1], 1 << 20)
    heap = pb.Heap.FromString(wire.subscriber_prefix(9, 3) + body)
    assert (heap.stream, heap.cnt, heap.sequence, heap.dropped) == ("s", 42, 9, 3)
    assert heap.start_of_stream and heap.fragments == 0
    (item,) = heap.items
    assert (item.id, item.name, item.dtype, list(item.shape)) == (0x1000, "small", "<i4", [10])
    assert item.data == ARRAYS["small"].tobytes()
    # The same bytes protobuf itself would produce for the same message.
    assert pb.Heap.FromString(heap.SerializeToString()) == heap


@pytest.mark.parametrize("limit", [4096, 65536, 1 << 20])
def test_split_heaps_reassemble_exactly(limit: int) -> None:
    header = wire.encode_header(pb.Heap(stream="s", cnt=1))
    bodies = wire.build_fragments(header, items(), limit)
    total = sum(len(b) for b in bodies)
    if limit < 1 << 20:
        assert len(bodies) > 1
    assert all(len(b) <= limit for b in bodies)
    reassembler = Reassembler()
    heaps = []
    prefix = wire.subscriber_prefix(5, 0)
    for body in bodies:
        heap = reassembler.feed(pb.Heap.FromString(prefix + body))
        if heap is not None:
            heaps.append(heap)
    assert len(heaps) == 1
    heap = heaps[0]
    assert heap.fragments == len(bodies) and heap.sequence == 5
    assert list(heap.items) == list(ARRAYS)
    for name, array in ARRAYS.items():
        got = heap[name]
        assert (got.dtype, got.shape) == (array.dtype, array.shape), name
        assert got.tobytes() == array.tobytes(), name
    assert total < sum(a.nbytes for a in ARRAYS.values()) + 4096 * len(bodies)


def test_reassembler_rejects_out_of_order_fragments() -> None:
    header = wire.encode_header(pb.Heap(stream="s", cnt=1))
    bodies = wire.build_fragments(header, items(), 4096)
    from spead2_gateway.client import ProtocolError

    with pytest.raises(ProtocolError):
        Reassembler().feed(pb.Heap.FromString(wire.subscriber_prefix(1, 0) + bodies[1]))


# ------------------------------------------------------------------------------------------
# Codec


@pytest.mark.parametrize(
    "dtype",
    [
        "<f4",
        ">c16",
        "|b1",
        "|S3",
        [("a", "<u2"), ("b", ">f8"), ("c", "i1"), ("d", "S3")],
        [("x", "<i4", (2, 3)), ("y", [("z", "<u1")])],
    ],
)
def test_dtype_strings_round_trip(dtype: Any) -> None:
    dt = np.dtype(dtype)
    assert codec.dtype_from_wire(codec.dtype_to_wire(dt)) == dt


@pytest.mark.parametrize("text", ["", "|O", "object", "[1, 2]", "nonsense", '[["a"]]', "V0"])
def test_bad_dtype_strings(text: str) -> None:
    with pytest.raises(ValueError):
        codec.dtype_from_wire(text)


def test_array_from_bytes_checks_the_size() -> None:
    a = codec.array_from_bytes(bytes(range(12)), "<u2", [2, 3], True)
    assert a.shape == (2, 3) and a.flags.f_contiguous
    with pytest.raises(ValueError, match="need 12"):
        codec.array_from_bytes(bytes(11), "<u2", [2, 3], False)


@pytest.mark.parametrize(
    ("value", "format", "dtype", "back"),
    [
        (np.array([1, 15, 3], dtype=object), [("u", 4)], "u1", None),
        (np.array([-2048, 2047], dtype=object), [("i", 12)], "i2", None),
        (4095, [("u", 12)], "u2", None),
        (2**48 - 1, [("u", 48)], "u8", None),
        ("hello", [("c", 8)], "S1", None),
        (np.bytes_(b"Q"), [("c", 8)], "S1", None),
        (
            np.array(
                [(1, -2, 1.5, b"a")],
                dtype=[("f0", "u1"), ("f1", "<i2"), ("f2", "<f4"), ("f3", "S1")],
            ),
            [("u", 8), ("i", 16), ("f", 32), ("c", 8)],
            None,
            None,
        ),
        (np.array([True, False]), [("b", 8)], "?", None),
        (np.uint8(200), [("u", 8)], "u1", None),
    ],
)
def test_format_values_round_trip_to_the_spead2_presentation(
    value: Any, format: list[tuple[str, int]], dtype: str | None, back: Any
) -> None:
    array = codec.to_array(value, format)
    assert not array.dtype.hasobject
    if dtype is not None:
        assert array.dtype == np.dtype(dtype)
    fortran, data = codec.array_to_bytes(array)
    rebuilt = codec.array_from_bytes(
        bytes(data), codec.dtype_to_wire(array.dtype), array.shape, fortran
    )
    presented = codec.spead2_value(rebuilt, format)
    assert type(presented) is type(value)
    if isinstance(value, np.ndarray):
        assert presented.dtype == value.dtype and presented.shape == value.shape
        assert presented.tolist() == value.tolist()
    else:
        assert presented == value


def test_descriptor_round_trip() -> None:
    message = codec.descriptor_to_proto(0x1234, "x", "an item", (None, 3), None, [("u", 4)], "F")
    assert list(message.shape) == [-1, 3] and message.fortran_order
    kwargs = codec.descriptor_from_proto(message)
    assert kwargs == {
        "id": 0x1234,
        "name": "x",
        "description": "an item",
        "shape": (None, 3),
        "dtype": None,
        "order": "F",
        "format": [("u", 4)],
    }
    with pytest.raises(ValueError):
        codec.descriptor_from_proto(
            pb.Descriptor(id=1, name="x", dtype="<u2", format=[pb.FormatField(code="u", bits=8)])
        )
