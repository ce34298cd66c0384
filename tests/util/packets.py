"""Hand-made SPEAD packets in pure Python (standard library only), for receive tests.

Both venvs import this module (ours in the pytest process, the real spead2's in a subprocess),
so the same bytes go through both receivers. Nothing here validates its input: building
malformed packets (bad magic, pointer counts that overflow the packet, absurd heap lengths) is
the point.

Wire format (SPEAD-64-XX, all fields big-endian): an 8-byte header ``53 04 <id bytes> <address
bytes> 00 00 <item count:2>``, then 8-byte item pointers (bit 63: immediate; then the item ID;
the low ``bits`` bits hold the immediate value or the payload-relative address), then payload.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAGIC = 0x53
VERSION = 4
NULL_ID = 0
HEAP_CNT_ID = 1
HEAP_LENGTH_ID = 2
PAYLOAD_OFFSET_ID = 3
PAYLOAD_LENGTH_ID = 4
DESCRIPTOR_ID = 5
STREAM_CTRL_ID = 6
CTRL_STREAM_START = 0
CTRL_STREAM_STOP = 2

DEFAULT_BITS = 48
"""heap_address_bits of SPEAD-64-48, the flavour used unless a test says otherwise."""


def pointer(item_id: int, value: int, *, immediate: bool, bits: int = DEFAULT_BITS) -> int:
    """One 64-bit item pointer (``value`` is masked to the address width)."""
    id_mask = (1 << (63 - bits)) - 1
    word = ((item_id & id_mask) << bits) | (value & ((1 << bits) - 1))
    return word | (1 << 63) if immediate else word


def immediate(item_id: int, value: int, bits: int = DEFAULT_BITS) -> int:
    """An immediate item pointer."""
    return pointer(item_id, value, immediate=True, bits=bits)


def addressed(item_id: int, address: int, bits: int = DEFAULT_BITS) -> int:
    """An addressed item pointer (``address`` is relative to the heap payload)."""
    return pointer(item_id, address, immediate=False, bits=bits)


def header(
    n_items: int,
    bits: int = DEFAULT_BITS,
    *,
    magic: int = MAGIC,
    version: int = VERSION,
    id_bytes: int | None = None,
    address_bytes: int | None = None,
) -> bytes:
    """The 8-byte packet header; every field can be overridden to make a bad one."""
    address_bytes = bits // 8 if address_bytes is None else address_bytes
    id_bytes = 8 - bits // 8 if id_bytes is None else id_bytes
    return struct.pack(">BBBBHH", magic, version, id_bytes, address_bytes, 0, n_items)


def packet(
    pointers: Sequence[int],
    payload: bytes = b"",
    bits: int = DEFAULT_BITS,
    *,
    n_items: int | None = None,
    **header_fields: int,
) -> bytes:
    """A packet: header, ``pointers``, ``payload``; ``n_items`` overrides the pointer count."""
    count = len(pointers) if n_items is None else n_items
    words = struct.pack(f">{len(pointers)}Q", *pointers)
    return header(count, bits, **header_fields) + words + payload


def data_packet(
    cnt: int,
    heap_length: int | None,
    offset: int,
    payload: bytes,
    extra: Sequence[int] = (),
    bits: int = DEFAULT_BITS,
    *,
    payload_length: int | None = None,
) -> bytes:
    """A packet with the standard HEAP_CNT, [HEAP_LENGTH,] PAYLOAD_OFFSET, PAYLOAD_LENGTH
    immediates followed by ``extra`` pointers; ``heap_length=None`` leaves HEAP_LENGTH out."""
    length = len(payload) if payload_length is None else payload_length
    pointers = [immediate(HEAP_CNT_ID, cnt, bits)]
    if heap_length is not None:
        pointers.append(immediate(HEAP_LENGTH_ID, heap_length, bits))
    pointers += [immediate(PAYLOAD_OFFSET_ID, offset, bits)]
    pointers += [immediate(PAYLOAD_LENGTH_ID, length, bits)]
    return packet([*pointers, *extra], payload, bits)


@dataclass(frozen=True)
class Item:
    """An item of a hand-made heap: ``bytes`` travel addressed, an ``int`` as an immediate."""

    id: int
    value: bytes | int


def heap_payload(items: Iterable[Item], bits: int = DEFAULT_BITS) -> tuple[list[int], bytes]:
    """Item pointers and the heap payload: addressed values laid out in order."""
    pointers: list[int] = []
    chunks: list[bytes] = []
    offset = 0
    for item in items:
        if isinstance(item.value, int):
            pointers.append(immediate(item.id, item.value, bits))
        else:
            pointers.append(addressed(item.id, offset, bits))
            chunks.append(item.value)
            offset += len(item.value)
    return pointers, b"".join(chunks)


def heap_packets(
    cnt: int,
    items: Sequence[Item],
    bits: int = DEFAULT_BITS,
    *,
    chunk: int = 1024,
    sized: bool = True,
) -> list[bytes]:
    """A heap cut into packets of at most ``chunk`` payload bytes, in payload order.

    Every item pointer travels in the first packet. A heap with no payload gets one zero byte
    and a NULL pointer, as spead2's sender does, so that every packet carries payload.
    ``sized=False`` leaves HEAP_LENGTH out of every packet.
    """
    pointers, payload = heap_payload(items, bits)
    if not payload:
        pointers.append(addressed(NULL_ID, 0, bits))
        payload = b"\0"
    heap_length = len(payload) if sized else None
    out = []
    for offset in range(0, len(payload), chunk):
        extra = pointers if offset == 0 else []
        piece = payload[offset : offset + chunk]
        out.append(data_packet(cnt, heap_length, offset, piece, extra, bits))
    return out


def control_heap(cnt: int, ctrl: int, bits: int = DEFAULT_BITS) -> bytes:
    """A single-packet heap carrying only a STREAM_CTRL immediate (start or stop)."""
    return heap_packets(cnt, [Item(STREAM_CTRL_ID, ctrl)], bits)[0]


def stop_heap(cnt: int, bits: int = DEFAULT_BITS) -> bytes:
    """The stream-stop heap."""
    return control_heap(cnt, CTRL_STREAM_STOP, bits)


def start_heap(cnt: int, bits: int = DEFAULT_BITS) -> bytes:
    """The stream-start heap."""
    return control_heap(cnt, CTRL_STREAM_START, bits)


def value_bytes(seed: int, n: int) -> bytes:
    """``n`` deterministic, well-mixed bytes (distinct per seed)."""
    out = bytearray(n)
    x = (seed * 2654435761 + 12345) & 0xFFFFFFFF
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out[i] = x >> 24
    return bytes(out)


def simple_heap(cnt: int, size: int, bits: int = DEFAULT_BITS, *, chunk: int = 1024) -> list[bytes]:
    """Packets of a heap with one addressed item 0x1000 of ``size`` bytes and an immediate
    0x1001 holding ``cnt``: easy to recognise after reception."""
    items = [Item(0x1000, value_bytes(cnt, size)), Item(0x1001, cnt)]
    return heap_packets(cnt, items, bits, chunk=chunk)


def packet_length(data: bytes, start: int = 0) -> int:
    """Length of the well-formed packet at ``data[start:]``, from its header and its
    PAYLOAD_LENGTH immediate; raises ValueError if there is no such packet."""
    if len(data) - start < 8 or data[start] != MAGIC or data[start + 1] != VERSION:
        raise ValueError(f"no SPEAD header at offset {start}")
    bits = data[start + 3] * 8
    n_items = int.from_bytes(data[start + 6 : start + 8], "big")
    end = start + 8 + 8 * n_items
    if end > len(data):
        raise ValueError(f"truncated item pointers at offset {start}")
    words = struct.unpack(f">{n_items}Q", data[start + 8 : end])
    for word in words:
        item_id = (word >> bits) & ((1 << (63 - bits)) - 1)
        if word >> 63 and item_id == PAYLOAD_LENGTH_ID:
            return 8 + 8 * n_items + (word & ((1 << bits) - 1))
    raise ValueError(f"no PAYLOAD_LENGTH in the packet at offset {start}")


def split_packets(data: bytes) -> list[bytes]:
    """Cut a byte stream of back-to-back packets (such as ``BytesStream.getvalue()``) into
    its packets."""
    out = []
    offset = 0
    while offset < len(data):
        length = packet_length(data, offset)
        out.append(data[offset : offset + length])
        offset += length
    return out
