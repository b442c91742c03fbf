"""Writing rings: `RingWriter`, the one process (a worker) that publishes records into a ring.

A writer attaches to a ring its owner (owner.py) created, publishes, and detaches without removing
anything; `RingWriter.create` is both roles in one process.

Rules kept here:
- One live writer per ring, enforced by a kernel lock (see segment.py).
- Publishing follows ring.json's write protocol: claim_seq, the slots, write_seq, then one load of
  `sleepers` to learn whether a reader sleeps and must be woken (wait.py). claim_seq never goes
  back: a writer taking over from one that died half-way through a publish declares those records
  torn (seq TORN_SEQ) and moves write_seq past them, so readers count them lost.
- The writer never waits for readers.
- Records go into slots with one copy from the caller's buffer (`publish`, `publish_batch`), or
  are written in place (`claim`, then `commit`).
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from feeder.errors import RingExists, UsageError
from feeder.ring import segment as seg
from feeder.ring.header import (
    CLAIM_SEQ,
    EPOCH,
    HEADER_SIZE,
    LAST_PUBLISH_NS,
    TORN_SEQ,
    WRITE_SEQ,
    WRITER_FENCE,
    WRITER_PID,
    HeaderInfo,
    HeaderWords,
    check_header,
)
from feeder.ring.names import instance_name
from feeder.ring.owner import RingOwner, create_ring
from feeder.ring.wait import Waker

log = logging.getLogger(__name__)


class RingWriter:
    """The single writer of a ring: `publish`, `publish_batch`, or `claim` + `commit`; never waits for readers."""

    __slots__ = (
        "_claim_n", "_claim_seq", "_hq", "_hqi", "_last", "_last_bytes", "_mapping", "_mask", "_mm", "_owner",
        "_size", "_sleepers", "_slot_i64", "_slot_u64", "_slots", "_ts_word", "_waker", "_words",
        "_words_per_record", "capacity", "dtype", "epoch", "info", "instance", "name", "record_type", "records",
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
        self._waker = Waker(mapping.mm)
        with memoryview(mapping.mm) as whole, whole[HEADER_SIZE:] as body:
            self._slot_u64 = body.cast("Q")
            self._slot_i64 = body.cast("q")
            # Slot i, writable, for records written in place (`claim`); also a buffer for pack_into.
            # Made through a memoryview, so that it and every view of it hold the mapping open: the
            # segment cannot be unmapped under them (np.ndarray(buffer=mmap) would not hold it).
            self.records: np.ndarray = np.frombuffer(body, self.dtype)
        self._slots = self.records.view(np.uint64).reshape(info.capacity, self._words_per_record)
        with self._waker.words[self._waker.sleepers :] as rest:
            self._sleepers = rest[:1]  # a view of that one word: the cheapest load in the publish path
        self._claim_seq = self._claim_n = 0
        self._last: np.ndarray | None = None  # the record array `publish` took last, and its bytes
        self._last_bytes: memoryview | None = None
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
        self._words.u32[WRITER_FENCE] = self._waker.writer_fence()
        hq[EPOCH] += 1
        self._waker.wake()  # the previous writer may have died between its write_seq store and its wake
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
        """Publish one record (a 1-element array or a structured scalar of `dtype`); returns its seq.

        One copy, from the record's own buffer into the slot: a record kept and updated in place
        between publishes (only what changed) costs one memcpy here, and when it is published again
        right after itself its checks are not made again (the writer keeps it, and a byte view of it).
        """
        if record is self._last:
            source = self._last_bytes
            if source is None:
                source = self._last_bytes = memoryview(record.view(np.uint8))
        else:
            source = self._source(record)
        hq = self._hq
        try:
            s = hq[WRITE_SEQ]
        except ValueError:  # the views were released by close()
            raise self._closed_error() from None
        slot = s & self._mask
        size = self._size
        start = HEADER_SIZE + slot * size
        hq[CLAIM_SEQ] = s + 1
        self._mm[start : start + size] = source
        word = slot * self._words_per_record
        self._slot_u64[word] = s
        now = time.time_ns()
        self._slot_i64[word + self._ts_word] = now
        hq[WRITE_SEQ] = s + 1
        if self._sleepers[0]:
            self._waker.wake()
        self._hqi[LAST_PUBLISH_NS] = now
        return s

    def _source(self, record: np.ndarray | np.void) -> np.ndarray | np.void:
        """A record `publish` may copy from, checked; an array is kept (see publish), its byte view is
        made only if it comes again next (records of many instruments alternate in a chain ring)."""
        try:
            if (record.dtype is not self.dtype and record.dtype != self.dtype) or record.nbytes != self._size:
                raise self._not_a_record(record)
        except AttributeError:
            raise self._not_a_record(record) from None
        keep = type(record) is np.ndarray and record.flags.c_contiguous
        self._last, self._last_bytes = (record if keep else None), None
        return record

    def publish_batch(self, records: np.ndarray) -> int:
        """Publish a 1-D array of records with one write_seq store; returns the first one's seq."""
        n = self._check_batch(records)
        if self._mm is None:
            raise self._closed_error()
        hq = self._hq
        s = hq[WRITE_SEQ]
        if n == 0:
            return s
        if not records.flags.c_contiguous:
            records = np.ascontiguousarray(records)
        size = self._size
        first = s & self._mask
        head = min(n, self.capacity - first)
        start = HEADER_SIZE + first * size
        hq[CLAIM_SEQ] = s + n
        if head == n:
            self._mm[start : start + n * size] = records
        else:
            self._mm[start : start + head * size] = records[:head]
            self._mm[HEADER_SIZE : HEADER_SIZE + (n - head) * size] = records[head:]
        now = time.time_ns()
        self._stamp(s, n, now)
        hq[WRITE_SEQ] = s + n
        if self._sleepers[0]:
            self._waker.wake()
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
            if self._sleepers[0]:
                self._waker.wake()
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
        if self._sleepers[0]:
            self._waker.wake()
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

    def claim(self, n: int = 1) -> int:
        """Reserve the next `n` slots to write records in place; returns the index of the first in
        `records`. Record k of the batch is `records[(first + k) & (capacity - 1)]`.

        A slot holds the record published `capacity` records ago, not the last one: write every field
        readers need. `seq` and `ts_publish` are the writer's (set by `commit`). Readers never see a
        claimed slot as a new record before `commit()`; a `publish` in between voids the claim.
        """
        hq = self._hq
        try:
            s = hq[WRITE_SEQ]
        except ValueError:
            raise self._closed_error() from None
        if n != 1 and not (isinstance(n, int) and 1 <= n <= self.capacity):
            raise UsageError(
                f"ring {self.name!r}: claim({n!r}) is not allowed: claim from 1 to {self.capacity} slots"
            )
        if hq[CLAIM_SEQ] < s + n:  # claim_seq never goes back (an earlier, larger claim stands)
            hq[CLAIM_SEQ] = s + n
        self._claim_seq, self._claim_n = s, n
        return s & self._mask

    def commit(self) -> int:
        """Publish the records written into the slots of the last `claim`; returns the first one's seq."""
        s, n = self._claim_seq, self._claim_n
        hq = self._hq
        try:
            unclaimed = n == 0 or hq[WRITE_SEQ] != s
        except ValueError:
            raise self._closed_error() from None
        if unclaimed:
            raise UsageError(
                f"ring {self.name!r}: commit() without a claim() before it, or with a publish in between"
            )
        self._claim_n = 0
        now = time.time_ns()
        if n == 1:
            word = (s & self._mask) * self._words_per_record
            self._slot_u64[word] = s
            self._slot_i64[word + self._ts_word] = now
        else:
            self._stamp(s, n, now)
        hq[WRITE_SEQ] = s + n
        if self._sleepers[0]:
            self._waker.wake()
        self._hqi[LAST_PUBLISH_NS] = now
        return s

    def _stamp(self, s: int, n: int, now: int) -> None:
        """seq and ts_publish of the n slots from seq s on (which may wrap around the ring's end)."""
        first = s & self._mask
        head = min(n, self.capacity - first)
        runs = ((first, 0, head), (0, head, n)) if head < n else ((first, 0, n),)
        for slot, lo, hi in runs:
            block = self._slots[slot : slot + hi - lo]
            block[:, 0] = np.arange(s + lo, s + hi, dtype=np.uint64)
            block[:, self._ts_word] = now

    def close(self) -> None:
        """Detach (writer_pid = 0); if this writer created the ring, also remove it."""
        if self._mm is None:
            return
        mapping = self._mapping
        if not mapping.inherited:
            self._hqi[WRITER_PID] = 0
            seg.unlock(mapping.fd, seg.WRITER_LOCK)
        self._last = self._last_bytes = None
        self._slot_u64.release()
        self._slot_i64.release()
        self._sleepers.release()
        self._waker.release()
        self._words.release()
        self._slots = self.records = self._mm = None
        try:
            if self._owner is not None:
                self._owner.close()
            else:
                mapping.close()
        except BufferError:  # detached (and removed, if ours) all the same: only the unmapping waits
            raise UsageError(
                f"writer of ring {self.name!r} closed while views of its slots (writer.records, or "
                f"arrays and memoryviews made from it) are alive: the segment stays mapped until they "
                f"are dropped, and writes through them would still reach it"
            ) from None

    def __enter__(self) -> RingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else f" write_seq={self.write_seq}"
        return f"<RingWriter {self.name!r} instance={self.instance!r} {self.record_type}x{self.capacity} epoch={self.epoch}{state}>"
