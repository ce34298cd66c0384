"""Receiving SPEAD: streams, their configuration, heaps and statistics (spead2.recv)."""

from __future__ import annotations

from collections.abc import Iterator

from spead2._spead2 import Stopped
from spead2._spead2.recv import (
    Heap,
    IncompleteHeap,
    RingStreamConfig,
    StreamConfig,
    StreamStatConfig,
    StreamStats,
    _Stream,
)
from spead2.recv import stream_stat_indices

__all__ = [
    "Heap",
    "IncompleteHeap",
    "RingStreamConfig",
    "Stream",
    "StreamConfig",
    "StreamStatConfig",
    "StreamStats",
    "stream_stat_indices",
]


class Stream(_Stream):
    """A receive stream delivering heaps through a ringbuffer; iterate to get heaps."""

    def __iter__(self) -> Iterator[Heap | IncompleteHeap]:
        return self

    def __next__(self) -> Heap | IncompleteHeap:
        try:
            return self.get()
        except Stopped:
            raise StopIteration from None
