"""Tests for spead2.Descriptor: construction rules, shapes, and the descriptor wire fields.

Besides the direct tests, every case of the ``descriptor`` section of
``tests/peer/descriptor_vectors.py`` is run here against our spead2 and compared with what the
real spead2 4.5.1 produced for the same case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from util.vectors import load_vectors

import spead2

VECTORS = load_vectors()
SECTION = "descriptor"


@pytest.fixture(scope="module")
def peer_results(peer: Any) -> dict[str, Any]:
    """Results of every case of the section, computed by the real spead2."""
    return json.loads(peer.run("descriptor_vectors.py", SECTION, timeout=120).stdout)


@pytest.mark.parametrize("case", VECTORS.all_case_names(SECTION))
def test_matches_peer(case: str, peer_results: dict[str, Any]) -> None:
    assert VECTORS.run_case(SECTION, case, spead2) == peer_results[case]


def make(shape: Any = (2, 3), **kwargs: Any) -> spead2.Descriptor:
    return spead2.Descriptor(0x1234, "name", "description", shape, **kwargs)


class TestConstruction:
    def test_attributes(self) -> None:
        d = spead2.Descriptor(0x1234, "name", "description", [2, 3], dtype="<u2", order="F")
        assert d.id == 0x1234
        assert d.name == "name"
        assert d.description == "description"
        assert d.shape == (2, 3)
        assert d.dtype == np.dtype("<u2")
        assert d.order == "F"
        assert d.format is None
        assert d.itemsize_bits == 16

    def test_format_keeps_dtype_none(self) -> None:
        d = make((None,), format=[("u", 4), ("i", 12)])
        assert d.dtype is None
        assert d.format == [("u", 4), ("i", 12)]
        assert d.itemsize_bits == 16

    @pytest.mark.parametrize(
        ("shape", "kwargs", "message"),
        [
            ((None, None), {"format": [("u", 8)]}, "Cannot have multiple unknown dimensions"),
            ((2,), {"dtype": "u1", "format": [("u", 8)]}, "Only one of dtype and format"),
            ((2,), {}, "One of dtype and format must be specified"),
            ((None,), {"dtype": "u1"}, "Cannot have unknown dimensions when using numpy"),
            ((2,), {"format": [("u", 8)], "order": "F"}, "order must be 'C'"),
            ((2,), {"dtype": "u1", "order": "X"}, "Order must be 'C' or 'F'"),
            ((2,), {"dtype": object}, "reference-counted objects"),
            ((2,), {"dtype": [("a", "i1"), ("b", "O")]}, "reference-counted objects"),
            ((2,), {"dtype": "V0"}, "zero-sized dtype"),
            ((2,), {"format": [("u", 0)]}, "zero-length field"),
            ((2,), {"format": [("u", -3)]}, "negative-length field"),
            ((2,), {"format": [("x", 8)]}, r"illegal format \(x, 8\)"),
            ((2,), {"format": [("f", 16)]}, r"illegal format \(f, 16\)"),
            ((2,), {"format": [("c", 7)]}, r"illegal format \(c, 7\)"),
            ((2,), {"format": []}, "empty format"),
        ],
    )
    def test_value_errors(self, shape: Any, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            make(shape, **kwargs)

    @pytest.mark.parametrize(
        ("format", "internal", "fastpath"),
        [
            ([("u", 16)], ">u2", 2),
            ([("i", 64)], ">i8", 2),
            ([("f", 32)], ">f4", 2),
            ([("b", 8)], "?", 2),
            ([("c", 8)], "S1", 2),
            ([("u", 12)], "O", 1),
            ([("b", 16)], "O", 0),
            ([("u", 65)], "O", 0),
        ],
    )
    def test_format_decoding_strategy(self, format: Any, internal: str, fastpath: int) -> None:
        d = make((), format=format)
        assert d._internal_dtype == np.dtype(internal)
        assert d._fastpath == fastpath

    def test_mixed_format_is_packed_structure(self) -> None:
        d = make((2,), format=[("u", 8), ("f", 32), ("u", 4)])
        assert d._internal_dtype == np.dtype([("f0", "u1"), ("f1", ">f4"), ("f2", "O")])
        assert d.itemsize_bits == 44


class TestShapes:
    def test_variable_size(self) -> None:
        assert make((3, None), format=[("u", 8)]).is_variable_size()
        assert not make((3, 4), format=[("u", 8)]).is_variable_size()

    def test_allow_immediate(self) -> None:
        assert make((2,), dtype="u1").allow_immediate()
        assert make((2,), format=[("u", 16)]).allow_immediate()
        assert not make((None,), format=[("u", 8)]).allow_immediate()
        assert not make((2,), format=[("u", 4)]).allow_immediate()
        assert make((), format=[("u", 4), ("u", 4)]).allow_immediate()

    def test_dynamic_shape(self) -> None:
        d = make((2, None, 5), format=[("u", 8)])
        assert d.dynamic_shape(100) == [2, 10, 5]
        assert d.dynamic_shape(9) == [2, 0, 5]
        assert make((None, 0), format=[("u", 8)]).dynamic_shape(100) == [0, 0]
        assert make((3,), format=[("u", 8)]).dynamic_shape(100) == (3,)

    def test_compatible_shape(self) -> None:
        d = make((3, None, 2), format=[("u", 8)])
        assert d.compatible_shape((3, 7, 2))
        assert d.compatible_shape([3, 0, 2])
        assert not d.compatible_shape((3, 7))
        assert not d.compatible_shape((2, 7, 2))


class TestToRaw:
    def test_numpy_header_text(self) -> None:
        raw = make((2, 3), dtype="<u2").to_raw(spead2.Flavour())
        assert raw.numpy_header == b"{'descr': '<u2', 'fortran_order': False, 'shape': (2, 3)}"
        assert raw.format == []
        assert list(raw.shape) == [2, 3]
        assert (raw.id, raw.name, raw.description) == (0x1234, b"name", b"description")

    def test_structured_fortran_header(self) -> None:
        d = make((4,), dtype=[("a", "<u2"), ("b", ">f8", (2,))], order="F")
        raw = d.to_raw(spead2.Flavour())
        assert raw.numpy_header == (
            b"{'descr': [('a', '<u2'), ('b', '>f8', (2,))], 'fortran_order': True, 'shape': (4,)}"
        )

    def test_swap_endian_flips_header(self) -> None:
        d = make((2,), dtype=[("a", "<u2"), ("b", "u1")])
        raw = d.to_raw(spead2.Flavour(4, 64, 40, spead2.BUG_COMPAT_SWAP_ENDIAN))
        assert raw.numpy_header == (
            b"{'descr': [('a', '>u2'), ('b', '|u1')], 'fortran_order': False, 'shape': (2,)}"
        )

    def test_format_fields(self) -> None:
        raw = make((2, None), format=[("u", 4), ("i", 12)]).to_raw(spead2.Flavour())
        assert raw.format == [("u", 4), ("i", 12)]
        assert raw.numpy_header == b""
        assert list(raw.shape) == [2, None]

    def test_non_ascii_name(self) -> None:
        with pytest.raises(UnicodeEncodeError):
            spead2.Descriptor(1, "naïve", "", (), dtype="u1").to_raw(spead2.Flavour())


def raw_descriptor(**fields: Any) -> Any:
    raw = spead2._spead2.RawDescriptor()
    raw.id = fields.get("id", 0x1234)
    raw.name = fields.get("name", b"nm")
    raw.description = fields.get("description", b"dd")
    raw.shape = fields.get("shape", [])
    raw.format = fields.get("format", [])
    raw.numpy_header = fields.get("numpy_header", b"")
    return raw


class TestFromRaw:
    def test_format(self) -> None:
        d = spead2.Descriptor.from_raw(
            raw_descriptor(shape=[2, -1], format=[("u", 8)]), spead2.Flavour()
        )
        assert (d.id, d.name, d.description) == (0x1234, "nm", "dd")
        assert d.shape == (2, None)
        assert d.format == [("u", 8)]
        assert d.dtype is None

    def test_numpy_header_overrides_shape_and_format(self) -> None:
        header = b"{'descr': '>i4', 'fortran_order': True, 'shape': (4, 3)}"
        raw = raw_descriptor(shape=[7], format=[("x", 0)], numpy_header=header)
        d = spead2.Descriptor.from_raw(raw, spead2.Flavour())
        assert d.shape == (4, 3)
        assert d.dtype == np.dtype(">i4")
        assert d.order == "F"
        assert d.format is None

    def test_swap_endian(self) -> None:
        header = b"{'descr': '<u2', 'fortran_order': False, 'shape': (2,)}"
        flavour = spead2.Flavour(4, 64, 48, spead2.BUG_COMPAT_SWAP_ENDIAN)
        d = spead2.Descriptor.from_raw(raw_descriptor(numpy_header=header), flavour)
        assert d.dtype == np.dtype(">u2")

    def test_header_is_never_evaluated(self, tmp_path: Path) -> None:
        marker = tmp_path / "evaluated"
        header = f"open({str(marker)!r}, 'w')".encode()
        with pytest.raises(ValueError, match="malformed node"):
            spead2.Descriptor.from_raw(raw_descriptor(numpy_header=header), spead2.Flavour())
        assert not marker.exists()

    @pytest.mark.parametrize(
        ("header", "message"),
        [
            (b"{'descr': '<u2', 'fortran_order': False, 'shape': (2,), 'x': 1}", "correct keys"),
            (b"{'descr': '<u2', 'fortran_order': False}", "correct keys"),
            (b"{'descr': '<u2', 'fortran_order': 1, 'shape': (2,)}", "not a valid bool"),
            (b"{'descr': '<u2', 'fortran_order': False, 'shape': (-1,)}", "shape is not valid"),
            (b"{'descr': '<u2', 'fortran_order': False, 'shape': [2]}", "shape is not valid"),
            (b"{'descr': 'zz', 'fortran_order': False, 'shape': (2,)}", "not a valid dtype"),
            (b"{'descr': 'O', 'fortran_order': False, 'shape': (2,)}", "reference-counted"),
            (b"[1, 2]", "not a dictionary"),
            (b"{'descr': '<u2'", "Cannot parse descriptor"),
            (b"(" * 300, "Cannot parse descriptor"),
        ],
    )
    def test_bad_header(self, header: bytes, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            spead2.Descriptor.from_raw(raw_descriptor(numpy_header=header), spead2.Flavour())

    @pytest.mark.parametrize("bug_compat", [0, spead2.BUG_COMPAT_SWAP_ENDIAN])
    @pytest.mark.parametrize(
        "dtype",
        ["<u2", ">f8", "?", "S1", [("a", "<u2"), ("b", ">f8", (2,))], "c16"],
    )
    def test_round_trip(self, dtype: Any, bug_compat: int) -> None:
        flavour = spead2.Flavour(4, 64, 48, bug_compat)
        d = make((2, 3), dtype=dtype, order="F")
        back = spead2.Descriptor.from_raw(d.to_raw(flavour), flavour)
        assert back.dtype == np.dtype(dtype)
        assert (back.shape, back.order, back.format) == ((2, 3), "F", None)
