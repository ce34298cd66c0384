"""A deterministic catalogue of SPEAD items and heaps, shared by both sides of the interop tests.

This module imports only numpy and the standard library, never spead2, so the peer venv (with the
real spead2 4.5.1) and our venv import the same definitions: the peer sender builds its heaps from
them, and the receiving side checks what it got against them.

A catalogue is a list of item descriptions plus a list of heaps; each heap is the set of item
values assigned before ``get_heap()`` is called, so exactly those items travel in that heap
(``HeapGenerator`` sends an item only when its value changed since the last heap). The sender
wraps the heaps in a start heap and a stop heap.

The module also knows how spead2's ``ItemGroup.update`` presents a received value (native byte
order, numpy scalars for 0-d, ``str`` for 1-D ``c8`` strings, object arrays of ``int`` for
non-byte widths) and provides :func:`collect` / :func:`check_received` so both receivers record
and judge heaps the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLAVOUR_BITS: tuple[int, ...] = (40, 48)
"""heap_address_bits of the SPEAD-64-XX flavours every catalogue is built for."""

_NUMPY_FORMATS: dict[tuple[str, int], str] = {
    ("u", 8): "u1",
    ("u", 16): "u2",
    ("u", 32): "u4",
    ("u", 64): "u8",
    ("i", 8): "i1",
    ("i", 16): "i2",
    ("i", 32): "i4",
    ("i", 64): "i8",
    ("f", 32): "f4",
    ("f", 64): "f8",
    ("b", 8): "?",
    ("c", 8): "S1",
}
"""Legacy format fields that spead2 decodes through numpy (all others take the bitwise path)."""


@dataclass(frozen=True)
class ItemSpec:
    """An item definition, with the arguments of ``ItemGroup.add_item``."""

    id: int
    name: str
    description: str
    shape: tuple[int | None, ...]
    dtype: Any = None
    order: str = "C"
    format: tuple[tuple[str, int], ...] | None = None

    def add_item_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``ItemGroup.add_item`` (without a value)."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "shape": self.shape,
            "dtype": self.dtype,
            "order": self.order,
            "format": None if self.format is None else list(self.format),
        }


@dataclass(frozen=True)
class Catalogue:
    """Items plus the values assigned before each heap (item name -> value)."""

    name: str
    heap_address_bits: int
    items: tuple[ItemSpec, ...]
    heaps: tuple[Mapping[str, Any], ...]

    def spec(self, name: str) -> ItemSpec:
        """The item called ``name``."""
        for item in self.items:
            if item.name == name:
                return item
        raise KeyError(name)


@dataclass
class ReceivedHeap:
    """What a receiver saw in one heap: its cnt, control flags and the values it updated."""

    cnt: int
    is_start: bool
    is_end: bool
    values: dict[str, Any]


@dataclass
class Received:
    """Everything one receive run produced, in a form that pickles across venvs."""

    heaps: list[ReceivedHeap] = field(default_factory=list)
    descriptors: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)

    def to_plain(self) -> dict[str, Any]:
        """Builtins and numpy objects only, so it unpickles where this module has another name."""
        return {
            "heaps": [vars(h).copy() for h in self.heaps],
            "descriptors": self.descriptors,
            "stats": self.stats,
        }

    @classmethod
    def from_plain(cls, plain: Mapping[str, Any]) -> Received:
        """The inverse of :meth:`to_plain`."""
        return cls(
            [ReceivedHeap(**h) for h in plain["heaps"]],
            dict(plain["descriptors"]),
            dict(plain["stats"]),
        )


# --------------------------------------------------------------------------------------------
# Deterministic values. Only integer arithmetic on uint64 arrays, so every numpy version
# produces the same numbers (random generators make no such promise).


def _mix(n: int, seed: int) -> np.ndarray:
    """``n`` well-spread uint64 values derived from ``seed``."""
    x = np.arange(n, dtype=np.uint64) + np.uint64(seed * 7919 + 1)
    x *= np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(29)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(32)
    return x


def _ints(dtype: str, n: int, seed: int) -> np.ndarray:
    """Integers of ``dtype`` that start with the type's extremes and zero."""
    dt = np.dtype(dtype)
    info = np.iinfo(dt)
    values = _mix(n, seed).astype(dt)  # wrapping cast: keeps the low bits
    head = np.array([info.min, info.max, 0, 1], dtype=dt)[:n]
    values[: len(head)] = head
    return values


