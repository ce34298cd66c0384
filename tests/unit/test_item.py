"""Tests for spead2.Item: values, versions, decoding received bytes and encoding for sending.

Besides the direct tests, every case of the ``item`` section of
``tests/peer/descriptor_vectors.py`` is run against our spead2 and compared with the result of
the real spead2 4.5.1.
"""

from __future__ import annotations

import gc
import json
import weakref
from typing import Any

import numpy as np
import pytest
from util.vectors import load_vectors

import spead2

VECTORS = load_vectors()
SECTION = "item"
FakeRawItem = VECTORS.FakeRawItem


@pytest.fixture(scope="module")
def peer_results(peer: Any) -> dict[str, Any]:
    """Results of every case of the section, computed by the real spead2."""
    return json.loads(peer.run("descriptor_vectors.py", SECTION, timeout=120).stdout)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("case", VECTORS.all_case_names(SECTION))
def test_matches_peer(case: str, peer_results: dict[str, Any]) -> None:
    assert VECTORS.run_case(SECTION, case, spead2) == peer_results[case]


def make(shape: Any = (), **kwargs: Any) -> spead2.Item:
    return spead2.Item(0x1000, "x", "desc", shape, **kwargs)


def memory_owners(array: np.ndarray) -> list[Any]:
    """The chain of objects that an array's memory is borrowed from."""
    owners: list[Any] = []
    obj: Any = array
    while True:
        obj = obj.base if isinstance(obj, np.ndarray) else getattr(obj, "obj", None)
        if obj is None:
            return owners
        owners.append(obj)


class TestValue:
    def test_version_counts_assignments(self) -> None:
        item = make(dtype="u1")
        assert (item.value, item.version) == (None, 1)
        item.value = 3
        item.value = 3
        assert (item.value, item.version) == (3, 3)

    def test_initial_value_does_not_bump_version(self) -> None:
        item = make((2,), dtype="u1", value=[1, 2])
        assert (item.value, item.version) == ([1, 2], 1)

    def test_none_is_rejected(self) -> None:
        item = make(dtype="u1", value=5)
        with pytest.raises(ValueError, match="cannot be set to None"):
            item.value = None
        assert (item.value, item.version) == (5, 1)

    def test_is_a_descriptor(self) -> None:
        item = make((2,), format=[("u", 4)])
        assert isinstance(item, spead2.Descriptor)
        assert item.itemsize_bits == 4


class TestSetFromRaw:
    def test_numpy_value_is_a_view_of_the_raw_item(self) -> None:
        raw = FakeRawItem(bytes(range(12)))
        item = make((2, 3), dtype="<u2")
        item.set_from_raw(raw)
        value = item.value
        assert value.tolist() == [[0x100, 0x302, 0x504], [0x706, 0x908, 0xB0A]]
        assert any(owner is raw for owner in memory_owners(value))
        raw[0] = 0xFF
        assert value[0, 0] == 0x1FF
        assert item.version == 2

    def test_value_keeps_raw_item_alive(self) -> None:
        raw = FakeRawItem(b"\x01\x00\x02\x00")
        alive = weakref.ref(raw)
        item = make((2,), dtype="<u2")
        item.set_from_raw(raw)
        del raw
        gc.collect()
        assert alive() is not None
        assert item.value.tolist() == [1, 2]
        item.value = 0
        gc.collect()
        assert alive() is None

    def test_byte_order_conversion_copies(self) -> None:
        raw = FakeRawItem(b"\x00\x01\x00\x02")
        item = make((2,), dtype=">u2")
        item.set_from_raw(raw)
        assert item.value.dtype == np.dtype("=u2")
        assert item.value.tolist() == [1, 2]
        assert not np.shares_memory(item.value, np.frombuffer(raw, np.uint8))
        item.set_from_raw(raw, new_order="|")
        assert item.value.dtype == np.dtype(">u2")
        assert np.shares_memory(item.value, np.frombuffer(raw, np.uint8))

    def test_fortran_order(self) -> None:
        item = make((2, 3), dtype="u1", order="F")
        item.set_from_raw(FakeRawItem(bytes(range(6))))
        assert item.value.flags.f_contiguous
        assert item.value.tolist() == [[0, 2, 4], [1, 3, 5]]

    def test_immediate_is_right_aligned(self) -> None:
        item = make((2,), format=[("u", 16)])
        item.set_from_raw(FakeRawItem(bytes.fromhex("123456789abc"), is_immediate=True))
        assert item.value.tolist() == [0x5678, 0x9ABC]

    def test_immediate_scalar_uses_pointer_value(self) -> None:
        item = make(format=[("i", 40)])
        raw = FakeRawItem(b"\xff" * 5, is_immediate=True, immediate_value=2**40 - 2)
        item.set_from_raw(raw)
        assert item.value == -2
        assert type(item.value) is int

    def test_bitwise_fields(self) -> None:
        item = make((None,), format=[("u", 4), ("i", 8)])
        item.set_from_raw(FakeRawItem(bytes.fromhex("1ff280")))
        assert item.value.dtype == np.dtype([("f0", "O"), ("f1", "i1")])
        assert item.value.tolist() == [(1, -1), (2, -128)]

    def test_variable_shape_from_size(self) -> None:
        item = make((None, 2), format=[("u", 8)])
        item.set_from_raw(FakeRawItem(b"abcdefg"))
        assert item.value.shape == (3, 2)

    def test_string(self) -> None:
        item = make((None,), format=[("c", 8)])
        item.set_from_raw(FakeRawItem(b"hello"))
        assert item.value == "hello"

    def test_scalar(self) -> None:
        item = make(dtype=">u4")
        item.set_from_raw(FakeRawItem(b"\x00\x00\x01\x00"))
        assert item.value == 256
        assert isinstance(item.value, np.uint32)

    def test_huge_empty_shape_is_not_materialised(self) -> None:
        item = make((2**40, 0), format=[("u", 4)])
        item.set_from_raw(FakeRawItem(b""))
        assert item.value.shape == (2**40, 0)
        assert item.value.dtype == np.dtype("O")

    def test_too_short(self) -> None:
        item = make((3,), dtype="u2")
        with pytest.raises(ValueError, match=r"Item x has too few elements for shape \(2 < 3\)"):
            item.set_from_raw(FakeRawItem(b"12345"))
        assert item.version == 1


