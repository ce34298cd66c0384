"""Sending SPEAD: heaps, their generators, and send streams (spead2.send)."""

from __future__ import annotations

from spead2._spead2.send import (
    GroupMode,
    Heap,
    HeapReference,
    HeapReferenceList,
    PacketGenerator,
    RateMethod,
    Stream,
    StreamConfig,
)
from spead2.send._heap_generator import HeapGenerator, ItemGroup
from spead2.send._streams import BytesStream, InprocStream, TcpStream, UdpStream

__all__ = [
    "BytesStream",
    "GroupMode",
    "Heap",
    "HeapGenerator",
    "HeapReference",
    "HeapReferenceList",
    "InprocStream",
    "ItemGroup",
    "PacketGenerator",
    "RateMethod",
    "Stream",
    "StreamConfig",
    "TcpStream",
    "UdpStream",
]
