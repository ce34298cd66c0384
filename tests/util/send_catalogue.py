"""Send an interop catalogue with our spead2 in ways ``catalogue.send_all`` does not.

The heaps are exactly those of ``catalogue.send_all`` (a start heap, one heap per catalogue
entry built by ``ItemGroup.get_heap``, a stop heap), so ``catalogue.check_received`` judges the
receiver's view the same way; only how they are handed to the stream differs (substreams,
asyncio, groups). Duck-typed: nothing here imports spead2.
"""

from __future__ import annotations

import asyncio
from typing import Any

SEND_TIMEOUT = 30.0
"""Seconds an asyncio send may take before the test gives up (only reached when broken)."""


def build_heaps(catalogue: Any, item_group: Any) -> list[Any]:
    """The start heap, the catalogue's heaps and the stop heap, in sending order."""
    for spec in catalogue.items:
        item_group.add_item(**spec.add_item_kwargs())
    heaps = [item_group.get_start()]
    for values in catalogue.heaps:
        for name, value in values.items():
            item_group[name].value = value
        heaps.append(item_group.get_heap())
    heaps.append(item_group.get_end())
    return heaps


def send_all_substreams(catalogue: Any, item_group: Any, stream: Any, substreams: int) -> int:
    """Heap ``i`` (counting the start heap as 0) goes to substream ``i % substreams``."""
    heaps = build_heaps(catalogue, item_group)
    for index, heap in enumerate(heaps):
        stream.send_heap(heap, substream_index=index % substreams)
    return len(heaps)


async def async_send_all(catalogue: Any, item_group: Any, stream: Any) -> list[int]:
    """Await each ``async_send_heap`` before the next; returns the byte counts."""
    sizes = []
    for heap in build_heaps(catalogue, item_group):
        sizes.append(await asyncio.wait_for(stream.async_send_heap(heap), SEND_TIMEOUT))
    return sizes


async def async_send_pipelined(catalogue: Any, item_group: Any, stream: Any) -> list[Any]:
    """Queue every heap at once (the stream needs ``max_heaps`` >= the number of heaps), then
    ``async_flush``; returns the futures, which must all be done by then."""
    futures = [stream.async_send_heap(heap) for heap in build_heaps(catalogue, item_group)]
    await asyncio.wait_for(stream.async_flush(), SEND_TIMEOUT)
    return futures


async def async_send_group(
    catalogue: Any, item_group: Any, stream: Any, mode: Any, heap_reference: Any
) -> list[int]:
    """The start heap alone, the catalogue heaps as one ``async_send_heaps`` group in ``mode``
    (a ``GroupMode``; ``heap_reference`` is ``spead2.send.HeapReference``), then the stop
    heap; returns the three byte counts."""
    heaps = build_heaps(catalogue, item_group)
    sizes = [await asyncio.wait_for(stream.async_send_heap(heaps[0]), SEND_TIMEOUT)]
    refs = [heap_reference(heap) for heap in heaps[1:-1]]
    sizes.append(await asyncio.wait_for(stream.async_send_heaps(refs, mode), SEND_TIMEOUT))
    sizes.append(await asyncio.wait_for(stream.async_send_heap(heaps[-1]), SEND_TIMEOUT))
    return sizes
