"""Item values on the gRPC side: numpy arrays described by a type string, shape and order.

Shared by the daemon and the client, and free of spead2 imports so it can be reasoned about
(and tested) on its own. The rules:

* An item described on the SPEAD side by a numpy ``dtype`` travels as that array (in the
  byte order spead2's ``ItemGroup`` presents it: native).
* An item described by a legacy ``format`` travels as an array of the smallest standard type
  that holds each field (``u4`` -> ``uint8``, ``i12`` -> ``int16``, ``c8`` -> ``S1``, several
  fields -> a structured dtype with fields ``f0``, ``f1``, ...), plus the format itself, so
  any language can rebuild the value without SPEAD's bit-level packing.
* :func:`spead2_value` turns such an array back into exactly what ``spead2.ItemGroup`` would
  have produced (``str`` for 1-D ``c8``, Python ``int`` and object arrays for non-standard
  widths, numpy scalars for 0-d values).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from spead2_gateway._proto import gateway_pb2 as pb

__all__ = [
    "FormatSpec",
    "array_from_bytes",
    "descriptor_from_proto",
    "descriptor_to_proto",
    "dtype_from_wire",
    "dtype_to_wire",
    "format_dtype",
    "is_standard_format",
    "spead2_value",
    "to_array",
]

FormatSpec = Sequence[tuple[str, int]]

# Fields that spead2 decodes through numpy rather than bit by bit.
_STANDARD_FIELDS = {
    ("u", 8),
    ("u", 16),
    ("u", 32),
    ("u", 64),
    ("i", 8),
    ("i", 16),
    ("i", 32),
    ("i", 64),
    ("f", 32),
    ("f", 64),
    ("b", 8),
    ("c", 8),
}


def field_dtype(code: str, bits: int) -> np.dtype:
    """The smallest standard numpy type holding one SPEAD format field."""
    if code in ("u", "i") and 1 <= bits <= 64:
        size = next(n for n in (1, 2, 4, 8) if bits <= 8 * n)
        return np.dtype(f"={code}{size}")
    if code == "f" and bits in (32, 64):
        return np.dtype(f"=f{bits // 8}")
    if code == "b" and 1 <= bits <= 8:
        return np.dtype("?")
    if code == "c" and bits == 8:
        return np.dtype("S1")
    raise ValueError(f"unsupported format field ({code!r}, {bits})")


def format_dtype(format: FormatSpec) -> np.dtype:
    """The container dtype for values of a SPEAD format (structured if several fields)."""
    if not format:
        raise ValueError("empty format")
    fields = [field_dtype(code, bits) for code, bits in format]
    if len(fields) == 1:
        return fields[0]
    return np.dtype([(f"f{i}", f) for i, f in enumerate(fields)])


def is_standard_format(format: FormatSpec) -> bool:
    """Whether spead2 presents values of ``format`` as numpy arrays (not Python ints)."""
    return all((code, bits) in _STANDARD_FIELDS for code, bits in format)


# ------------------------------------------------------------------------------------------
# dtypes as strings


def dtype_to_wire(dtype: np.dtype) -> str:
    """A numpy array-protocol type string, or JSON of the descr for structured dtypes."""
    if dtype.hasobject:
        raise ValueError("object dtypes cannot be transmitted")
    if dtype.fields is None and dtype.subdtype is None:
        return dtype.str
    return json.dumps(np.lib.format.dtype_to_descr(dtype))


def _descr_from_json(value: Any) -> Any:
    """JSON lists back to the tuples numpy expects in a descr."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ValueError("a structured dtype must be a list of fields")
    fields = []
    for entry in value:
        if not isinstance(entry, list) or len(entry) not in (2, 3):
            raise ValueError("each field must be [name, type] or [name, type, shape]")
        name = tuple(entry[0]) if isinstance(entry[0], list) else entry[0]
        parts: list[Any] = [name, _descr_from_json(entry[1])]
        if len(entry) == 3:
            parts.append(tuple(entry[2]))
        fields.append(tuple(parts))
    return fields


def dtype_from_wire(text: str) -> np.dtype:
    """The inverse of :func:`dtype_to_wire`; raises ValueError for anything else."""
    if not text:
        raise ValueError("missing dtype")
    try:
        dtype: np.dtype
        if text.startswith("["):
            dtype = np.dtype(_descr_from_json(json.loads(text)))
        else:
            dtype = np.dtype(text)
    except (TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"invalid dtype {text!r}: {exc}") from None
    if dtype.hasobject:
        raise ValueError(f"invalid dtype {text!r}: object dtypes are not allowed")
    if dtype.itemsize == 0:
        raise ValueError(f"invalid dtype {text!r}: zero-sized elements")
    return dtype


