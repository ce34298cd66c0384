"""Items: a descriptor together with a value, and the conversion of values to and from bytes.

Values travel in one of three ways, chosen by the descriptor's ``_fastpath``:

* numpy: the bytes are reinterpreted as an array (zero-copy on receive when no byte-order
  change is needed);
* immediate: a scalar integer narrower than 64 bits, sent right-aligned in an item pointer;
* bitwise: legacy formats with odd field widths, packed most significant bit first.
"""

import math
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from spead2._descriptor import (
    FASTPATH_IMMEDIATE,
    FASTPATH_NUMPY,
    Descriptor,
    FormatField,
)

_Decoder = Callable[[int], Any]
_Encoder = Callable[[Any], int]

_FLOAT_STRUCTS = {32: struct.Struct(">f"), 64: struct.Struct(">d")}


class RawItemLike(Protocol):
    """What :meth:`Item.set_from_raw` needs from a received item.

    The value bytes are read through the buffer protocol.
    """

    @property
    def id(self) -> int:
        """Item ID."""

    @property
    def is_immediate(self) -> bool:
        """Whether the value was carried in the item pointer."""

    @property
    def immediate_value(self) -> int:
        """The pointer's value bits (meaningful for immediates only)."""


def _signed(value: int, bits: int) -> int:
    """Interpret the low `bits` bits of `value` as two's complement."""
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _field_decoder(code: str, bits: int) -> _Decoder:
    """Function turning the raw bits of one field into its Python value."""
    if code == "u":
        return lambda raw: raw
    if code == "i":
        return lambda raw: _signed(raw, bits)
    if code == "b":
        return bool
    if code == "c":
        return lambda raw: bytes((raw,))
    packer = _FLOAT_STRUCTS[bits]
    return lambda raw: packer.unpack(raw.to_bytes(packer.size, "big"))[0]


def _check_range(value: int, low: int, high: int, code: str, bits: int) -> int:
    """Return `value` if ``low <= value < high``, else raise ValueError."""
    if not low <= value < high:
        raise ValueError(f"{value} is out of range for {code}{bits}")
    return value


def _field_encoder(code: str, bits: int) -> _Encoder:
    """Function turning a field's value into its raw bits."""
    if code == "u":
        return lambda value: _check_range(int(value), 0, 1 << bits, code, bits)
    if code == "i":
        half = 1 << (bits - 1)
        mask = (1 << bits) - 1
        return lambda value: _check_range(int(value), -half, half, code, bits) & mask
    if code == "b":
        return lambda value: 1 if value else 0
    if code == "c":
        return ord
    packer = _FLOAT_STRUCTS[bits]
    return lambda value: int.from_bytes(packer.pack(value), "big")


def _read_elements(data: np.ndarray, format: Sequence[FormatField], count: int) -> Iterator[Any]:
    """Decode `count` consecutive elements, packed MSB-first, from the start of `data`.

    Each element is one value for a single-field format, or a tuple of field values.
    """
    fields = [(bits, _field_decoder(code, bits)) for code, bits in format]
    element_bits = sum(bits for bits, _ in fields)
    raw = data.tobytes()
    for index in range(count):
        # Convert only the bytes spanning this element, so the cost stays linear in size.
        start = index * element_bits
        first = start // 8
        last = (start + element_bits + 7) // 8
        chunk = int.from_bytes(raw[first:last], "big")
        remaining = (last - first) * 8 - (start - first * 8)
        values = []
        for bits, decode in fields:
            remaining -= bits
            values.append(decode((chunk >> remaining) & ((1 << bits) - 1)))
        yield values[0] if len(values) == 1 else tuple(values)


def _nest(shape: Sequence[int], values: Iterator[Any]) -> Any:
    """Arrange values from `values` into nested lists of the given shape."""
    if not shape:
        return next(values)
    return [_nest(shape[1:], values) for _ in range(shape[0])]


class _BitWriter:
    """Accumulates fields MSB-first into a bytearray, padding the last byte with zeros."""

    def __init__(self) -> None:
        self.output = bytearray()
        self._pending = 0
        self._pending_bits = 0

    def write(self, value: int, bits: int) -> None:
        """Append the low `bits` bits of the non-negative `value`."""
        self._pending = (self._pending << bits) | value
        self._pending_bits += bits
        whole = self._pending_bits // 8
        if whole:
            self._pending_bits -= whole * 8
            self.output += (self._pending >> self._pending_bits).to_bytes(whole, "big")
            self._pending &= (1 << self._pending_bits) - 1

    def finish(self) -> bytearray:
        """Flush any partial byte and return the output."""
        if self._pending_bits:
            self.output.append((self._pending << (8 - self._pending_bits)) & 0xFF)
            self._pending = self._pending_bits = 0
        return self.output


def _write_elements(array: np.ndarray, format: Sequence[FormatField]) -> bytearray:
    """Encode every element of `array` (in C order) with the bitwise legacy format."""
    fields = [(bits, _field_encoder(code, bits)) for code, bits in format]
    writer = _BitWriter()
    for element in array.flat:
        parts = (element,) if len(fields) == 1 else tuple(element)
        for (bits, encode), part in zip(fields, parts, strict=True):
            writer.write(encode(part), bits)
    return writer.finish()


