"""Tests for spead2.ItemGroup (lookup, re-issued descriptors, update) and parse_range_list.

Besides the direct tests, every case of the ``item_group`` section of
``tests/peer/descriptor_vectors.py`` is run against our spead2 and compared with the result of
the real spead2 4.5.1.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pytest
from util.vectors import load_vectors

import spead2

VECTORS = load_vectors()
SECTION = "item_group"
FakeRawItem = VECTORS.FakeRawItem
FakeHeap = VECTORS.FakeHeap


@pytest.fixture(scope="module")
def peer_results(peer: Any) -> dict[str, Any]:
    """Results of every case of the section, computed by the real spead2."""
    return json.loads(peer.run("descriptor_vectors.py", SECTION, timeout=120).stdout)


@pytest.mark.parametrize("case", VECTORS.all_case_names(SECTION))
def test_matches_peer(case: str, peer_results: dict[str, Any]) -> None:
    assert VECTORS.run_case(SECTION, case, spead2) == peer_results[case]


def raw_descriptor(item_id: int, name: bytes, shape: list[Any], fmt: Any) -> Any:
    return VECTORS.raw_descriptor(spead2, item_id, name, shape=shape, format=fmt)


class TestLookup:
    def test_by_name_and_id(self) -> None:
        g = spead2.ItemGroup()
        a = g.add_item(0x1234, "a", "A", (), np.uint8)
        assert g["a"] is a
        assert g[0x1234] is a
        assert "a" in g and 0x1234 in g
        assert "b" not in g and 0x1235 not in g
        assert list(g.keys()) == ["a"]
        assert list(g.ids()) == [0x1234]
        assert list(g.values()) == [a]
        assert list(g.items()) == [("a", a)]
        assert len(g) == 1
        with pytest.raises(KeyError):
            g["b"]
        with pytest.raises(KeyError):
            g[7]

    def test_auto_ids_fill_gaps_from_0x1000(self) -> None:
        g = spead2.ItemGroup()
        g.add_item(0x1001, "taken", "", (), np.uint8)
        ids = [g.add_item(None, f"n{i}", "", (), np.uint8).id for i in range(3)]
        assert ids == [0x1000, 0x1002, 0x1003]


class TestReplacement:
    def test_identical_descriptor_transfers_value(self) -> None:
        g = spead2.ItemGroup()
        old = g.add_item(0x1000, "a", "A", (2,), np.uint8, value=[1, 2])
        new = g.add_item(0x1000, "a", "A", [2], "u1", value=[3, 4])
        assert g["a"] is old
        assert new is not old
        assert (old.value, old.version) == ([3, 4], 2)

    def test_identical_descriptor_without_value_changes_nothing(self) -> None:
        g = spead2.ItemGroup()
        old = g.add_item(0x1000, "a", "A", (2,), np.uint8, value=[1, 2])
        g.add_item(0x1000, "a", "A", (2,), np.uint8)
        assert (g["a"], old.value, old.version) == (old, [1, 2], 1)

    def test_changed_descriptor_replaces_with_higher_version(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        g = spead2.ItemGroup()
        by_id = g.add_item(0x1000, "a", "", (), np.uint8)
        by_name = g.add_item(0x1001, "b", "", (), np.uint8)
        for i in range(4):
            by_name.value = i
        with caplog.at_level(logging.INFO, logger="spead2"):
            new = g.add_item(0x1000, "b", "", (), np.uint16)
        assert list(g.items()) == [("b", new)]
        assert new.version == by_name.version + 1 == 6
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("INFO", "Descriptor replacement for ID 0x1000, name b")
        ]
        assert list(g.ids()) == [by_id.id]
        assert "a" not in g


class TestUpdate:
    def test_descriptors_then_values(self, caplog: pytest.LogCaptureFixture) -> None:
        g = spead2.ItemGroup()
        heap = FakeHeap(
            [raw_descriptor(0x1000, b"a", [None], [("u", 16)])],
            [
                FakeRawItem(b"\x00\x01\x00\x02", 0x1000),
                FakeRawItem(b"\x00", spead2.STREAM_CTRL_ID),
                FakeRawItem(b"\x00", 0x2000),
            ],
            spead2.Flavour(),
        )
        with caplog.at_level(logging.DEBUG, logger="spead2"):
            updated = g.update(heap)
        assert list(updated) == ["a"]
        assert updated["a"] is g["a"]
        assert g["a"].value.tolist() == [1, 2]
        assert g["a"].version == 3
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("WARNING", "Item with ID 0x2000 received but there is no descriptor")
        ]

    def test_new_order(self) -> None:
        g = spead2.ItemGroup()
        heap = FakeHeap(
            [raw_descriptor(0x1000, b"a", [2], [("u", 16)])],
            [FakeRawItem(b"\x00\x01\x00\x02", 0x1000)],
            spead2.Flavour(),
        )
        g.update(heap, new_order="|")
        assert g["a"].value.dtype == np.dtype(">u2")

    def test_repeated_descriptor_keeps_value(self) -> None:
        g = spead2.ItemGroup()
        desc = raw_descriptor(0x1000, b"a", [], [("u", 8)])
        g.update(FakeHeap([desc], [FakeRawItem(b"\x07", 0x1000)], spead2.Flavour()))
        item = g["a"]
        g.update(FakeHeap([desc], [], spead2.Flavour()))
        assert g["a"] is item
        assert item.value == 7


class TestParseRangeList:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2,3-5", [2, 3, 4, 5]),
            ("", []),
            (" 1 , 2 - 4 ", [1, 2, 3, 4]),
            ("5-3", []),
            ("3-3,1", [3, 1]),
        ],
    )
    def test_valid(self, text: str, expected: list[int]) -> None:
        assert spead2.parse_range_list(text) == expected

    @pytest.mark.parametrize("text", ["a", "1,,2", "-1", "1-2-3", "1,"])
    def test_invalid(self, text: str) -> None:
        with pytest.raises(ValueError):
            spead2.parse_range_list(text)
