"""asyncio receive streams (spead2.recv.asyncio).

The stream's ringbuffer exposes a file descriptor that is readable exactly while a heap (or the
end of the stream) is waiting and the worker has signalled it (which it does at the end of each
receive batch, or every few heaps), so the event loop watches it with ``add_reader``: no thread
and no busy waiting. Waiters are served in the order they called :meth:`Stream.get`.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import spead2.recv
from spead2._spead2 import Empty, Stopped
from spead2.recv import Heap, IncompleteHeap

__all__ = ["Stream"]

_Result = Heap | IncompleteHeap


class Stream(spead2.recv.Stream):
    """A receive stream whose heaps are awaited: ``await stream.get()`` or ``async for``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The native base is fully built by __new__ from the same arguments.
        self._waiters: collections.deque[asyncio.Future[_Result]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def get(self) -> _Result:  # type: ignore[override]
        """Waits for the next heap; raises :class:`spead2.Stopped` at the end of the stream."""
        if not self._waiters:
            try:
                return self.get_nowait()
            except Empty:
                pass
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Result] = loop.create_future()
        self._waiters.append(future)
        self._listen(loop)
        return await future

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is None:
            self._loop = loop
            loop.add_reader(self.fd, self._ready)

    def _unlisten(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.fd)
            self._loop = None

    def _ready(self) -> None:
        """Hands queued heaps to waiters in order, skipping any that were cancelled."""
        while self._waiters:
            waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            try:
                heap = self.get_nowait()
            except Empty:
                return
            except Stopped as exc:
                self._fail_all(exc)
                break
            self._waiters.popleft()
            waiter.set_result(heap)
        self._unlisten()

    def _fail_all(self, exc: BaseException) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(type(exc)(*exc.args))

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> _Result:
        try:
            return await self.get()
        except Stopped:
            raise StopAsyncIteration from None
