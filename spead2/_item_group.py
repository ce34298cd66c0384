"""Item groups: the set of items known on one stream, indexed by ID and by name."""

import logging
from collections.abc import ItemsView, Iterable, KeysView, ValuesView
from typing import Any, Protocol

import numpy.typing as npt

from spead2._descriptor import Descriptor, FormatField
from spead2._item import Item, RawItemLike
from spead2._spead2 import STREAM_CTRL_ID

_logger = logging.getLogger("spead2")

#: Automatically assigned IDs start here, above the range reserved by the protocol.
_FIRST_AUTO_ID = 0x1000


class HeapLike(Protocol):
    """What :meth:`ItemGroup.update` needs from a received heap."""

    @property
    def flavour(self) -> Any:
        """Flavour of the stream the heap came from."""

    def get_descriptors(self) -> Iterable[Any]:
        """Raw descriptors in the heap."""

    def get_items(self) -> Iterable[RawItemLike]:
        """Raw items in the heap (descriptors excluded)."""


def _same_descriptor(a: Descriptor, b: Descriptor) -> bool:
    """Whether two descriptors describe the same item identically."""
    return (
        a.id == b.id
        and a.name == b.name
        and a.description == b.description
        and a.shape == b.shape
        and a.dtype == b.dtype
        and a.order == b.order
        and a.format == b.format
    )


class ItemGroup:
    """Items indexed by either ID or name.

    Re-issued descriptors are handled in one of two ways:

    1. A descriptor identical to the one already held for that ID and name changes
       nothing, except that a new value (if any) is assigned to the existing item.
    2. Otherwise every existing item with the same ID or the same name (possibly two
       different items) is dropped and the new item is added. Its version is set above
       that of every dropped item, so consumers that only compare versions see a change.
    """

    # Public under the package name, as in spead2 (repr, pickling, documentation).
    __module__ = "spead2"

    def __init__(self) -> None:
        self._by_id: dict[int, Item] = {}
        self._by_name: dict[str, Item] = {}

    def _next_free_id(self) -> int:
        item_id = _FIRST_AUTO_ID
        while item_id in self._by_id:
            item_id += 1
        return item_id

    def _remove_item(self, item: Item) -> None:
        del self._by_id[item.id]
        del self._by_name[item.name]

    def _add_item(self, item: Item) -> None:
        """Insert `item`, applying the re-issue rules described on the class."""
        by_id = self._by_id.get(item.id)
        by_name = self._by_name.get(item.name)
        if by_id is not None and by_id is by_name and _same_descriptor(by_id, item):
            if item.value is not None:
                by_id.value = item.value
            return
        dropped = [old for old in (by_id, by_name) if old is not None]
        if by_name is by_id:
            dropped = dropped[:1]
        if dropped:
            _logger.info("Descriptor replacement for ID %#x, name %s", item.id, item.name)
            item.version = max(old.version for old in dropped) + 1
            for old in dropped:
                self._remove_item(old)
        self._by_id[item.id] = item
        self._by_name[item.name] = item

    def add_item(
        self,
        id: int | None,
        name: str,
        description: str,
        shape: Iterable[int | None],
        dtype: npt.DTypeLike | None = None,
        order: str = "C",
        format: list[FormatField] | None = None,
        *,
        value: Any = None,
    ) -> Item:
        """Create an item and add it to the group.

        Takes the arguments of :class:`~spead2.Item`. If `id` is ``None``, the lowest
        unused ID from 0x1000 upwards is assigned. See the class description for what
        happens when the ID or name is already in use.

        Returns
        -------
        Item
            The newly constructed item. When it was identical to an existing one, the
            group keeps the existing item (which receives the value) and this is a
            detached copy.
        """
        item_id = self._next_free_id() if id is None else id
        item = Item(item_id, name, description, tuple(shape), dtype, order, format, value=value)
        self._add_item(item)
        return item

    def __getitem__(self, key: int | str) -> Item:
        """Look up an item by name or by ID."""
        if key in self._by_name:
            return self._by_name[key]  # type: ignore[index]
        return self._by_id[key]  # type: ignore[index]

    def __contains__(self, key: object) -> bool:
        """Whether an item with this name or ID exists."""
        return key in self._by_name or key in self._by_id

    def keys(self) -> KeysView[str]:
        """Item names."""
        return self._by_name.keys()

    def ids(self) -> KeysView[int]:
        """Item IDs."""
        return self._by_id.keys()

    def values(self) -> ValuesView[Item]:
        """Items."""
        return self._by_name.values()

    def items(self) -> ItemsView[str, Item]:
        """(name, item) pairs."""
        return self._by_name.items()

    def __len__(self) -> int:
        """Number of items."""
        return len(self._by_name)

    def update(self, heap: HeapLike, new_order: str = "=") -> dict[str, Item]:
        """Apply the descriptors, then the item values, of a received heap.

        Parameters
        ----------
        heap
            Received heap (:class:`spead2.recv.Heap`).
        new_order
            Byte order to convert numpy values to. The default converts to native
            order; ``'|'`` keeps the order of the data. See
            :meth:`numpy.dtype.newbyteorder`.

        Returns
        -------
        dict
            The items whose values were updated by this heap, by name.
        """
        for raw_descriptor in heap.get_descriptors():
            self._add_item(Item.from_raw(raw_descriptor, flavour=heap.flavour))
        updated: dict[str, Item] = {}
        for raw_item in heap.get_items():
            if raw_item.id <= STREAM_CTRL_ID:
                continue  # Protocol control items, not data.
            item = self._by_id.get(raw_item.id)
            if item is None:
                _logger.warning("Item with ID %#x received but there is no descriptor", raw_item.id)
                continue
            item.set_from_raw(raw_item, new_order=new_order)
            # spead2 counts a received value as two version steps; kept for compatibility.
            item.version += 1
            updated[item.name] = item
        return updated
