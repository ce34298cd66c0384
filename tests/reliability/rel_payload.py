"""The heap contents every reliability test agrees on (numpy only: it loads in any venv).

A data heap carries ``index`` (item :data:`INDEX_ID`, u32) and ``payload`` (item
:data:`PAYLOAD_ID`, ``size`` bytes of :func:`payload` of the index), so whoever receives a
heap can check it byte for byte without knowing anything else about the run.
"""

from __future__ import annotations

import numpy as np

PAYLOAD_PERIOD = 64
"""Payloads repeat every 64 indices: distinct for any two heaps closer than that."""

INDEX_ID = 0x4000
PAYLOAD_ID = 0x4001

_cache: dict[tuple[int, int], np.ndarray] = {}


def payload(index: int, size: int) -> np.ndarray:
    """The deterministic payload (uint8, read-only) of the heap with ``index``."""
    key = (index % PAYLOAD_PERIOD, size)
    cached = _cache.get(key)
    if cached is None:
        n = key[0]
        values = (np.arange(size, dtype=np.uint32) * (2 * n + 1) + 7 * n + 3) % 256
        cached = values.astype(np.uint8)
        cached.flags.writeable = False
        _cache[key] = cached
    return cached
