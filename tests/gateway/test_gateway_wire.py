"""Heap messages built from pre-encoded parts, splitting, and the item value codec."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from google.protobuf.message import DecodeError
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
        heap = reassembler.feed(wire.parse_heap(prefix + body))
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
        Reassembler().feed(wire.parse_heap(wire.subscriber_prefix(1, 0) + bodies[1]))


# ------------------------------------------------------------------------------------------
# Reading messages without protobuf's copies of the item data


def as_protobuf(parsed: wire.ParsedHeap) -> pb.Heap:
    """``parsed`` put back together as one protobuf message."""
    heap = pb.Heap()
    heap.CopyFrom(parsed.header)
    for meta, data in parsed.items:
        heap.items.add().CopyFrom(meta)
        heap.items[-1].data = bytes(data)
    return heap


def test_parse_heap_reads_what_protobuf_reads() -> None:
    header = wire.encode_header(pb.Heap(stream="s", cnt=42, received={"seconds": 7, "nanos": 9}))
    for body in wire.build_fragments(header, items(), 1 << 16):
        message = wire.subscriber_prefix(9, 3) + body
        parsed = wire.parse_heap(message)
        assert not parsed.header.items
        assert all(not meta.data for meta, _ in parsed.items)
        assert as_protobuf(parsed) == pb.Heap.FromString(message)
        assert parsed.header.sequence == 9 and parsed.header.dropped == 3


def test_parse_heap_leaves_large_data_in_the_message_and_copies_small_data() -> None:
    (body,) = wire.build_fragments(wire.encode_header(pb.Heap(cnt=1)), items(), 8 << 20)
    message = wire.subscriber_prefix(1, 0) + body
    parsed = {meta.name: data for meta, data in wire.parse_heap(message).items}
    big = parsed["big"]
    assert isinstance(big, memoryview) and big.obj is message and big.readonly
    assert big == ARRAYS["big"].tobytes()
    # Half the message or less: a view would keep alive more than twice what it shows.
    for name in ("small", "medium", "scalar", "fortran", "empty"):
        data = parsed[name]
        assert type(data) is bytes and data == codec.array_to_bytes(ARRAYS[name])[1], name


@pytest.mark.parametrize("limit", [16384, 65536, 1 << 20, 8 << 20])
@pytest.mark.parametrize(("sequence", "dropped"), [(1, 0), (200, 0), (70_000, 3), (2**40, 2**20)])
def test_large_data_starts_aligned_in_every_message(
    limit: int, sequence: int, dropped: int
) -> None:
    """Every item data (or chunk) of 4096 bytes or more starts at a multiple of 16 bytes from
    the start of the message, whatever the prefix and the splitting."""
    assert (wire.ALIGNED_DATA_MIN, wire.DATA_ALIGNMENT) == (4096, 16)  # as the API documents
    rng = np.random.default_rng(1)
    edges = [
        encoded(0x2000 + n, f"n{n}", rng.integers(0, 256, n, dtype=np.uint8)) for n in (4095, 4096)
    ]
    header = wire.encode_header(pb.Heap(stream="a name of odd length", cnt=12345))
    prefix = wire.subscriber_prefix(sequence, dropped)
    assert len(prefix) % 16 == 0
    aligned = set()
    for body in wire.build_fragments(header, [*items(), *edges], limit):
        assert len(body) <= limit
        message = prefix + body
        for meta, data in wire.parse_heap(message).items:
            if len(data) < 4096:
                continue
            start = message.find(bytes(data))  # the data is unique in these messages
            assert start % 16 == 0, (meta.name, start)
            aligned.add(meta.name)
    assert {"big", "medium", "n4096"} <= aligned


@pytest.mark.parametrize("seed", range(3))
def test_padding_is_counted_against_the_fragment_limit(seed: int) -> None:
    """Limits around the heap's unpadded size: whether the padding fits decides the split."""
    rng = np.random.default_rng(seed)
    large = [
        encoded(0x2000 + i, f"i{i}", rng.integers(0, 256, n, dtype=np.uint8))
        for i, n in enumerate(rng.integers(4096, 9000, 40))
    ]
    header = wire.encode_header(pb.Heap(stream="s", cnt=1))
    unpadded = len(header) + sum(item.entry_size() for item in large)
    for limit in range(unpadded - 800, unpadded + 800, 7):
        for fragment in wire.plan_fragments(header, large, limit):
            assert fragment.size == len(fragment.join(b"")) <= limit


def test_arrays_of_large_items_are_aligned_views_of_the_message() -> None:
    (body,) = wire.build_fragments(wire.encode_header(pb.Heap(cnt=1)), items(), 8 << 20)
    for sequence in range(1, 40):
        message = wire.subscriber_prefix(sequence, sequence % 3) + body
        heap = Reassembler().feed(wire.parse_heap(message))
        assert heap is not None
        big = heap["big"]
        assert big.ctypes.data % 16 == 0 and not big.flags.owndata and not big.flags.writeable
        assert np.array_equal(big, ARRAYS["big"])


