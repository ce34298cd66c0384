"""Behaviour vectors for the pure-Python layer: Descriptor, Item, ItemGroup, HeapGenerator.

Each case is a small function of a ``spead2`` module that returns a JSON-able description of
what happened (or of the exception raised). The same cases run against both implementations:

* in the peer venv, as a script: ``python descriptor_vectors.py SECTION`` prints the results of
  every case of SECTION as one JSON object (``{case name: result}``);
* in the pytest process, where the unit tests load this file as a module and call
  :func:`run_case` with our ``spead2``.

The module imports only numpy and the standard library at the top, so that loading it into
the pytest process never imports the peer's spead2.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import types
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np

Case = Callable[[ModuleType], Any]
SECTIONS = ("descriptor", "item", "item_group", "heap_generator", "wire")
CASES: dict[str, dict[str, Case]] = {section: {} for section in SECTIONS}


def register(section: str, name: str, fn: Case) -> None:
    """Add a case; names are unique within a section."""
    assert name not in CASES[section], name
    CASES[section][name] = fn


def _normalise(message: str) -> str:
    """Remove memory addresses from an exception message."""
    return re.sub(r"0x[0-9a-f]{6,}", "0x?", message)


def run_case(section: str, name: str, sp: ModuleType) -> Any:
    """Run one case; exceptions become ``{"error": type, "message": text}``.

    The result is normalised through JSON (tuples become lists, keys strings, and numpy
    numbers their repr), exactly as the peer's results are when they reach the tests.
    """
    try:
        result = {"ok": CASES[section][name](sp)}
    except Exception as exc:  # noqa: BLE001 - the exception is the result being compared
        result = {"error": type(exc).__name__, "message": _normalise(str(exc))}
    return json.loads(_normalise(json.dumps(result, default=repr)))


# --------------------------------------------------------------------------- descriptions


class FakeRawItem(bytearray):
    """A received item: value bytes through the buffer protocol, plus pointer metadata."""

    def __init__(
        self, data: bytes, id: int = 0x1000, is_immediate: bool = False, immediate_value: int = 0
    ) -> None:
        super().__init__(data)
        self.id = id
        self.is_immediate = is_immediate
        self.immediate_value = immediate_value


class FakeHeap:
    """A received heap, as ItemGroup.update sees it."""

    def __init__(self, descriptors: list[Any], items: list[Any], flavour: Any) -> None:
        self._descriptors = descriptors
        self._items = items
        self.flavour = flavour

    def get_descriptors(self) -> list[Any]:
        return self._descriptors

    def get_items(self) -> list[Any]:
        return self._items


class RecordingHeap:
    """A send heap that records what a HeapGenerator adds to it."""

    def __init__(self) -> None:
        self.log: list[list[Any]] = []

    def add_item(self, item: Any) -> None:
        self.log.append(["item", item.id, item.name, item.version])

    def add_descriptor(self, descriptor: Any) -> None:
        self.log.append(["descriptor", descriptor.id, descriptor.name])

    def add_start(self) -> None:
        self.log.append(["start"])

    def add_end(self) -> None:
        self.log.append(["end"])


class LogCapture(logging.Handler):
    """Collects (level, message) from the ``spead2`` logger while active."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[list[str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append([record.levelname, record.getMessage()])

    def __enter__(self) -> LogCapture:
        logger = logging.getLogger("spead2")
        self._old_level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("spead2")
        logger.removeHandler(self)
        logger.setLevel(self._old_level)


def describe_value(value: Any) -> Any:
    """Type, dtype, shape, memory layout and contents of a value."""
    if isinstance(value, np.ndarray):
        return {
            "type": "ndarray",
            "dtype": repr(value.dtype),
            "shape": list(value.shape),
            "c": bool(value.flags.c_contiguous),
            "f": bool(value.flags.f_contiguous),
            "repr": repr(value),
            "bytes": None if value.dtype.hasobject else value.tobytes().hex(),
        }
    if isinstance(value, np.generic):
        return {"type": type(value).__name__, "dtype": repr(value.dtype), "repr": repr(value)}
    return {"type": type(value).__name__, "repr": repr(value)}


def describe_buffer(buffer: Any, value: Any) -> Any:
    """What Item.to_buffer returned: its buffer layout and bytes, and any aliasing."""
    view = memoryview(buffer)
    shares = None
    if isinstance(buffer, np.ndarray) and isinstance(value, np.ndarray):
        shares = bool(np.shares_memory(buffer, value))
    return {
        "type": type(buffer).__name__,
        "dtype": repr(buffer.dtype) if isinstance(buffer, np.ndarray) else None,
        "format": view.format,
        "shape": list(view.shape),
        "itemsize": view.itemsize,
        "bytes": view.tobytes().hex(),
        "is_value": buffer is value,
        "shares_value": shares,
    }


def describe_descriptor(d: Any) -> Any:
    """All public attributes and derived properties of a descriptor."""
    return {
        "type": type(d).__name__,
        "id": repr(d.id),
        "name": repr(d.name),
        "description": repr(d.description),
        "shape": repr(d.shape),
        "dtype": repr(d.dtype),
        "order": d.order,
        "format": repr(d.format),
        "itemsize_bits": d.itemsize_bits,
        "variable": d.is_variable_size(),
        "allow_immediate": d.allow_immediate(),
        "internal_dtype": repr(d._internal_dtype),
        "fastpath": d._fastpath,
    }


def describe_raw(raw: Any) -> Any:
    """The wire fields of a RawDescriptor."""
    return {
        "id": raw.id,
        "name": raw.name.hex(),
        "description": raw.description.hex(),
        "shape": repr(raw.shape),
        "format": repr([tuple(f) for f in raw.format]),
        "numpy_header": raw.numpy_header.decode("latin-1"),
    }


def describe_group(group: Any) -> Any:
    """Items of a group in order, with their versions and values."""
    return [
        [name, item.id, item.version, describe_value(item.value)] for name, item in group.items()
    ] + [list(group.ids())]


def raw_descriptor(
    sp: ModuleType,
    id: int = 0x1234,
    name: bytes = b"nm",
    description: bytes = b"dd",
    shape: list[int | None] | None = None,
    format: list[tuple[str, int]] | None = None,
    numpy_header: bytes = b"",
) -> Any:
    """A RawDescriptor of the implementation under test."""
    raw = sp._spead2.RawDescriptor()
    raw.id = id
    raw.name = name
    raw.description = description
    raw.shape = [] if shape is None else shape
    raw.format = [] if format is None else format
    raw.numpy_header = numpy_header
    return raw


FLAVOURS = {"40": (40, 0), "48": (48, 0), "40pyspead": (40, 7), "48swap": (48, 4), "56": (56, 0)}


def flavour(sp: ModuleType, key: str) -> Any:
    bits, bug_compat = FLAVOURS[key]
    return sp.Flavour(4, 64, bits, bug_compat)


# --------------------------------------------------------------------------- descriptor


