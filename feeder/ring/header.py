"""The ring header: word-level access to its fields, writing a fresh one, and checking one found in memory.

Offsets come from schemas/ring.json through `schema.header_layout()`; nothing here hard-codes them.
The header is two pages: the header page, written only by the owner and the writer, and the wait
page (`wakeups`, `sleepers`), the one part of a segment a sleeping reader maps writable.
Hot fields (claim_seq, write_seq, ...) are read and written through `memoryview` casts, because one
8-byte aligned store or load through them is a single machine instruction (atomic on x86-64 and
AArch64) and ten times cheaper than numpy scalar access. `check_header` is pure: bytes in, a
`HeaderInfo` or a `RingError` out.
"""

from __future__ import annotations

import mmap
import sys
import time
from dataclasses import dataclass

import numpy as np

from feeder.errors import FingerprintMismatch, NotARing, RingError, RingVersionMismatch, UsageError
from feeder.ring.schema import RECORD_TYPES, RecordSchema, field_offset, header_layout, record_schema

if sys.byteorder != "little":
    raise RingError("feeder rings are little-endian and this CPU is big-endian")

LAYOUT = header_layout()
HEADER_SIZE = LAYOUT.size
MAX_CAPACITY = 1 << 30
# The seq a new writer stamps into the slots a dead writer left half-written: never a valid seq.
TORN_SEQ = (1 << 64) - 1

Buffer = bytes | bytearray | memoryview | mmap.mmap


def _index(field: str, width: int) -> int:
    offset = field_offset(LAYOUT.dtype, field)
    if offset % width:
        raise RingError(f"ring.json: {field} at offset {offset} is not {width}-byte aligned")
    return offset // width


# Indices into the 8-byte ('Q'/'q') and 4-byte ('I') views of the header.
CLAIM_SEQ = _index("claim_seq", 8)
WRITE_SEQ = _index("write_seq", 8)
LAST_PUBLISH_NS = _index("last_publish_ns", 8)
EPOCH = _index("epoch", 8)
OWNER_PID = _index("owner_pid", 8)
WRITER_PID = _index("writer_pid", 8)
CREATED_NS = _index("created_ns", 8)
CAPACITY = _index("capacity", 8)
FINGERPRINT = _index("fingerprint", 8)
CLOSED = _index("closed", 4)
LAYOUT_VERSION = _index("layout_version", 4)
HEADER_SIZE_FIELD = _index("header_size", 4)
RECORD_SIZE = _index("record_size", 4)
WRITER_FENCE = _index("writer_fence", 4)

_MAGIC = field_offset(LAYOUT.dtype, "magic")
_VERSION = field_offset(LAYOUT.dtype, "layout_version")
_PREFIX = max(_MAGIC + len(LAYOUT.magic), _VERSION + 4)  # what tells a ring and its layout version

PAGE = 4096
WAIT_PAGE = field_offset(LAYOUT.dtype, "wakeups")
# Indices into a 4-byte view of the wait page alone.
WAKEUPS = 0
SLEEPERS = (field_offset(LAYOUT.dtype, "sleepers") - WAIT_PAGE) // 4
if WAIT_PAGE % PAGE or not 0 < SLEEPERS < PAGE // 4 or HEADER_SIZE != WAIT_PAGE + PAGE:
    raise RingError("ring.json: wakeups and sleepers must share the last page of the header, alone")


class HeaderWords:
    """Typed views over a header: `u64[i]`, `i64[i]`, `u32[i]` with the indices above."""

    __slots__ = ("i64", "u32", "u64")

    def __init__(self, buf: Buffer):
        with memoryview(buf) as whole, whole[:HEADER_SIZE] as head:
            self.u64 = head.cast("Q")
            self.i64 = head.cast("q")
            self.u32 = head.cast("I")

    def release(self) -> None:
        """Drop the views, so that the mapping under them can be closed."""
        for view in (self.u64, self.i64, self.u32):
            view.release()

    def __enter__(self) -> HeaderWords:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("ascii", "replace")


@dataclass(frozen=True)
class HeaderInfo:
    """The fixed part of a header, as found by `check_header`."""

    name: str
    instance: str
    record_type: str
    capacity: int
    record_size: int
    fingerprint: int
    layout_version: int
    created_ns: int

    @property
    def schema(self) -> RecordSchema:
        return record_schema(self.record_type)

    @property
    def segment_size(self) -> int:
        return HEADER_SIZE + self.capacity * self.record_size


def segment_size(schema: RecordSchema, capacity: int) -> int:
    return HEADER_SIZE + capacity * schema.size


