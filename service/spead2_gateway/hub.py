"""Fan-out of one receive stream's heaps to its subscribers.

The stream's reader thread calls :meth:`Hub.publish` for each heap; it never waits for a
subscriber. Each :class:`Subscription` has a bounded queue (heaps and bytes): when a new heap
does not fit, the oldest queued heaps are dropped and counted. Sequence numbers are assigned
when a heap is queued, so a subscriber sees every drop as a gap, and each message also
carries the running count of drops.

A heap's message bodies are planned once per distinct item filter (see ``wire.py``) outside
the lock and shared by every subscription with that filter. They can stay unjoined pieces
(item data as views of the received heap) until a subscriber takes the heap: then its prefix
and the pieces are joined into the message, the only copy of the data the daemon makes. But
queued views keep the received heap's memory alive, so a plan is copied out at once instead
(one more copy, and the memory goes back to spead2) when that memory is not the daemon's to
hold: see :attr:`Envelope.retained_bytes`.

Threads: ``publish`` runs on the reader thread; everything else on the event loop. One
``threading.Lock`` guards the queues. Waking subscribers crosses to the loop with
``call_soon_threadsafe`` (a syscall and a thread wake-up, which cost more than the rest of
a publish), so it happens only for subscribers actually waiting, and at most once until the
loop has run it: one wake serves every subscriber of a heap, and every heap published while
the loop was busy.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from spead2_gateway import wire

__all__ = [
    "Envelope",
    "Hub",
    "ItemFilter",
    "SubscriberCounters",
    "Subscription",
    "SubscriptionClosed",
    "make_filter",
]


@dataclass(frozen=True)
class ItemFilter:
    """Items to keep, by name or id (an item matching either is kept)."""

    names: frozenset[str]
    ids: frozenset[int]

    def keeps(self, item: wire.EncodedItem) -> bool:
        """Whether ``item`` passes the filter."""
        return item.name in self.names or item.id in self.ids


@dataclass
class Envelope:
    """One heap, encoded once, with its message bodies planned once per item filter.

    ``retained_bytes`` is the received-heap memory that views in ``items`` keep alive (0 if
    the items own their data; infinite if that memory must go back at once, e.g. to a memory
    pool that the capture path allocates from). A plan keeps its views only if its item data
    is at least half of that, so that what a queue holds stays within twice what it counts
    against ``max_queue_bytes``; otherwise it is copied out when planned.
    """

    header: bytes
    items: Sequence[wire.EncodedItem]
    incomplete: bool
    fragment_bytes: int
    retained_bytes: float = 0
    _bodies: dict[ItemFilter | None, list[wire.Fragment]] = field(default_factory=dict)

    def bodies(self, item_filter: ItemFilter | None) -> list[wire.Fragment]:
        """The message bodies (one per fragment) for subscribers with ``item_filter``."""
        cached = self._bodies.get(item_filter)
        if cached is None:
            items = (
                self.items
                if item_filter is None
                else [item for item in self.items if item_filter.keeps(item)]
            )
            cached = wire.plan_fragments(self.header, items, self.fragment_bytes)
            if 2 * sum(len(item.data) for item in items) < self.retained_bytes:
                cached = [fragment.copied() for fragment in cached]
            self._bodies[item_filter] = cached
        return cached


class SubscriptionClosed(Exception):
    """Raised by :meth:`Subscription.next` once the queue is drained after a close."""

    def __init__(self, reason: str, shutdown: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.shutdown = shutdown


@dataclass(frozen=True)
class SubscriberCounters:
    """A snapshot of one subscription's queue and counters."""

    id: int
    queued_heaps: int
    queued_bytes: int
    queue_depth: int
    delivered_heaps: int
    delivered_bytes: int
    dropped_heaps: int


@dataclass
class _Queued:
    sequence: int
    bodies: list[wire.Fragment]
    nbytes: int