def _resolve(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Call the factory functions among keyword arguments (dtypes built on demand)."""
    return {k: v() if isinstance(v, types.FunctionType) else v for k, v in kwargs.items()}


def _ctor(shape: Any, **kwargs: Any) -> Case:
    def fn(sp: ModuleType) -> Any:
        kw = _resolve(kwargs)
        return describe_descriptor(sp.Descriptor(0x1234, "name", "desc", shape, **kw))

    return fn


def _struct_dtype() -> np.dtype:
    return np.dtype([("a", "<u2"), ("b", ">f8", (2,))])


def _padded_dtype() -> np.dtype:
    return np.dtype(
        {"names": ["a", "b"], "formats": ["u1", "<u4"], "offsets": [0, 4], "itemsize": 12}
    )


_CTOR_CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "u16_c": ((2, 3), {"dtype": "<u2"}),
    "u16_be_f": ((2, 3), {"dtype": ">u2", "order": "F"}),
    "struct": ((), {"dtype": _struct_dtype}),
    "padded_struct": ((4,), {"dtype": _padded_dtype}),
    "subarray": ((2,), {"dtype": lambda: np.dtype(("u1", (2,)))}),
    "unicode": ((2,), {"dtype": "U3"}),
    "void": ((2,), {"dtype": "V3"}),
    "complex": ((), {"dtype": "c16"}),
    "datetime": ((), {"dtype": "M8[ns]"}),
    "list_shape": ([4, 5], {"dtype": "f4"}),
    "string_shape": ("ab", {"dtype": "u1"}),
    "negative_shape_dtype": ((-1,), {"dtype": "u1"}),
    "negative_shape_format": ((-1,), {"format": [("u", 8)]}),
    "float_shape": ((2.5,), {"dtype": "u1"}),
    "two_unknown_dtype": ((None, None), {"dtype": "u1"}),
    "two_unknown_format": ((None, None), {"format": [("u", 8)]}),
    "two_unknown_everything": ((None, None), {"dtype": "u1", "format": [("u", 8)], "order": "X"}),
    "both": ((2,), {"dtype": "u1", "format": [("u", 8)], "order": "X"}),
    "neither": ((None,), {"order": "X"}),
    "unknown_with_dtype": ((None,), {"dtype": "u1"}),
    "unknown_with_dtype_bad_order": ((None,), {"dtype": "u1", "order": "X"}),
    "format_order_f": ((None,), {"format": [("u", 8)], "order": "F"}),
    "format_order_x_bad_format": ((2,), {"format": [("x", 8)], "order": "X"}),
    "dtype_order_x": ((2,), {"dtype": "u1", "order": "X"}),
    "object_dtype": ((None,), {"dtype": "O", "order": "X"}),
    "object_field": ((2,), {"dtype": lambda: np.dtype([("a", "i1"), ("b", "O")])}),
    "zero_size_void": ((None,), {"dtype": "V0"}),
    "zero_size_bytes": ((2,), {"dtype": "S0"}),
    "empty_struct": ((2,), {"dtype": lambda: np.dtype([])}),
    "bad_dtype": ((2,), {"dtype": "bogus"}),
    "no_shape": (3, {"dtype": "u1"}),
    "fmt_zero": ((2,), {"format": [("u", 0)]}),
    "fmt_negative": ((2,), {"format": [("u", -1)]}),
    "fmt_zero_after_good": ((2,), {"format": [("u", 8), ("x", 0)]}),
    "fmt_zero_before_bad": ((2,), {"format": [("x", 0), ("u", 8)]}),
    "fmt_illegal_code": ((2,), {"format": [("x", 8)]}),
    "fmt_two_char_code": ((2,), {"format": [("uu", 8)]}),
    "fmt_bytes_code": ((2,), {"format": [(b"u", 8)]}),
    "fmt_f16": ((2,), {"format": [("f", 16)]}),
    "fmt_f8": ((2,), {"format": [("f", 8)]}),
    "fmt_c16": ((2,), {"format": [("c", 16)]}),
    "fmt_c7": ((2,), {"format": [("c", 7)]}),
    "fmt_empty": ((2,), {"format": []}),
    "fmt_string_length": ((2,), {"format": [("u", "8")]}),
    "fmt_float_length": ((2,), {"format": [("u", 8.0)]}),
    "fmt_triple": ((2,), {"format": [("u", 8, 1)]}),
    "fmt_single": ((2,), {"format": [("u",)]}),
    "fmt_not_list": ((2,), {"format": 5}),
    "fmt_tuple_of_tuples": ((2,), {"format": (("u", 8),)}),
    "fmt_list_of_lists": ((2,), {"format": [["u", 8]]}),
    "fmt_numpy_length": ((2,), {"format": [("u", np.int64(12))]}),
    "fmt_bool_length": ((2,), {"format": [("u", True)]}),
    "fmt_u8": ((2,), {"format": [("u", 8)]}),
    "fmt_u16_scalar": ((), {"format": [("u", 16)]}),
    "fmt_i64": ((None,), {"format": [("i", 64)]}),
    "fmt_f32": ((2, 3), {"format": [("f", 32)]}),
    "fmt_f64": ((), {"format": [("f", 64)]}),
    "fmt_b8": ((2,), {"format": [("b", 8)]}),
    "fmt_c8": ((None,), {"format": [("c", 8)]}),
    "fmt_b16": ((2,), {"format": [("b", 16)]}),
    "fmt_b1": ((), {"format": [("b", 1)]}),
    "fmt_u1_scalar": ((), {"format": [("u", 1)]}),
    "fmt_u4_pair": ((2,), {"format": [("u", 4)]}),
    "fmt_u4_triple": ((3,), {"format": [("u", 4)]}),
    "fmt_u12_scalar": ((), {"format": [("u", 12)]}),
    "fmt_u12_vector": ((2,), {"format": [("u", 12)]}),
    "fmt_u24_scalar": ((), {"format": [("u", 24)]}),
    "fmt_u40_scalar": ((), {"format": [("u", 40)]}),
    "fmt_u40_vector": ((1,), {"format": [("u", 40)]}),
    "fmt_u40_variable": ((None,), {"format": [("u", 40)]}),
    "fmt_i48_scalar": ((), {"format": [("i", 48)]}),
    "fmt_u63_scalar": ((), {"format": [("u", 63)]}),
    "fmt_u65_scalar": ((), {"format": [("u", 65)]}),
    "fmt_u128": ((2,), {"format": [("u", 128)]}),
    "fmt_b48_scalar": ((), {"format": [("b", 48)]}),
    "fmt_mixed_numpy": ((2,), {"format": [("u", 8), ("f", 32)]}),
    "fmt_mixed_char": ((1,), {"format": [("c", 8), ("u", 8)]}),
    "fmt_mixed_slow": ((2, None), {"format": [("u", 4), ("i", 12)]}),
    "fmt_mixed_partly_numpy": ((), {"format": [("u", 8), ("u", 40)]}),
    "fmt_mixed_nibbles": ((), {"format": [("u", 4), ("u", 4)]}),
    "fmt_mixed_float_slow": ((), {"format": [("f", 32), ("u", 4), ("c", 8), ("b", 1)]}),
    "fmt_eight_bits": ((2,), {"format": [("u", 1)] * 8}),
}
for _name, (_shape, _kwargs) in _CTOR_CASES.items():
    register("descriptor", "ctor_" + _name, _ctor(_shape, **_kwargs))


def _shape_queries(shape: tuple[Any, ...], fmt: list[tuple[str, int]]) -> Case:
    def fn(sp: ModuleType) -> Any:
        d = sp.Descriptor(1, "n", "d", shape, format=fmt)
        dynamic = {m: repr(d.dynamic_shape(m)) for m in (0, 1, 2, 3, 7, 8, 15, 16, 31, 100)}
        probes = [(), (3,), (3, 4), (3, 0), [3, 5], (2, 4), (3, None), (None, 3), (3, 4, 2)]
        compatible = {repr(p): d.compatible_shape(p) for p in probes}
        return {"dynamic": dynamic, "compatible": compatible}

    return fn


for _shape in [(None,), (3, None), (None, 3), (2, None, 5), (None, 0), (0, None), (3,), (), (3, 4)]:
    for _fmt in ([("u", 8)], [("u", 12)], [("u", 3), ("u", 5)]):
        register("descriptor", f"shape_{_shape}_{_fmt}", _shape_queries(_shape, _fmt))


def _to_raw(shape: Any, flavour_key: str, **kwargs: Any) -> Case:
    def fn(sp: ModuleType) -> Any:
        kw = _resolve(kwargs)
        d = sp.Descriptor(0x1234, kw.pop("name", "name"), "description", shape, **kw)
        return describe_raw(d.to_raw(flavour(sp, flavour_key)))

    return fn


_TO_RAW_CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "u16_le": ((2, 3), {"dtype": "<u2"}),
    "u16_be": ((2, 3), {"dtype": ">u2"}),
    "u16_le_f": ((2, 3), {"dtype": "<u2", "order": "F"}),
    "u8": ((5,), {"dtype": "u1"}),
    "bool": ((5,), {"dtype": "?"}),
    "bytes1": ((5,), {"dtype": "S1"}),
    "unicode": ((2,), {"dtype": "U3"}),
    "struct": ((), {"dtype": _struct_dtype}),
    "padded_struct": ((2,), {"dtype": _padded_dtype}),
    "nested_struct": ((2,), {"dtype": lambda: np.dtype([("a", "<u2"), ("b", [("c", ">i4")])])}),
    "titled_struct": ((2,), {"dtype": lambda: np.dtype([(("title", "a"), "<u2")])}),
    "subarray": ((2,), {"dtype": lambda: np.dtype(("u1", (2,)))}),
    "subarray_struct": ((2,), {"dtype": lambda: np.dtype((np.dtype([("a", "<u2")]), (2,)))}),
    "field_subarray": ((2,), {"dtype": lambda: np.dtype([("a", "<u2", (2, 3))])}),
    "complex": ((), {"dtype": "c16"}),
    "datetime": ((), {"dtype": "M8[ns]"}),
    "scalar_f8": ((), {"dtype": ">f8"}),
    "list_shape": ([7], {"dtype": "<i4"}),
    "numpy_int_shape": ([np.int64(5)], {"dtype": "f4"}),
    "bool_shape": ([True], {"dtype": "f4"}),
    "format_variable": ((2, None), {"format": [("u", 4), ("i", 12)]}),
    "format_c8": ((None,), {"format": [("c", 8)]}),
    "format_list_of_lists": ((3,), {"format": [["u", 16]]}),
    "format_scalar": ((), {"format": [("f", 64)]}),
    "non_ascii_name": ((), {"dtype": "u1", "name": "naméé"}),
    "non_ascii_field": ((2,), {"dtype": lambda: np.dtype([("é", "u1")])}),
    "bytes_name": ((), {"dtype": "u1", "name": b"name"}),
}
for _name, (_shape, _kwargs) in _TO_RAW_CASES.items():
    for _key in FLAVOURS:
        register("descriptor", f"to_raw_{_name}_{_key}", _to_raw(_shape, _key, **_kwargs))


def _from_raw(flavour_key: str, **fields: Any) -> Case:
    def fn(sp: ModuleType) -> Any:
        raw = raw_descriptor(sp, **fields)
        return describe_descriptor(sp.Descriptor.from_raw(raw, flavour(sp, flavour_key)))

    return fn


def _hdr(descr: str = "'<u2'", fortran: str = "False", shape: str = "(2, 3)") -> bytes:
    return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}}}".encode()


_FROM_RAW_CASES: dict[str, dict[str, Any]] = {
    "format_variable": {"shape": [2, -1], "format": [("u", 8)]},
    "format_none_dim": {"shape": [2, None], "format": [("u", 8)]},
    "format_slow": {"shape": [2, 3], "format": [("u", 4), ("i", 12)]},
    "format_empty": {"shape": [2, 3], "format": []},
    "format_zero": {"shape": [2, 3], "format": [("u", 0)]},
    "format_illegal": {"shape": [1], "format": [("f", 16)]},
    "format_char_mix": {"shape": [1], "format": [("c", 8), ("u", 8)]},
    "format_two_variable": {"shape": [-1, -1], "format": [("u", 8)]},
    "numpy": {"shape": [2, 3], "format": [("u", 16)], "numpy_header": _hdr()},
    "numpy_overrides": {"shape": [7, -1], "format": [("x", 0)], "numpy_header": _hdr()},
    "numpy_fortran": {"numpy_header": _hdr(fortran="True", shape="(4, 3)")},
    "numpy_scalar": {"numpy_header": _hdr(shape="()")},
    "numpy_list_shape": {"numpy_header": _hdr(shape="[2, 3]")},
    "numpy_int_order": {"numpy_header": _hdr(fortran="1")},
    "numpy_zero_order": {"numpy_header": _hdr(fortran="0")},
    "numpy_none_order": {"numpy_header": _hdr(fortran="None")},
    "numpy_str_order": {"numpy_header": _hdr(fortran="'yes'")},
    "numpy_extra_key": {
        "numpy_header": b"{'descr': '<u2', 'fortran_order': False, 'shape': (2,), 'x': 1}"
    },
    "numpy_missing_key": {"numpy_header": b"{'descr': '<u2', 'fortran_order': False}"},
    "numpy_int_key": {"numpy_header": b"{1: '<u2', 'fortran_order': False, 'shape': (2,)}"},
    "numpy_duplicate_key": {
        "numpy_header": b"{'descr': '<u2', 'fortran_order': False, 'shape': (2,), 'descr': '<u4'}"
    },
    "numpy_float_dim": {"numpy_header": _hdr(shape="(2.5,)")},
    "numpy_exp_dim": {"numpy_header": _hdr(shape="(1e3,)")},
    "numpy_negative_dim": {"numpy_header": _hdr(shape="(-2,)")},
    "numpy_minus_zero_dim": {"numpy_header": _hdr(shape="(-0,)")},
    "numpy_none_dim": {"numpy_header": _hdr(shape="(None,)")},
    "numpy_bool_dim": {"numpy_header": _hdr(shape="(True,)")},
    "numpy_huge_dim": {"numpy_header": _hdr(shape="(99999999999999999999999,)")},
    "numpy_expr_dim": {"numpy_header": _hdr(shape="(2**3,)")},
    "numpy_int_shape": {"numpy_header": _hdr(shape="2")},
    "numpy_str_shape": {"numpy_header": _hdr(shape="'23'")},
    "numpy_zero_dim": {"numpy_header": _hdr(shape="(0,)")},
    "numpy_all_bad": {"numpy_header": _hdr(descr="'zz'", fortran="1", shape="2")},
    "numpy_bad_order_bad_descr": {"numpy_header": _hdr(descr="'zz'", fortran="1")},
    "numpy_bad_descr": {"numpy_header": _hdr(descr="'zz'")},
    "numpy_int_descr": {"numpy_header": _hdr(descr="5")},
    "numpy_list_descr": {"numpy_header": _hdr(descr="['x']")},
    "numpy_none_descr": {"numpy_header": _hdr(descr="None")},
    "numpy_bytes_descr": {"numpy_header": _hdr(descr="b'<u2'")},
    "numpy_object_descr": {"numpy_header": _hdr(descr="'O'")},
    "numpy_object_field": {"numpy_header": _hdr(descr="[('a', 'O')]")},
    "numpy_void0": {"numpy_header": _hdr(descr="'V0'")},
    "numpy_unsized_unicode": {"numpy_header": _hdr(descr="'U'")},
    "numpy_empty_struct": {"numpy_header": _hdr(descr="[]")},
    "numpy_struct": {"numpy_header": _hdr(descr="[('a', '<u2'), ('b', '>f8', (2,))]")},
    "numpy_padded_struct": {
        "numpy_header": _hdr(descr="[('a', '|u1'), ('', '|V3'), ('b', '<u4'), ('', '|V4')]")
    },
    "numpy_duplicate_field": {"numpy_header": _hdr(descr="[('a', '<u2'), ('a', '<u2')]")},
    "numpy_dict_descr": {"numpy_header": _hdr(descr="{'names': ['a'], 'formats': ['<u2']}")},
    "numpy_tuple_descr": {"numpy_header": _hdr(descr="('<u2', (3,))")},
    "numpy_void4": {"numpy_header": _hdr(descr="'|V4'")},
    "numpy_short_code": {"numpy_header": _hdr(descr="'f'")},
    "numpy_datetime": {"numpy_header": _hdr(descr="'<M8[ns]'")},
    "numpy_trailing_comma": {
        "numpy_header": b"{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }"
    },
    "numpy_whitespace": {
        "numpy_header": b"   {'descr': '<u2', 'fortran_order': False, 'shape': (2,)}   \n"
    },
    "numpy_comment": {"numpy_header": b"{'descr': '<u2', 'fortran_order': False, 'shape': (2,)}#c"},
    "numpy_junk": {"numpy_header": b"{'descr': '<u2', 'fortran_order': False, 'shape': (2,)} junk"},
    "numpy_statement": {
        "numpy_header": b"{'descr': '<u2', 'fortran_order': False, 'shape': (2,)};1"
    },
    "numpy_nul": {"numpy_header": b"{'descr': '<u2', 'fortran_order': False, 'shape': (2,)}\x00"},
    "numpy_space": {"numpy_header": b" "},
    "numpy_list": {"numpy_header": b"[1, 2]"},
    "numpy_call": {"numpy_header": b"__import__('os').system('true')"},
    "numpy_numpy_call": {"numpy_header": _hdr(shape="(np.int64(2),)")},
    "numpy_non_ascii": {"numpy_header": b"\xff\xfe"},
    "name_non_ascii": {"name": b"\xff", "shape": [1], "format": [("u", 8)]},
    "name_nul": {"name": b"abc\x00", "shape": [1], "format": [("u", 8)]},
    "description_non_ascii": {"description": b"\xc3\xa9", "shape": [1], "format": [("u", 8)]},
    "bad_name_and_header": {"name": b"\xff", "numpy_header": b"[1]"},
    "bad_header_and_format": {"shape": [-1, -1], "format": [], "numpy_header": b"[1]"},
}
for _name, _fields in _FROM_RAW_CASES.items():
    for _key in ("48", "48swap"):
        register("descriptor", f"from_raw_{_name}_{_key}", _from_raw(_key, **_fields))


def _round_trip(flavour_key: str, shape: Any, **kwargs: Any) -> Case:
    def fn(sp: ModuleType) -> Any:
        d = sp.Descriptor(0x1234, "name", "desc", shape, **_resolve(kwargs))
        fl = flavour(sp, flavour_key)
        return describe_descriptor(sp.Descriptor.from_raw(d.to_raw(fl), fl))

    return fn


for _name, (_shape, _kwargs) in _TO_RAW_CASES.items():
    if _name.startswith("non_ascii") or _name in ("bytes_name", "numpy_int_shape"):
        continue
    for _key in ("40", "48swap"):
        register("descriptor", f"round_trip_{_name}_{_key}", _round_trip(_key, _shape, **_kwargs))


def _item_from_raw(sp: ModuleType) -> Any:
    item = sp.Item.from_raw(raw_descriptor(sp, shape=[2], format=[("u", 8)]), sp.Flavour())
    return [describe_descriptor(item), repr(item.value), item.version]


register("descriptor", "item_from_raw", _item_from_raw)


# --------------------------------------------------------------------------- item


def _set_from_raw(
    shape: Any,
    data: bytes,
    fmt: Any = None,
    dtype: Any = None,
    imm: bool = False,
    iv: Any = 0,
    order: str = "C",
    new_order: str = "=",
) -> Case:
    def fn(sp: ModuleType) -> Any:
        it = sp.Item(0x1000, "x", "y", shape, dtype=dtype, format=fmt, order=order)
        raw = FakeRawItem(data, is_immediate=imm, immediate_value=iv)
        it.set_from_raw(raw, new_order=new_order)
        value = it.value
        shares = None
        if isinstance(value, np.ndarray):
            shares = bool(np.shares_memory(value, np.frombuffer(raw, np.uint8)))
        return {"value": describe_value(value), "version": it.version, "shares_raw": shares}

    return fn


_D6 = bytes.fromhex("123456789abc")
_SET_FROM_RAW_CASES: dict[str, dict[str, Any]] = {
    "u4_imm": {"shape": (), "fmt": [("u", 4)], "data": _D6, "imm": True},
    "u4_addr": {"shape": (), "fmt": [("u", 4)], "data": _D6},
    "u4_imm_one_byte": {"shape": (), "fmt": [("u", 4)], "data": _D6[:1], "imm": True, "iv": 77},
    "u12_imm": {"shape": (), "fmt": [("u", 12)], "data": _D6, "imm": True},
    "u12_addr": {"shape": (), "fmt": [("u", 12)], "data": _D6},
    "u12_vec_imm": {"shape": (2,), "fmt": [("u", 12)], "data": _D6, "imm": True},
    "u12_vec_addr": {"shape": (2,), "fmt": [("u", 12)], "data": _D6},
    "u8_imm": {"shape": (), "fmt": [("u", 8)], "data": _D6, "imm": True},
    "u8_addr": {"shape": (), "fmt": [("u", 8)], "data": _D6},
    "u16_imm": {"shape": (), "fmt": [("u", 16)], "data": _D6, "imm": True},
    "u16_vec_imm": {"shape": (2,), "fmt": [("u", 16)], "data": _D6, "imm": True},
    "u16_vec_addr": {"shape": (2,), "fmt": [("u", 16)], "data": _D6},
    "le_u16_imm": {"shape": (), "dtype": "<u2", "data": _D6, "imm": True},
    "le_u16_addr": {"shape": (), "dtype": "<u2", "data": _D6},
    "u48_imm_exact": {"shape": (), "fmt": [("u", 48)], "data": _D6, "imm": True, "iv": 77},
    "u48_addr": {"shape": (), "fmt": [("u", 48)], "data": _D6, "iv": 77},
    "u48_imm_long": {"shape": (), "fmt": [("u", 48)], "data": _D6 + b"\x01", "imm": True},
    "u48_imm_short": {"shape": (), "fmt": [("u", 48)], "data": _D6[:5], "imm": True},
    "u40_imm_exact": {"shape": (), "fmt": [("u", 40)], "data": _D6[:5], "imm": True, "iv": 77},
    "u40_imm_long": {"shape": (), "fmt": [("u", 40)], "data": _D6, "imm": True, "iv": 77},
    "u24_imm_exact": {"shape": (), "fmt": [("u", 24)], "data": _D6[:3], "imm": True, "iv": 77},
    "u24_addr": {"shape": (), "fmt": [("u", 24)], "data": _D6[:3], "iv": 77},
    "u32_imm": {"shape": (), "fmt": [("u", 32)], "data": _D6, "imm": True, "iv": 77},
    "i48_imm_exact": {"shape": (), "fmt": [("i", 48)], "data": b"\xff" * 6, "imm": True, "iv": 77},
    "i48_imm_negative": {
        "shape": (),
        "fmt": [("i", 48)],
        "data": b"\xff" * 6,
        "imm": True,
        "iv": 2**48 - 1,
    },
    "i48_imm_sign_bit": {
        "shape": (),
        "fmt": [("i", 48)],
        "data": b"\0" * 6,
        "imm": True,
        "iv": 2**47,
    },
    "i48_imm_wide": {"shape": (), "fmt": [("i", 48)], "data": b"\0" * 6, "imm": True, "iv": 2**48},
    "i48_imm_wider": {
        "shape": (),
        "fmt": [("i", 48)],
        "data": b"\0" * 6,
        "imm": True,
        "iv": 2**49 - 1,
    },
    "i48_imm_python_negative": {
        "shape": (),
        "fmt": [("i", 48)],
        "data": b"\0" * 6,
        "imm": True,
        "iv": -5,
    },
    "i48_addr": {"shape": (), "fmt": [("i", 48)], "data": b"\xff" * 6},
    "b48_imm": {"shape": (), "fmt": [("b", 48)], "data": b"\xff" * 6, "imm": True, "iv": 0},
    "u56_imm_short": {"shape": (), "fmt": [("u", 56)], "data": b"\xff" * 6, "imm": True},
    "u56_imm_exact": {"shape": (), "fmt": [("u", 56)], "data": b"\xff" * 7, "imm": True, "iv": 9},
    "u64_imm_short": {"shape": (), "fmt": [("u", 64)], "data": _D6, "imm": True},
    "u48_vec_imm": {"shape": (1,), "fmt": [("u", 48)], "data": _D6, "imm": True, "iv": 77},
    "u47_imm": {"shape": (), "fmt": [("u", 47)], "data": _D6, "imm": True, "iv": 77},
    "u1_imm": {"shape": (), "fmt": [("u", 1)], "data": b"\x80", "imm": True, "iv": 77},
    "u3_imm": {"shape": (), "fmt": [("u", 3)], "data": b"\xff", "imm": True, "iv": 5},
    "i7_imm": {"shape": (), "fmt": [("i", 7)], "data": b"\xff", "imm": True, "iv": 5},
    "i8_imm": {"shape": (), "fmt": [("i", 8)], "data": b"\xff", "imm": True, "iv": 5},
    "u16_var": {"shape": (None,), "fmt": [("u", 16)], "data": _D6},
    "u16_var_imm": {"shape": (None,), "fmt": [("u", 16)], "data": _D6, "imm": True},
    "u16_var_odd": {"shape": (None,), "fmt": [("u", 16)], "data": _D6[:5]},
    "u16_var_odd_imm": {"shape": (None,), "fmt": [("u", 16)], "data": _D6[:5], "imm": True},
    "u12_var": {"shape": (None,), "fmt": [("u", 12)], "data": _D6[:5]},
    "u12_var_imm": {"shape": (None,), "fmt": [("u", 12)], "data": _D6, "imm": True},
    "u12_var_2d": {"shape": (None, 2), "fmt": [("u", 12)], "data": _D6},
    "u12_2d_var": {"shape": (2, None), "fmt": [("u", 12)], "data": _D6},
    "c8_var": {"shape": (None,), "fmt": [("c", 8)], "data": b"hello"},
    "c8_fixed": {"shape": (5,), "fmt": [("c", 8)], "data": b"hello"},
    "c8_short_shape": {"shape": (2,), "fmt": [("c", 8)], "data": b"hello"},
    "c8_nul": {"shape": (None,), "fmt": [("c", 8)], "data": b"hel\x00lo\x00"},
    "c8_non_ascii": {"shape": (None,), "fmt": [("c", 8)], "data": b"h\xffi"},
    "c8_scalar": {"shape": (), "fmt": [("c", 8)], "data": b"hello"},
    "c8_one": {"shape": (1,), "fmt": [("c", 8)], "data": b"hello"},
    "c8_2d": {"shape": (2, 2), "fmt": [("c", 8)], "data": b"hello"},
    "c8_tuple_format": {"shape": (None,), "fmt": (("c", 8),), "data": b"hello"},
    "c8_list_format": {"shape": (None,), "fmt": [["c", 8]], "data": b"hello"},
    "c8_empty": {"shape": (None,), "fmt": [("c", 8)], "data": b""},
    "c8_imm": {"shape": (None,), "fmt": [("c", 8)], "data": b"\0\0hi!", "imm": True},
    "s1_dtype": {"shape": (5,), "dtype": "S1", "data": b"hello"},
    "c8_u8_var": {"shape": (None,), "fmt": [("c", 8), ("u", 8)], "data": b"hello!"},
    "b8_scalar": {"shape": (), "fmt": [("b", 8)], "data": b"\x02"},
    "b8_vec": {"shape": (2,), "fmt": [("b", 8)], "data": b"\x02\x00"},
    "b1_vec": {"shape": (2,), "fmt": [("b", 1)], "data": b"\x80"},
    "b2_vec": {"shape": (2,), "fmt": [("b", 2)], "data": b"\x80"},
    "i4_vec": {"shape": (2,), "fmt": [("i", 4)], "data": b"\x8f"},
    "i12_vec": {"shape": (2,), "fmt": [("i", 12)], "data": _D6},
    "i12_u4_vec": {"shape": (1,), "fmt": [("i", 12), ("u", 4)], "data": _D6},
    "i12_u4_scalar": {"shape": (), "fmt": [("i", 12), ("u", 4)], "data": _D6},
    "i12_u4_c8": {"shape": (), "fmt": [("i", 12), ("u", 4), ("c", 8)], "data": _D6},
    "f32_u4": {"shape": (), "fmt": [("f", 32), ("u", 4)], "data": _D6},
    "u4_f32": {"shape": (), "fmt": [("u", 4), ("f", 32)], "data": _D6},
    "u4_f32_b4": {"shape": (), "fmt": [("u", 4), ("f", 32), ("b", 4)], "data": _D6},
    "u4_f64": {"shape": (), "fmt": [("u", 4), ("f", 64)], "data": _D6 * 2},
    "u8_f32": {"shape": (), "fmt": [("u", 8), ("f", 32)], "data": _D6},
    "u8_f32_imm": {"shape": (), "fmt": [("u", 8), ("f", 32)], "data": _D6, "imm": True},
    "u8_c8_imm": {"shape": (), "fmt": [("u", 8), ("c", 8)], "data": _D6, "imm": True},
    "u8_c8_vec": {"shape": (2,), "fmt": [("u", 8), ("c", 8)], "data": _D6},
    "u8_u40": {"shape": (), "fmt": [("u", 8), ("u", 40)], "data": _D6, "imm": True},
    "u4_u4_imm": {"shape": (), "fmt": [("u", 4), ("u", 4)], "data": _D6, "imm": True},
    "u65_vec": {"shape": (2,), "fmt": [("u", 65)], "data": _D6 * 3},
    "i65_vec": {"shape": (2,), "fmt": [("i", 65)], "data": b"\xff" * 18},
    "u8_too_short": {"shape": (2,), "fmt": [("u", 8)], "data": b"\x01"},
    "u4_just_enough": {"shape": (2,), "fmt": [("u", 4)], "data": b"\x01"},
    "u12_too_short": {"shape": (), "fmt": [("u", 12)], "data": _D6[:1]},
    "u12_vec_too_short": {"shape": (2,), "fmt": [("u", 12)], "data": _D6[:2]},
    "u4_empty": {"shape": (), "fmt": [("u", 4)], "data": b""},
    "u4_zero_len": {"shape": (0,), "fmt": [("u", 4)], "data": b""},
    "u8_zero_len": {"shape": (0,), "fmt": [("u", 8)], "data": b""},
    "u8_var_empty": {"shape": (None,), "fmt": [("u", 8)], "data": b""},
    "u4_var_empty": {"shape": (None,), "fmt": [("u", 4)], "data": b""},
    "u4_var_zero_dim": {"shape": (None, 0), "fmt": [("u", 4)], "data": b"12"},
    "u8_var_zero_dim": {"shape": (None, 0), "fmt": [("u", 8)], "data": b"12"},
    "u8_var_2d": {"shape": (None, 3), "fmt": [("u", 8)], "data": b"12345678"},
    "u4_leading_zero_dim": {"shape": (0, 3), "fmt": [("u", 4)], "data": b"12"},
    "u4_trailing_zero_dim": {"shape": (2, 0), "fmt": [("u", 4)], "data": b"12"},
    "u4_middle_zero_dim": {"shape": (2, 0, 3), "fmt": [("u", 4)], "data": b"12"},
    "u4_u4_middle_zero_dim": {"shape": (2, 0, 3), "fmt": [("u", 4), ("u", 4)], "data": b""},
    "u8_leading_zero_dim": {"shape": (0, 3), "fmt": [("u", 8)], "data": b"12"},
    "u4_u4_leading_zero_dim": {"shape": (0, 2), "fmt": [("u", 4), ("u", 4)], "data": b""},
    "u4_3d": {"shape": (2, 2, 2), "fmt": [("u", 4)], "data": b"\x12\x34\x56\x78"},
    "le_fortran": {"shape": (2, 3), "dtype": "<u2", "data": bytes(range(12)), "order": "F"},
    "be_fortran_keep": {
        "shape": (2, 3),
        "dtype": ">u2",
        "data": bytes(range(12)),
        "order": "F",
        "new_order": "|",
    },
    "be_to_little": {"shape": (2, 3), "dtype": ">u2", "data": bytes(range(12)), "new_order": "<"},
    "be_to_big": {"shape": (2, 3), "dtype": ">u2", "data": bytes(range(12)), "new_order": ">"},
    "be_swap": {"shape": (2, 3), "dtype": ">u2", "data": bytes(range(12)), "new_order": "S"},
    "le_swap": {"shape": (3,), "dtype": "<u2", "data": bytes(range(6)), "new_order": "S"},
    "le_native": {"shape": (3,), "dtype": "<u2", "data": bytes(range(6))},
    "be_native_extra": {"shape": (2,), "dtype": ">u2", "data": bytes(range(12))},
    "be_too_short": {"shape": (2,), "dtype": ">u2", "data": bytes(range(3))},
    "i2_too_short": {"shape": (5,), "dtype": ">i2", "data": b"hello"},
    "struct_mixed_order": {
        "shape": (),
        "dtype": [("a", ">u2"), ("b", "<u4")],
        "data": bytes(range(6)),
    },
    "struct_mixed_order_keep": {
        "shape": (2,),
        "dtype": [("a", ">u2"), ("b", "<u4")],
        "data": bytes(range(12)),
        "new_order": "|",
    },
    "s3_vec": {"shape": (2,), "dtype": "S3", "data": b"abcdef"},
    "s3_scalar": {"shape": (), "dtype": "S3", "data": b"abcdef"},
    "f8_scalar": {"shape": (), "dtype": ">f8", "data": bytes.fromhex("400921fb54442d18")},
    "u1_2d_keep": {"shape": (2, 2), "dtype": "u1", "data": b"abcd", "new_order": "|"},
}
for _name, _kwargs in _SET_FROM_RAW_CASES.items():
    register("item", "set_from_raw_" + _name, _set_from_raw(**_kwargs))


def _to_buffer(shape: Any, value: Callable[[], Any], **kwargs: Any) -> Case:
    def fn(sp: ModuleType) -> Any:
        it = sp.Item(0x1000, "x", "y", shape, **kwargs)
        v = value()
        it.value = v
        buffer = it.to_buffer()
        return {
            "buffer": describe_buffer(buffer, v),
            "value": repr(it.value),
            "version": it.version,
        }

    return fn


def _arange23() -> np.ndarray:
    return np.arange(6, dtype="<u2").reshape(2, 3)


_TO_BUFFER_CASES: dict[str, tuple[Any, Callable[[], Any], dict[str, Any]]] = {
    "c_same": ((2, 3), _arange23, {"dtype": "<u2"}),
    "c_convert": ((2, 3), _arange23, {"dtype": ">u2"}),
    "f_from_c": ((2, 3), _arange23, {"dtype": "<u2", "order": "F"}),
    "f_from_f": ((2, 3), lambda: np.asfortranarray(_arange23()), {"dtype": "<u2", "order": "F"}),
    "c_from_f": ((2, 3), lambda: np.asfortranarray(_arange23()), {"dtype": "<u2"}),
    "c_strided": ((2, 3), lambda: _arange23()[:, ::-1], {"dtype": "<u2"}),
    "list": ((2, 3), lambda: [[0, 1, 2], [3, 4, 5]], {"dtype": "<u2"}),
    "float_to_int": ((2, 3), lambda: _arange23() + 0.5, {"dtype": "<u2"}),
    "wrong_shape": ((3, 2), _arange23, {"dtype": "<u2"}),
    "wrong_rank": ((6,), _arange23, {"dtype": "<u2"}),
    "scalar_int": ((), lambda: 5, {"dtype": "<u2"}),
    "scalar_float": ((), lambda: 5.7, {"dtype": "<u2"}),
    "scalar_negative": ((), lambda: -1, {"dtype": "<u2"}),
    "scalar_overflow": ((), lambda: 70000, {"dtype": "<u2"}),
    "scalar_numpy": ((), lambda: np.uint16(5), {"dtype": ">u2"}),
    "scalar_0d_array": ((), lambda: np.array(5, "<u2"), {"dtype": "<u2"}),
    "scalar_for_vector": ((1,), lambda: 5, {"dtype": "<u2"}),
    "scalar_for_matrix": ((2, 3), lambda: 5, {"dtype": "<u2"}),
    "vector_for_scalar": ((), lambda: [5], {"dtype": "<u2"}),
    "bytes_scalar": ((), lambda: b"abc", {"dtype": "S3"}),
    "str_scalar": ((), lambda: "abc", {"dtype": "S3"}),
    "bytes_list": ((2,), lambda: [b"ab", b"c"], {"dtype": "S2"}),
    "str_s1": ((5,), lambda: "hello", {"dtype": "S1"}),
    "str_u1": ((5,), lambda: "hello", {"dtype": "u1"}),
    "bytes_u1": ((2,), lambda: b"ab", {"dtype": "u1"}),
    "bytes_s1": ((2,), lambda: b"ab", {"dtype": "S1"}),
    "str_unicode_vec": ((2,), lambda: "ab", {"dtype": "U1"}),
    "str_unicode_scalar": ((), lambda: "ab", {"dtype": "U2"}),
    "c8_str": ((None,), lambda: "hello", {"format": [("c", 8)]}),
    "c8_bytes": ((None,), lambda: b"hello", {"format": [("c", 8)]}),
    "c8_bytes_high": ((None,), lambda: b"h\xe9llo", {"format": [("c", 8)]}),
    "c8_bytearray": ((None,), lambda: bytearray(b"hello"), {"format": [("c", 8)]}),
    "c8_nul": ((None,), lambda: "ab\x00c", {"format": [("c", 8)]}),
    "c8_non_ascii": ((None,), lambda: "abé", {"format": [("c", 8)]}),
    "c8_fixed": ((5,), lambda: "hello", {"format": [("c", 8)]}),
    "c8_too_long": ((4,), lambda: "hello", {"format": [("c", 8)]}),
    "c8_too_short": ((6,), lambda: "hello", {"format": [("c", 8)]}),
    "c8_list_str": ((None,), lambda: ["ab", "c"], {"format": [("c", 8)]}),
    "c8_list_int": ((None,), lambda: [1, 2], {"format": [("c", 8)]}),
    "c8_unicode_array": ((None,), lambda: np.array(["a", "b"]), {"format": [("c", 8)]}),
    "c8_numpy_str": ((2,), lambda: np.str_("ab"), {"format": [("c", 8)]}),
    "c8_numpy_bytes": ((2,), lambda: np.bytes_(b"ab"), {"format": [("c", 8)]}),
    "c8_2d_str": ((None, 2), lambda: "hello!", {"format": [("c", 8)]}),
    "c8_scalar_str": ((), lambda: "hi", {"format": [("c", 8)]}),
    "c8_scalar_bytes": ((), lambda: b"hi", {"format": [("c", 8)]}),
    "u16_var_list": ((None,), lambda: [1, 2, 3], {"format": [("u", 16)]}),
    "u16_var_u8": ((None,), lambda: np.array([1, 2, 3], "u1"), {"format": [("u", 16)]}),
    "u16_var_2d": ((None, 3), lambda: np.arange(6).reshape(2, 3), {"format": [("u", 16)]}),
    "u16_var_wrong_rank": ((None, 3), lambda: np.arange(6), {"format": [("u", 16)]}),
    "u16_var_empty": ((None,), lambda: [], {"format": [("u", 16)]}),
    "u8_str": ((None,), lambda: "hello", {"format": [("u", 8)]}),
    "u8_memoryview": ((2,), lambda: memoryview(b"ab"), {"format": [("u", 8)]}),
    "u8_numpy_str": ((2,), lambda: np.str_("ab"), {"format": [("u", 8)]}),
    "u4_var_empty": ((None,), lambda: [], {"format": [("u", 4)]}),
    "u4_var": ((None,), lambda: [1, 2, 3], {"format": [("u", 4)]}),
    "u4_pair": ((2,), lambda: [1, 2], {"format": [("u", 4)]}),
    "u4_overflow": ((2,), lambda: [1, 17], {"format": [("u", 4)]}),
    "u4_negative": ((2,), lambda: [1, -1], {"format": [("u", 4)]}),
    "u4_bytes": ((2,), lambda: b"ab", {"format": [("u", 4)]}),
    "u4_bytearray": ((2,), lambda: bytearray(b"ab"), {"format": [("u", 4)]}),
    "i4_negative": ((2,), lambda: [1, -1], {"format": [("i", 4)]}),
    "i4_overflow": ((2,), lambda: [1, 8], {"format": [("i", 4)]}),
    "u12_triple": ((3,), lambda: [1, 2, 3], {"format": [("u", 12)]}),
    "u12_scalar": ((), lambda: 5, {"format": [("u", 12)]}),
    "u12_scalar_float": ((), lambda: 5.5, {"format": [("u", 12)]}),
    "u12_scalar_str": ((), lambda: "5", {"format": [("u", 12)]}),
    "u12_scalar_array": ((), lambda: np.array(5), {"format": [("u", 12)]}),
    "u12_float_vec": ((1,), lambda: [5.5], {"format": [("u", 12)]}),
    "u12_array": ((2,), lambda: np.array([1, 2]), {"format": [("u", 12)]}),
    "u12_wrong_rank": ((2,), lambda: np.array([[1, 2]]), {"format": [("u", 12)]}),
    "u12_tuple": ((2,), lambda: (1, 2), {"format": [("u", 12)]}),
    "u12_range": ((2,), lambda: range(2), {"format": [("u", 12)]}),
    "u12_str": ((2,), lambda: "ab", {"format": [("u", 12)]}),
    "u12_ragged": ((2, 2), lambda: [[1, 2], [3]], {"format": [("u", 12)]}),
    "u12_2d": ((2, 2), lambda: [[1, 2], [3, 4]], {"format": [("u", 12)]}),
    "u12_var_2d": ((None, 2), lambda: [[1, 2], [3, 4], [5, 6]], {"format": [("u", 12)]}),
    "u12_var_2d_empty": ((None, 2), lambda: [], {"format": [("u", 12)]}),
    "u48_scalar": ((), lambda: 5, {"format": [("u", 48)]}),
    "u48_max": ((), lambda: 2**48 - 1, {"format": [("u", 48)]}),
    "u48_wrap": ((), lambda: 2**48, {"format": [("u", 48)]}),
    "u48_negative": ((), lambda: -1, {"format": [("u", 48)]}),
    "u48_float": ((), lambda: 5.5, {"format": [("u", 48)]}),
    "u48_numpy": ((), lambda: np.uint64(5), {"format": [("u", 48)]}),
    "u48_str": ((), lambda: "5", {"format": [("u", 48)]}),
    "u48_vector": ((), lambda: [5], {"format": [("u", 48)]}),
    "i48_negative": ((), lambda: -1, {"format": [("i", 48)]}),
    "i48_min": ((), lambda: -(2**47), {"format": [("i", 48)]}),
    "i48_sign_bit": ((), lambda: 2**47, {"format": [("i", 48)]}),
    "u24_scalar": ((), lambda: 5, {"format": [("u", 24)]}),
    "u3_scalar": ((), lambda: 5, {"format": [("u", 3)]}),
    "u63_scalar": ((), lambda: 5, {"format": [("u", 63)]}),
    "u1_one": ((), lambda: 1, {"format": [("u", 1)]}),
    "u1_two": ((), lambda: 2, {"format": [("u", 1)]}),
    "u1_float_over": ((), lambda: 2.5, {"format": [("u", 1)]}),
    "u1_float": ((), lambda: 1.5, {"format": [("u", 1)]}),
    "u1_negative_float": ((), lambda: -0.5, {"format": [("u", 1)]}),
    "u1_str": ((), lambda: "2", {"format": [("u", 1)]}),
    "u1_bool": ((), lambda: True, {"format": [("u", 1)]}),
    "i1_one": ((), lambda: 1, {"format": [("i", 1)]}),
    "i1_minus_one": ((), lambda: -1, {"format": [("i", 1)]}),
    "b1_bools": ((2,), lambda: [True, False], {"format": [("b", 1)]}),
    "b1_ints": ((2,), lambda: [3, 0], {"format": [("b", 1)]}),
    "b4_ints": ((2,), lambda: [3, 0], {"format": [("b", 4)]}),
    "b1_str": ((), lambda: "x", {"format": [("b", 1)]}),
    "b1_empty_str": ((), lambda: "", {"format": [("b", 1)]}),
    "u4_f32": ((), lambda: (1, 2.5), {"format": [("u", 4), ("f", 32)]}),
    "u4_f32_b4": ((), lambda: (1, 2.5, True), {"format": [("u", 4), ("f", 32), ("b", 4)]}),
    "u4_f32_huge": ((), lambda: (1, 1e40), {"format": [("u", 4), ("f", 32)]}),
    "u4_f32_nan": ((), lambda: (1, "nan"), {"format": [("u", 4), ("f", 32)]}),
    "u4_c8_bytes": ((), lambda: (1, b"x"), {"format": [("u", 4), ("c", 8)]}),
    "u4_c8_str": ((), lambda: (1, "x"), {"format": [("u", 4), ("c", 8)]}),
    "u4_c8_non_ascii": ((), lambda: (1, "é"), {"format": [("u", 4), ("c", 8)]}),
    "u4_u8_overflow": ((), lambda: (1, 300), {"format": [("u", 4), ("u", 8)]}),
    "u4_b8": ((), lambda: (1, 2), {"format": [("u", 4), ("b", 8)]}),
    "u4_i8": ((), lambda: (1, 2), {"format": [("u", 4), ("i", 8)]}),
    "u64_u4_overflow": ((), lambda: (2**64, 1), {"format": [("u", 64), ("u", 4)]}),
    "u4_f64_vec": ((2,), lambda: [(1, 2.5), (2, 3.5)], {"format": [("u", 4), ("f", 64)]}),
    "f64_u4_broadcast": ((1,), lambda: [5.5], {"format": [("f", 64), ("u", 4)]}),
    "f64_u4_tuple": ((1,), lambda: [(5.5, 1)], {"format": [("f", 64), ("u", 4)]}),
    "f64_u4_long_tuple": ((1,), lambda: [(5.5, 1, 2)], {"format": [("f", 64), ("u", 4)]}),
    "c8_u4_int": ((1,), lambda: [5], {"format": [("c", 8), ("u", 4)]}),
    "c8_u4_long": ((1,), lambda: [(b"ab", 1)], {"format": [("c", 8), ("u", 4)]}),
    "c8_u4_empty": ((1,), lambda: [(b"", 1)], {"format": [("c", 8), ("u", 4)]}),
    "c8_u4_str": ((1,), lambda: "a", {"format": [("u", 4), ("c", 8)]}),
    "c8_c8_str": ((2,), lambda: "ab", {"format": [("c", 8), ("c", 8)]}),
    "c8_c8_list": ((2,), lambda: ["ab", "cd"], {"format": [("c", 8), ("c", 8)]}),
    "u8_f32_scalar": ((), lambda: (1, 2.5), {"format": [("u", 8), ("f", 32)]}),
    "u8_f32_vec": ((2,), lambda: [(1, 2.5), (2, 3.5)], {"format": [("u", 8), ("f", 32)]}),
    "f32_f64": ((), lambda: (1.5, 2), {"format": [("f", 32), ("f", 64)]}),
    "f32_u1_overflow": ((), lambda: (1.5, 2), {"format": [("f", 32), ("u", 1)]}),
    "u65_overflow": ((), lambda: 2**70, {"format": [("u", 65)]}),
    "i65_negative": ((), lambda: -1, {"format": [("i", 65)]}),
    "f32_scalar": ((), lambda: 1.5, {"format": [("f", 32)]}),
    "b8_scalar": ((), lambda: True, {"format": [("b", 8)]}),
    "b8_vec": ((2,), lambda: [0, 2], {"format": [("b", 8)]}),
    "struct_scalar": ((), lambda: (1, (2.0, 3.0)), {"dtype": _struct_dtype}),
}
for _name, (_shape, _value, _kwargs) in _TO_BUFFER_CASES.items():
    register("item", "to_buffer_" + _name, _to_buffer(_shape, _value, **_resolve(_kwargs)))


def _value_setter(sp: ModuleType) -> Any:
    it = sp.Item(0x1000, "x", "y", (3,), dtype="<u2")
    log: list[Any] = [repr(it.value), it.version]
    try:
        it.value = None
    except ValueError as exc:
        log.append(str(exc))
    log.append(it.version)
    for v in ([1, 2, 3], [1, 2, 3], "x"):
        it.value = v
        log.append([repr(it.value), it.version])
    it2 = sp.Item(0x1000, "x", "y", (3,), dtype="<u2", value=np.zeros(3))
    log.append([repr(it2.value), it2.version])
    return log


register("item", "value_setter", _value_setter)


def _round_trip_value(shape: Any, value: Callable[[], Any], **kwargs: Any) -> Case:
    """to_buffer, then set_from_raw of the produced bytes (addressed and immediate)."""

    def fn(sp: ModuleType) -> Any:
        results = []
        for imm, pad in ((False, b""), (True, b"\0\0\0")):
            it = sp.Item(0x1000, "x", "y", shape, **kwargs)
            it.value = value()
            data = pad + memoryview(it.to_buffer()).tobytes()
            it.set_from_raw(FakeRawItem(data, is_immediate=imm))
            results.append(describe_value(it.value))
        return results

    return fn


_ROUND_TRIP_VALUES: dict[str, tuple[Any, Callable[[], Any], dict[str, Any]]] = {
    "u12": ((3,), lambda: [1, 2, 4095], {"format": [("u", 12)]}),
    "i12_var": ((None,), lambda: [-1, 2, -2048], {"format": [("i", 12)]}),
    "mixed": (
        (2,),
        lambda: [(1, -2.5, True), (15, 3.25, False)],
        {"format": [("u", 4), ("f", 32), ("b", 4)]},
    ),
    "string": ((None,), lambda: "hello", {"format": [("c", 8)]}),
    "fortran": ((2, 3), _arange23, {"dtype": ">u2", "order": "F"}),
    "u24_scalar": ((), lambda: 123456, {"format": [("u", 24)]}),
    "u5_scalar": ((), lambda: 17, {"format": [("u", 5)]}),
}
for _name, (_shape, _value, _kwargs) in _ROUND_TRIP_VALUES.items():
    register("item", "round_trip_" + _name, _round_trip_value(_shape, _value, **_kwargs))


def _not_a_buffer(sp: ModuleType) -> Any:
    class NoBuffer:
        id = 0x1000
        is_immediate = False
        immediate_value = 0

    it = sp.Item(0x1000, "x", "y", (3,), dtype="<u2")
    it.set_from_raw(NoBuffer())
    return repr(it.value)


register("item", "set_from_raw_not_a_buffer", _not_a_buffer)


# --------------------------------------------------------------------------- item group


def _group_basics(sp: ModuleType) -> Any:
    g = sp.ItemGroup()
    a = g.add_item(None, "a", "A", (), np.uint8, value=1)
    b = g.add_item(0x1001, "b", "B", (), np.uint8)
    c = g.add_item(None, "c", "C", (), np.uint8)
    out: list[Any] = [[a.id, b.id, c.id, a.version, b.version, c.version]]
    out.append([type(g.keys()).__name__, list(g.keys()), list(g.ids()), len(g)])
    out.append([type(g.values()).__name__, type(g.items()).__name__])
    out.append([name for name, _ in g.items()])
    out.append(["a" in g, 0x1000 in g, 5 in g, "z" in g, a in g])
    out.append([g[0x1000] is a, g["a"] is a, g[np.uint16(0x1001)] is b])
    for key in ("z", 5):
        try:
            g[key]
        except KeyError as exc:
            out.append(repr(exc))
    return out


def _group_replacement(sp: ModuleType) -> Any:
    out: list[Any] = []
    g = sp.ItemGroup()
    with LogCapture() as logs:
        a = g.add_item(0x1000, "a", "A", (), np.uint8, value=1)
        steps = [
            ("identical_with_value", (0x1000, "a", "A", (), np.uint8), {"value": 7}),
            ("identical_without_value", (0x1000, "a", "A", (), np.uint8), {}),
            ("equivalent", (0x1000, "a", "A", [], "=u1"), {"value": 8}),
            ("new_description", (0x1000, "a", "A2", (), np.uint8), {}),
            ("new_dtype", (0x1000, "a", "A2", (), np.uint16), {}),
            ("identical_again", (0x1000, "a", "A2", (), np.uint16), {"value": 9}),
            ("format", (0x1000, "a", "A2", (), None, "C", [("u", 16)]), {"value": 9}),
            ("format_tuple", (0x1000, "a", "A2", (), None, "C", (("u", 16),)), {}),
            ("format_lists", (0x1000, "a", "A2", (), None, "C", [["u", 16]]), {}),
            ("order", (0x1000, "a", "A2", (2,), ">u2", "F"), {}),
            ("order_c", (0x1000, "a", "A2", (2,), ">u2", "C"), {}),
            ("float_shape", (0x1000, "a", "A2", (2.0,), ">u2", "C"), {"value": [1, 2]}),
            ("name_clash", (0x2000, "b", "B", (), np.uint8), {"value": 3}),
            ("name_clash_again", (0x2001, "b", "B", (), np.uint8), {"value": 3}),
            ("id_clash", (0x2001, "bb", "B", (), np.uint8), {"value": 3}),
            ("both_clash", (0x1000, "bb", "B", (), np.uint8), {}),
        ]
        for label, args, kwargs in steps:
            before = g[args[1]] if args[1] in g else None
            new = g.add_item(*args, **kwargs)
            out.append(
                [
                    label,
                    new is g[args[1]],
                    new.version,
                    repr(new.value),
                    None if before is None else [before.version, repr(before.value)],
                    describe_group(g),
                ]
            )
    out.append(a.version)
    out.append(logs.records)
    return out


def _group_version_max(sp: ModuleType) -> Any:
    out = []
    for bump in ("x", "y"):
        g = sp.ItemGroup()
        x = g.add_item(0x1000, "x", "", (), np.uint8)
        y = g.add_item(0x1001, "y", "", (), np.uint8)
        for i in range(5):
            (x if bump == "x" else y).value = i
        z = g.add_item(0x1000, "y", "", (), np.uint8)
        out.append([z.version, describe_group(g)])
    return out


def _group_auto_ids(sp: ModuleType) -> Any:
    g = sp.ItemGroup()
    g.add_item(0x1000, "n0", "", (), np.uint8)
    g.add_item(0x1002, "n2", "", (), np.uint8)
    ids = []
    for name, item_id in [
        ("q", None),
        ("q2", None),
        ("q3", None),
        ("q4", 5),
        ("q5", 0),
        ("q6", None),
        ("q7", 0x1004),
        ("q8", None),
        ("q9", None),
    ]:
        ids.append(g.add_item(item_id, name, "", (), np.uint8).id)
    g2 = sp.ItemGroup()
    g2.add_item(None, "a", "", (), np.uint8)
    g2.add_item(None, "b", "", (), np.uint8)
    g2.add_item(0x3000, "a", "", (), np.uint8)
    ids.append(g2.add_item(None, "c", "", (), np.uint8).id)
    return [ids, describe_group(g), describe_group(g2)]


def _group_update(sp: ModuleType) -> Any:
    out: list[Any] = []
    fl = sp.Flavour()
    g = sp.ItemGroup()

    def update(descriptors: list[Any], items: list[Any], new_order: str = "=") -> None:
        with LogCapture() as logs:
            try:
                updated = g.update(FakeHeap(descriptors, items, fl), new_order)
                result: Any = {
                    name: [item is g[name], item.version, describe_value(item.value)]
                    for name, item in updated.items()
                }
                result["__type__"] = type(updated).__name__
            except Exception as exc:  # noqa: BLE001
                result = [type(exc).__name__, _normalise(str(exc))]
        out.append([result, logs.records, describe_group(g)])

    update(
        [
            raw_descriptor(sp, 0x1000, b"a", shape=[2], format=[("u", 8)]),
            raw_descriptor(sp, 0x1001, b"b", shape=[], format=[("u", 16)]),
        ],
        [
            FakeRawItem(b"\x01\x02", 0x1000),
            FakeRawItem(b"\x00\x05", 0x1001),
            FakeRawItem(b"\x00\x05", 0x1002),
            FakeRawItem(b"\x00\x05", 6),
            FakeRawItem(b"\x00\x05", 1),
            FakeRawItem(b"\x00\x05", 7),
        ],
    )
    update([raw_descriptor(sp, 0x1000, b"a", shape=[2], format=[("u", 8)])], [])
    update([raw_descriptor(sp, 0x1000, b"a", shape=[2], format=[("u", 16)])], [])
    update(
        [raw_descriptor(sp, 0x1000, b"a", shape=[-1], format=[("u", 8)])],
        [FakeRawItem(b"\x01\x02\x03", 0x1000), FakeRawItem(b"\x01\x02\x03\x04", 0x1000)],
    )
    update([raw_descriptor(sp, 0x1002, b"a", shape=[2], format=[("u", 8)])], [])
    update([raw_descriptor(sp, 0x1002, b"b", shape=[2], format=[("u", 8)])], [])
    update([raw_descriptor(sp, 0x1002, b"b", shape=[2], format=[("u", 8)], description=b"x")], [])
    update(
        [raw_descriptor(sp, 0x1006, b"z", shape=[2], format=[("x", 8)])],
        [FakeRawItem(b"\x01\x02", 0x1002)],
    )
    update([], [FakeRawItem(b"\x01", 0x1002), FakeRawItem(b"\x01\x02", 0x1002)])
    update([], [FakeRawItem(b"\x01\x02", 0x1002), FakeRawItem(b"\x01", 0x1002)])
    update(
        [raw_descriptor(sp, 3, b"low", shape=[2], format=[("u", 8)])], [FakeRawItem(b"\x01\x02", 3)]
    )
    update(
        [
            raw_descriptor(
                sp,
                0x1003,
                b"big",
                numpy_header=b"{'descr': '>u2', 'fortran_order': False, 'shape': (2,)}",
            )
        ],
        [FakeRawItem(b"\x01\x02\x03\x04", 0x1003)],
        "|",
    )
    update([], [FakeRawItem(b"\x01\x02\x03\x04", 0x1003)])
    return out


def _group_update_swap(sp: ModuleType) -> Any:
    fl = sp.Flavour(4, 64, 48, 4)
    g = sp.ItemGroup()
    header = b"{'descr': '<u2', 'fortran_order': False, 'shape': (2,)}"
    updated = g.update(
        FakeHeap(
            [raw_descriptor(sp, 0x1000, b"a", numpy_header=header)],
            [FakeRawItem(b"\x01\x02\x03\x04", 0x1000)],
            fl,
        )
    )
    return [describe_descriptor(g["a"]), describe_value(updated["a"].value)]


register("item_group", "basics", _group_basics)
register("item_group", "replacement", _group_replacement)
register("item_group", "version_max", _group_version_max)
register("item_group", "auto_ids", _group_auto_ids)
register("item_group", "update", _group_update)
register("item_group", "update_swap", _group_update_swap)


def _parse_range_list(text: Any) -> Case:
    return lambda sp: sp.parse_range_list(text)


for _text in [
    "2,3-5",
    "",
    "1",
    " 1 , 2 - 4 ",
    "5-3",
    "3-3",
    "a",
    "1,,2",
    "-1",
    "1-",
    "1-2-3",
    "0x10",
    "1,1",
    "+3",
    "1_0",
    ",",
    "1,",
    None,
    b"1,2",
    5,
]:
    register("item_group", f"parse_range_list_{_text!r}", _parse_range_list(_text))


# --------------------------------------------------------------------------- heap generator


def _add(hg: Any, **kwargs: Any) -> Any:
    heap = RecordingHeap()
    try:
        returned = hg.add_to_heap(heap, **kwargs)
    except Exception as exc:  # noqa: BLE001
        return [type(exc).__name__, str(exc)]
    return [heap.log, returned is heap]


def _generator_stale(sp: ModuleType) -> Any:
    g = sp.ItemGroup()
    a = g.add_item(None, "a", "", (), np.uint8, value=1)
    b = g.add_item(None, "b", "", (), np.uint8)
    g.add_item(None, "c", "", (), np.uint8, value=3)
    hg = sp.send.HeapGenerator(g)
    out = [_add(hg), _add(hg)]
    a.value = 5
    out += [_add(hg), _add(hg, descriptors="all"), _add(hg, data="all")]
    out += [_add(hg, descriptors="none", data="none"), _add(hg, descriptors="stale", data="stale")]
    b.value = 2
    out += [_add(hg, descriptors="none"), _add(hg)]
    out += [_add(hg, descriptors="bad"), _add(hg, data="bad"), _add(hg, descriptors="ALL")]
    g.add_item(None, "d", "", (), np.uint8, value=3)
    a2 = g.add_item(a.id, "a", "changed", (), np.uint8, value=7)
    out += [_add(hg), _add(hg)]
    a2.value = 7
    out += [_add(hg, descriptors="none")]
    a2.value = 8
    out += [_add(hg, data="all"), _add(hg)]
    g.add_item(a.id, "a", "changed", (), np.uint8, value=9)  # identical: value transferred
    out += [_add(hg)]
    return out


def _generator_frequency(sp: ModuleType) -> Any:
    out = []
    for frequency in (None, 0, 1, 2, 3):
        g = sp.ItemGroup()
        g.add_item(None, "a", "", (), np.uint8, value=1)
        hg = sp.send.HeapGenerator(g, descriptor_frequency=frequency)
        logs = []
        for i in range(8):
            if i == 3:
                logs.append(_add(hg, descriptors="none"))
            elif i == 4:
                logs.append(_add(hg, descriptors="all"))
            elif i == 5:
                logs.append(_add(hg, descriptors="bogus"))
            else:
                logs.append(_add(hg))
            if i == 2:
                g.add_item(None, "b", "", (), np.uint8)
        out.append(logs)
    return out


def _send_item_group(sp: ModuleType) -> Any:
    g = sp.send.ItemGroup(descriptor_frequency=2, flavour=sp.Flavour(4, 64, 48, 0))
    a = g.add_item(None, "a", "", (2,), np.uint16, value=[1, 2])
    out = [
        isinstance(g, sp.ItemGroup),
        isinstance(g, sp.send.HeapGenerator),
        [c.__name__ for c in type(g).__mro__],
        _add(g),
        _add(g),
    ]
    a.value = [3, 4]
    out += [_add(g), _add(g), len(g), list(g.keys())]
    return out


def _generator_module_names(sp: ModuleType) -> Any:
    return [
        sp.Descriptor.__module__,
        sp.Item.__module__,
        sp.ItemGroup.__module__,
        sp.send.HeapGenerator.__module__,
        sp.send.ItemGroup.__module__,
        sp.Descriptor.__qualname__,
        sp.send.ItemGroup.__qualname__,
    ]


register("heap_generator", "stale", _generator_stale)
register("heap_generator", "frequency", _generator_frequency)
register("heap_generator", "send_item_group", _send_item_group)
register("heap_generator", "module_names", _generator_module_names)


# --------------------------------------------------------------------------- wire
# These need the native send and receive paths: packets from PacketGenerator, and heaps
# received by a recv.Stream from a buffer, decoded by ItemGroup.update.


def _wire_group(sp: ModuleType, flavour_key: str) -> Any:
    g = sp.send.ItemGroup(flavour=flavour(sp, flavour_key))
    g.add_item(0x1000, "c_array", "C", (2, 3), "<u2", value=np.arange(6).reshape(2, 3))
    g.add_item(0x1001, "f_array", "F", (2, 3), ">i4", "F", value=np.arange(6).reshape(2, 3))
    g.add_item(0x1002, "u48", "", (), format=[("u", 48)], value=123456789)
    g.add_item(0x1003, "string", "", (None,), format=[("c", 8)], value="hello")
    g.add_item(0x1004, "u12", "", (3,), format=[("u", 12)], value=[1, 2, 4095])
    g.add_item(0x1005, "u16", "", (), format=[("u", 16)], value=7)
    g.add_item(
        0x1006, "struct", "", (2,), _struct_dtype(), value=[(1, (2.0, 3.0)), (4, (5.0, 6.0))]
    )
    g.add_item(0x1007, "flag", "", (), "?", value=True)
    g.add_item(0x1008, "var", "", (None, 2), format=[("i", 32)], value=[[1, -2], [3, -4]])
    g.add_item(
        0x1009,
        "mixed",
        "",
        (2,),
        format=[("u", 4), ("f", 32), ("b", 4)],
        value=[(1, 2.5, True), (15, -3.25, False)],
    )
    g.add_item(0x100A, "empty", "", (None,), format=[("u", 8)], value=[])
    return g


def _wire_heaps(sp: ModuleType, flavour_key: str) -> list[Any]:
    g = _wire_group(sp, flavour_key)
    heaps = [g.get_start(), g.get_heap()]
    g["u16"].value = 8
    g["string"].value = "bye"
    heaps.append(g.get_heap())
    heaps.append(g.get_heap(descriptors="all", data="none"))
    heaps.append(g.get_heap(descriptors="none", data="all"))
    heaps.append(g.get_end())
    return heaps


def _packets(sp: ModuleType, heaps: list[Any], packet_size: int) -> list[bytes]:
    return [
        bytes(packet)
        for cnt, heap in enumerate(heaps, 1)
        for packet in sp.send.PacketGenerator(heap, cnt, packet_size)
    ]


def _wire_packets(flavour_key: str, packet_size: int) -> Case:
    def fn(sp: ModuleType) -> Any:
        return [p.hex() for p in _packets(sp, _wire_heaps(sp, flavour_key), packet_size)]

    return fn


def receive_and_describe(sp: ModuleType, data: bytes, bug_compat: int) -> Any:
    """Receive a byte stream of packets and describe what ItemGroup.update makes of it."""
    import importlib

    recv = importlib.import_module(sp.__name__ + ".recv")
    stream = recv.Stream(sp.ThreadPool(), recv.StreamConfig(bug_compat=bug_compat))
    stream.add_buffer_reader(data)
    g = sp.ItemGroup()
    out = []
    for heap in stream:
        updated = g.update(heap)
        out.append(
            {name: [item.version, describe_value(item.value)] for name, item in updated.items()}
        )
    out.append(describe_group(g))
    return out


def _wire_receive(flavour_key: str) -> Case:
    def fn(sp: ModuleType) -> Any:
        data = b"".join(_packets(sp, _wire_heaps(sp, flavour_key), 9000))
        return receive_and_describe(sp, data, FLAVOURS[flavour_key][1])

    return fn


for _key in ("40", "48", "40pyspead", "48swap"):
    register("wire", f"packets_{_key}", _wire_packets(_key, 1472))
    register("wire", f"receive_{_key}", _wire_receive(_key))
register("wire", "packets_small", _wire_packets("48", 96))


def all_case_names(section: str) -> list[str]:
    """Names of the cases of a section, in registration order."""
    return list(CASES[section])


def _iter_results(section: str, sp: ModuleType) -> Iterator[tuple[str, Any]]:
    for name in CASES[section]:
        yield name, run_case(section, name, sp)


def main(argv: list[str]) -> None:
    """Print the results of one section, run against the importable spead2, as JSON."""
    import warnings

    import peer_common  # noqa: F401 - refuses to run unless spead2 is the real 4.5.1 wheel

    import spead2
    import spead2.recv
    import spead2.send

    (section,) = argv
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        json.dump(dict(_iter_results(section, spead2)), sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