def _floats(dtype: str, n: int, seed: int) -> np.ndarray:
    """Floats of ``dtype`` that start with NaN, -0.0, +inf and -inf."""
    dt = np.dtype(dtype)
    frac = (_mix(n, seed) >> np.uint64(11)).astype(np.float64) / float(2**53)
    values = ((frac - 0.5) * 2000.0).astype(dt)
    head = np.array([np.nan, -0.0, np.inf, -np.inf], dtype=dt)[:n]
    values[: len(head)] = head
    return values


def _complex(dtype: str, n: int, seed: int) -> np.ndarray:
    dt = np.dtype(dtype)
    real_dt = "f4" if dt.itemsize == 8 else "f8"
    values = np.empty(n, dt)
    values.real = _floats(real_dt, n, seed)[::-1]
    values.imag = _floats(real_dt, n, seed + 1)
    return values


def _values(dtype: str, n: int, seed: int) -> np.ndarray:
    """``n`` deterministic values of any plain numeric or bool dtype."""
    kind = np.dtype(dtype).kind
    if kind in "ui":
        return _ints(dtype, n, seed)
    if kind == "f":
        return _floats(dtype, n, seed)
    if kind == "c":
        return _complex(dtype, n, seed)
    if kind == "b":
        return (_mix(n, seed) & np.uint64(1)).astype(bool)
    raise ValueError(f"no value generator for {dtype}")


