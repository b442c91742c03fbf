"""Preallocated ring records and the `struct` packers that fill them.

Owns the per-ring scratch records the adapter writes into. Rules it keeps:
- A packer is built once from the record dtype (schemas/*.json) for a list of fields in layout order;
  gaps between them (reserved bytes, `ts_publish`) are written as zeros. One `pack_into` call fills a
  record: no numpy scalar access, no allocation per message.
- `seq` and `ts_publish` belong to the ring writer; packers never cover `seq`, and the zeros they leave
  in `ts_publish` are overwritten at publish.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

import numpy as np

from feeder.errors import SchemaError
from feeder.ring.schema import record_schema

_CODES = {"u1": "B", "u2": "H", "u4": "I", "u8": "Q", "i1": "b", "i2": "h", "i4": "i", "i8": "q", "f8": "d"}

Packer = Callable[..., None]  # pack_into(buffer, offset, *values)


def packer(record_type: str, names: Sequence[str]) -> tuple[int, Packer]:
    """(offset of the first field, pack_into) for `names`, which must be in layout order."""
    fields = record_schema(record_type).dtype.fields
    if fields is None:
        raise SchemaError(f"{record_type} record has no fields")
    start = fields[names[0]][1]
    fmt, end = "<", start
    for name in names:
        if name not in fields:
            raise SchemaError(f"{record_type} record has no field {name!r}")
        sub, offset = fields[name][:2]
        if offset < end:
            raise SchemaError(f"{record_type} packer: field {name!r} out of layout order")
        code = _CODES.get(sub.base.str[1:])
        if code is None:
            raise SchemaError(f"{record_type} packer: unsupported type {sub.base.str} of {name!r}")
        count = int(np.prod(sub.shape)) if sub.shape else 1
        fmt += f"{offset - end}x" if offset > end else ""
        fmt += f"{count}{code}" if count > 1 else code
        end = offset + sub.itemsize
    return start, struct.Struct(fmt).pack_into


def scratch(record_type: str, count: int = 1) -> np.ndarray:
    """Zeroed records of a type, to be filled in place and published."""
    return np.zeros(count, dtype=record_schema(record_type).dtype)