# ------------------------------------------------------------------------------------------
# Values


def to_array(value: Any, format: FormatSpec | None) -> np.ndarray:
    """A value as spead2's ItemGroup presents it, as a plain (non-object) numpy array."""
    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
        return value
    if isinstance(value, np.generic) and not value.dtype.hasobject:
        return np.asarray(value)
    if format is None:
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise ValueError(f"cannot convert a {type(value).__name__} without a format")
        return array
    container = format_dtype(format)
    if isinstance(value, str):
        return np.frombuffer(value.encode("latin-1"), dtype="S1")
    if isinstance(value, bytes) and container == np.dtype("S1"):
        return np.frombuffer(value, dtype="S1")
    if isinstance(value, np.ndarray):
        return _from_object_array(value, container)
    return np.array(value, dtype=container)


def _from_object_array(value: np.ndarray, container: np.dtype) -> np.ndarray:
    out = np.empty(value.shape, dtype=container)
    flat_out = out.reshape(-1)
    for i, element in enumerate(value.reshape(-1).tolist()):
        flat_out[i] = tuple(element) if isinstance(element, list) else element
    return out


def array_to_bytes(array: np.ndarray) -> tuple[bool, memoryview]:
    """(fortran_order, the elements' bytes), without a copy when the array is contiguous."""
    fortran = array.ndim > 1 and array.flags.f_contiguous and not array.flags.c_contiguous
    contiguous = array.T if fortran else np.ascontiguousarray(array)
    return fortran, contiguous.reshape(-1).view(np.uint8).data


def array_from_bytes(
    data: bytes | bytearray | memoryview, dtype_text: str, shape: Sequence[int], fortran: bool
) -> np.ndarray:
    """Rebuild an array; raises ValueError if the bytes do not match dtype and shape."""
    dtype = dtype_from_wire(dtype_text)
    dims = tuple(int(n) for n in shape)
    count = math.prod(dims)
    if count * dtype.itemsize != len(data):
        raise ValueError(
            f"data has {len(data)} bytes but dtype {dtype_text!r} and shape {dims} need "
            f"{count * dtype.itemsize}"
        )
    flat = np.frombuffer(data, dtype=dtype, count=count)
    return flat.reshape(dims, order="F" if fortran else "C")


def spead2_value(array: np.ndarray, format: FormatSpec | None) -> Any:
    """The value spead2's ``ItemGroup.update`` would present for this item.

    ``format`` is the item's SPEAD format (None for items described by a dtype).
    """
    if format is None or is_standard_format(format):
        if format is not None and list(format) == [("c", 8)] and array.ndim == 1:
            return array.tobytes().decode("ascii")
        return array[()] if array.ndim == 0 else array
    if array.ndim == 0:
        return array[()].item()
    out = np.empty(array.shape, dtype=object)
    flat = out.reshape(-1)
    for i, element in enumerate(array.reshape(-1).tolist()):
        flat[i] = element
    return out


# ------------------------------------------------------------------------------------------
# Descriptors


def descriptor_to_proto(
    id: int,
    name: str,
    description: str,
    shape: Sequence[int | None],
    dtype: np.dtype | None,
    format: FormatSpec | None,
    order: str,
) -> pb.Descriptor:
    """A Descriptor message (variable dimensions become -1)."""
    message = pb.Descriptor(
        id=id,
        name=name,
        description=description,
        shape=[-1 if n is None else int(n) for n in shape],
        fortran_order=order == "F",
    )
    if dtype is not None:
        message.dtype = dtype_to_wire(dtype)
    else:
        for code, bits in format or ():
            message.format.add(code=code, bits=bits)
    return message


def descriptor_from_proto(message: pb.Descriptor) -> dict[str, Any]:
    """Keyword arguments for ``ItemGroup.add_item`` (raises ValueError if malformed)."""
    if message.dtype and len(message.format):
        raise ValueError(f"descriptor {message.name!r}: set dtype or format, not both")
    if not message.dtype and not len(message.format):
        raise ValueError(f"descriptor {message.name!r}: needs a dtype or a format")
    if any(n < -1 for n in message.shape):
        raise ValueError(f"descriptor {message.name!r}: negative dimension in shape")
    return {
        "id": message.id,
        "name": message.name,
        "description": message.description,
        "shape": tuple(None if n == -1 else n for n in message.shape),
        "dtype": dtype_from_wire(message.dtype) if message.dtype else None,
        "order": "F" if message.fortran_order else "C",
        "format": [(f.code, f.bits) for f in message.format] if len(message.format) else None,
    }
