"""asyncio send streams (spead2.send.asyncio).

Heaps are queued without blocking; each ``async_send_*`` call returns a future that the event
loop completes when the stream's completion fd (an eventfd) becomes readable: no thread and no
polling on the Python side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import spead2.send
from spead2._spead2 import ThreadPool
from spead2._spead2.send import GroupMode, Heap, HeapReference, HeapReferenceList, StreamConfig

__all__ = ["InprocStream", "TcpStream", "UdpStream"]


class _AsyncStream:
    """Future-returning sends over a native send stream (mixed into the transport classes)."""

    _futures: dict[int, asyncio.Future[int]]
    _loop: asyncio.AbstractEventLoop | None

    def _pending(self) -> dict[int, asyncio.Future[int]]:
        try:
            return self._futures
        except AttributeError:
            self._futures = {}
            self._loop = None
            return self._futures

    def _track(self, submit: Any) -> asyncio.Future[int]:
        loop = asyncio.get_event_loop()
        future: asyncio.Future[int] = loop.create_future()
        try:
            completion_id = submit()
        except OSError as exc:
            future.set_exception(exc)
            return future
        self._pending()[completion_id] = future
        if self._loop is None:
            self._loop = loop
            loop.add_reader(self.fd, self.process_callbacks)  # type: ignore[attr-defined]
        return future

    def async_send_heap(
        self, heap: Heap, cnt: int = -1, substream_index: int = 0, rate: float = -1.0
    ) -> asyncio.Future[int]:
        """Queues one heap; the future gives the bytes sent (``BlockingIOError`` if full)."""
        return self._track(
            lambda: self._send_heap_async(heap, cnt, substream_index, rate)  # type: ignore[attr-defined]
        )

    def async_send_heaps(
        self, heaps: Sequence[HeapReference] | HeapReferenceList, mode: GroupMode
    ) -> asyncio.Future[int]:
        """Queues a group of heaps (all or nothing); the future gives the bytes sent."""
        return self._track(lambda: self._send_heaps_async(heaps, mode))  # type: ignore[attr-defined]

    def process_callbacks(self) -> None:
        """Completes the futures of groups that have finished."""
        futures = self._pending()
        for completion_id, result in self._take_completions():  # type: ignore[attr-defined]
            future = futures.pop(completion_id, None)
            if future is None or future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        if not futures and self._loop is not None:
            self._loop.remove_reader(self.fd)  # type: ignore[attr-defined]
            self._loop = None

    async def async_flush(self) -> None:
        """Waits until every queued heap has been sent."""
        pending = list(self._pending().values())
        if pending:
            await asyncio.wait(pending)


class UdpStream(_AsyncStream, spead2.send.UdpStream):
    """asyncio UDP send stream; same constructors as :class:`spead2.send.UdpStream`."""


class InprocStream(_AsyncStream, spead2.send.InprocStream):
    """asyncio in-process send stream."""


class TcpStream(_AsyncStream, spead2.send.TcpStream):
    """asyncio TCP send stream: build with ``await TcpStream.connect(...)`` or from a
    connected socket."""

    @classmethod
    async def connect(
        cls,
        thread_pool: ThreadPool,
        endpoints: Sequence[tuple[str, int]],
        config: StreamConfig | None = None,
        buffer_size: int = spead2.send.TcpStream.DEFAULT_BUFFER_SIZE,
        interface_address: str = "",
    ) -> TcpStream:
        """Connects without blocking the event loop; raises ``OSError`` if refused."""
        loop = asyncio.get_running_loop()
        config = config or StreamConfig()
        return await loop.run_in_executor(
            None, lambda: cls(thread_pool, endpoints, config, buffer_size, interface_address)
        )
