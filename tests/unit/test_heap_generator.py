"""Tests for spead2.send.HeapGenerator and spead2.send.ItemGroup (delta heaps).

Besides the direct tests, the ``heap_generator`` and ``wire`` sections of
``tests/peer/descriptor_vectors.py`` are run against our spead2 and compared with the results
of the real spead2 4.5.1: which descriptors and values each heap carries, the packets built
from those heaps byte for byte, and what ItemGroup.update makes of them on receipt.
"""

from __future__ import annotations

import json
import types
from typing import Any

import numpy as np
import pytest
from util.vectors import load_vectors

import spead2
from spead2.send import _heap_generator

VECTORS = load_vectors()
RecordingHeap = VECTORS.RecordingHeap
HeapGenerator = _heap_generator.HeapGenerator
SendItemGroup = _heap_generator.ItemGroup


def our_spead2() -> Any:
    """Our spead2, with spead2.send standing in until the package exports the generator."""
    import spead2.send

    if hasattr(spead2.send, "HeapGenerator"):
        return spead2
    shim = types.SimpleNamespace(**vars(spead2))
    shim.send = types.SimpleNamespace(HeapGenerator=HeapGenerator, ItemGroup=SendItemGroup)
    return shim


def native_send_and_receive() -> None:
    """Skip unless the native send packetiser and receive stream exist yet."""
    try:
        import spead2.recv
        import spead2.send
    except ImportError as exc:
        pytest.skip(f"native send/receive not built yet: {exc}")
    for name in ("Heap", "PacketGenerator"):
        if not hasattr(spead2.send, name):
            pytest.skip(f"spead2.send.{name} not built yet")


@pytest.fixture(scope="module")
def peer_results(peer: Any) -> dict[str, Any]:
    """Results of the heap_generator section, computed by the real spead2."""
    return json.loads(peer.run("descriptor_vectors.py", "heap_generator", timeout=120).stdout)


@pytest.fixture(scope="module")
def peer_wire(peer: Any) -> dict[str, Any]:
    """Results of the wire section, computed by the real spead2."""
    return json.loads(peer.run("descriptor_vectors.py", "wire", timeout=120).stdout)


@pytest.mark.parametrize("case", VECTORS.all_case_names("heap_generator"))
def test_matches_peer(case: str, peer_results: dict[str, Any]) -> None:
    assert VECTORS.run_case("heap_generator", case, our_spead2()) == peer_results[case]


@pytest.mark.parametrize("case", VECTORS.all_case_names("wire"))
def test_wire_matches_peer(case: str, peer_wire: dict[str, Any]) -> None:
    native_send_and_receive()
    assert VECTORS.run_case("wire", case, spead2) == peer_wire[case]


@pytest.mark.parametrize("flavour", ["40", "48", "40pyspead", "48swap"])
def test_receive_peer_packets(flavour: str, peer_wire: dict[str, Any]) -> None:
    """Heaps sent by the real spead2, decoded by our receive stream and ItemGroup."""
    try:
        import spead2.recv  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"native receive not built yet: {exc}")
    data = b"".join(bytes.fromhex(p) for p in peer_wire[f"packets_{flavour}"]["ok"])
    bug_compat = VECTORS.FLAVOURS[flavour][1]
    ours = json.loads(json.dumps(VECTORS.receive_and_describe(spead2, data, bug_compat)))
    assert ours == peer_wire[f"receive_{flavour}"]["ok"]


def add(generator: Any, **kwargs: str) -> list[Any]:
    heap = RecordingHeap()
    assert generator.add_to_heap(heap, **kwargs) is heap
    return heap.log


def make_group() -> spead2.ItemGroup:
    g = spead2.ItemGroup()
    g.add_item(0x1000, "a", "", (), np.uint8, value=1)
    g.add_item(0x1001, "b", "", (), np.uint8)
    return g


class TestAddToHeap:
    def test_first_heap_has_all_descriptors_and_set_values(self) -> None:
        generator = HeapGenerator(make_group())
        assert add(generator) == [
            ["descriptor", 0x1000, "a"],
            ["item", 0x1000, "a", 1],
            ["descriptor", 0x1001, "b"],
        ]
        assert add(generator) == []

    def test_only_changed_values_are_resent(self) -> None:
        g = make_group()
        generator = HeapGenerator(g)
        add(generator)
        g["b"].value = 5
        assert add(generator) == [["item", 0x1001, "b", 2]]

    def test_modes(self) -> None:
        generator = HeapGenerator(make_group())
        add(generator)
        assert add(generator, descriptors="all", data="none") == [
            ["descriptor", 0x1000, "a"],
            ["descriptor", 0x1001, "b"],
        ]
        assert add(generator, descriptors="none", data="all") == [["item", 0x1000, "a", 1]]

    @pytest.mark.parametrize("kwargs", [{"descriptors": "some"}, {"data": "Stale"}])
    def test_bad_mode(self, kwargs: dict[str, str]) -> None:
        with pytest.raises(ValueError, match="must be one of 'stale', 'all', 'none'"):
            HeapGenerator(make_group()).add_to_heap(RecordingHeap(), **kwargs)

    def test_replaced_item_is_sent_again(self) -> None:
        g = make_group()
        generator = HeapGenerator(g)
        add(generator)
        g.add_item(0x1000, "a", "new description", (), np.uint8, value=1)
        assert add(generator) == [["descriptor", 0x1000, "a"], ["item", 0x1000, "a", 2]]

    def test_descriptor_frequency(self) -> None:
        generator = HeapGenerator(make_group(), descriptor_frequency=3)
        heaps = [add(generator, data="none") for _ in range(7)]
        assert [len(heap) for heap in heaps] == [2, 0, 0, 2, 0, 0, 2]

    def test_does_not_keep_dropped_items_alive(self) -> None:
        import gc
        import weakref

        g = make_group()
        generator = HeapGenerator(g)
        add(generator)
        alive = weakref.ref(g["a"])
        g.add_item(0x1000, "a", "replacement", (), np.uint8)
        gc.collect()
        assert alive() is None


class TestSendItemGroup:
    def test_is_group_and_generator(self) -> None:
        g = SendItemGroup(descriptor_frequency=2)
        g.add_item(None, "x", "", (2,), np.int16, value=[1, 2])
        assert isinstance(g, spead2.ItemGroup)
        assert add(g) == [["descriptor", 0x1000, "x"], ["item", 0x1000, "x", 1]]
        assert add(g) == []
        assert add(g) == [["descriptor", 0x1000, "x"]]

    def test_no_reference_cycle(self) -> None:
        import gc
        import weakref

        gc.disable()
        try:
            g = SendItemGroup()
            g.add_item(None, "x", "", (), np.int16, value=1)
            add(g)
            alive = weakref.ref(g)
            del g
            assert alive() is None  # freed by reference counting alone
        finally:
            gc.enable()


class TestNativeHeaps:
    @pytest.mark.parametrize("method", ["get_start", "get_end", "get_heap"])
    def test_heaps_use_the_generator_flavour(self, method: str) -> None:
        native_send_and_receive()
        g = SendItemGroup(flavour=spead2.Flavour(4, 64, 48, 0))
        g.add_item(None, "x", "", (), np.uint8, value=1)
        heap = getattr(g, method)()
        assert heap.flavour == spead2.Flavour(4, 64, 48, 0)
