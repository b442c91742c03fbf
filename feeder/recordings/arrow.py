"""Ring records as Arrow tables: the Arrow schema derived from the record layout, and both conversions.

Rules kept here:
- One column per field of the layout (schemas/ via `feeder.ring.schema`), in layout order, with its own
  type: integers keep their width and signedness, f8 is float64, a field with `count` > 1 (a book's level
  arrays) is a fixed-size list of `count` items, and `ts_*` fields (nanoseconds since the Unix epoch)
  are timestamp[ns, UTC], so pandas, polars or DuckDB show them as times.
- Reserved and padding fields (`_*`, always zero) are left out, and come back as zeros: records ->
  table -> records is byte for byte the same.
- pyarrow is optional (`pip install 'feeder[parquet]'`); pandas too. Using this module without them
  raises a UsageError that says what to install.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from feeder.errors import UsageError

TIMESTAMP_PREFIX = "ts_"


def require_pyarrow() -> Any:
    """The pyarrow module (imported on first use: npy recordings never pay for it), or a UsageError
    saying how to install it."""
    try:
        import pyarrow
    except ImportError:  # the `parquet` extra is not installed
        raise UsageError(
            "Parquet recordings need pyarrow: pip install 'feeder[parquet]' (or use --format npy)"
        ) from None
    return pyarrow


def columns(dtype: np.dtype) -> list[str]:
    """The fields of a record layout that become columns (every field but the reserved `_*` ones)."""
    return [name for name in dtype.names or () if not name.startswith("_")]


def _arrow_type(name: str, field: np.dtype) -> Any:
    pa = require_pyarrow()
    base, shape = field.subdtype or (field, ())
    if base.kind == "S":
        item = pa.binary(base.itemsize)
    elif name.startswith(TIMESTAMP_PREFIX) and base == np.dtype("<i8"):
        item = pa.timestamp("ns", tz="UTC")
    else:
        item = pa.from_numpy_dtype(base)
    return pa.list_(item, int(np.prod(shape))) if shape else item


def arrow_schema(dtype: np.dtype, metadata: dict[str, str] | None = None) -> Any:
    """The Arrow schema of records of `dtype`, with `metadata` (strings) attached."""
    pa = require_pyarrow()
    fields = [pa.field(name, _arrow_type(name, dtype[name]), nullable=False) for name in columns(dtype)]
    return pa.schema(fields, metadata=metadata)


def meta_strings(meta: dict[str, Any]) -> dict[str, str]:
    """The recording's meta fields, as the schema metadata of its Parquet files (all but the numpy descr)."""
    return {k: str(v) for k, v in meta.items() if k != "descr"}


def to_table(records: np.ndarray, schema: Any) -> Any:
    """An Arrow table of `records` (copied column by column), with `schema`."""
    pa = require_pyarrow()
    arrays = []
    for field in schema:
        values = np.ascontiguousarray(records[field.name])
        if pa.types.is_fixed_size_list(field.type):
            flat = _array(pa, field.type.value_type, values.reshape(-1))
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, field.type.list_size))
        else:
            arrays.append(_array(pa, field.type, values))
    return pa.Table.from_arrays(arrays, schema=schema)


def _array(pa: Any, kind: Any, values: np.ndarray) -> Any:
    """An Arrow array over a contiguous numpy array's bytes (not `pa.array`, which imports pandas)."""
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def to_records(table: Any, dtype: np.dtype) -> np.ndarray:
    """The records of a table made by `to_table` (reserved fields zero); UsageError if a column is missing."""
    pa = require_pyarrow()
    out = np.zeros(table.num_rows, dtype)
    for name in columns(dtype):
        if name not in table.column_names:
            raise UsageError(f"the table has no column {name!r}: it does not hold {dtype} records")
        column = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(column.type):
            out[name] = column.flatten().to_numpy(zero_copy_only=False).reshape(out[name].shape)
        elif pa.types.is_timestamp(column.type):
            out[name] = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
        else:
            out[name] = column.to_numpy(zero_copy_only=False)
    return out


def to_frame(table: Any) -> Any:
    """A pandas DataFrame of a table: level arrays stay Arrow lists (`df.bid_px.list[0]`: best bids)."""
    pa = require_pyarrow()
    try:
        import pandas as pd
    except ImportError:
        raise UsageError("a DataFrame needs pandas: pip install pandas (or use the Arrow table)") from None

    def mapper(kind: Any) -> Any:
        return pd.ArrowDtype(kind) if pa.types.is_fixed_size_list(kind) else None

    return table.to_pandas(types_mapper=mapper)
