"""Item descriptors: the metadata (name, shape, type) that tells a receiver how to decode an item.

A descriptor describes its element type in one of two ways:

* a numpy dtype (sent on the wire as a numpy-style header string), or
* a legacy SPEAD *format*: a list of ``(code, bits)`` fields, where the code is one of
  ``u`` (unsigned), ``i`` (signed), ``f`` (IEEE float), ``b`` (boolean) or ``c`` (ASCII
  character). Formats that numpy can represent directly are decoded with numpy; any other
  format (odd bit widths, for example) is decoded bit by bit.
"""

import ast
import math
from collections.abc import Sequence
from typing import Any, Literal, Self, cast

import numpy as np
import numpy.typing as npt

from spead2._spead2 import BUG_COMPAT_SWAP_ENDIAN, Flavour, RawDescriptor

#: How values of a descriptor are decoded and encoded (the ``_fastpath`` attribute).
#: Field by field, one bit at a time.
FASTPATH_NONE = 0
#: A scalar integer narrower than 64 bits, which may travel in an item pointer.
FASTPATH_IMMEDIATE = 1
#: Reinterpretation of the bytes as a numpy array.
FASTPATH_NUMPY = 2

#: Format fields that numpy represents exactly.
_NUMPY_FIELDS = frozenset(
    [("u", bits) for bits in (8, 16, 32, 64)]
    + [("i", bits) for bits in (8, 16, 32, 64)]
    + [("f", 32), ("f", 64), ("b", 8), ("c", 8)]
)

_NUMPY_HEADER_KEYS = ["descr", "fortran_order", "shape"]

FormatField = tuple[str, int]
Shape = tuple[int | None, ...]
Order = Literal["C", "F"]


def _check_field(code: str, bits: int) -> None:
    """Reject a format field that no decoder can handle."""
    if code in ("u", "i", "b") or (code, bits) in _NUMPY_FIELDS:
        return
    raise ValueError(f"illegal format ({code}, {bits})")


def _field_dtype(code: str, bits: int) -> str:
    """Numpy type string for one format field; ``'O'`` if numpy has no exact equivalent."""
    if (code, bits) not in _NUMPY_FIELDS:
        return "O"
    if code == "b":
        return "?"
    if code == "c":
        return "S1"
    # Big-endian, as the SPEAD specification requires.
    return f">{code}{bits // 8}"


def _format_dtype(format: Sequence[Sequence[Any]]) -> tuple[np.dtype, bool]:
    """Find the numpy dtype that holds decoded values of `format`.

    Returns the dtype and whether numpy can decode the raw bytes directly. When it cannot,
    fields without an exact numpy equivalent are held as Python objects.
    """
    fields = [(code, bits) for code, bits in format]
    if not fields:
        raise ValueError("empty format")
    # Lengths are checked before codes, so a zero length (typically a bug_compat mismatch on
    # the descriptor widths) is reported as such rather than as an illegal code.
    for _, bits in fields:
        if bits <= 0:
            if bits == 0:
                raise ValueError("zero-length field (bug_compat mismatch?)")
            raise ValueError("negative-length field")
    for code, bits in fields:
        _check_field(code, bits)
    exact = all(field in _NUMPY_FIELDS for field in fields)
    parts = [_field_dtype(code, bits) for code, bits in fields]
    if len(parts) == 1:
        return np.dtype(parts[0]), exact
    return np.dtype([(f"f{i}", part) for i, part in enumerate(parts)]), exact


def _dtype_to_header(dtype: np.dtype, fortran_order: bool, shape: Shape) -> bytes:
    """Encode the numpy header that describes arrays of `dtype` with `shape`."""
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": fortran_order,
        "shape": tuple(shape),
    }
    return repr(header).encode("ascii")


