"""Record and header layouts, read from the JSON files in `schemas/`.

The JSON files are the single source of truth for what lies in shared memory. This module turns them
into numpy structured dtypes and checks them: offsets are explicit there, so a field that overlaps
another, a misaligned field, or a fingerprint that does not match the layout is a loading error, not
a silent corruption later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from feeder.errors import SchemaError

_TYPES = {
    "u1": "<u1",
    "u2": "<u2",
    "u4": "<u4",
    "u8": "<u8",
    "i1": "<i1",
    "i2": "<i2",
    "i4": "<i4",
    "i8": "<i8",
    "f8": "<f8",
}
BOOK_TYPES = {10: "book", 25: "book25", 50: "book50"}  # book record types by levels per side
RECORD_TYPES = (*BOOK_TYPES.values(), "trade", "ticker", "markprice")
COMMON_FIELDS = ("seq", "flags", "instrument_id", "ts_exchange", "ts_recv", "ts_publish")


def schema_dir() -> Path:
    """Where the schema files are: inside the installed package, or at the top of a checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_schemas", here.parent / "schemas"):
        if (candidate / "ring.json").is_file():
            return candidate
    raise SchemaError(f"schema files not found (looked in {here / '_schemas'} and {here.parent / 'schemas'})")


@dataclass(frozen=True)
class RecordSchema:
    """One record type: its numpy dtype and the 64-bit fingerprint stored in ring headers."""

    record_type: str
    dtype: np.dtype
    fingerprint: int
    layout_version: int
    levels: int | None  # book depth N; None for other record types

    @property
    def size(self) -> int:
        return self.dtype.itemsize


def _field_format(field: dict, where: str) -> tuple[str, int]:
    kind = field.get("type")
    count = int(field.get("count", 1))
    if kind == "char":
        return f"S{count}", count
    if kind not in _TYPES:
        raise SchemaError(f"{where}: field {field.get('name')!r} has unknown type {kind!r}")
    base = _TYPES[kind]
    size = np.dtype(base).itemsize
    if field["offset"] % size:
        raise SchemaError(
            f"{where}: field {field['name']!r} at offset {field['offset']} is not {size}-byte aligned"
        )
    return (base if count == 1 else f"({count},){base}"), size * count


def dtype_from_fields(fields: list[dict], size: int, where: str) -> np.dtype:
    """Build a structured dtype from explicit (name, type, offset, count) fields, checking overlaps."""
    names, formats, offsets = [], [], []
    end = 0
    for field in sorted(fields, key=lambda f: f["offset"]):
        fmt, nbytes = _field_format(field, where)
        if field["offset"] < end:
            raise SchemaError(f"{where}: field {field['name']!r} overlaps the field before it")
        names.append(field["name"])
        formats.append(fmt)
        offsets.append(field["offset"])
        end = field["offset"] + nbytes
    if end > size:
        raise SchemaError(f"{where}: fields end at byte {end}, beyond the declared size {size}")
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})


def compute_fingerprint(record_type: str, size: int, fields: list[dict], layout_version: int) -> int:
    """First 8 bytes (little-endian) of SHA-256 over the canonical layout; documented in schemas/README.md."""
    canon = {
        "layout_version": layout_version,
        "record_type": record_type,
        "size": size,
        "fields": [[f["name"], f["type"], f["offset"], f.get("count", 1)] for f in fields],
    }
    text = json.dumps(canon, separators=(",", ":"), sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _read_json(name: str) -> dict:
    path = schema_dir() / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SchemaError(f"no schema file {path}") from None
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path} is not valid JSON: {exc}") from None


def record_kind(record_type: str) -> str:
    """What a record type holds: `book` for a book of any depth (book, book25, book50), else the type."""
    return "book" if record_type in _BOOK_NAMES else record_type


_BOOK_NAMES = frozenset(BOOK_TYPES.values())


@cache
def record_schema(record_type: str) -> RecordSchema:
    """The schema of a record type (`book`, `book25`, `book50`, `trade`, `ticker`), loaded and verified once."""
    if record_type not in RECORD_TYPES:
        raise SchemaError(f"unknown record type {record_type!r}; expected one of {', '.join(RECORD_TYPES)}")
    doc = _read_json(record_type)
    fields, size, version = doc["fields"], int(doc["size"]), int(doc["layout_version"])
    dtype = dtype_from_fields(fields, size, f"{record_type}.json")
    if tuple(dtype.names[: len(COMMON_FIELDS)]) != COMMON_FIELDS:
        raise SchemaError(f"{record_type}.json must start with the common fields {COMMON_FIELDS}")
    computed = compute_fingerprint(record_type, size, fields, version)
    declared = int(doc["fingerprint"], 16)
    if computed != declared:
        raise SchemaError(
            f"{record_type}.json declares fingerprint {declared:#018x} but its layout hashes to "
            f"{computed:#018x}: the file was edited without updating the fingerprint"
        )
    return RecordSchema(record_type, dtype, computed, version, doc.get("levels"))


@dataclass(frozen=True)
class HeaderLayout:
    dtype: np.dtype
    size: int
    magic: bytes
    layout_version: int
    flags: dict[str, int]


@cache
def header_layout() -> HeaderLayout:
    """The ring header layout from ring.json."""
    doc = _read_json("ring")
    size = int(doc["header_size"])
    dtype = dtype_from_fields(doc["fields"], size, "ring.json")
    return HeaderLayout(
        dtype, size, doc["magic"].encode(), int(doc["layout_version"]), dict(doc["record_flags"])
    )