def check_capacity(capacity: int) -> int:
    """Validate a ring capacity and return it."""
    ok = isinstance(capacity, int) and 2 <= capacity <= MAX_CAPACITY and capacity & (capacity - 1) == 0
    if not ok:
        raise UsageError(
            f"ring capacity {capacity!r} is not allowed: use a power of two from 2 to {MAX_CAPACITY}"
        )
    return capacity


def write_header(
    buf: Buffer, schema: RecordSchema, capacity: int, name: str, instance: str, owner_pid: int
) -> None:
    """Fill a zeroed header for a new ring; the magic goes in last so readers never see half a header."""
    head = np.ndarray((), LAYOUT.dtype, buffer=buf)
    head["layout_version"] = LAYOUT.layout_version
    head["header_size"] = HEADER_SIZE
    head["capacity"] = capacity
    head["record_size"] = schema.size
    head["fingerprint"] = schema.fingerprint
    head["record_type"] = schema.record_type.encode()
    head["name"] = name.encode()
    head["instance"] = instance.encode()
    head["created_ns"] = time.time_ns()
    head["owner_pid"] = owner_pid
    head["magic"] = LAYOUT.magic
    del head


def check_header(buf: Buffer, file_size: int, where: str) -> HeaderInfo:
    """Validate the header of a segment of `file_size` bytes; `where` names it in errors.

    `buf` may be shorter than a header when the segment is: magic and layout_version come first, so
    a ring of another layout version is refused as such, whatever its size.
    """
    with memoryview(buf) as view:
        snapshot = bytes(view[: min(HEADER_SIZE, file_size)])  # no view into the segment survives an error
    magic = snapshot[_MAGIC : _MAGIC + len(LAYOUT.magic)]
    if len(snapshot) >= _PREFIX and magic != LAYOUT.magic:
        raise NotARing(f"{where} is not a feeder ring: it starts with {magic!r}, expected {LAYOUT.magic!r}")
    if len(snapshot) < _PREFIX:
        raise NotARing(f"{where} is not a feeder ring: {file_size} bytes, smaller than a ring header")
    version = int.from_bytes(snapshot[_VERSION : _VERSION + 4], "little")
    if version != LAYOUT.layout_version:
        by = "an older" if version < LAYOUT.layout_version else "a newer"
        raise RingVersionMismatch(
            f"{where} has ring layout version {version}, written by {by} feeder; this feeder reads only "
            f"version {LAYOUT.layout_version}: run writers and readers of the same feeder version (restart "
            f"the feeder that owns the ring with this version, or read it with the version that wrote it)"
        )
    if len(snapshot) < HEADER_SIZE:
        raise NotARing(f"{where} is not a feeder ring: {file_size} bytes, smaller than a ring header")
    head = np.frombuffer(snapshot, LAYOUT.dtype)[0]
    record_type = _text(bytes(head["record_type"]))
    if record_type not in RECORD_TYPES:
        raise RingVersionMismatch(
            f"{where} holds {record_type!r} records, a type this feeder does not know "
            f"(known: {', '.join(RECORD_TYPES)}): use the feeder version that wrote it"
        )
    schema = record_schema(record_type)
    fingerprint = int(head["fingerprint"])
    if fingerprint != schema.fingerprint:
        raise FingerprintMismatch(
            f"{where}: the ring's {record_type} layout has fingerprint {fingerprint:#018x}, this "
            f"reader's schemas/{record_type}.json has {schema.fingerprint:#018x}: writer and reader "
            f"were built from different schemas"
        )
    info = HeaderInfo(
        name=_text(bytes(head["name"])),
        instance=_text(bytes(head["instance"])),
        record_type=record_type,
        capacity=int(head["capacity"]),
        record_size=int(head["record_size"]),
        fingerprint=fingerprint,
        layout_version=version,
        created_ns=int(head["created_ns"]),
    )
    _check_geometry(info, int(head["header_size"]), file_size, where)
    return info


def _check_geometry(info: HeaderInfo, header_size: int, file_size: int, where: str) -> None:
    capacity = info.capacity
    problems = []
    if header_size != HEADER_SIZE:
        problems.append(f"header_size {header_size} != {HEADER_SIZE}")
    if info.record_size != info.schema.size:
        problems.append(f"record_size {info.record_size} != {info.schema.size}")
    if capacity < 2 or capacity > MAX_CAPACITY or capacity & (capacity - 1):
        problems.append(f"capacity {capacity} is not a power of two in [2, {MAX_CAPACITY}]")
    elif file_size != info.segment_size:
        problems.append(f"segment is {file_size} bytes, header implies {info.segment_size}")
    if problems:
        raise NotARing(f"{where} has a damaged ring header: {'; '.join(problems)}")