class Subscription:
    """One subscriber's bounded queue, sequence numbers and counters."""

    def __init__(
        self,
        hub: Hub,
        sub_id: int,
        item_filter: ItemFilter | None,
        every_nth: int,
        include_incomplete: bool,
        depth: int,
        max_bytes: int,
    ) -> None:
        self.hub = hub
        self.id = sub_id
        self.item_filter = item_filter
        self.every_nth = max(every_nth, 1)
        self.include_incomplete = include_incomplete
        self.depth = depth
        self.max_bytes = max_bytes
        self._queue: collections.deque[_Queued] = collections.deque()
        self._event = asyncio.Event()
        self._waiting = False
        self._offered = 0
        self._next_sequence = 1
        self.queued_bytes = 0
        self.delivered = 0
        self.delivered_bytes = 0
        self.dropped = 0
        self._closed: SubscriptionClosed | None = None

    @property
    def queued(self) -> int:
        """Heaps waiting in the queue."""
        return len(self._queue)

    # Reader thread, under the hub lock. -------------------------------------------------

    def _wants(self, envelope: Envelope) -> bool:
        """Applies the incomplete-heap filter and decimation (advancing the count)."""
        if self._closed is not None:
            return False
        if envelope.incomplete and not self.include_incomplete:
            return False
        self._offered += 1
        return (self._offered - 1) % self.every_nth == 0

    def _push(self, bodies: list[wire.Fragment]) -> int:
        """Queues a heap, dropping the oldest beyond the limits; returns heaps dropped."""
        item = _Queued(self._next_sequence, bodies, sum(b.size for b in bodies))
        self._next_sequence += 1
        self._queue.append(item)
        self.queued_bytes += item.nbytes
        dropped = 0
        while len(self._queue) > self.depth or (
            self.queued_bytes > self.max_bytes and len(self._queue) > 1
        ):
            old = self._queue.popleft()
            self.queued_bytes -= old.nbytes
            dropped += 1
        self.dropped += dropped
        self._wake()
        return dropped

    def _wake(self) -> None:
        if self._waiting:
            self._waiting = False
            self.hub._schedule_wake(self)

    def _close(self, reason: str, shutdown: bool) -> None:
        if self._closed is None:
            self._closed = SubscriptionClosed(reason, shutdown)
            self._wake()

    # Event loop. ---------------------------------------------------------------------------

    def _take(self) -> tuple[bytes, list[wire.Fragment]] | None:
        """The next heap's prefix and bodies, or None if the queue is empty (caller holds
        the lock)."""
        if not self._queue:
            return None
        item = self._queue.popleft()
        self.queued_bytes -= item.nbytes
        self.delivered += 1
        self.delivered_bytes += item.nbytes
        return wire.subscriber_prefix(item.sequence, self.dropped), item.bodies

    async def next(self) -> list[bytes]:
        """Waits for the next heap: its serialised messages (more than one if split).

        Raises :class:`SubscriptionClosed` once closed and drained.
        """
        while True:
            with self.hub.lock:
                taken = self._take()
                if taken is None:
                    if self._closed is not None:
                        raise self._closed
                    self._event.clear()
                    self._waiting = True
            if taken is not None:
                # Joined outside the lock: the reader thread may publish meanwhile.
                prefix, bodies = taken
                return [body.join(prefix) for body in bodies]
            await self._event.wait()


class Hub:
    """The subscribers of one receive stream."""

    def __init__(self, stream: str, loop: asyncio.AbstractEventLoop) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self._loop = loop
        self._subs: dict[int, Subscription] = {}
        self._ids = itertools.count(1)
        self._closed: tuple[str, bool] | None = None
        self._to_wake: list[Subscription] = []  # guarded by the lock
        self.published = 0
        self.dropped_total = 0

    def _schedule_wake(self, sub: Subscription) -> None:
        """Wakes ``sub`` soon on the loop (caller holds the lock)."""
        self._to_wake.append(sub)
        if len(self._to_wake) == 1:  # no wake pending yet: the loop's callback takes them all
            self._loop.call_soon_threadsafe(self._run_wakes)

    def _run_wakes(self) -> None:
        with self.lock:
            subs, self._to_wake = self._to_wake, []
        for sub in subs:
            sub._event.set()

    def subscribe(
        self,
        item_filter: ItemFilter | None,
        every_nth: int,
        include_incomplete: bool,
        depth: int,
        max_bytes: int,
    ) -> Subscription:
        """A new subscription (already closed if the hub is)."""
        with self.lock:
            sub = Subscription(
                self,
                next(self._ids),
                item_filter,
                every_nth,
                include_incomplete,
                depth,
                max_bytes,
            )
            if self._closed is not None:
                sub._close(*self._closed)
            else:
                self._subs[sub.id] = sub
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget ``sub`` (its counters stay in the hub totals)."""
        with self.lock:
            self._subs.pop(sub.id, None)
            sub._close("unsubscribed", shutdown=False)

    def subscriptions(self) -> list[Subscription]:
        """A snapshot of the live subscriptions."""
        with self.lock:
            return list(self._subs.values())

    def __len__(self) -> int:
        return len(self._subs)

    def publish(self, envelope: Envelope) -> None:
        """Offers a heap to every subscriber; never blocks on one (reader thread)."""
        with self.lock:
            self.published += 1
            takers = [sub for sub in self._subs.values() if sub._wants(envelope)]
        if not takers:
            return
        # Serialise outside the lock: subscribers keep draining meanwhile.
        bodies = {sub.item_filter: envelope.bodies(sub.item_filter) for sub in takers}
        with self.lock:
            for sub in takers:
                self.dropped_total += sub._push(bodies[sub.item_filter])

    def close(self, reason: str, shutdown: bool) -> None:
        """Ends every subscription after its queue drains; later subscriptions end at once."""
        with self.lock:
            self._closed = (reason, shutdown)
            for sub in self._subs.values():
                sub._close(reason, shutdown)

    def counters(self) -> tuple[int, int, list[SubscriberCounters]]:
        """(heaps published, heaps dropped by any subscriber, each live subscriber)."""
        with self.lock:
            subs = [
                SubscriberCounters(
                    s.id,
                    s.queued,
                    s.queued_bytes,
                    s.depth,
                    s.delivered,
                    s.delivered_bytes,
                    s.dropped,
                )
                for s in self._subs.values()
            ]
            return self.published, self.dropped_total, subs


def make_filter(names: Iterable[str], ids: Iterable[int]) -> ItemFilter | None:
    """An :class:`ItemFilter`, or None (every item) when both are empty."""
    name_set = frozenset(names)
    id_set = frozenset(ids)
    if not name_set and not id_set:
        return None
    return ItemFilter(name_set, id_set)
