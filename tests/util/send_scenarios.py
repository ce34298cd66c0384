"""Byte-exact send cases that run unchanged with our spead2 or the real spead2 4.5.1.

Each case is a function whose only argument is the ``spead2`` module under test: it sends heaps
through a ``BytesStream`` and returns every byte the stream produced plus the outcome of each
send call (plain data), so the pytest process runs it with ours (``util.jobs.run_ours``) and
the peer venv runs the very same code with the 4.5.1 wheel (``util.jobs.run_peer`` with the
job ``("send_scenarios:byte_case", {"name": ...})``). Exceptions are part of a result (type,
errno and message, see :func:`error_of`), so error behaviour compares too.

The basics here (:func:`attempt`, :func:`make_heap`, packet splitting) are shared with
``send_probes``. Only the standard library and numpy are imported at module level: this
module loads in both venvs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from .jobs import thread_pool
from .peer import load_catalogue

Outcome = dict[str, Any]
"""``{"ok": value}`` or an exception as :func:`error_of` describes it."""

# --------------------------------------------------------------------------------- basics


def send_api(sp: ModuleType) -> ModuleType:
    """``<spead2>.send`` of the implementation under test."""
    return importlib.import_module(sp.__name__ + ".send")


def error_of(exc: BaseException) -> Outcome:
    """An exception as plain data: type name, errno (None if it has none) and message."""
    return {
        "error": type(exc).__name__,
        "errno": getattr(exc, "errno", None),
        "message": str(exc),
    }


def attempt(fn: Callable[[], Any]) -> Outcome:
    """Run ``fn``; its return value or the exception it raised."""
    try:
        return {"ok": fn()}
    except Exception as exc:  # noqa: BLE001 - the exception is the result
        return error_of(exc)


def flavour(sp: ModuleType, bits: int, bug_compat: int = 0) -> Any:
    """SPEAD-64-``bits``."""
    return sp.Flavour(4, 64, bits, bug_compat)


def pattern(length: int, seed: int) -> bytes:
    """``length`` recognisable bytes (distinct per seed)."""
    return bytes((i * 7 + seed * 13 + 1) & 0xFF for i in range(length))


class BufferItem:
    """The minimum ``Heap.add_item`` needs: ``id``, ``to_buffer()``, ``allow_immediate()``."""

    def __init__(self, id: int, data: Any, allow_immediate: bool = False) -> None:
        self.id = id
        self._data = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
        self._allow_immediate = allow_immediate

    def to_buffer(self) -> Any:
        return self._data

    def allow_immediate(self) -> bool:
        return self._allow_immediate


def make_heap(
    sp: ModuleType,
    items: Sequence[tuple[int, bytes, bool]] = (),
    bits: int = 40,
    *,
    start: bool = False,
    end: bool = False,
    repeat_pointers: bool = False,
) -> Any:
    """A ``send.Heap`` of raw items ``(id, bytes, allow_immediate)``, in that order."""
    heap = send_api(sp).Heap(flavour(sp, bits))
    heap.repeat_pointers = repeat_pointers
    if start:
        heap.add_start()
    for item_id, data, allow_immediate in items:
        heap.add_item(BufferItem(item_id, data, allow_immediate))
    if end:
        heap.add_end()
    return heap


class Recorder:
    """A ``BytesStream`` plus the outcome of every send call made through it."""

    def __init__(self, sp: ModuleType, **config: Any) -> None:
        self.sp = sp
        self.send = send_api(sp)
        self.stream = self.send.BytesStream(thread_pool(sp), self.send.StreamConfig(**config))
        self.steps: list[Outcome] = []

    def heap(self, heap: Any, **kwargs: Any) -> None:
        """``send_heap(heap, **kwargs)``."""
        self.steps.append(attempt(lambda: self.stream.send_heap(heap, **kwargs)))

    def group(self, refs: Any, mode: str) -> None:
        """``send_heaps(refs, GroupMode.<mode>)``."""
        group_mode = getattr(self.send.GroupMode, mode)
        self.steps.append(attempt(lambda: self.stream.send_heaps(refs, group_mode)))

    def result(self) -> dict[str, Any]:
        """The send outcomes and every byte the stream produced."""
        return {"steps": self.steps, "bytes": self.stream.getvalue()}


# --------------------------------------------------------------------------------- packets


def split_packets(data: bytes) -> list[bytes]:
    """Cut back-to-back packets at their PAYLOAD_LENGTH (which spead2 puts fourth)."""
    out = []
    pos = 0
    while pos < len(data):
        n_items = int.from_bytes(data[pos + 6 : pos + 8], "big")
        bits = data[pos + 3] * 8
        length = int.from_bytes(data[pos + 32 : pos + 40], "big") & ((1 << bits) - 1)
        end = pos + 8 + 8 * n_items + length
        out.append(data[pos:end])
        pos = end
    return out


def packet_cnt(packet: bytes) -> int:
    """The HEAP_CNT of a packet (spead2 puts it first)."""
    bits = packet[3] * 8
    return int.from_bytes(packet[8:16], "big") & ((1 << bits) - 1)


def item_pointers(packet: bytes) -> list[tuple[bool, int, int]]:
    """``(immediate, id, value or address)`` of each pointer after the four that spead2 puts
    first in every packet (HEAP_CNT, HEAP_LENGTH, PAYLOAD_OFFSET, PAYLOAD_LENGTH)."""
    bits = packet[3] * 8
    n_items = int.from_bytes(packet[6:8], "big")
    out = []
    for i in range(4, n_items):
        word = int.from_bytes(packet[8 + 8 * i : 16 + 8 * i], "big")
        item_id = (word >> bits) & ((1 << (63 - bits)) - 1)
        out.append((bool(word >> 63), item_id, word & ((1 << bits) - 1)))
    return out


def heap_cnts(data: bytes) -> list[int]:
    """The cnt of each heap in a serial byte stream, in order (runs of packets collapsed)."""
    out: list[int] = []
    for packet in split_packets(data):
        cnt = packet_cnt(packet)
        if not out or out[-1] != cnt:
            out.append(cnt)
    return out


def first_difference(ours: bytes, theirs: bytes) -> str:
    """Where two packet streams first differ, readably: the packet and the bytes around the
    first differing one (headers and item pointers are the first 8 + 8n bytes)."""
    a, b = split_packets(ours), split_packets(theirs)
    for index, (p, q) in enumerate(zip(a, b, strict=False)):
        if p != q:
            at = next(i for i in range(min(len(p), len(q)) + 1) if i >= len(p) or p[i] != q[i])
            lo = max(0, at - 24)
            return (
                f"packet {index} of {len(a)}/{len(b)} (lengths {len(p)}/{len(q)}) differs at "
                f"byte {at}; bytes {lo}..{at + 24}:\n"
                f"  ours: {p[lo : at + 24].hex()}\n  peer: {q[lo : at + 24].hex()}\n"
                f"  ours header: {p[:48].hex()}\n  peer header: {q[:48].hex()}"
            )
    return f"one stream is a prefix of the other: {len(a)} vs {len(b)} packets"


# --------------------------------------------------------------------------------- byte cases

ByteCase = Callable[[ModuleType], Any]
BYTE_CASES: dict[str, ByteCase] = {}
"""Name -> case; every case returns :meth:`Recorder.result` (or a dict with more fields)."""


def byte_case(sp: ModuleType, name: str) -> Any:
    """Run one of :data:`BYTE_CASES` (the job entry point)."""
    return BYTE_CASES[name](sp)


def _register(name: str, case: ByteCase) -> None:
    assert name not in BYTE_CASES, name
    BYTE_CASES[name] = case


CATALOGUE_SIZES: dict[str, tuple[int, ...]] = {"full": (1472, 9000), "small": (64, 1472, 9000)}
"""max_packet_size values each catalogue is packetised with (the full one is too big for 64)."""


def _catalogue_case(name: str, bits: int, packet_size: int) -> ByteCase:
    def case(sp: ModuleType) -> Any:
        catalogue = load_catalogue()
        rec = Recorder(sp, max_packet_size=packet_size)
        group = send_api(sp).ItemGroup(flavour=flavour(sp, bits))
        rec.steps.append(
            attempt(lambda: catalogue.send_all(catalogue.build(name, bits), group, rec.stream))
        )
        return rec.result()

    return case


def _empty_heap(bits: int) -> ByteCase:
    def case(sp: ModuleType) -> Any:
        rec = Recorder(sp)
        rec.heap(make_heap(sp, bits=bits))
        rec.heap(make_heap(sp, [(0x1000, b"", False)], bits))  # an empty item is not payload
        return rec.result()

    return case


def _control(bits: int) -> ByteCase:
    def case(sp: ModuleType) -> Any:
        rec = Recorder(sp)
        rec.heap(make_heap(sp, bits=bits, start=True))
        rec.heap(make_heap(sp, bits=bits, end=True))
        rec.heap(make_heap(sp, [(0x1000, pattern(20, 1), False)], bits, start=True, end=True))
        group = send_api(sp).ItemGroup(flavour=flavour(sp, bits))
        rec.heap(group.get_start())
        rec.heap(group.get_end())
        return rec.result()

    return case


def _immediates(bits: int) -> ByteCase:
    """Items of every length around the immediate limit, allowed and not allowed inline."""

    def case(sp: ModuleType) -> Any:
        rec = Recorder(sp)
        lengths = range(bits // 8 + 2)
        for allow in (True, False):
            for n in lengths:
                rec.heap(make_heap(sp, [(0x1000 + n, pattern(n, n), allow)], bits))
            rec.heap(make_heap(sp, [(0x1100 + n, pattern(n, 3), allow) for n in lengths], bits))
        return rec.result()

    return case


def _padding(bits: int) -> ByteCase:
    """Heaps whose payload is shorter than 8 bytes are padded; heaps of immediates too."""

    def case(sp: ModuleType) -> Any:
        rec = Recorder(sp)
        for n in range(10):
            rec.heap(make_heap(sp, [(0x1000, pattern(n, n), False)], bits))
        rec.heap(make_heap(sp, [(0x1001, b"\x01", True), (0x1002, b"\x02\x03", True)], bits))
        rec.heap(make_heap(sp, [(0x1001, b"", False), (0x1002, b"\x05", True)], bits))
        rec.heap(make_heap(sp, [(0x1001 + i, bytes([i]), False) for i in range(9)], bits))
        return rec.result()

    return case


def _descriptor_items(group: Any) -> None:
    """Items described with numpy headers and with legacy formats, with values."""
    group.add_item(0x1000, "u2_c", "little-endian", (3,), dtype="<u2", value=np.arange(3))
    group.add_item(
        0x1001,
        "f4_f",
        "big-endian Fortran",
        (2, 2),
        dtype=">f4",
        order="F",
        value=np.asfortranarray(np.arange(4, dtype=">f4").reshape(2, 2)),
    )
    group.add_item(
        0x1002,
        "rec",
        "structured",
        (2,),
        dtype=[("a", "<i2"), ("b", "u1")],
        value=np.array([(-1, 2), (3, 4)], dtype=[("a", "<i2"), ("b", "u1")]),
    )
    group.add_item(
        0x1003, "var", "variable", (None, 2), format=[("u", 16)], value=np.arange(6).reshape(3, 2)
    )
    group.add_item(
        0x1004,
        "multi",
        "several fields",
        (2,),
        format=[("i", 8), ("u", 32)],
        value=[(-3, 70000), (4, 5)],
    )
    group.add_item(0x1005, "nib", "u4", (5,), format=[("u", 4)], value=[1, 2, 3, 15, 0])
    group.add_item(0x1006, "s", "string", (None,), format=[("c", 8)], value="hello")
    group.add_item(0x1007, "imm", "immediate", (), format=[("u", 16)], value=0xBEEF)
    group.add_item(0x1008, "flag", "bool", (), dtype="?", value=True)


def _descriptors(bits: int, bug_compat: int) -> ByteCase:
    def case(sp: ModuleType) -> Any:
        rec = Recorder(sp)
        group = send_api(sp).ItemGroup(flavour=flavour(sp, bits, bug_compat))
        _descriptor_items(group)
        rec.heap(group.get_heap())
        rec.heap(group.get_heap(descriptors="all", data="none"))
        rec.heap(group.get_heap(descriptors="none", data="all"))
        return rec.result()

    return case


def _heap_generator_modes(sp: ModuleType) -> Any:
    """descriptor_frequency, 'stale'/'all'/'none' and add_to_heap on a prepared heap."""
    send = send_api(sp)
    rec = Recorder(sp)
    group = send.ItemGroup(descriptor_frequency=2, flavour=flavour(sp, 48))
    a = group.add_item(0x1000, "a", "a", (4,), dtype="u1", value=np.arange(4, dtype="u1"))
    group.add_item(0x1001, "b", "b", (), format=[("u", 32)], value=7)
    for i in range(4):
        if i == 2:
            a.value = np.full(4, i, dtype="u1")
        rec.heap(group.get_heap())
    rec.heap(group.get_heap(descriptors="none", data="none"))
    rec.heap(group.get_heap(descriptors="all", data="all"))
    heap = make_heap(sp, [(0x1500, b"xyz", False)], 48, start=True)
    rec.heap(group.add_to_heap(heap, descriptors="all", data="all"))
    return rec.result()


def _repeat_pointers(packet_size: int) -> ByteCase:
    def case(sp: ModuleType) -> Any:
        rec = Recorder(sp, max_packet_size=packet_size)
        items = [(0x1000, pattern(3000, 1), False), (0x1001, b"\x01\x02", True)]
        items += [(0x1010 + i, pattern(10, i), False) for i in range(3)]
        rec.heap(make_heap(sp, items, 48, repeat_pointers=True))
        rec.heap(make_heap(sp, [(0x1000, pattern(5, 2), False)], 48, repeat_pointers=True))
        return rec.result()

    return case


def _multi_packet(bits: int, packet_size: int) -> ByteCase:
    def case(sp: ModuleType) -> Any:
        rec = Recorder(sp, max_packet_size=packet_size)
        big = 50_000 if packet_size >= 1000 else 5_000
        items = [(0x1000, pattern(big, 3), False), (0x1001, b"\x07", True)]
        items += [(0x1002 + i, pattern(i * 11, i), False) for i in range(12)]
        rec.heap(make_heap(sp, items, bits))
        rec.heap(make_heap(sp, [(0x1000, pattern(big // 3, 4), False)], bits))
        return rec.result()

    return case


def _group_heaps(sp: ModuleType) -> list[Any]:
    return [
        make_heap(sp, [(0x1000, pattern(20_000, 1), False), (0x1001, b"\x01", True)]),
        make_heap(sp, [(0x1000, pattern(300, 2), False)]),
        make_heap(sp),
        make_heap(sp, start=True),
    ]


def _group(mode: str, packet_size: int) -> ByteCase:
    """Auto and explicit cnts, one heap object twice, per-heap rates, then a single heap."""

    def case(sp: ModuleType) -> Any:
        send = send_api(sp)
        rec = Recorder(sp, max_packet_size=packet_size, max_heaps=8)
        a, b, c, d = _group_heaps(sp)
        refs = [
            send.HeapReference(a),
            send.HeapReference(b, cnt=77),
            send.HeapReference(c),
            send.HeapReference(a, cnt=-1, rate=1e9),
            send.HeapReference(d, cnt=5),
        ]
        rec.group(refs, mode)
        rec.group([send.HeapReference(b)], mode)
        rec.heap(b)
        return rec.result()

    return case


def _group_list(mode: str) -> ByteCase:
    """A HeapReferenceList and slices of it (a slice shares the references)."""

    def case(sp: ModuleType) -> Any:
        send = send_api(sp)
        rec = Recorder(sp, max_packet_size=1472, max_heaps=8)
        heaps = _group_heaps(sp)
        refs = send.HeapReferenceList([send.HeapReference(h) for h in heaps])
        rec.group(refs, mode)
        rec.group(refs[::-2], mode)
        rec.group(refs[1:3], mode)
        rec.group((send.HeapReference(heaps[1], cnt=3),), mode)  # a tuple works too
        return rec.result()

    return case


def _cnt_sequence(bits: int) -> ByteCase:
    """set_cnt_sequence values around the flavour's mask, negative (= automatic) cnts."""

    def case(sp: ModuleType) -> Any:
        rec = Recorder(sp)
        h = make_heap(sp, [(0x1000, b"abcdefghij", False)], bits)
        rec.heap(h)
        rec.stream.set_cnt_sequence(10, 3)
        rec.heap(h)
        rec.heap(h)
        rec.heap(h, cnt=1000)  # explicit cnts do not move the sequence
        rec.heap(h)
        rec.stream.set_cnt_sequence(2**bits - 2, 1)
        for _ in range(3):
            rec.heap(h)
        rec.stream.set_cnt_sequence(2**bits + 5, 3)
        rec.heap(h)
        rec.stream.set_cnt_sequence(2**64 - 1, 2)
        rec.heap(h)
        rec.heap(h)
        rec.heap(h, cnt=-2)
        rec.heap(h, cnt=-(2**63))
        rec.heap(h, cnt=2**bits - 1)
        rec.heap(h)
        return rec.result()

    return case


