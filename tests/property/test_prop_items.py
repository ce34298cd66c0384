"""Property tests: items survive a round trip through our send and receive paths.

Each example describes a few items (random dtypes from a safe set, shapes and values), sends
descriptors and values with ``spead2.send.ItemGroup`` into a ``BytesStream``, reads the bytes
back with ``spead2.recv.Stream.add_buffer_reader`` and ``spead2.ItemGroup.update``, and
checks that every descriptor field and value comes back equal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import spead2
import spead2.recv
import spead2.send

# Fixed-size numeric dtypes in both byte orders (no object, no datetimes).
SAFE_DTYPES = [
    np.dtype(f"{order}{code}")
    for order in "<>"
    for code in ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8", "c8", "c16")
] + [np.dtype("?")]

FLAVOURS = [
    spead2.Flavour(4, 64, 40, 0),
    spead2.Flavour(4, 64, 48, 0),
]

FIRST_ID = 0x1000
# (name, description, dtype, shape, value) of each item.
Described = list[tuple[str, str, np.dtype[Any], tuple[int, ...], np.ndarray[Any, Any]]]
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def items(draw: st.DrawFn) -> Described:
    """1-4 items: (name, description, dtype, shape, value) with distinct names."""
    count = draw(st.integers(1, 4))
    names = draw(
        st.lists(
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    result = []
    for name in names:
        dtype = draw(st.sampled_from(SAFE_DTYPES))
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
        value = draw(hnp.arrays(dtype, shape))
        # Descriptions are ASCII on the wire (as in spead2).
        description = draw(
            st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
        )
        result.append((name, description, dtype, shape, value))
    return result


def send_receive(
    flavour: spead2.Flavour,
    described: Described,
) -> spead2.ItemGroup:
    """Sends one heap with descriptors and values; returns the receiver's item group."""
    thread_pool = spead2.ThreadPool()
    stream = spead2.send.BytesStream(thread_pool, spead2.send.StreamConfig(max_packet_size=1400))
    sender = spead2.send.ItemGroup(flavour=flavour)
    for index, (name, description, dtype, shape, value) in enumerate(described):
        item = sender.add_item(FIRST_ID + index, name, description, shape, dtype=dtype)
        item.value = value
    stream.send_heap(sender.get_heap(descriptors="all", data="all"))
    stream.send_heap(sender.get_end())
    data = stream.getvalue()

    receiver = spead2.recv.Stream(thread_pool, spead2.recv.StreamConfig(max_heaps=2))
    receiver.add_buffer_reader(data)
    group = spead2.ItemGroup()
    heaps = 0
    for heap in receiver:
        assert isinstance(heap, spead2.recv.Heap)  # contiguous_only is the default
        group.update(heap)
        heaps += 1
    assert heaps == 1
    return group


@SETTINGS
@given(flavour=st.sampled_from(FLAVOURS), described=items())
def test_items_round_trip(
    flavour: spead2.Flavour,
    described: Described,
) -> None:
    group = send_receive(flavour, described)
    assert sorted(group.keys()) == sorted(name for name, *_ in described)
    for index, (name, description, dtype, shape, value) in enumerate(described):
        item = group[name]
        assert item.id == FIRST_ID + index
        assert item.description == description
        assert tuple(item.shape) == shape
        assert item.dtype == dtype
        received = np.asarray(item.value)
        # ItemGroup.update's default new_order "=" hands values over in native byte order.
        assert received.dtype == dtype.newbyteorder("=")
        assert received.shape == shape
        # Byte-exact in the sent order (NaN payloads and signed zeros included).
        assert received.astype(dtype).tobytes() == value.tobytes()


@SETTINGS
@given(
    flavour=st.sampled_from(FLAVOURS),
    values=st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=3),
)
def test_bytes_items_round_trip_across_packets(
    flavour: spead2.Flavour, values: list[bytes]
) -> None:
    """Variable-length u8 items up to a few packets long come back byte for byte."""
    described: Described = [
        (f"blob{i}", "", np.dtype("u1"), (len(v),), np.frombuffer(v, np.uint8))
        for i, v in enumerate(values)
    ]
    group = send_receive(flavour, described)
    for name, _, _, _, value in described:
        assert np.asarray(group[name].value).tobytes() == value.tobytes()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_empty_group_sends_only_end(flavour: spead2.Flavour) -> None:
    """Sanity anchor for the property tests: an end-only stream yields no heaps."""
    thread_pool = spead2.ThreadPool()
    stream = spead2.send.BytesStream(thread_pool)
    stream.send_heap(spead2.send.ItemGroup(flavour=flavour).get_end())
    receiver = spead2.recv.Stream(thread_pool)
    receiver.add_buffer_reader(stream.getvalue())
    assert list(receiver) == []
