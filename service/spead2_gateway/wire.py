"""Heap messages assembled from pre-encoded parts, so a heap is serialised once.

Protocol buffers allow a message to be written as several concatenated pieces: fields may
come in any order and a repeated field is one entry per element. The daemon uses that to
avoid re-encoding a heap for each subscriber:

* each item is encoded once, as a complete ``items`` entry of a ``Heap`` (the item's
  metadata, then its data last);
* the heap's own fields (stream, cnt, time, flags) are encoded once as a header;
* a subscriber's message is ``prefix + header + entries``, where the prefix holds only the
  subscriber's ``sequence`` and ``dropped`` fields (and padding, see below). Subscribers
  with the same item filter share one plan of ``header + entries`` (a :class:`Fragment` per
  message, with padding before large data); with a filter, only the chosen entries are in
  it.

The plan is kept as pieces, the item data as views of the received heap, and joined only
behind each subscriber's prefix (:meth:`Fragment.join`). Every byte of item data is thus
copied once per subscriber, straight into the message grpcio sends, and never into an
intermediate body (grpcio needs one ``bytes`` object per message, and the prefix differs
per subscriber, so one copy per subscriber is the least there can be). When the received
heap's memory must not be held that long, the hub copies the plan out first
(:meth:`Fragment.copied`).

A heap whose encoding exceeds the fragment size is split into several messages (see
:func:`plan_fragments`). The client side reassembles them (``spead2_gateway.client``).

Item data of :data:`ALIGNED_DATA_MIN` bytes or more starts at a multiple of
:data:`DATA_ALIGNMENT` bytes from the start of its message: the prefix is padded to a
multiple of it, and a ``padding`` field goes before each such item's entry in the body. A
client can then use the data in place as an aligned array of any dtype.

The client reads a message with :func:`parse_heap`, the mirror image: protobuf's parser would
copy each item's data out of the message twice (once into the parsed message, once more into
a ``bytes`` on access), so the data is located by hand and handed on as a view of the
message; everything else is still parsed by protobuf, with its own rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from spead2_gateway._proto import gateway_pb2 as pb

__all__ = [
    "EncodedItem",
    "Fragment",
    "ParsedHeap",
    "build_fragments",
    "encode_header",
    "parse_heap",
    "plan_fragments",
    "subscriber_prefix",
    "varint",
]

Piece = bytes | memoryview
# One ``items`` entry: everything up to the item's data, then the data.
Entry = tuple[bytes, memoryview]

# Wire types.
_VARINT, _FIXED64, _LENGTH_DELIMITED, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5


def _tag(field: int, wire_type: int) -> bytes:
    return bytes([field << 3 | wire_type])  # fields 1-15: a one-byte tag


# Fields written or read by hand here.
_FIELD_HEAP_ITEMS = 15
_FIELD_ITEM_DATA = 15
_TAG_HEAP_SEQUENCE = _tag(3, _VARINT)
_TAG_HEAP_DROPPED = _tag(4, _VARINT)
_TAG_HEAP_FRAGMENT = _tag(11, _VARINT)
_TAG_HEAP_FRAGMENTS = _tag(12, _VARINT)
_TAG_HEAP_PADDING = _tag(14, _LENGTH_DELIMITED)
_TAG_HEAP_ITEMS = _tag(_FIELD_HEAP_ITEMS, _LENGTH_DELIMITED)
_TAG_ITEM_OFFSET = _tag(7, _VARINT)
_TAG_ITEM_SIZE = _tag(8, _VARINT)
_TAG_ITEM_DATA = _tag(_FIELD_ITEM_DATA, _LENGTH_DELIMITED)

#: Item data of at least this many bytes starts at a multiple of DATA_ALIGNMENT bytes from
#: the start of its message (the largest alignment a numpy dtype needs).
DATA_ALIGNMENT = 16
ALIGNED_DATA_MIN = 4096
# The most bytes one padding field takes: a 1-byte field does not exist, so a gap of one
# byte is padded by a whole alignment more.
_PADDING_MAX = DATA_ALIGNMENT + 1

# Upper bound of the bytes added to a fragment's header (two varint fields).
_FRAGMENT_FIELDS_MAX = 2 * (1 + 5)
# Upper bound of the framing around a chunk: two tags, two length varints, offset and size,
# and the padding before it.
_CHUNK_FRAMING_MAX = 2 * (1 + 10) + 2 * (1 + 10) + _PADDING_MAX
# Don't start a chunk in a fragment with less room than this: open a new fragment instead.
_MIN_CHUNK = 1024
# Groups nest; protobuf's parser gives up at this depth too.
_MAX_GROUP_DEPTH = 100
# protobuf's parser takes at most this many bytes for a tag or a length.
_MAX_TAG_OR_LENGTH_BYTES = 5


def varint(value: int) -> bytes:
    """The protobuf base-128 encoding of a non-negative integer."""
    if value < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _padding(offset: int) -> bytes:
    """A ``padding`` field that moves ``offset`` on to a multiple of DATA_ALIGNMENT."""
    size = -offset % DATA_ALIGNMENT
    if size == 0:
        return b""
    if size == 1:
        size += DATA_ALIGNMENT
    return _TAG_HEAP_PADDING + bytes([size - 2]) + bytes(size - 2)


def subscriber_prefix(sequence: int, dropped: int) -> bytes:
    """The per-subscriber fields of a Heap message, padded to a multiple of DATA_ALIGNMENT
    bytes (so that data aligned in a body is aligned in the message)."""
    prefix = _TAG_HEAP_SEQUENCE + varint(sequence)
    if dropped:
        prefix += _TAG_HEAP_DROPPED + varint(dropped)
    return prefix + _padding(len(prefix))


def encode_header(heap: pb.Heap) -> bytes:
    """The shared fields of a Heap (it must have no items, sequence or fragment fields)."""
    return heap.SerializeToString()


@dataclass(frozen=True)
class EncodedItem:
    """One item: its metadata encoded once, and a view of its data."""

    id: int
    name: str
    meta: bytes  # an Item message without data, offset or size
    data: memoryview

    @classmethod
    def from_proto(cls, item: pb.Item, data: memoryview) -> EncodedItem:
        """Encode ``item``'s metadata (its data field must be empty)."""
        return cls(item.id, item.name, item.SerializeToString(), data)

    def entry_size(self) -> int:
        """Bytes of this item as one complete ``items`` entry."""
        inner = len(self.meta) + 1 + len(varint(len(self.data))) + len(self.data)
        return 1 + len(varint(inner)) + inner

    def entry(self) -> Entry:
        """This item as one ``items`` entry."""
        size = len(self.data)
        inner = len(self.meta) + 1 + len(varint(size)) + size
        return (
            _TAG_HEAP_ITEMS + varint(inner) + self.meta + _TAG_ITEM_DATA + varint(size),
            self.data,
        )

    def chunk(self, offset: int, length: int) -> Entry:
        """An ``items`` entry carrying ``length`` bytes of the data from ``offset``."""
        total = len(self.data)
        head = self.meta + _TAG_ITEM_OFFSET + varint(offset) + _TAG_ITEM_SIZE + varint(total)
        inner = len(head) + 1 + len(varint(length)) + length
        return (
            _TAG_HEAP_ITEMS + varint(inner) + head + _TAG_ITEM_DATA + varint(length),
            self.data[offset : offset + length],
        )