def _explicit_cnt(bits: int) -> ByteCase:
    def case(sp: ModuleType) -> Any:
        rec = Recorder(sp)
        h = make_heap(sp, [(0x1000, b"abcdefghij", False)], bits)
        for cnt in (0, 1, 2**bits - 1, 2**bits, 2**63 - 1, 123456789):
            rec.heap(h, cnt=cnt)
        rec.heap(h)
        return rec.result()

    return case


def _mixed_flavours(sp: ModuleType) -> Any:
    """One stream, heaps of two flavours: each is checked and masked by its own flavour."""
    rec = Recorder(sp)
    rec.heap(make_heap(sp, [(0x1000, b"abc", True)], 48))
    rec.heap(make_heap(sp, [(0x1000, b"abc", True)], 40), cnt=2**41)
    rec.heap(make_heap(sp, [(0x1000, b"abc", True)], 48), cnt=2**41)
    rec.heap(make_heap(sp, [(0x1000, b"abc", True)], 40))
    return rec.result()


def _all_or_nothing(sp: ModuleType) -> Any:
    """A group with one bad element sends nothing and leaves the cnt sequence alone."""
    send = send_api(sp)
    rec = Recorder(sp, max_heaps=2)
    h = make_heap(sp, [(0x1000, pattern(3000, 5), False)])
    rec.heap(h)  # cnt 1
    rec.group([send.HeapReference(h), send.HeapReference(h, cnt=2**40)], "SERIAL")
    rec.group([send.HeapReference(h), send.HeapReference(h, substream_index=1)], "ROUND_ROBIN")
    rec.group([], "SERIAL")
    rec.group([send.HeapReference(h)] * 3, "SERIAL")  # more heaps than max_heaps
    rec.heap(h, cnt=2**40)
    rec.heap(h, substream_index=1)
    rec.heap(h)  # cnt 2: nothing above consumed a cnt
    rec.group([send.HeapReference(h)] * 2, "ROUND_ROBIN")  # cnts 3, 4
    return rec.result()