class TestToBuffer:
    def test_matching_array_is_not_copied(self) -> None:
        value = np.arange(6, dtype="<u2").reshape(2, 3)
        assert make((2, 3), dtype="<u2", value=value).to_buffer() is value

    def test_fortran_sends_transpose(self) -> None:
        value = np.asfortranarray(np.arange(6, dtype="u1").reshape(2, 3))
        buffer = make((2, 3), dtype="u1", order="F", value=value).to_buffer()
        assert np.shares_memory(buffer, value)
        assert memoryview(buffer).tobytes() == bytes([0, 3, 1, 4, 2, 5])

    def test_shape_mismatch(self) -> None:
        item = make((3,), dtype="u1", value=[1, 2])
        with pytest.raises(ValueError, match=r"Value has shape \(2,\), expected \(3,\)"):
            item.to_buffer()

    def test_bitwise_packing(self) -> None:
        buffer = make((3,), format=[("u", 12)], value=[1, 2, 0xFFF]).to_buffer()
        assert isinstance(buffer, bytearray)
        assert bytes(buffer) == bytes.fromhex("001002fff0")

    def test_bitwise_range_check(self) -> None:
        with pytest.raises(ValueError, match="16 is out of range for u4"):
            make((1,), format=[("u", 4)], value=[16]).to_buffer()
        with pytest.raises(ValueError, match="-9 is out of range for i4"):
            make((1,), format=[("i", 4)], value=[-9]).to_buffer()

    def test_immediate_integer(self) -> None:
        buffer = make(format=[("u", 40)], value=0x0102030405).to_buffer()
        assert memoryview(buffer).tobytes() == bytes.fromhex("0102030405")

    def test_string(self) -> None:
        buffer = make((None,), format=[("c", 8)], value="hi!").to_buffer()
        assert memoryview(buffer).tobytes() == b"hi!"

    @pytest.mark.parametrize(
        ("shape", "kwargs", "value"),
        [
            ((3,), {"format": [("u", 12)]}, [1, 2, 4095]),
            ((None,), {"format": [("i", 7)]}, [-64, 63, 0, -1]),
            ((2,), {"format": [("u", 3), ("f", 64), ("b", 1)]}, [(7, -0.5, True), (0, 2.0, False)]),
            ((), {"format": [("u", 33)]}, 2**33 - 1),
            ((2, 2), {"dtype": ">f4", "order": "F"}, [[1.5, 2.5], [3.5, 4.5]]),
            ((None,), {"format": [("c", 8)]}, "text"),
        ],
    )
    def test_round_trip(self, shape: Any, kwargs: dict[str, Any], value: Any) -> None:
        sender = make(shape, value=value, **kwargs)
        receiver = make(shape, **kwargs)
        receiver.set_from_raw(FakeRawItem(memoryview(sender.to_buffer()).tobytes()))
        received = receiver.value
        if isinstance(received, np.ndarray):
            received = received.tolist()
        if isinstance(value, list) and value and isinstance(value[0], tuple):
            value = [tuple(v) for v in value]
        assert received == value


def test_native_raw_items_are_viewed_without_copy(peer: Any) -> None:
    """Values decoded from a heap received by our native stream borrow the heap's memory."""
    try:
        import spead2.recv as recv
    except ImportError as exc:
        pytest.skip(f"native receive path not built yet: {exc}")
    packets = json.loads(peer.run("descriptor_vectors.py", "wire", timeout=120).stdout)
    data = b"".join(bytes.fromhex(p) for p in packets["packets_48"]["ok"])
    stream = recv.Stream(spead2.ThreadPool(), recv.StreamConfig())
    stream.add_buffer_reader(data)
    stream.get()  # start-of-stream heap
    heap = stream.get()
    raw_items = {raw.id: raw for raw in heap.get_items()}
    item = make((2, 3), dtype="<u2")
    item.set_from_raw(raw_items[0x1000])
    owners = memory_owners(item.value)
    assert any(type(owner).__name__ == "RawItem" for owner in owners), owners
    del raw_items, heap
    gc.collect()
    assert item.value.tolist() == [[0, 1, 2], [3, 4, 5]]
