"""Receive a catalogue with a spead2-compatible stream, under a watchdog.

The stream objects are duck-typed: the same code drives ours in the pytest process (the peer
has its own copy in ``tests/peer/recv.py``). A missing stop heap must fail a test, not hang it,
so a timer stops the stream after a timeout and the run is reported as a failure.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for the stop heap; generous, because the machine may be busy."""


@contextmanager
def stop_after(stream: Any, timeout: float) -> Iterator[threading.Event]:
    """Call ``stream.stop()`` if the block runs longer than ``timeout``; yields the 'fired' flag."""
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        stream.stop()

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def finish(stream: Any, received: Any, catalogue: ModuleType) -> Any:
    """Stop the stream and attach its final statistics to ``received``."""
    stream.stop()
    received.stats = catalogue.stats_dict(stream.stats)
    return received


def receive(
    stream: Any, item_group: Any, catalogue: ModuleType, timeout: float = DEFAULT_TIMEOUT
) -> Any:
    """Iterate ``stream`` to its end, recording every heap (a ``catalogue.Received``)."""
    with stop_after(stream, timeout) as fired:
        received = catalogue.collect(stream, item_group)
    if fired.is_set():
        raise AssertionError(
            f"stream did not end within {timeout} s; {len(received.heaps)} heaps arrived"
        )
    return finish(stream, received, catalogue)


async def receive_async(
    stream: Any, item_group: Any, catalogue: ModuleType, timeout: float = DEFAULT_TIMEOUT
) -> Any:
    """:func:`receive` for ``spead2.recv.asyncio.Stream`` (``async for``)."""
    try:
        received = await asyncio.wait_for(catalogue.collect_async(stream, item_group), timeout)
    except TimeoutError:
        stream.stop()
        raise AssertionError(f"stream did not end within {timeout} s") from None
    return finish(stream, received, catalogue)
