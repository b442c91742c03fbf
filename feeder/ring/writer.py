"""Owning and writing rings: `create_ring` / `RingOwner` and `RingWriter`.

The owner (the supervisor) creates a ring's segment and removes it at clean shutdown; the writer (a
worker) attaches, publishes, and detaches without removing anything, so a restarted worker finds
the same ring and readers stay attached. `RingWriter.create` is both roles in one process.

Rules kept here:
- One live owner and one live writer per ring, enforced by kernel locks (see segment.py).
- A stale ring (its owner died) is taken over as it is when its layout matches what is asked for:
  records, sequence numbers and attached readers carry on. If the layout differs it is replaced by
  a new segment, and the old one is marked closed so that its readers stop. A stale ring whose
  writer is still alive is never replaced.
- Publishing follows ring.json's write protocol: claim_seq, the slots, write_seq. claim_seq never
  goes back: a writer taking over from one that died half-way through a publish declares those
  records torn (seq TORN_SEQ) and moves write_seq past them, so readers count them lost.
- The writer never waits for readers.
"""

from __future__ import annotations

import logging
import mmap
import os
import time
from pathlib import Path

import numpy as np

from feeder.errors import RingError, RingExists, UsageError
from feeder.ring import segment as seg
from feeder.ring.header import (
    CLAIM_SEQ,
    CLOSED,
    EPOCH,
    HEADER_SIZE,
    LAST_PUBLISH_NS,
    OWNER_PID,
    TORN_SEQ,
    WRITE_SEQ,
    WRITER_PID,
    HeaderInfo,
    HeaderWords,
    check_capacity,
    check_header,
    segment_size,
    write_header,
)
from feeder.ring.names import check_ring_name, instance_name
from feeder.ring.schema import RecordSchema, record_schema

log = logging.getLogger(__name__)

_ATTEMPTS = 5


class RingOwner:
    """The owner of a ring's segment: `close()` marks it closed and removes it."""

    def __init__(self, mapping: seg.Mapping, info: HeaderInfo):
        self._mapping, self.info = mapping, info
        self._words = HeaderWords(mapping.mm)
        self.name: str = info.name
        self.instance: str = info.instance
        self.record_type: str = info.record_type
        self.capacity: int = info.capacity
        self.path: Path = mapping.path

    @property
    def closed(self) -> bool:
        return self._mapping.fd is None

    def close(self) -> None:
        """Mark the ring closed and remove the segment (idempotent; a forked child only unmaps)."""
        mapping = self._mapping
        if mapping.fd is None:
            return
        if not mapping.inherited:
            self._words.u32[CLOSED] = 1
            if seg.same_file(mapping.fd, mapping.path):
                mapping.path.unlink(missing_ok=True)
        self._words.release()
        mapping.close()

    def __enter__(self) -> RingOwner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<RingOwner {self.name!r} instance={self.instance!r} {self.record_type}x{self.capacity} {state}>"
        )


def create_ring(name: str, record_type: str, capacity: int, *, instance: str | None = None) -> RingOwner:
    """Create a ring as its owner (no writer yet), or take over a stale one; `RingExists` if it is owned."""
    check_ring_name(name)
    inst = instance_name(instance)
    schema = record_schema(record_type)
    check_capacity(capacity)
    path = seg.segment_path(name, inst)
    for _ in range(_ATTEMPTS):
        try:
            fd = seg.open_existing(path, writable=True)
        except FileNotFoundError:
            owner = _create_new(path, schema, capacity, name, inst)
        else:
            owner = _take_over(fd, path, schema, capacity, name, inst)
        if owner is not None:
            return owner
    raise RingError(
        f"could not create ring {name!r}: {path} kept appearing and changing; is another feeder of "
        f"instance {inst!r} starting at the same time?"
    )


def _build(
    path: Path, schema: RecordSchema, capacity: int, name: str, inst: str
) -> tuple[int, mmap.mmap, Path]:
    def init(mm: mmap.mmap) -> None:
        with memoryview(mm) as view:
            write_header(view, schema, capacity, name, inst, os.getpid())

    return seg.build(path, segment_size(schema, capacity), init)


def _create_new(path: Path, schema: RecordSchema, capacity: int, name: str, inst: str) -> RingOwner | None:
    fd, mm, tmp = _build(path, schema, capacity, name, inst)
    if not seg.link_new(tmp, path):
        mm.close()
        seg.release_fd(fd)
        return None
    return RingOwner(seg.Mapping(path, fd, mm), check_header(mm, len(mm), str(path)))


