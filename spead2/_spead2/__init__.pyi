"""Type stubs for the native core, spead2._spead2."""

from collections.abc import Sequence
from typing import ClassVar, Final

from . import recv as recv
from . import send as send

BUG_COMPAT_DESCRIPTOR_WIDTHS: Final[int]
BUG_COMPAT_SHAPE_BIT_1: Final[int]
BUG_COMPAT_SWAP_ENDIAN: Final[int]
BUG_COMPAT_PYSPEAD_0_5_2: Final[int]
NULL_ID: Final[int]
HEAP_CNT_ID: Final[int]
HEAP_LENGTH_ID: Final[int]
PAYLOAD_OFFSET_ID: Final[int]
PAYLOAD_LENGTH_ID: Final[int]
DESCRIPTOR_ID: Final[int]
STREAM_CTRL_ID: Final[int]
DESCRIPTOR_NAME_ID: Final[int]
DESCRIPTOR_DESCRIPTION_ID: Final[int]
DESCRIPTOR_SHAPE_ID: Final[int]
DESCRIPTOR_FORMAT_ID: Final[int]
DESCRIPTOR_ID_ID: Final[int]
DESCRIPTOR_DTYPE_ID: Final[int]
CTRL_STREAM_START: Final[int]
CTRL_DESCRIPTOR_REISSUE: Final[int]
CTRL_STREAM_STOP: Final[int]
CTRL_DESCRIPTOR_UPDATE: Final[int]
MEMCPY_STD: Final[int]
MEMCPY_NONTEMPORAL: Final[int]

class Stopped(Exception): ...
class Empty(Exception): ...
class Full(Exception): ...

class Flavour:
    __hash__: ClassVar[None]  # type: ignore[assignment]
    def __init__(
        self,
        version: int = 4,
        item_pointer_bits: int = 64,
        heap_address_bits: int = 40,
        bug_compat: int = 0,
    ) -> None: ...
    @property
    def version(self) -> int: ...
    @property
    def item_pointer_bits(self) -> int: ...
    @property
    def heap_address_bits(self) -> int: ...
    @property
    def bug_compat(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __ne__(self, other: object) -> bool: ...

class ThreadPool:
    def __init__(self, threads: int = 1, affinity: Sequence[int] | None = None) -> None: ...
    def stop(self) -> None: ...
    @staticmethod
    def set_affinity(core: int) -> None: ...
    @property
    def num_threads(self) -> int: ...

class MemoryAllocator:
    def __init__(self) -> None: ...

class MmapAllocator(MemoryAllocator):
    def __init__(self, flags: int = 0, prefer_huge: bool = False) -> None: ...

class MemoryPool(MemoryAllocator):
    def __init__(self, *args: object, **kwargs: object) -> None:
        """(lower, upper, max_free, initial, allocator=None) or
        (thread_pool, lower, upper, max_free, initial, low_water, allocator=None)."""
    warn_on_empty: bool
    @property
    def stats(self) -> dict[str, int]: ...

class InprocQueue:
    def __init__(self) -> None: ...
    def add_packet(self, packet: bytes | bytearray | memoryview) -> None: ...
    def stop(self) -> None: ...

class RawDescriptor:
    id: int
    name: bytes
    description: bytes
    shape: list[int | None]
    format: list[tuple[str, int]]
    numpy_header: bytes
    def __init__(self) -> None: ...

def log_info(msg: str) -> None: ...