def test_misaligned_data_from_another_server_is_copied_to_an_aligned_array() -> None:
    values = np.arange(3000, dtype="<f8")
    item = pb.Item(id=1, name="x", dtype="<f8", shape=[3000], data=values.tobytes())
    for lead in range(8):  # unknown fields of 3..10 bytes shift the data by each amount
        message = (
            length_delimited(900, bytes(lead))
            + pb.Heap(sequence=1, items=[item]).SerializeToString()
        )
        heap = Reassembler().feed(wire.parse_heap(message))
        assert heap is not None
        assert heap["x"].flags.aligned and np.array_equal(heap["x"], values)


def message_with_data(data_size: int, total: int) -> bytes:
    """A Heap of ``total`` bytes with one item of ``data_size`` bytes of data."""

    def entry_of(filler: int) -> bytes:
        data = length_delimited(15, bytes(data_size))
        return length_delimited(15, data + length_delimited(900, bytes(filler)))

    filler = total - len(entry_of(0))
    while len(entry_of(filler)) > total:  # the length varints grew with the filler
        filler -= 1
    message = entry_of(filler)
    assert len(message) == total
    return message


@pytest.mark.parametrize(("total", "view"), [(1999, True), (2000, True), (2001, False)])
def test_data_is_left_in_place_from_half_the_message(total: int, view: bool) -> None:
    ((_, data),) = wire.parse_heap(message_with_data(1000, total)).items
    assert isinstance(data, memoryview) is view and len(data) == 1000


def field(number: int, wire_type: int, value: bytes) -> bytes:
    return wire.varint(number << 3 | wire_type) + value


def length_delimited(number: int, value: bytes) -> bytes:
    return field(number, 2, wire.varint(len(value)) + value)


def group(number: int, content: bytes) -> bytes:
    return field(number, 3, content) + field(number, 4, b"")


ITEM_META = pb.Item(id=5, name="x", dtype="|u1", shape=[3]).SerializeToString()
UNKNOWN_FIELDS = (
    field(900, 0, wire.varint(2**63))  # varint
    + field(901, 1, bytes(8))  # fixed64
    + field(902, 5, bytes(4))  # fixed32
    + length_delimited(903, b"abc")
    + group(904, field(1, 0, b"\x01") + group(905, length_delimited(15, b"in a group")))
)


@pytest.mark.parametrize(
    "message",
    [
        # Data before the metadata, and given twice: the last value counts.
        length_delimited(
            15, length_delimited(15, b"old") + ITEM_META + length_delimited(15, b"new")
        ),
        # Unknown fields of every wire type at both levels, between known ones.
        length_delimited(1, b"s")
        + UNKNOWN_FIELDS
        + length_delimited(15, UNKNOWN_FIELDS + ITEM_META + length_delimited(15, b"xyz")),
        # An item without data, a heap without items, an empty message.
        length_delimited(15, ITEM_META),
        field(2, 0, wire.varint(7)),
        b"",
        # Non-minimal varints in a tag and a length.
        b"\xfa\x80\x00" + b"\x87\x00" + length_delimited(15, b"12345"),
    ],
)
def test_parse_heap_follows_protobuf_rules(message: bytes) -> None:
    assert as_protobuf(wire.parse_heap(message)) == pb.Heap.FromString(message)


def test_parse_heap_rejects_what_protobuf_rejects() -> None:
    """Every truncation of a message, and a few corruptions, fail in both or in neither."""
    some = [items()[i] for i in (0, 2, 5)]
    (body,) = wire.build_fragments(wire.encode_header(pb.Heap(stream="s", cnt=3)), some, 1 << 20)
    message = wire.subscriber_prefix(2, 0) + body
    corrupt = [message[:k] for k in range(len(message))] + [
        field(15, 2, wire.varint(10) + b"short"),  # length beyond the end
        field(3, 0, b"\xff" * 10 + b"\x01"),  # varint longer than 10 bytes
        field(20, 4, b""),  # an end of group with no start
        field(20, 6, b""),  # no such wire type
        length_delimited(15, field(1, 7, b"")),  # the same, inside an item
        b"\xfa\x80\x80\x80\x80\x00\x00",  # a 6-byte tag for items
        length_delimited(15, b"\xfa\x80\x80\x80\x80\x00\x00"),  # ... and for data
        b"\x7a\x80\x80\x80\x80\x80\x00",  # a 6-byte length for items
        length_delimited(15, b"\x7a\x80\x80\x80\x80\x80\x00"),  # ... and for data
        length_delimited(15, field(1, 3, b"") * 100 + field(1, 4, b"") * 100),  # groups 100 deep
        length_delimited(15, field(1, 3, b"") * 99 + field(1, 4, b"") * 99),
        field(1, 3, b"") * 100 + field(1, 4, b"") * 100,
        field(1, 3, b"") * 101 + field(1, 4, b"") * 101,
        length_delimited(15, length_delimited(2, b"\xff")),  # a name that is not UTF-8
        field(0, 0, b"\x01"),  # field number 0
    ]
    for bad in corrupt:
        try:
            expected: pb.Heap | None = pb.Heap.FromString(bad)
        except DecodeError:
            expected = None
        if expected is None:
            with pytest.raises(DecodeError):
                wire.parse_heap(bad)
        else:
            assert as_protobuf(wire.parse_heap(bad)) == expected


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