def _take_over(
    fd: int, path: Path, schema: RecordSchema, capacity: int, name: str, inst: str
) -> RingOwner | None:
    """Become the owner of an existing segment, or replace it; None to look again."""
    try:
        if not seg.try_lock(fd, seg.OWNER_LOCK):
            pid = seg.peek_i64(fd, OWNER_PID)
            raise RingExists(
                f"ring {name!r} of instance {inst!r} is owned by a live process (pid {pid}, segment "
                f"{path}): stop that feeder first, or use another instance (FEEDER_INSTANCE)"
            )
        if not seg.same_file(fd, path):
            seg.release_fd(fd)
            return None
        mm = seg.map_fd(fd, os.fstat(fd).st_size, writable=True)
    except BaseException:
        seg.release_fd(fd)
        raise
    old = seg.Mapping(path, fd, mm)
    try:
        info = check_header(mm, len(mm), str(path))
    except RingError as problem:
        return _replace(old, None, str(problem), schema, capacity, name, inst)
    if info.record_type == schema.record_type and info.capacity == capacity:
        return _adopt(old, info)
    reason = f"it holds {info.record_type} x {info.capacity}, {schema.record_type} x {capacity} was asked for"
    return _replace(old, info, reason, schema, capacity, name, inst)


def _adopt(old: seg.Mapping, info: HeaderInfo) -> RingOwner:
    owner = RingOwner(old, info)
    words = owner._words
    dead = words.i64[OWNER_PID]
    words.i64[OWNER_PID] = os.getpid()
    words.u32[CLOSED] = 0
    log.warning(
        "ring %s: took over the stale segment %s (owner pid %d is gone); write_seq %d, records kept",
        info.name,
        old.path,
        dead,
        words.u64[WRITE_SEQ],
    )
    return owner


def _replace(
    old: seg.Mapping,
    info: HeaderInfo | None,
    reason: str,
    schema: RecordSchema,
    capacity: int,
    name: str,
    inst: str,
) -> RingOwner:
    """Put a new segment in place of a stale one that cannot be taken over as it is."""
    try:
        if not seg.try_lock(old.fd, seg.WRITER_LOCK):
            pid = seg.peek_i64(old.fd, WRITER_PID)
            raise RingExists(
                f"ring {name!r} of instance {inst!r} cannot be recreated: its owner is gone but its "
                f"writer (pid {pid}) is alive and {reason}; stop pid {pid} first"
            )
        fd, mm, tmp = _build(old.path, schema, capacity, name, inst)
        os.replace(tmp, old.path)
        if info is not None:
            with HeaderWords(old.mm) as words:
                words.u32[CLOSED] = 1
        log.warning("ring %s: replaced the stale segment %s: %s", name, old.path, reason)
    finally:
        old.close()
    return RingOwner(seg.Mapping(old.path, fd, mm), check_header(mm, len(mm), str(old.path)))


