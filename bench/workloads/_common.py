"""Helpers shared by the workload scripts (standard library and the spead2 public API only).

Each workload is run as a subprocess by ``bench/run.py`` with one of the two interpreters, so the
same script exercises either our package or the reference spead2 4.5.1. A workload prints exactly
one JSON object on its last stdout line; everything else goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import spead2
import spead2.send

ITEM_ID = 0x1000


def library_info() -> dict[str, str]:
    """Which spead2 was imported, so the runner can show it (and catch a source-tree import)."""
    return {"version": spead2.__version__, "file": os.path.dirname(spead2.__file__)}


def emit(result: dict[str, Any]) -> None:
    result["library"] = library_info()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def make_item_group(heap_size: int) -> spead2.send.ItemGroup:
    """One uint8 item of heap_size bytes: the heap payload is exactly heap_size bytes."""
    ig = spead2.send.ItemGroup()
    value = np.arange(heap_size, dtype=np.uint64).astype(np.uint8)
    ig.add_item(
        ITEM_ID, "data", "benchmark payload", shape=(heap_size,), dtype=np.uint8, value=value
    )
    return ig


def data_heap(ig: spead2.send.ItemGroup) -> spead2.send.Heap:
    """A heap carrying only the data item (no descriptors), reusable for many sends."""
    return ig.get_heap(descriptors="none", data="all")


def timed_passes(
    run_pass: Callable[[], float], min_time: float, min_passes: int, max_passes: int
) -> list[float]:
    """Repeat run_pass (which returns its own measured seconds) until min_time has been spent."""
    run_pass()  # warm-up: page faults, pool fill, code paths
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_passes and (
        len(times) < min_passes or time.perf_counter() - start < min_time
    ):
        times.append(run_pass())
    return times


def vm_status(field: str) -> int:
    """A field of /proc/self/status in bytes (VmRSS, VmHWM, ...)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