@dataclass(frozen=True)
class Fragment:
    """One message body (without the subscriber prefix) as pieces not yet joined."""

    pieces: tuple[Piece, ...]
    size: int  # bytes of the body

    def join(self, prefix: bytes) -> bytes:
        """The complete message: ``prefix`` then the body, in one copy."""
        return b"".join((prefix, *self.pieces))

    def copied(self) -> Fragment:
        """The same body as one ``bytes`` piece, holding no view of anything else."""
        return Fragment((self.join(b""),), self.size)


def _padded_size(data_size: int) -> int:
    """The most bytes an entry's padding can add (see :func:`_assemble`)."""
    return _PADDING_MAX if data_size >= ALIGNED_DATA_MIN else 0


def _assemble(lead: list[bytes], entries: list[Entry]) -> Fragment:
    """A body: the ``lead`` fields, then the entries, large data padded to start aligned."""
    pieces: list[Piece] = list(lead)
    size = sum(len(piece) for piece in lead)
    for head, data in entries:
        if len(data) >= ALIGNED_DATA_MIN:
            padding = _padding(size + len(head))
            pieces.append(padding)
            size += len(padding)
        pieces += (head, data)
        size += len(head) + len(data)
    return Fragment(tuple(pieces), size)


class _Packer:
    """Fills fragments of at most ``budget`` bytes of item entries (padding included)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.fragments: list[list[Entry]] = []
        self.current: list[Entry] = []
        self.used = 0

    def flush(self) -> None:
        if self.current:
            self.fragments.append(self.current)
        self.current = []
        self.used = 0

    def add(self, entry: Entry) -> None:
        self.current.append(entry)
        head, data = entry
        self.used += len(head) + len(data) + _padded_size(len(data))

    def add_item(self, item: EncodedItem) -> None:
        size = item.entry_size() + _padded_size(len(item.data))
        if size <= self.budget - self.used:
            self.add(item.entry())
            return
        if size <= self.budget:
            self.flush()
            self.add(item.entry())
            return
        self._add_chunks(item)

    def _add_chunks(self, item: EncodedItem) -> None:
        overhead = len(item.meta) + _CHUNK_FRAMING_MAX
        if overhead + _MIN_CHUNK > self.budget:
            raise ValueError(f"item {item.name!r}: metadata too large for the fragment size")
        offset = 0
        total = len(item.data)
        while offset < total:
            room = self.budget - self.used - overhead
            if room < _MIN_CHUNK:
                self.flush()
                room = self.budget - overhead
            length = min(room, total - offset)
            self.add(item.chunk(offset, length))
            offset += length


def plan_fragments(header: bytes, items: Sequence[EncodedItem], limit: int) -> list[Fragment]:
    """The bodies (without subscriber prefix) of one heap, each at most ``limit`` bytes.

    A heap that fits is one body: ``header + entries``. Otherwise each fragment repeats the
    header, adds ``fragment``/``fragments``, and carries whole items where they fit and
    chunks of larger ones (``Item.offset``/``Item.size``). Large data is preceded by
    ``padding`` (see the module's docstring). Nothing is copied: the pieces refer to the
    items' data.
    """
    total = len(header) + sum(i.entry_size() + _padded_size(len(i.data)) for i in items)
    if total <= limit:
        return [_assemble([header], [item.entry() for item in items])]
    packer = _Packer(limit - len(header) - _FRAGMENT_FIELDS_MAX)
    for item in items:
        packer.add_item(item)
    packer.flush()
    count = len(packer.fragments)
    return [
        _assemble(
            [header, _TAG_HEAP_FRAGMENT + varint(index), _TAG_HEAP_FRAGMENTS + varint(count)],
            entries,
        )
        for index, entries in enumerate(packer.fragments)
    ]


def build_fragments(header: bytes, items: Sequence[EncodedItem], limit: int) -> list[bytes]:
    """:func:`plan_fragments`, each body joined into ``bytes``."""
    return [fragment.join(b"") for fragment in plan_fragments(header, items, limit)]


# ------------------------------------------------------------------------------------------
# Reading (the client side)


@dataclass(frozen=True)
class ParsedHeap:
    """A Heap message: every field but ``items`` in ``header``, then each item's metadata
    (every field but ``data``) with its data.

    An item's data is a read-only view of the message when it is at least half of it, so
    that no view keeps alive more than twice what it shows; smaller data is copied out.
    """

    header: pb.Heap
    items: list[tuple[pb.Item, bytes | memoryview]]


_Span = tuple[int, int]


def _read_varint(buffer: bytes, pos: int, end: int, max_bytes: int = 10) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    value = 0
    for shift in range(0, 7 * max_bytes, 7):
        if pos >= end:
            raise DecodeError("truncated varint")
        byte = buffer[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise DecodeError(f"varint longer than {max_bytes} bytes")


def _read_tag_or_length(buffer: bytes, pos: int, end: int) -> tuple[int, int]:
    return _read_varint(buffer, pos, end, _MAX_TAG_OR_LENGTH_BYTES)


def _skip_value(buffer: bytes, pos: int, end: int, key: int, depth: int) -> int:
    """The position after the value of the field whose tag ``key`` ends at ``pos``."""
    wire_type = key & 7
    if wire_type == _VARINT:
        _, pos = _read_varint(buffer, pos, end)
    elif wire_type == _FIXED64:
        pos += 8
    elif wire_type == _FIXED32:
        pos += 4
    elif wire_type == _LENGTH_DELIMITED:
        length, pos = _read_tag_or_length(buffer, pos, end)
        pos += length
    elif wire_type == _START_GROUP and depth < _MAX_GROUP_DEPTH:
        while True:  # an unknown group: its fields up to the matching end tag
            inner, pos = _read_tag_or_length(buffer, pos, end)
            if inner == key - _START_GROUP + _END_GROUP:
                break
            pos = _skip_value(buffer, pos, end, inner, depth + 1)
    else:
        raise DecodeError(f"unexpected wire type {wire_type}")
    if pos > end:
        raise DecodeError("truncated field")
    return pos


def _split_fields(
    buffer: bytes, pos: int, end: int, field: int, depth: int
) -> tuple[list[_Span], list[_Span]]:
    """Scans the fields in ``buffer[pos:end]`` (a message ``depth`` levels down): the spans of
    every field other than the length-delimited ``field`` (tag included), and the spans of
    that field's values."""
    wanted = field << 3 | _LENGTH_DELIMITED
    others: list[_Span] = []
    values: list[_Span] = []
    while pos < end:
        start = pos
        key, pos = _read_tag_or_length(buffer, pos, end)
        if key == wanted:
            length, value_start = _read_tag_or_length(buffer, pos, end)
            pos = value_start + length
            if pos > end:
                raise DecodeError("truncated field")
            values.append((value_start, pos))
        else:
            pos = _skip_value(buffer, pos, end, key, depth)
            others.append((start, pos))
    return others, values


def _joined(buffer: bytes, spans: list[_Span]) -> bytes:
    return b"".join([buffer[start:end] for start, end in spans])


def parse_heap(message: bytes) -> ParsedHeap:
    """Reads a serialised Heap without copying its large item data.

    Raises ``google.protobuf.message.DecodeError`` where protobuf's parser would.
    """
    others, item_spans = _split_fields(message, 0, len(message), _FIELD_HEAP_ITEMS, 0)
    header = pb.Heap.FromString(_joined(message, others))
    items: list[tuple[pb.Item, bytes | memoryview]] = []
    for start, end in item_spans:
        fields, data_spans = _split_fields(message, start, end, _FIELD_ITEM_DATA, 1)
        meta = pb.Item.FromString(_joined(message, fields))
        data: bytes | memoryview = b""
        if data_spans:  # a repeated singular field: the last one counts
            first, last = data_spans[-1]
            keep_view = 2 * (last - first) >= len(message)
            data = memoryview(message)[first:last] if keep_view else message[first:last]
        items.append((meta, data))
    return ParsedHeap(header, items)