class RingWriter:
    """The single writer of a ring: `publish` and `publish_batch` records, never waiting for readers."""

    __slots__ = (
        "_hq", "_hqi", "_mapping", "_mask", "_mm", "_owner", "_size", "_slot_i64", "_slot_u64", "_slots",
        "_ts_word", "_words", "_words_per_record", "capacity", "dtype", "epoch", "info", "instance", "name",
        "record_type",
    )  # fmt: skip

    def __init__(self, mapping: seg.Mapping, info: HeaderInfo, owner: RingOwner | None = None):
        """Use `RingWriter.create` or `RingWriter.attach`: this takes a mapping already locked and checked."""
        self.info, self._mapping, self._owner = info, mapping, owner
        self.name: str = info.name
        self.instance: str = info.instance
        self.record_type: str = info.record_type
        self.capacity: int = info.capacity
        self.dtype: np.dtype = info.schema.dtype
        self._size = info.record_size
        self._words_per_record = info.record_size // 8
        self._ts_word = self.dtype.fields["ts_publish"][1] // 8
        self._mask = info.capacity - 1
        self._mm = mapping.mm
        self._words = HeaderWords(mapping.mm)
        self._hq, self._hqi = self._words.u64, self._words.i64
        with memoryview(mapping.mm) as whole, whole[HEADER_SIZE:] as body:
            self._slot_u64 = body.cast("Q")
            self._slot_i64 = body.cast("q")
        self._slots = np.ndarray((info.capacity, self._words_per_record), np.uint64, mapping.mm, HEADER_SIZE)
        self.epoch: int = self._take_over_sequence()

    def _take_over_sequence(self) -> int:
        """Write protocol, new writer: finish a dead writer's publish as lost, then start a new epoch."""
        hq = self._hq
        claim, write = hq[CLAIM_SEQ], hq[WRITE_SEQ]
        if claim > write:
            # claim_seq never goes back, so readers' lap check still covers the slots it may have torn;
            # its own half-written records are published as torn (their seq never matches): lost.
            for s in range(write, claim):
                self._slot_u64[(s & self._mask) * self._words_per_record] = TORN_SEQ
            hq[WRITE_SEQ] = claim
            log.warning(
                "ring %s: the previous writer died while publishing seq %d..%d; readers count them lost",
                self.name,
                write,
                claim - 1,
            )
        self._hqi[WRITER_PID] = os.getpid()
        hq[EPOCH] += 1
        return hq[EPOCH]

    @classmethod
    def create(cls, name: str, record_type: str, capacity: int, *, instance: str | None = None) -> RingWriter:
        """Create the ring (mode 0600) as its owner and writer; `close()` removes it."""
        owner = create_ring(name, record_type, capacity, instance=instance)
        mapping = owner._mapping
        if not seg.try_lock(mapping.fd, seg.WRITER_LOCK):
            pid = seg.peek_i64(mapping.fd, WRITER_PID)
            owner._words.release()
            mapping.close()
            raise RingExists(
                f"ring {name!r} of instance {owner.instance!r} already has a live writer (pid {pid}), "
                f"left from its previous owner; stop pid {pid} first"
            )
        return cls(mapping, owner.info, owner)

    @classmethod
    def attach(cls, name: str, record_type: str, *, instance: str | None = None) -> RingWriter:
        """Become the writer of an existing ring: a new epoch, sequence numbers carry on."""
        inst = instance_name(instance)
        path = seg.segment_path(name, inst)
        try:
            fd = seg.open_existing(path, writable=True)
        except FileNotFoundError:
            raise seg.not_found(name, inst, path) from None
        try:
            mm = seg.map_fd(fd, os.fstat(fd).st_size, writable=True)
        except BaseException:
            seg.release_fd(fd)
            raise
        mapping = seg.Mapping(path, fd, mm)
        try:
            info = check_header(mm, len(mm), str(path))
            if info.record_type != record_type:
                raise UsageError(
                    f"ring {name!r} of instance {inst!r} holds {info.record_type} records, not {record_type}"
                )
            if not seg.try_lock(fd, seg.WRITER_LOCK):
                pid = seg.peek_i64(fd, WRITER_PID)
                raise RingExists(f"ring {name!r} of instance {inst!r} already has a live writer (pid {pid})")
        except BaseException:
            mapping.close()
            raise
        return cls(mapping, info)

    @property
    def write_seq(self) -> int:
        """The sequence number the next record will get."""
        return self._hq[WRITE_SEQ]

    @property
    def closed(self) -> bool:
        return self._mm is None

    def publish(self, record: np.ndarray | np.void) -> int:
        """Publish one record (a 1-element array or a structured scalar of `dtype`); returns its seq."""
        try:
            raw = record.tobytes()
            same = record.dtype is self.dtype
        except AttributeError:
            raise self._not_a_record(record) from None
        size = self._size
        if len(raw) != size or not (same or record.dtype == self.dtype):
            raise self._not_a_record(record)
        hq = self._hq
        try:
            s = hq[WRITE_SEQ]
        except ValueError:  # the views were released by close()
            raise self._closed_error() from None
        slot = s & self._mask
        word = slot * self._words_per_record
        start = HEADER_SIZE + slot * size
        hq[CLAIM_SEQ] = s + 1
        self._mm[start : start + size] = raw
        self._slot_u64[word] = s
        now = time.time_ns()
        self._slot_i64[word + self._ts_word] = now
        hq[WRITE_SEQ] = s + 1
        self._hqi[LAST_PUBLISH_NS] = now
        return s

    def publish_batch(self, records: np.ndarray) -> int:
        """Publish a 1-D array of records with one write_seq store; returns the first one's seq."""
        n = self._check_batch(records)
        if self._mm is None:
            raise self._closed_error()
        hq = self._hq
        s = hq[WRITE_SEQ]
        if n == 0:
            return s
        first = s & self._mask
        head = min(n, self.capacity - first)
        runs = ((first, 0, head), (0, head, n)) if head < n else ((first, 0, n),)
        source = np.frombuffer(records.tobytes(), np.uint64).reshape(n, self._words_per_record)
        slots = self._slots
        hq[CLAIM_SEQ] = s + n
        now = time.time_ns()
        for slot, lo, hi in runs:
            block = slots[slot : slot + hi - lo]
            block[:] = source[lo:hi]
            block[:, 0] = np.arange(s + lo, s + hi, dtype=np.uint64)
            block[:, self._ts_word] = now
        hq[WRITE_SEQ] = s + n
        self._hqi[LAST_PUBLISH_NS] = now
        return s

    def publish_verbatim(self, records: np.ndarray) -> int:
        """Publish copies of another ring's records byte for byte, each at the seq it carries; returns
        the new write_seq. For replicas: seq and ts_publish are kept, not assigned. Seqs must increase
        and start at write_seq or later; every seq skipped is stamped torn, so readers count it lost."""
        n = self._check_batch(records)
        if self._mm is None:
            raise self._closed_error()
        hq = self._hq
        s = hq[WRITE_SEQ]
        if n == 0:
            return s
        raw = records.tobytes()
        if n == 1 and int.from_bytes(raw[:8], "little") == s:  # the next seq, one record: a plain copy
            start = HEADER_SIZE + (s & self._mask) * self._size
            hq[CLAIM_SEQ] = s + 1
            self._mm[start : start + self._size] = raw
            hq[WRITE_SEQ] = s + 1
            self._hqi[LAST_PUBLISH_NS] = time.time_ns()
            return s + 1
        source = np.frombuffer(raw, np.uint64).reshape(n, self._words_per_record)
        seqs = source[:, 0]
        end = int(seqs[-1]) + 1
        if int(seqs[0]) < s or (n > 1 and not bool(np.all(seqs[1:] > seqs[:-1]))):
            raise UsageError(
                f"ring {self.name!r}: verbatim records need increasing seqs from write_seq {s} on; got "
                f"{int(seqs[0])}..{end - 1} ({n} records)"
            )
        hq[CLAIM_SEQ] = end
        keep = seqs >= end - self.capacity  # older ones would be overwritten in this same publish
        if end - s != n:
            skipped = np.arange(max(s, end - self.capacity), end, dtype=np.uint64)
            self._slots[skipped & np.uint64(self._mask), 0] = TORN_SEQ
        self._slots[seqs[keep] & np.uint64(self._mask)] = source[keep]
        hq[WRITE_SEQ] = end
        self._hqi[LAST_PUBLISH_NS] = time.time_ns()
        return end

    def _check_batch(self, records: np.ndarray) -> int:
        if not isinstance(records, np.ndarray) or records.ndim != 1 or records.dtype != self.dtype:
            raise self._not_a_record(records, batch=True)
        if len(records) > self.capacity:
            raise UsageError(
                f"ring {self.name!r}: a batch of {len(records)} records does not fit its capacity "
                f"{self.capacity}; publish it in parts"
            )
        return len(records)

    def _closed_error(self) -> UsageError:
        return UsageError(f"writer of ring {self.name!r} used after close()")

    def _not_a_record(self, value: object, batch: bool = False) -> UsageError:
        got = getattr(value, "dtype", None)
        shape = getattr(value, "shape", None)
        what = "a 1-D array" if batch else "one record (a 1-element array or structured scalar)"
        return UsageError(
            f"ring {self.name!r} takes {what} of its {self.record_type} dtype "
            f"(np.zeros(n, writer.dtype)); got {type(value).__name__} with dtype {got} and shape {shape}"
        )

    def close(self) -> None:
        """Detach (writer_pid = 0); if this writer created the ring, also remove it."""
        if self._mm is None:
            return
        mapping = self._mapping
        if not mapping.inherited:
            self._hqi[WRITER_PID] = 0
            seg.unlock(mapping.fd, seg.WRITER_LOCK)
        self._slot_u64.release()
        self._slot_i64.release()
        self._words.release()
        self._slots = self._mm = None
        if self._owner is not None:
            self._owner.close()
        else:
            mapping.close()

    def __enter__(self) -> RingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else f" write_seq={self.write_seq}"
        return f"<RingWriter {self.name!r} instance={self.instance!r} {self.record_type}x{self.capacity} epoch={self.epoch}{state}>"