def _zero_copy(sp: ModuleType) -> Any:
    """Heaps reference item buffers: changes made before the send are what is sent."""
    send = send_api(sp)
    rec = Recorder(sp)
    group = send.ItemGroup()
    a = np.arange(16, dtype=np.uint8)
    item = group.add_item(0x1000, "a", "", (16,), dtype=np.uint8, value=a)
    heap = group.get_heap(descriptors="none")
    a[:] = 7  # modified in place after add_item: sent modified
    rec.heap(heap)
    item.value = np.arange(16, dtype=np.uint8)
    heap = group.get_heap(descriptors="none")
    item.value = np.full(16, 9, np.uint8)  # a new value object: the heap keeps the old one
    rec.heap(heap)
    big = np.arange(4, dtype=">u4")  # non-native byte order, still sent as is
    group.add_item(0x1001, "big", "", (4,), dtype=">u4", value=big)
    heap = group.get_heap(descriptors="none")
    big[:] = 5
    rec.heap(heap)
    raw = bytearray(b"abcdefgh")
    heap = send.Heap()
    heap.add_item(BufferItem(0x1002, raw))
    raw[0:2] = b"ZZ"
    rec.heap(heap)
    resize = attempt(lambda: raw.extend(b"x"))  # the heap holds an export of the buffer
    return {**rec.result(), "resize": resize}


