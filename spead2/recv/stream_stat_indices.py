"""Indices of the core receive statistics, for fast lookup in :class:`StreamStats`."""

HEAPS = 0
INCOMPLETE_HEAPS_EVICTED = 1
INCOMPLETE_HEAPS_FLUSHED = 2
PACKETS = 3
BATCHES = 4
MAX_BATCH = 5
SINGLE_PACKET_HEAPS = 6
SEARCH_DIST = 7
WORKER_BLOCKED = 8
