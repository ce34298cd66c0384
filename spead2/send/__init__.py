"""Sending SPEAD: heaps, their generators, and send streams (spead2.send)."""

from __future__ import annotations

from spead2._spead2.send import (
    GroupMode,
    Heap,
    HeapReference,
    HeapReferenceList,
    PacketGenerator,
    RateMethod,
    StreamConfig,
)
from spead2.send._heap_generator import HeapGenerator, ItemGroup

__all__ = [
    "GroupMode",
    "Heap",
    "HeapGenerator",
    "HeapReference",
    "HeapReferenceList",
    "ItemGroup",
    "PacketGenerator",
    "RateMethod",
    "StreamConfig",
]