def _text(n: int, seed: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;-_"
    idx = _mix(n, seed) % np.uint64(len(letters))
    return "".join(letters[int(i)] for i in idx)


def _bits(width: int, signed: bool, n: int, seed: int) -> list[int]:
    """Python ints that fit in a ``width``-bit field, including both extremes."""
    raw = [int(v) & ((1 << width) - 1) for v in _mix(n, seed)]
    if signed:
        raw = [v - (1 << width) if v >> (width - 1) else v for v in raw]
        head = [-(1 << (width - 1)), (1 << (width - 1)) - 1, 0]
    else:
        head = [0, (1 << width) - 1, 1]
    return head[:n] + raw[len(head) :]


# --------------------------------------------------------------------------------------------
# Item definitions.

_ENDIAN_DTYPES = ("u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8", "c8", "c16")


def _dtype_array_items() -> list[ItemSpec]:
    """1-D arrays of every plain dtype in both byte orders, plus single-byte and bool ones."""
    specs = [
        ItemSpec(0x1000, "arr_u1", "uint8 array", (11,), dtype="u1"),
        ItemSpec(0x1001, "arr_i1", "int8 array", (11,), dtype="i1"),
        ItemSpec(0x1002, "arr_bool", "bool array", (11,), dtype="?"),
        ItemSpec(0x1003, "arr_f2", "float16 array", (11,), dtype="<f2"),
    ]
    next_id = 0x1010
    for base in _ENDIAN_DTYPES:
        for prefix, label in (("<", "le"), (">", "be")):
            specs.append(
                ItemSpec(
                    next_id,
                    f"arr_{base}_{label}",
                    f"{base} {label} array",
                    (11,),
                    dtype=prefix + base,
                )
            )
            next_id += 1
    return specs


def _multidim_items() -> list[ItemSpec]:
    return [
        ItemSpec(
            0x1040, "fortran_i4", "Fortran-order int32 matrix", (3, 4), dtype="<i4", order="F"
        ),
        ItemSpec(
            0x1041,
            "fortran_f8_be",
            "Fortran-order big-endian float64",
            (5, 2),
            dtype=">f8",
            order="F",
        ),
        ItemSpec(0x1042, "fortran_c8", "Fortran-order complex64", (2, 3), dtype="<c8", order="F"),
        ItemSpec(0x1043, "cube_u2", "C-order 3-D uint16", (2, 3, 4), dtype="<u2"),
        ItemSpec(
            0x1044,
            "record",
            "structured dtype",
            (4,),
            dtype=[("a", "<u2"), ("b", ">f8"), ("c", "i1"), ("d", "S3")],
        ),
    ]


def _format_items() -> list[ItemSpec]:
    """Legacy (PySPEAD-style) formats, including widths that are not whole bytes."""
    return [
        ItemSpec(0x1050, "fmt_u8", "format u8", (6,), format=(("u", 8),)),
        ItemSpec(0x1051, "fmt_i32", "format i32", (5,), format=(("i", 32),)),
        ItemSpec(0x1052, "fmt_i64", "format i64", (2,), format=(("i", 64),)),
        ItemSpec(0x1053, "fmt_f64", "format f64", (4,), format=(("f", 64),)),
        ItemSpec(0x1054, "fmt_f32_2d", "format f32 matrix", (3, 2), format=(("f", 32),)),
        ItemSpec(0x1055, "fmt_u16_2d", "format u16 matrix", (3, 4), format=(("u", 16),)),
        ItemSpec(0x1056, "fmt_b8", "format b8", (5,), format=(("b", 8),)),
        ItemSpec(0x1057, "fmt_u4", "format u4 (nibbles)", (7,), format=(("u", 4),)),
        ItemSpec(0x1058, "fmt_i12", "format i12", (5,), format=(("i", 12),)),
        ItemSpec(0x1059, "fmt_u1", "format u1 (bits)", (9,), format=(("u", 1),)),
        ItemSpec(0x105A, "fmt_u24", "format u24", (3,), format=(("u", 24),)),
        ItemSpec(
            0x105B,
            "fmt_multi",
            "format with several fields",
            (3,),
            format=(("u", 8), ("i", 16), ("f", 32), ("c", 8)),
        ),
        ItemSpec(0x105C, "fmt_c8_fixed", "fixed-length string", (6,), format=(("c", 8),)),
        ItemSpec(0x105D, "str_var", "variable-length string", (None,), format=(("c", 8),)),
        ItemSpec(0x105E, "fmt_c8_2d", "2-D array of characters", (2, 3), format=(("c", 8),)),
    ]


def _scalar_items(bits: int) -> list[ItemSpec]:
    """0-d items: those up to ``bits / 8`` bytes travel as immediates, the rest addressed."""
    return [
        ItemSpec(0x1060, "imm_u8", "immediate u8", (), format=(("u", 8),)),
        ItemSpec(0x1061, "imm_i16", "immediate i16", (), format=(("i", 16),)),
        ItemSpec(0x1062, "imm_u32", "immediate u32", (), format=(("u", 32),)),
        ItemSpec(
            0x1063, "imm_full", "immediate filling the address width", (), format=(("u", bits),)
        ),
        ItemSpec(0x1064, "imm_dt_u2", "immediate <u2", (), dtype="<u2"),
        ItemSpec(0x1065, "imm_dt_i4", "immediate >i4", (), dtype=">i4"),
        ItemSpec(0x1066, "imm_dt_f4", "immediate <f4", (), dtype="<f4"),
        ItemSpec(0x1067, "imm_bool", "immediate bool", (), dtype="?"),
        ItemSpec(0x1068, "imm_b8", "immediate b8", (), format=(("b", 8),)),
        ItemSpec(0x1069, "imm_f32", "immediate f32", (), format=(("f", 32),)),
        ItemSpec(0x106A, "scalar_f8", "0-d >f8 (addressed)", (), dtype=">f8"),
        ItemSpec(0x106B, "scalar_u64", "0-d u64 (addressed)", (), format=(("u", 64),)),
        ItemSpec(0x106C, "scalar_c16", "0-d <c16", (), dtype="<c16"),
        ItemSpec(0x106D, "scalar_u12", "0-d u12 (bitwise)", (), format=(("u", 12),)),
        ItemSpec(0x106E, "scalar_c8", "0-d character", (), format=(("c", 8),)),
        ItemSpec(0x0007, "low_id", "smallest user item ID", (), dtype="u1"),
        ItemSpec(0x7FFF, "high_id", "largest ID that fits every flavour", (), dtype="<u2"),
    ]


def _variable_items() -> list[ItemSpec]:
    return [
        ItemSpec(0x1070, "var_u16", "variable rows of u16 pairs", (None, 2), format=(("u", 16),)),
        ItemSpec(0x1071, "var_f32", "variable f32 vector", (None,), format=(("f", 32),)),
        ItemSpec(
            0x1072, "var_i8_cols", "variable number of columns", (3, None), format=(("i", 8),)
        ),
    ]


def _large_items() -> list[ItemSpec]:
    """Items of a few hundred KB, so their heaps span hundreds of packets."""
    return [
        ItemSpec(0x1080, "big_f4", "256 KiB float32 vector", (65536,), dtype="<f4"),
        ItemSpec(
            0x1081,
            "big_u2_f",
            "Fortran-order big-endian uint16 image",
            (200, 300),
            dtype=">u2",
            order="F",
        ),
        ItemSpec(0x1082, "big_var", "variable-length u8 vector", (None,), format=(("u", 8),)),
        ItemSpec(0x1083, "late", "first gets a value in the third heap", (2,), dtype="<u1"),
    ]


# --------------------------------------------------------------------------------------------
# Values per heap.


def _initial_values(bits: int, seed: int) -> dict[str, Any]:
    """A value for every item of the full catalogue except ``late``."""
    v: dict[str, Any] = {}
    for spec in _dtype_array_items():
        v[spec.name] = _values(str(spec.dtype), 11, seed + spec.id)
    v["fortran_i4"] = np.asfortranarray(_values("<i4", 12, seed + 1).reshape(3, 4))
    v["fortran_f8_be"] = np.asfortranarray(_values(">f8", 10, seed + 2).reshape(5, 2))
    v["fortran_c8"] = _values("<c8", 6, seed + 3).reshape(2, 3)
    v["cube_u2"] = _values("<u2", 24, seed + 4).reshape(2, 3, 4)
    record = np.zeros(4, dtype=[("a", "<u2"), ("b", ">f8"), ("c", "i1"), ("d", "S3")])
    record["a"] = _values("<u2", 4, seed + 5)
    record["b"] = _values(">f8", 4, seed + 6)
    record["c"] = _values("i1", 4, seed + 7)
    record["d"] = [b"abc", b"", b"x", b"yz"][seed % 2 :] + [b"abc", b"", b"x", b"yz"][: seed % 2]
    v["record"] = record
    v.update(_format_values(seed))
    v.update(_scalar_values(bits, seed))
    v.update(_variable_values(seed))
    v["big_f4"] = _values("<f4", 65536, seed + 20)
    v["big_u2_f"] = np.asfortranarray(_values(">u2", 60000, seed + 21).reshape(200, 300))
    v["big_var"] = _values("u1", 100_000 + 1000 * seed, seed + 22)
    return v


def _format_values(seed: int) -> dict[str, Any]:
    multi = [
        (int(a), int(b), float(c), bytes([97 + i]))
        for i, (a, b, c) in enumerate(
            zip(
                _values("u1", 3, seed + 30),
                _values("i2", 3, seed + 31),
                np.array([1.5, -2.25, 1e6]) * (seed + 1),
                strict=True,
            )
        )
    ]
    return {
        "fmt_u8": _values("u1", 6, seed + 32),
        "fmt_i32": _values(">i4", 5, seed + 33),
        "fmt_i64": _values(">i8", 2, seed + 34),
        "fmt_f64": _values(">f8", 4, seed + 35),
        "fmt_f32_2d": _values(">f4", 6, seed + 36).reshape(3, 2),
        "fmt_u16_2d": _values(">u2", 12, seed + 37).reshape(3, 4),
        "fmt_b8": _values("?", 5, seed + 38),
        "fmt_u4": np.array(_bits(4, False, 7, seed + 39)),
        "fmt_i12": np.array(_bits(12, True, 5, seed + 40)),
        "fmt_u1": np.array(_bits(1, False, 9, seed + 41)),
        "fmt_u24": np.array(_bits(24, False, 3, seed + 42)),
        "fmt_multi": multi,
        "fmt_c8_fixed": _text(6, seed + 43),
        "str_var": _text(5 + 17 * seed, seed + 44),
        "fmt_c8_2d": np.array([[b"a", b"b", b"c"], [b"d", b"e", b"f"]])[:, :: (1 - 2 * (seed % 2))],
    }


def _scalar_values(bits: int, seed: int) -> dict[str, Any]:
    return {
        "imm_u8": 200 - seed,
        "imm_i16": -12345 + seed,
        "imm_u32": 0xDEADBEEF - seed,
        "imm_full": (1 << bits) - 1 - seed,
        "imm_dt_u2": np.uint16(65535 - seed),
        "imm_dt_i4": np.int32(-(2**31) + seed),
        "imm_dt_f4": np.float32(-1.5 * (seed + 1)),
        "imm_bool": bool(seed % 2 == 0),
        "imm_b8": bool(seed % 2 == 1),
        "imm_f32": 3.25 + seed,
        "scalar_f8": np.float64(-5e-324 * seed) if seed else np.float64(np.pi),
        "scalar_u64": 2**64 - 1 - seed,
        "scalar_c16": np.complex128(complex(1.25 + seed, -7.5)),
        "scalar_u12": 4095 - seed,
        "scalar_c8": bytes([ord("Q") + seed]),
        "low_id": np.uint8(7 + seed),
        "high_id": np.uint16(0x7FFF - seed),
    }


def _variable_values(seed: int) -> dict[str, Any]:
    rows = 1 + 3 * seed
    return {
        "var_u16": _values("<u2", 2 * rows, seed + 50).reshape(rows, 2),
        "var_f32": _values("<f4", 2 + 5 * seed, seed + 51),
        "var_i8_cols": _values("i1", 3 * (4 + seed), seed + 52).reshape(3, 4 + seed),
    }


def _full(bits: int) -> Catalogue:
    items = tuple(
        _dtype_array_items()
        + _multidim_items()
        + _format_items()
        + _scalar_items(bits)
        + _variable_items()
        + _large_items()
    )
    first = _initial_values(bits, 0)
    second_all = _initial_values(bits, 1)
    changed = [
        "var_u16",
        "var_f32",
        "var_i8_cols",
        "str_var",
        "big_f4",
        "big_var",
        "record",
        "fmt_c8_2d",
        "arr_c16_be",
        "fortran_i4",
        "fmt_multi",
        "scalar_f8",
    ]
    changed += [s.name for s in _scalar_items(bits)]
    third_all = _initial_values(bits, 2)
    heaps: list[dict[str, Any]] = [
        first,
        {name: second_all[name] for name in changed},
        {
            "late": np.array([1, 255], dtype="<u1"),
            "imm_u8": 3,
            "fmt_i12": third_all["fmt_i12"],
            "str_var": "x",
        },
        {},  # a heap with no items at all (padding only)
        {
            "big_u2_f": third_all["big_u2_f"],
            "big_f4": third_all["big_f4"],
            "late": np.array([9, 8], dtype="<u1"),
            "var_u16": third_all["var_u16"],
        },
        # The same value assigned again is still sent, because assignment bumps the version.
        {"imm_u32": second_all["imm_u32"], "fmt_u4": first["fmt_u4"]},
    ]
    return Catalogue("full", bits, items, tuple(heaps))


def _small(bits: int) -> Catalogue:
    """A quick catalogue: a few item kinds, one multi-packet heap, values that change."""
    items = (
        ItemSpec(0x2000, "counter", "heap counter", (), format=(("u", 32),)),
        ItemSpec(0x2001, "samples", "int16 samples, big-endian", (4096,), dtype=">i2"),
        ItemSpec(0x2002, "label", "variable-length label", (None,), format=(("c", 8),)),
        ItemSpec(0x2003, "matrix", "Fortran-order complex", (4, 3), dtype="<c8", order="F"),
        ItemSpec(0x2004, "nibbles", "u4 values", (6,), format=(("u", 4),)),
    )
    heaps = tuple(
        {
            "counter": 1000 + i,
            "samples": _values(">i2", 4096, 100 + i),
            "label": _text(3 + 4 * i, 200 + i),
            "matrix": np.asfortranarray(_values("<c8", 12, 300 + i).reshape(4, 3)),
            "nibbles": np.array(_bits(4, False, 6, 400 + i)),
        }
        for i in range(4)
    )
    return Catalogue("small", bits, items, heaps)


CATALOGUES: dict[str, Callable[[int], Catalogue]] = {"full": _full, "small": _small}


def build(name: str, bits: int) -> Catalogue:
    """The catalogue ``name`` for flavour SPEAD-64-``bits``."""
    if bits not in FLAVOUR_BITS:
        raise ValueError(f"unsupported heap_address_bits {bits}")
    return CATALOGUES[name](bits)


# --------------------------------------------------------------------------------------------
# How spead2 presents received values.


def received_dtype(spec: ItemSpec) -> np.dtype | None:
    """The dtype of a received value, or None when spead2 decodes bit by bit into ints."""
    if spec.dtype is not None:
        return np.dtype(spec.dtype).newbyteorder("=")
    assert spec.format is not None
    fields = [_NUMPY_FORMATS.get(f) for f in spec.format]
    if any(f is None for f in fields):
        return None
    if len(fields) == 1:
        return np.dtype(fields[0])
    return np.dtype([(f"f{i}", f) for i, f in enumerate(fields)])


def is_string(spec: ItemSpec) -> bool:
    """True if spead2 hands the value over as ``str`` (a 1-D array of ``c8``)."""
    return spec.format == (("c", 8),) and len(spec.shape) == 1


def expected_value(spec: ItemSpec, value: Any) -> Any:
    """The value ``ItemGroup.update`` should produce for ``value`` sent as item ``spec``."""
    if is_string(spec):
        return value if isinstance(value, str) else bytes(value).decode("ascii")
    dtype = received_dtype(spec)
    if dtype is None:
        ints = np.array(value, dtype=object)
        if ints.ndim == 0:
            return int(ints[()])
        return np.vectorize(int, otypes=[object])(ints)
    arr = np.array(value, dtype=dtype)
    return arr[()] if arr.ndim == 0 else arr


def value_mismatch(got: Any, expected: Any) -> str | None:
    """None if ``got`` equals ``expected`` exactly (type, dtype, shape, bytes), else why not."""
    if type(got) is not type(expected):
        return f"type {type(got).__name__} != {type(expected).__name__}"
    if isinstance(expected, np.ndarray | np.generic):
        if got.dtype != expected.dtype:
            return f"dtype {got.dtype} != {expected.dtype}"
        if got.shape != expected.shape:
            return f"shape {got.shape} != {expected.shape}"
        if expected.dtype == object:
            pairs = zip(np.ravel(got).tolist(), np.ravel(expected).tolist(), strict=True)
            if any(type(a) is not type(b) or a != b for a, b in pairs):
                return f"values {got!r} != {expected!r}"
            return None
        # tobytes() serialises in logical (C) order, so Fortran layouts compare by value and
        # NaN payloads and signed zeros compare exactly.
        if got.tobytes() != expected.tobytes():
            return f"values {got!r} != {expected!r}"
        return None
    if got != expected:
        return f"value {got!r} != {expected!r}"
    return None


def _descriptor_mismatches(
    catalogue: Catalogue, descriptors: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    problems = []
    if set(descriptors) != {s.name for s in catalogue.items}:
        problems.append(f"item names {sorted(descriptors)} != catalogue")
    for spec in catalogue.items:
        d = descriptors.get(spec.name)
        if d is None:
            continue
        want = {
            "id": spec.id,
            "description": spec.description,
            "shape": spec.shape,
            "order": spec.order,
            "format": None if spec.format is None else list(spec.format),
            "dtype": None if spec.dtype is None else np.dtype(spec.dtype),
        }
        for key, value in want.items():
            # Compare None explicitly: np.dtype == None is np.dtype == float64.
            same = (d[key] is None) == (value is None) and (value is None or d[key] == value)
            if not same:
                problems.append(f"descriptor {spec.name}.{key}: {d[key]!r} != {value!r}")
    return problems


def check_received(catalogue: Catalogue, received: Received, *, first_cnt: int = 1) -> list[str]:
    """Every difference between a receive run and the catalogue (empty if identical).

    The sender emits a start heap, then the catalogue heaps, then a stop heap; heap cnts are
    allocated consecutively from ``first_cnt``. The stop heap is never delivered.
    """
    problems: list[str] = []
    heaps = received.heaps
    want_cnts = list(range(first_cnt, first_cnt + len(catalogue.heaps) + 1))
    if [h.cnt for h in heaps] != want_cnts:
        return [f"heap cnts {[h.cnt for h in heaps]} != {want_cnts}"]
    if not heaps[0].is_start or heaps[0].values:
        problems.append("first heap is not an empty start-of-stream heap")
    for index, (got, sent) in enumerate(zip(heaps[1:], catalogue.heaps, strict=True)):
        if got.is_start or got.is_end:
            problems.append(f"heap {index}: unexpected stream control flag")
        if set(got.values) != set(sent):
            problems.append(f"heap {index}: items {sorted(got.values)} != {sorted(sent)}")
        for name in sorted(set(got.values) & set(sent)):
            why = value_mismatch(got.values[name], expected_value(catalogue.spec(name), sent[name]))
            if why:
                problems.append(f"heap {index} item {name}: {why}")
    return problems + _descriptor_mismatches(catalogue, received.descriptors)


# --------------------------------------------------------------------------------------------
# Sending with any spead2-compatible API (duck-typed: no spead2 import here).


def send_all(catalogue: Catalogue, item_group: Any, stream: Any) -> int:
    """Send a start heap, every catalogue heap and a stop heap; returns the heaps sent.

    ``item_group`` is an empty ``spead2.send.ItemGroup`` for the catalogue's flavour and
    ``stream`` any synchronous ``spead2.send`` stream.
    """
    for spec in catalogue.items:
        item_group.add_item(**spec.add_item_kwargs())
    stream.send_heap(item_group.get_start())
    for values in catalogue.heaps:
        for name, value in values.items():
            item_group[name].value = value
        stream.send_heap(item_group.get_heap())
    stream.send_heap(item_group.get_end())
    return len(catalogue.heaps) + 2


# --------------------------------------------------------------------------------------------
# Recording a receive run with any spead2-compatible API (duck-typed: no spead2 import here).


def _record_heap(heap: Any, item_group: Any) -> ReceivedHeap:
    updated = item_group.update(heap)
    return ReceivedHeap(
        cnt=int(heap.cnt),
        is_start=bool(heap.is_start_of_stream()),
        is_end=bool(heap.is_end_of_stream()),
        values={name: item.value for name, item in updated.items()},
    )


def describe_items(item_group: Any) -> dict[str, dict[str, Any]]:
    """The descriptor fields of every item in a spead2 ``ItemGroup``."""
    return {
        item.name: {
            "id": item.id,
            "description": item.description,
            "shape": tuple(item.shape),
            "order": item.order,
            "format": item.format,
            "dtype": item.dtype,
        }
        for item in item_group.values()
    }


def collect(heaps: Iterable[Any], item_group: Any) -> Received:
    """Feed every heap to ``item_group.update`` and record what each one updated."""
    received = Received()
    for heap in heaps:
        received.heaps.append(_record_heap(heap, item_group))
    received.descriptors = describe_items(item_group)
    return received


async def collect_async(heaps: AsyncIterable[Any], item_group: Any) -> Received:
    """:func:`collect` for an ``async for`` stream (``spead2.recv.asyncio.Stream``)."""
    received = Received()
    async for heap in heaps:
        received.heaps.append(_record_heap(heap, item_group))
    received.descriptors = describe_items(item_group)
    return received


def stats_dict(stats: Any) -> dict[str, int]:
    """A plain dict of a ``StreamStats`` object (name -> value)."""
    return {name: int(value) for name, value in stats.items()}
