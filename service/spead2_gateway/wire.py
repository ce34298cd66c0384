"""Heap messages assembled from pre-encoded parts, so a heap is serialised once.

Protocol buffers allow a message to be written as several concatenated pieces: fields may
come in any order and a repeated field is one entry per element. The daemon uses that to
avoid re-encoding a heap for each subscriber:

* each item is encoded once, as a complete ``items`` entry of a ``Heap`` (the item's
  metadata, then its data last);
* the heap's own fields (stream, cnt, time, flags) are encoded once as a header;
* a subscriber's message is ``prefix + header + entries``, where the prefix holds only the
  subscriber's ``sequence`` and ``dropped`` fields. Subscribers with the same item filter
  share one plan of ``header + entries`` (a :class:`Fragment` per message); with a filter,
  only the chosen entries are in it.

The plan is kept as pieces, the item data as views of the received heap, and joined only
behind each subscriber's prefix (:meth:`Fragment.join`). Every byte of item data is thus
copied once per subscriber, straight into the message grpcio sends, and never into an
intermediate body (grpcio needs one ``bytes`` object per message, and the prefix differs
per subscriber, so one copy per subscriber is the least there can be). When the received
heap's memory must not be held that long, the hub copies the plan out first
(:meth:`Fragment.copied`).

A heap whose encoding exceeds the fragment size is split into several messages (see
:func:`plan_fragments`). The client side reassembles them (``spead2_gateway.client``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from spead2_gateway._proto import gateway_pb2 as pb

__all__ = [
    "EncodedItem",
    "Fragment",
    "build_fragments",
    "encode_header",
    "plan_fragments",
    "subscriber_prefix",
    "varint",
]

Piece = bytes | memoryview

# Tags (field number << 3 | wire type) of the fields written by hand here.
_TAG_HEAP_SEQUENCE = b"\x18"  # Heap.sequence = 3, varint
_TAG_HEAP_DROPPED = b"\x20"  # Heap.dropped = 4, varint
_TAG_HEAP_FRAGMENT = b"\x58"  # Heap.fragment = 11, varint
_TAG_HEAP_FRAGMENTS = b"\x60"  # Heap.fragments = 12, varint
_TAG_HEAP_ITEMS = b"\x7a"  # Heap.items = 15, length-delimited
_TAG_ITEM_OFFSET = b"\x38"  # Item.offset = 7, varint
_TAG_ITEM_SIZE = b"\x40"  # Item.size = 8, varint
_TAG_ITEM_DATA = b"\x7a"  # Item.data = 15, length-delimited

# Upper bound of the bytes added to a fragment's header (two varint fields).
_FRAGMENT_FIELDS_MAX = 2 * (1 + 5)
# Upper bound of the framing around a chunk: two tags, two length varints, offset and size.
_CHUNK_FRAMING_MAX = 2 * (1 + 10) + 2 * (1 + 10)
# Don't start a chunk in a fragment with less room than this: open a new fragment instead.
_MIN_CHUNK = 1024


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


def subscriber_prefix(sequence: int, dropped: int) -> bytes:
    """The per-subscriber fields of a Heap message."""
    prefix = _TAG_HEAP_SEQUENCE + varint(sequence)
    if dropped:
        prefix += _TAG_HEAP_DROPPED + varint(dropped)
    return prefix


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

    def entry(self) -> list[Piece]:
        """The pieces of this item as one ``items`` entry."""
        size = len(self.data)
        inner = len(self.meta) + 1 + len(varint(size)) + size
        return [
            _TAG_HEAP_ITEMS + varint(inner) + self.meta + _TAG_ITEM_DATA + varint(size),
            self.data,
        ]

    def chunk(self, offset: int, length: int) -> list[Piece]:
        """The pieces of an ``items`` entry carrying ``length`` bytes from ``offset``."""
        total = len(self.data)
        head = self.meta + _TAG_ITEM_OFFSET + varint(offset) + _TAG_ITEM_SIZE + varint(total)
        inner = len(head) + 1 + len(varint(length)) + length
        return [
            _TAG_HEAP_ITEMS + varint(inner) + head + _TAG_ITEM_DATA + varint(length),
            self.data[offset : offset + length],
        ]


@dataclass(frozen=True)
class Fragment:
    """One message body (without the subscriber prefix) as pieces not yet joined."""

    pieces: tuple[Piece, ...]
    size: int  # bytes of the body

    @classmethod
    def of(cls, pieces: Sequence[Piece]) -> Fragment:
        return cls(tuple(pieces), sum(len(p) for p in pieces))

    def join(self, prefix: bytes) -> bytes:
        """The complete message: ``prefix`` then the body, in one copy."""
        return b"".join((prefix, *self.pieces))

    def copied(self) -> Fragment:
        """The same body as one ``bytes`` piece, holding no view of anything else."""
        return Fragment((self.join(b""),), self.size)


class _Packer:
    """Fills fragments of at most ``budget`` bytes of item entries."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.fragments: list[list[Piece]] = []
        self.current: list[Piece] = []
        self.used = 0

    def flush(self) -> None:
        if self.current:
            self.fragments.append(self.current)
        self.current = []
        self.used = 0

    def add(self, pieces: list[Piece]) -> None:
        self.current.extend(pieces)
        self.used += sum(len(p) for p in pieces)

    def add_item(self, item: EncodedItem) -> None:
        size = item.entry_size()
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
    chunks of larger ones (``Item.offset``/``Item.size``). Nothing is copied: the pieces
    refer to the items' data.
    """
    total = len(header) + sum(item.entry_size() for item in items)
    if total <= limit:
        pieces: list[Piece] = [header]
        for item in items:
            pieces.extend(item.entry())
        return [Fragment.of(pieces)]
    packer = _Packer(limit - len(header) - _FRAGMENT_FIELDS_MAX)
    for item in items:
        packer.add_item(item)
    packer.flush()
    count = len(packer.fragments)
    return [
        Fragment.of(
            [header, _TAG_HEAP_FRAGMENT + varint(index), _TAG_HEAP_FRAGMENTS + varint(count), *body]
        )
        for index, body in enumerate(packer.fragments)
    ]


def build_fragments(header: bytes, items: Sequence[EncodedItem], limit: int) -> list[bytes]:
    """:func:`plan_fragments`, each body joined into ``bytes``."""
    return [fragment.join(b"") for fragment in plan_fragments(header, items, limit)]