class Item(Descriptor):
    """A descriptor together with its current value.

    Takes the same arguments as :class:`~spead2.Descriptor`, plus the initial `value`.
    The :attr:`version` starts at 1 and increases each time a value is assigned, so that
    consumers can detect updates.
    """

    # Public under the package name, as in spead2 (repr, pickling, documentation).
    __module__ = "spead2"

    version: int

    def __init__(
        self,
        id: int,
        name: str,
        description: str,
        shape: Sequence[int | None],
        dtype: npt.DTypeLike | None = None,
        order: str = "C",
        format: Sequence[FormatField] | None = None,
        *,
        value: Any = None,
    ) -> None:
        super().__init__(id, name, description, shape, dtype, order, format)
        self._value = value
        self.version = 1

    @property
    def value(self) -> Any:
        """Current value (``None`` until one is set). Assigning increments :attr:`version`."""
        return self._value

    @value.setter
    def value(self, new_value: Any) -> None:
        if new_value is None:
            raise ValueError("Item value cannot be set to None")
        self._value = new_value
        self.version += 1

    def _is_string(self) -> bool:
        """Whether values are 1-D character arrays, presented as :class:`str`."""
        return self.dtype is None and len(self.shape) == 1 and self.format == [("c", 8)]

    def set_from_raw(self, raw_item: RawItemLike, new_order: str = "=") -> None:
        """Set the value from a received item.

        Parameters
        ----------
        raw_item
            Received item exposing its value bytes through the buffer protocol. For
            immediate items these are the heap-address-sized field of the item pointer,
            in which the value is right-aligned.
        new_order
            Byte order to convert numpy values to (see :meth:`numpy.dtype.newbyteorder`);
            ``'|'`` keeps the order of the data. When no conversion is needed the value
            is a view of `raw_item`'s memory, which it keeps alive.

        Raises
        ------
        ValueError
            If the data holds fewer elements than the shape requires.
        """
        # A view, never a copy: numpy values share memory with the received heap.
        raw = np.array(raw_item, np.uint8, copy=False)
        if raw.ndim != 1:
            raw = raw.reshape(-1)
        available_bits = raw.size * 8
        itemsize_bits = self.itemsize_bits
        if (
            self._fastpath == FASTPATH_IMMEDIATE
            and raw_item.is_immediate
            and available_bits == itemsize_bits
        ):
            self.value = self._immediate_to_value(raw_item.immediate_value)
            return
        max_elements = available_bits // itemsize_bits
        shape = cast(Sequence[int], self.dynamic_shape(max_elements))
        elements = math.prod(shape)
        if elements > max_elements:
            raise ValueError(
                f"Item {self.name} has too few elements for shape ({max_elements} < {elements})"
            )
        used_bytes = (elements * itemsize_bits + 7) // 8
        if raw_item.is_immediate:
            # Immediate values are right-aligned in the item pointer.
            raw = raw[raw.size - used_bytes :]
        else:
            raw = raw[:used_bytes]
        value: Any
        if self._fastpath == FASTPATH_NUMPY:
            value = self._decode_numpy(raw, shape, new_order)
        else:
            value = self._decode_bitwise(raw, shape, elements)
        if len(shape) == 0:
            value = value[()]
        elif self._is_string():
            value = b"".join(value.tolist()).decode("ascii")
        self.value = value

    def _immediate_to_value(self, immediate: int) -> int:
        """Value of a scalar integer item that exactly fills an item pointer."""
        assert self.format is not None
        code, bits = self.format[0]
        return _signed(immediate, bits) if code == "i" else immediate

    def _decode_numpy(self, raw: np.ndarray, shape: Sequence[int], new_order: str) -> np.ndarray:
        array = raw.view(self._internal_dtype).reshape(shape, order=self.order)
        target = array.dtype.newbyteorder(cast(Any, new_order))
        return array.astype(target, copy=False)

    def _decode_bitwise(self, raw: np.ndarray, shape: Sequence[int], elements: int) -> np.ndarray:
        assert self.format is not None
        if elements == 0:
            # Same shape as the nested-list construction below would give, without building
            # one empty list per index of a (possibly huge) leading dimension.
            kept = list(shape[: list(shape).index(0) + 1])
            return np.empty(kept, dtype=self._internal_dtype)
        values = _read_elements(raw, self.format, elements)
        # Built from nested lists, as spead2 does: a leading zero dimension therefore
        # collapses the array to shape (0,).
        return np.array(_nest(shape, values), dtype=self._internal_dtype)

    def _prepare_value(self) -> Any:
        """The value, with a string for a 1-D item split into its characters."""
        value = self._value
        if len(self.shape) == 1:
            if isinstance(value, str):
                return list(value)
            if isinstance(value, bytes):
                return [value[i : i + 1] for i in range(len(value))]
        return value

    def to_buffer(self) -> Any:
        """Encode the value as an object exposing the wire bytes via the buffer protocol.

        Numpy values are returned as arrays, without a copy where the value already has
        the right dtype and memory order; bitwise-encoded values as a ``bytearray``.

        Raises
        ------
        ValueError
            If the value's shape does not match the descriptor, or a field is out of
            range for its bit width.
        """
        array = np.asarray(self._prepare_value(), dtype=self._internal_dtype, order=self.order)
        if not self.compatible_shape(array.shape):
            raise ValueError(f"Value has shape {array.shape}, expected {self.shape}")
        if self._fastpath == FASTPATH_NUMPY:
            # Fortran-order data is sent as the C-order bytes of the transpose.
            return array.T if self.order == "F" else array
        if self._fastpath == FASTPATH_IMMEDIATE and self.itemsize_bits % 8 == 0:
            big_endian = np.array(array, dtype=">u8").reshape(1).view(np.uint8)
            return big_endian[8 - self.itemsize_bits // 8 :]
        assert self.format is not None
        return _write_elements(array, self.format)