def _parse_numpy_header(header: str) -> tuple[Shape, str, np.dtype]:
    """Decode a numpy header into (shape, order, dtype).

    The header is untrusted network input, so it is parsed with :func:`ast.literal_eval`
    (literals only, never evaluated) and must hold exactly the three expected keys.
    """
    try:
        info = ast.literal_eval(header)
    except (SyntaxError, RecursionError) as exc:
        raise ValueError(f"Cannot parse descriptor: {header!r}\nException: {exc!r}") from exc
    if not isinstance(info, dict):
        raise ValueError(f"Descriptor is not a dictionary: {info!r}")
    keys = sorted(info.keys())
    if keys != _NUMPY_HEADER_KEYS:
        raise ValueError(f"Descriptor does not contain the correct keys: {keys!r}")
    shape = info["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(x, int) and x >= 0 for x in shape):
        raise ValueError(f"shape is not valid: {shape!r}")
    fortran_order = info["fortran_order"]
    if not isinstance(fortran_order, bool):
        raise ValueError(f"fortran_order is not a valid bool: {fortran_order!r}")
    descr = info["descr"]
    try:
        dtype = np.dtype(descr)
    except TypeError as exc:
        raise ValueError(f"descr is not a valid dtype descriptor: {descr!r}") from exc
    return shape, "F" if fortran_order else "C", dtype


class Descriptor:
    """Metadata for a SPEAD item.

    Parameters
    ----------
    id
        SPEAD item ID.
    name
        Short item name, usable as a key in an :class:`~spead2.ItemGroup`.
    description
        Long human-readable description.
    shape
        Dimensions of the value. At most one dimension may be ``None``, meaning that it
        is inferred from the size of the data (only allowed with `format`).
    dtype
        Numpy data type of each element. Exactly one of `dtype` and `format` is given.
    order
        ``'C'`` or ``'F'`` (Fortran) memory order of multi-dimensional values. Only
        ``'C'`` is allowed with `format`.
    format
        Legacy SPEAD format: a list of ``(code, bits)`` fields.

    Raises
    ------
    ValueError
        If the combination of arguments is invalid (see the messages for details).
    """

    # Public under the package name, as in spead2 (repr, pickling, documentation).
    __module__ = "spead2"

    id: int
    name: str
    description: str
    shape: Shape
    dtype: np.dtype | None
    order: Order
    format: Sequence[FormatField] | None
    _internal_dtype: np.dtype
    _fastpath: int

    def __init__(
        self,
        id: int,
        name: str,
        description: str,
        shape: Sequence[int | None],
        dtype: npt.DTypeLike | None = None,
        order: str = "C",
        format: Sequence[FormatField] | None = None,
    ) -> None:
        shape = tuple(shape)
        unknowns = sum(1 for dim in shape if dim is None)
        if unknowns > 1:
            raise ValueError("Cannot have multiple unknown dimensions")
        if dtype is not None and format is not None:
            raise ValueError("Only one of dtype and format can be specified")
        if dtype is None and format is None:
            raise ValueError("One of dtype and format must be specified")
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.hasobject:
                raise ValueError("Cannot use dtype that has reference-counted objects")
            if dtype.itemsize == 0:
                raise ValueError("Cannot use zero-sized dtype")
            if unknowns:
                raise ValueError("Cannot have unknown dimensions when using numpy descriptor")
            if order not in ("C", "F"):
                raise ValueError("Order must be 'C' or 'F'")
            self._internal_dtype = dtype
            self._fastpath = FASTPATH_NUMPY
        else:
            assert format is not None
            if order != "C":
                raise ValueError("When specifying format, order must be 'C'")
            self._internal_dtype, exact = _format_dtype(format)
            self._fastpath = self._format_fastpath(format, shape, exact)
        self.id = id
        self.name = name
        self.description = description
        self.shape = shape
        self.dtype = dtype
        self.order = cast(Order, order)  # validated above
        self.format = format

    @staticmethod
    def _format_fastpath(format: Sequence[FormatField], shape: Shape, exact: bool) -> int:
        """Choose the decoding strategy for a descriptor given by a format."""
        if exact:
            return FASTPATH_NUMPY
        if shape == () and len(format) == 1:
            code, bits = format[0]
            if code in ("u", "i") and bits <= 64:
                return FASTPATH_IMMEDIATE
        return FASTPATH_NONE

    @property
    def itemsize_bits(self) -> int:
        """Number of bits in one element of the value."""
        if self.dtype is not None:
            return self.dtype.itemsize * 8
        assert self.format is not None
        return sum(bits for _, bits in self.format)

    def is_variable_size(self) -> bool:
        """Whether one of the dimensions is unknown until data arrives."""
        return any(dim is None for dim in self.shape)

    def allow_immediate(self) -> bool:
        """Whether a small value may be sent inside its item pointer.

        Values of variable size, and values whose elements are not a whole number of
        bytes, are always sent as addressed items.
        """
        if self.is_variable_size():
            return False
        return self.dtype is not None or self.itemsize_bits % 8 == 0

    def dynamic_shape(self, max_elements: int) -> Shape | list[int]:
        """Resolve the unknown dimension, if any, to fit at most `max_elements` elements.

        Returns :attr:`shape` unchanged when it has no unknown dimension, otherwise a list
        with the unknown dimension replaced by the largest size that fits.
        """
        if not self.is_variable_size():
            return self.shape
        known = math.prod(dim for dim in self.shape if dim is not None)
        missing = 0 if known == 0 else max_elements // known
        return [missing if dim is None else dim for dim in self.shape]

    def compatible_shape(self, shape: Sequence[int | None]) -> bool:
        """Whether a value of the given shape fits this descriptor.

        Unknown dimensions of the descriptor match any size.
        """
        if len(shape) != len(self.shape):
            return False
        pairs = zip(self.shape, shape, strict=True)
        return all(mine is None or mine == theirs for mine, theirs in pairs)

    @classmethod
    def from_raw(cls, raw: RawDescriptor, flavour: Flavour) -> Self:
        """Build a descriptor from the fields of a received descriptor.

        A non-empty numpy header takes precedence over the shape and format fields. With
        :data:`BUG_COMPAT_SWAP_ENDIAN` in the flavour the byte order of the header's dtype
        is reversed.
        """
        dtype: np.dtype | None = None
        format: list[FormatField] | None = None
        if raw.numpy_header:
            shape, order, dtype = _parse_numpy_header(raw.numpy_header.decode("ascii"))
            if flavour.bug_compat & BUG_COMPAT_SWAP_ENDIAN:
                dtype = dtype.newbyteorder()
        else:
            shape = tuple(raw.shape)
            order = "C"
            format = raw.format
        return cls(
            raw.id,
            raw.name.decode("ascii"),
            raw.description.decode("ascii"),
            shape,
            dtype,
            order,
            format,
        )

    def to_raw(self, flavour: Flavour) -> RawDescriptor:
        """Encode this descriptor's fields for sending with `flavour`.

        A descriptor with a numpy dtype is sent with a numpy header and an empty format; one
        with a format is sent without a numpy header.
        """
        raw = RawDescriptor()
        raw.id = self.id
        raw.name = self.name.encode("ascii")
        raw.description = self.description.encode("ascii")
        raw.shape = [-1 if dim is None else dim for dim in self.shape]
        if self.dtype is not None:
            dtype = self.dtype
            if flavour.bug_compat & BUG_COMPAT_SWAP_ENDIAN:
                dtype = dtype.newbyteorder()
            raw.format = []
            raw.numpy_header = _dtype_to_header(dtype, self.order == "F", self.shape)
        else:
            assert self.format is not None
            raw.format = [(code, bits) for code, bits in self.format]
            raw.numpy_header = b""
        return raw