def _packet_generator(packet_size: int) -> ByteCase:
    def case(sp: ModuleType) -> Any:
        send = send_api(sp)
        heap = make_heap(sp, [(0x1000, pattern(2000, 9), False), (0x1001, b"\x01\x02", True)])
        packets = attempt(
            lambda: [bytes(p) for p in send.PacketGenerator(heap, 0x1234, packet_size)]
        )
        types = attempt(
            lambda: sorted({type(p).__name__ for p in send.PacketGenerator(heap, 1, packet_size)})
        )
        return {"packets": packets, "types": types}

    return case


def _packet_size_limit(packet_size: int) -> ByteCase:
    """A max_packet_size too small for one packet: where and how it fails."""

    def case(sp: ModuleType) -> Any:
        send = send_api(sp)
        config = send.StreamConfig(max_packet_size=packet_size)
        made = attempt(lambda: send.BytesStream(thread_pool(sp), config))
        if "ok" not in made:
            return {"construct": made}
        stream = made["ok"]
        sent = attempt(lambda: stream.send_heap(make_heap(sp)))
        return {"construct": {"ok": None}, "send": sent, "bytes": stream.getvalue()}

    return case


def _item_ids(bits: int) -> ByteCase:
    def case(sp: ModuleType) -> Any:
        rec = Recorder(sp)
        top = 2 ** (63 - bits) - 1
        items = [(7, b"\x01", True), (0x10, b"ab", False), (top, b"\x02", True)]
        items += [(top - 1, pattern(9, 1), False)]
        rec.heap(make_heap(sp, items, bits))
        return rec.result()

    return case


