"""Reference packets from the real spead2 4.5.1 for the native packetiser's tests.

Run inside the peer venv, from a directory outside the repository (so that ``spead2`` is the
wheel), e.g.::

    cd /tmp && /work/main/.venv-peer/bin/python /work/main/tests/peer/send_vectors.py \
        > /work/main/native/testdata/send/catalogue.txt
    cd /tmp && /work/main/.venv-peer/bin/python /work/main/tests/peer/send_vectors.py \
        --random 2000 --seed 1 > /tmp/random.txt

The output is a line-oriented text format read by the tests at the bottom of
``native/src/send/packet_generator.rs`` and ``group.rs``::

    case <name> <single|round_robin|serial> <max_packet_size>
    heap <heap_address_bits> <bug_compat> <cnt> <repeat_pointers 0|1>
    bytes <id> <allow_immediate 0|1> <hex|->           an item (- = empty)
    pattern <id> <allow_immediate 0|1> <len> <seed>     an item of pattern bytes
    start | end                                         stream control items
    descriptor <id> <name hex|-> <description hex|-> <shape|-> <format|-> <numpy header hex|->
    packet <heap index> <header and pointers hex> <payload hex|#len:fnv1a64 hex>
    error <message>
    end_case

Shapes are comma-separated (-1 = variable); formats are comma-separated code+bits (u16).
Pattern bytes are ``(i * 7 + seed) & 0xff`` for i in 0..len. Payloads over 64 bytes are
given as their length and FNV-1a 64 hash; headers and pointers are always given in full.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import spead2
import spead2.send

INLINE_PAYLOAD = 64
PATTERN_THRESHOLD = 64


def pattern(length: int, seed: int) -> bytes:
    return bytes((i * 7 + seed) & 0xFF for i in range(length))


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


@dataclass
class Item:
    kind: str  # bytes | pattern | start | end | descriptor
    id: int = 0
    allow_immediate: bool = False
    data: bytes = b""
    seed: int = 0
    descriptor: dict[str, Any] = field(default_factory=dict)


@dataclass
class HeapSpec:
    hab: int = 40
    bug_compat: int = 0
    cnt: int = 1
    repeat: bool = False
    items: list[Item] = field(default_factory=list)


class BufferItem:
    """What ``spead2.send.Heap.add_item`` needs: an id, a buffer and allow_immediate."""

    def __init__(self, id: int, data: bytes, allow_immediate: bool) -> None:
        self.id = id
        self._data = np.frombuffer(data, dtype=np.uint8) if data else np.zeros(0, np.uint8)
        self._allow = allow_immediate

    def to_buffer(self) -> np.ndarray:
        return self._data

    def allow_immediate(self) -> bool:
        return self._allow


def make_descriptor(fields: dict[str, Any]) -> spead2.Descriptor:
    shape = tuple(None if s < 0 else s for s in fields["shape"])
    if fields.get("dtype") is not None:
        return spead2.Descriptor(
            fields["id"], fields["name"], fields["description"], shape, dtype=fields["dtype"]
        )
    return spead2.Descriptor(
        fields["id"], fields["name"], fields["description"], shape, format=fields["format"]
    )


def build_heap(spec: HeapSpec) -> spead2.send.Heap:
    flavour = spead2.Flavour(4, 64, spec.hab, spec.bug_compat)
    heap = spead2.send.Heap(flavour)
    heap.repeat_pointers = spec.repeat
    for item in spec.items:
        if item.kind == "start":
            heap.add_start()
        elif item.kind == "end":
            heap.add_end()
        elif item.kind == "descriptor":
            heap.add_descriptor(make_descriptor(item.descriptor))
        else:
            heap.add_item(BufferItem(item.id, item.data, item.allow_immediate))
    return heap


def hex_or_dash(data: bytes) -> str:
    return data.hex() if data else "-"


def item_line(item: Item, spec: HeapSpec) -> str:
    if item.kind in ("start", "end"):
        return item.kind
    if item.kind == "pattern":
        return f"pattern {item.id} {int(item.allow_immediate)} {len(item.data)} {item.seed}"
    if item.kind == "bytes":
        return f"bytes {item.id} {int(item.allow_immediate)} {hex_or_dash(item.data)}"
    flavour = spead2.Flavour(4, 64, spec.hab, spec.bug_compat)
    raw = make_descriptor(item.descriptor).to_raw(flavour)
    shape = ",".join("-1" if s is None or s < 0 else str(s) for s in raw.shape) or "-"
    fmt = ",".join(f"{code}{bits}" for code, bits in raw.format) or "-"
    return (
        f"descriptor {raw.id} {hex_or_dash(bytes(raw.name))} "
        f"{hex_or_dash(bytes(raw.description))} {shape} {fmt} "
        f"{hex_or_dash(bytes(raw.numpy_header))}"
    )


def packet_line(index: int, packet: bytes) -> str:
    n = int.from_bytes(packet[6:8], "big")
    head, payload = packet[: 8 + 8 * n], packet[8 + 8 * n :]
    if len(payload) <= INLINE_PAYLOAD:
        body = hex_or_dash(payload)
    else:
        body = f"#{len(payload)}:{fnv1a64(payload):016x}"
    return f"packet {index} {head.hex()} {body}"


def split_packets(data: bytes) -> list[bytes]:
    """Frame a BytesStream's output by each packet's PAYLOAD_LENGTH."""
    out = []
    pos = 0
    while pos < len(data):
        n = int.from_bytes(data[pos + 6 : pos + 8], "big")
        hab = data[pos + 3] * 8
        # spead2 always puts PAYLOAD_LENGTH fourth.
        length_pointer = int.from_bytes(data[pos + 32 : pos + 40], "big")
        length = length_pointer & ((1 << hab) - 1)
        end = pos + 8 + 8 * n + length
        out.append(data[pos:end])
        pos = end
    return out


def heap_of_packet(packet: bytes, cnts: list[int]) -> int:
    hab = packet[3] * 8
    cnt = int.from_bytes(packet[8:16], "big") & ((1 << hab) - 1)
    return cnts.index(cnt)


def run_case(name: str, mode: str, mps: int, specs: list[HeapSpec]) -> list[str]:
    lines = [f"case {name} {mode} {mps}"]
    for spec in specs:
        lines.append(f"heap {spec.hab} {spec.bug_compat} {spec.cnt} {int(spec.repeat)}")
        lines.extend(item_line(item, spec) for item in spec.items)
    try:
        if mode == "single":
            gen = spead2.send.PacketGenerator(build_heap(specs[0]), specs[0].cnt, mps)
            packets = [(0, bytes(p)) for p in gen]
        else:
            stream = spead2.send.BytesStream(
                spead2.ThreadPool(), spead2.send.StreamConfig(max_packet_size=mps)
            )
            group_mode = {
                "round_robin": spead2.send.GroupMode.ROUND_ROBIN,
                "serial": spead2.send.GroupMode.SERIAL,
            }[mode]
            refs = [spead2.send.HeapReference(build_heap(s), cnt=s.cnt) for s in specs]
            stream.send_heaps(refs, group_mode)
            cnts = [s.cnt for s in specs]
            packets = [(heap_of_packet(p, cnts), p) for p in split_packets(stream.getvalue())]
        lines.extend(packet_line(i, p) for i, p in packets)
    except (ValueError, OSError) as exc:
        lines.append(f"error {exc}")
    lines.append("end_case")
    return lines


# --------------------------------------------------------------------------- the catalogue


def b(id: int, data: bytes, allow_immediate: bool = False) -> Item:
    return Item("bytes", id, allow_immediate, data)


def pat(id: int, length: int, seed: int = 0, allow_immediate: bool = False) -> Item:
    return Item("pattern", id, allow_immediate, pattern(length, seed), seed)


def heap(items: list[Item], hab: int = 40, cnt: int = 1, repeat: bool = False, bc: int = 0):
    return HeapSpec(hab, bc, cnt, repeat, items)


def desc(**fields: Any) -> Item:
    return Item("descriptor", descriptor=fields)


def catalogue() -> list[tuple[str, str, int, list[HeapSpec]]]:
    cases: list[tuple[str, str, int, list[HeapSpec]]] = []

    def add(name: str, specs: list[HeapSpec], mps: int = 1472, mode: str = "single") -> None:
        cases.append((name, mode, mps, specs))

    for hab in (40, 48):
        add(f"empty_{hab}", [heap([], hab)])
        add(f"start_{hab}", [heap([Item("start")], hab)])
        add(f"end_{hab}", [heap([Item("end")], hab)])
        for n in range(0, 10):
            add(f"one_item_{n}_imm_{hab}", [heap([b(0x1000, pattern(n, 3), True)], hab)])
            add(f"one_item_{n}_addr_{hab}", [heap([b(0x1000, pattern(n, 3))], hab)])
        add(
            f"mixed_{hab}",
            [
                heap(
                    [
                        b(0x1000, b"\x01\x02", True),
                        b(0x1001, b""),
                        pat(0x1002, 100),
                        b(0x1003, b"abc", True),
                        b(0x1004, b"abcdefgh", True),
                        pat(0x1005, 5, 9),
                    ],
                    hab,
                    cnt=12345,
                )
            ],
        )
        for mps in (1472, 9000, 64, 56, 57, 63, 100):
            size = 20000 if mps >= 1472 else 1500
            add(f"multi_{hab}_{mps}", [heap([pat(0x1000, size, 1), pat(0x1001, 333)], hab)], mps)
        add(
            f"descriptors_{hab}",
            [
                heap(
                    [
                        desc(
                            id=0x1000,
                            name="legacy",
                            description="a legacy format",
                            shape=[3, -1],
                            format=[("u", 16), ("f", 32)],
                        ),
                        desc(
                            id=0x1001,
                            name="numpy",
                            description="a numpy header",
                            shape=[4, 5],
                            dtype=np.dtype(">i4"),
                        ),
                        pat(0x1000, 12),
                    ],
                    hab,
                )
            ],
        )
        add(
            f"descriptor_widths_{hab}",
            [
                heap(
                    [desc(id=0x1000, name="x", description="", shape=[-1, 2], format=[("i", 8)])],
                    hab,
                    bc=7,
                )
            ],
        )
    add("flavour_56", [heap([b(0x10, b"\x01" * 7, True), pat(0x11, 50)], 56, cnt=2**55)])
    add("flavour_16", [heap([b(0x10, b"\x01" * 2, True), pat(0x11, 500)], 16, cnt=65535)], 96)
    add("flavour_8", [heap([pat(0x10, 300)], 8, cnt=258)], 100)
    # Pointer overflow across packets and the padding it needs.
    for n in (5, 6, 7, 11, 12, 13, 17, 18, 19, 20, 25, 60):
        for mps in (96, 104):
            add(f"imm_{n}_{mps}", [heap([b(0x1000 + i, bytes([i]), True) for i in range(n)])], mps)
            add(f"addr1_{n}_{mps}", [heap([b(0x1000 + i, bytes([i])) for i in range(n)])], mps)
            add(f"addr10_{n}_{mps}", [heap([pat(0x1000 + i, 10, i) for i in range(n)])], mps)
    add("many_items_1472", [heap([pat(0x1000 + i, i % 13, i) for i in range(400)])], 1472)
    add("many_items_56", [heap([pat(0x1000 + i, i % 5, i) for i in range(30)])], 56)
    # repeat_pointers
    for mps in (56, 72, 80, 88, 200):
        add(
            f"repeat_3x10_{mps}",
            [heap([pat(0x1000 + i, 10, i) for i in range(3)], repeat=True)],
            mps,
        )
        add(
            f"repeat_3imm_{mps}",
            [heap([b(0x1000 + i, bytes([i]), True) for i in range(3)], repeat=True)],
            mps,
        )
    add("repeat_empty", [heap([], repeat=True)], 56)
    add("repeat_big", [heap([pat(0x1000, 5000), b(0x1001, b"ab", True)], repeat=True)], 1472)
    # Values spead2 ORs in without masking.
    add("cnt_over_mask", [heap([pat(0x1000, 8)], cnt=2**41 + 5)])
    add("cnt_top_bit", [heap([pat(0x1000, 8)], cnt=2**63 + 5)])
    add("id_over_mask_imm", [heap([b(2**23 + 7, b"ab", True)])])
    add("id_over_mask_addr", [heap([pat(2**23 + 7, 8)])])
    add("length_over_mask_8", [heap([pat(0x10, 128), pat(0x11, 128)], 8)], 9000)
    # Errors
    add("too_small_55", [heap([pat(0x1000, 8)])], 55)
    add("too_small_0", [heap([])], 0)
    add("empty_48", [heap([])], 48)
    # Groups
    three = [
        heap([pat(0x1000, 300, 1)], cnt=1),
        heap([pat(0x1000, 50, 2)], cnt=2),
        heap([pat(0x1000, 200, 3)], cnt=3),
    ]
    for mode in ("round_robin", "serial"):
        add(f"group3_{mode}", three, 96, mode)
        add(
            f"group2_{mode}",
            [heap([pat(0x1000, 30000, 4)], 48, cnt=7), heap([pat(0x1001, 5000, 5)], 48, cnt=3)],
            1472,
            mode,
        )
        add(
            f"group_small_{mode}",
            [
                heap([], cnt=10),
                heap([Item("start")], cnt=11),
                heap([b(0x1000 + i, bytes([i]), True) for i in range(20)], cnt=12),
            ],
            96,
            mode,
        )
        add(
            f"group_long_{mode}",
            [
                heap([pat(0x1000, 200000, 6)], cnt=100),
                heap([pat(0x1000, 90000, 7)], cnt=101),
                heap([pat(0x1000, 1, 7)], cnt=102),
            ],
            1472,
            mode,
        )
    return cases


# --------------------------------------------------------------------------- random cases


def random_item(rng: random.Random, hab: int) -> Item:
    kind = rng.random()
    # IDs below 0x10 would collide with the framing items in some flavours.
    id_limit = 2 ** (63 - hab)
    id = rng.choice([rng.randrange(0x10, min(0x2000, id_limit)), rng.randrange(0x10, id_limit)])
    if kind < 0.05:
        return Item(rng.choice(["start", "end"]))
    scale = rng.choice([8, 8, 30, 200, 3000])
    length = rng.randrange(0, scale + 1)
    allow = rng.random() < 0.5
    if length > PATTERN_THRESHOLD:
        seed = rng.randrange(256)
        return Item("pattern", id, allow, pattern(length, seed), seed)
    return Item("bytes", id, allow, rng.randbytes(length))


def random_heap(rng: random.Random, cnt: int) -> HeapSpec:
    hab = rng.choice([8, 16, 24, 32, 40, 40, 48, 48, 56])
    n_items = rng.choice([0, 1, 2, 3, 5, 10, 30, rng.randrange(0, 150)])
    items = [random_item(rng, hab) for _ in range(n_items)]
    return HeapSpec(hab, 0, cnt, rng.random() < 0.15, items)


def random_cases(n: int, seed: int) -> list[tuple[str, str, int, list[HeapSpec]]]:
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        mps = rng.choice([rng.randrange(40, 200), rng.randrange(40, 2000), 1472, 9000])
        if rng.random() < 0.2:
            mode = rng.choice(["round_robin", "serial"])
            specs = [random_heap(rng, 1000 + k) for k in range(rng.randrange(1, 5))]
            # A stream packetises every heap with the same flavour as it checks cnt.
            for s in specs:
                s.hab = max(s.hab, 16)
        else:
            mode = "single"
            specs = [random_heap(rng, rng.choice([1, rng.randrange(2**64)]))]
        cases.append((f"random_{seed}_{i}", mode, mps, specs))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--random", type=int, default=0, help="emit N random cases instead")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if spead2.__version__ != "4.5.1":
        raise SystemExit(f"expected the spead2 4.5.1 wheel, got {spead2.__version__}")
    cases = random_cases(args.random, args.seed) if args.random else catalogue()
    out = sys.stdout
    out.write("# Generated by tests/peer/send_vectors.py from spead2 4.5.1; do not edit.\n")
    for name, mode, mps, specs in cases:
        out.write("\n".join(run_case(name, mode, mps, specs)) + "\n")


if __name__ == "__main__":
    main()