def _build_byte_cases() -> None:
    for name, sizes in CATALOGUE_SIZES.items():
        for bits in (40, 48):
            for size in sizes:
                _register(f"catalogue_{name}_{bits}_{size}", _catalogue_case(name, bits, size))
    for bits in (40, 48):
        _register(f"empty_heap_{bits}", _empty_heap(bits))
        _register(f"control_{bits}", _control(bits))
        _register(f"immediates_{bits}", _immediates(bits))
        _register(f"padding_{bits}", _padding(bits))
        _register(f"cnt_sequence_{bits}", _cnt_sequence(bits))
        _register(f"explicit_cnt_{bits}", _explicit_cnt(bits))
        _register(f"item_ids_{bits}", _item_ids(bits))
        for size in (64, 1472, 1473, 8999, 9000):
            _register(f"multi_packet_{bits}_{size}", _multi_packet(bits, size))
    for bits, bug_compat in ((40, 0), (48, 0), (40, 4), (48, 4), (40, 7)):
        _register(f"descriptors_{bits}_compat{bug_compat}", _descriptors(bits, bug_compat))
    for size in (64, 200, 1472):
        _register(f"repeat_pointers_{size}", _repeat_pointers(size))
    for mode in ("ROUND_ROBIN", "SERIAL"):
        for size in (200, 1472):
            _register(f"group_{mode}_{size}", _group(mode, size))
        _register(f"group_list_{mode}", _group_list(mode))
    for size in (55, 56, 64, 1472):
        _register(f"packet_generator_{size}", _packet_generator(size))
    for size in (0, 55, 56, 57):
        _register(f"packet_size_limit_{size}", _packet_size_limit(size))
    _register("heap_generator_modes", _heap_generator_modes)
    _register("mixed_flavours", _mixed_flavours)
    _register("all_or_nothing", _all_or_nothing)
    _register("zero_copy", _zero_copy)


_build_byte_cases()
