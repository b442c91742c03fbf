"""Reading a ring: `RingReader` attaches by name and returns every new record in order, or says what it lost.

Rules kept here:
- Read-only: the segment is opened and mapped read-only and no descriptor is kept, so a reader
  cannot remove or damage it however it exits (no multiprocessing.shared_memory, no resource
  tracker).
- ring.json's read protocol, exactly: load write_seq; skip what the writer lapped; copy; load
  claim_seq; discard what may have been overwritten during the copy; discard any slot whose seq is
  not the one expected. Every sequence number from `start_seq` on is either returned once, in
  order, or counted once in `lost`.
- Records come back as read-only copies (numpy arrays over bytes objects): nothing a caller holds
  points into shared memory, and nothing in shared memory changes under it.
- Waiting: "spin" loads write_seq in a loop, "spin_sleep" spins, yields, then sleeps in growing
  steps, "block" sleeps in the kernel until the writer wakes it (wait.py). Coroutines (`next`,
  `next_batch`, `async for`) always sleep in the kernel, through a thread of their own (aio.py).
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np

from feeder.errors import NotARing, RingError, UsageError
from feeder.ring import segment as seg
from feeder.ring.aio import LoopWaiter
from feeder.ring.header import (
    CLAIM_SEQ,
    CLOSED,
    EPOCH,
    HEADER_SIZE,
    WRITE_SEQ,
    WRITER_PID,
    HeaderWords,
    check_header,
)
from feeder.ring.names import check_ring_name, instance_name
from feeder.ring.wait import Sleeper

STARTS = ("newest", "oldest")
WAITS = ("spin", "spin_sleep", "block")

_SPIN_ROUND = 256  # loads of write_seq (~10 us) between looks at the clock and the closed flag
# spin_sleep: spin one round, then spin and yield the CPU between rounds for up to _YIELD_FOR_S, then
# sleep between rounds, each sleep twice as long as the last, up to _LONGEST_SLEEP_S.
_YIELD_FOR_S = 500e-6
_FIRST_SLEEP_S = 50e-6
_LONGEST_SLEEP_S = 1e-3
_SEQ = struct.Struct("<Q")
# Iteration copies at most this many records at a time: a small copy stays in cache and is over before
# the writer can reach its slots, where copying a whole ring behind it is slow and gets lapped.
_ITER_CHUNK = 1024


class RingReader:
    """A reader of one ring, attached by name: `read()`, `latest()`, `wait()`, iteration; for coroutines
    `await next()`, `await next_batch()`, `async for`."""

    def __init__(self, name: str, *, instance: str | None = None, start: str = "newest", wait: str = "spin"):
        if start not in STARTS:
            raise UsageError(f"start={start!r} is not allowed: use one of {', '.join(STARTS)}")
        if wait not in WAITS:
            raise UsageError(f"wait={wait!r} is not allowed: use one of {', '.join(WAITS)}")
        check_ring_name(name)
        self.instance: str = instance_name(instance)
        self.path: Path = seg.segment_path(name, self.instance)
        self._mm, self._inode = _map_read_only(name, self.instance, self.path)
        try:
            self.info = check_header(self._mm, len(self._mm), str(self.path))
        except BaseException:
            self._mm.close()
            raise
        self.name: str = name
        self.record_type: str = self.info.record_type
        self.dtype: np.dtype = self.info.schema.dtype
        self.capacity: int = self.info.capacity
        self._size = self.info.record_size
        self._words_per_record = self._size // 8
        self._mask = self.capacity - 1
        self._end = len(self._mm)
        self._header = HeaderWords(self._mm)
        self._hq = self._header.u64
        self._spin = wait == "spin"
        self._sleeper: Sleeper | None = None
        self._loop_waiter: LoopWaiter | None = None
        if wait == "block":
            try:
                self._sleeper = self._new_sleeper()
            except BaseException:
                self.close()
                raise
        self._empty = np.frombuffer(b"", self.dtype)
        write_seq = self._hq[WRITE_SEQ]
        self.start_seq: int = write_seq if start == "newest" else max(0, write_seq - self.capacity)
        self._next = self.start_seq
        self._epoch = self._hq[EPOCH]
        self.records_read: int = 0  # records returned by read() and iteration
        self.lost: int = 0  # records lapped, or discarded as possibly torn: never returned
        self.epoch_changes: int = 0  # writer takeovers seen since attaching

    # --- live header fields ----------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The ring's current writer epoch (incremented whenever a writer attaches)."""
        return self._hq[EPOCH]

    @property
    def writer_pid(self) -> int:
        """Pid of the attached writer, 0 when none."""
        return self._header.i64[WRITER_PID]

    @property
    def write_seq(self) -> int:
        """The ring's write sequence: one past the last published record."""
        return self._hq[WRITE_SEQ]

    @property
    def next_seq(self) -> int:
        """The sequence number this reader will return next."""
        return self._next

    @property
    def ring_closed(self) -> bool:
        """True once the owner closed or replaced the ring: no more records will come."""
        return bool(self._header.u32[CLOSED])

    # --- reading ---------------------------------------------------------------------------------

    def read(self, max_records: int | None = None) -> np.ndarray:
        """Every new record in order (at most `max_records`), as a read-only copy; empty if none."""
        r = self._next
        try:
            w = self._hq[WRITE_SEQ]
        except ValueError:  # the views were released by close()
            raise UsageError(f"reader of ring {self.name!r} used after close()") from None
        if w <= r:
            return self._empty
        capacity = self.capacity
        if w - r > capacity:
            self.lost += w - capacity - r
            r = w - capacity
        n = w - r
        if max_records is not None:
            n = min(n, self._check_max(max_records))
        size = self._size
        slot = r & self._mask
        start = HEADER_SIZE + slot * size
        if slot + n <= capacity:
            raw = self._mm[start : start + n * size]
        else:
            raw = (
                self._mm[start : self._end]
                + self._mm[HEADER_SIZE : HEADER_SIZE + (slot + n - capacity) * size]
            )
        overwritten = self._hq[CLAIM_SEQ] - capacity - r
        self._next = r + n
        if self._hq[EPOCH] != self._epoch:
            self._note_epoch()
        if overwritten > 0:
            return self._keep_from(raw, r, n, min(overwritten, n))
        if n == 1 and _SEQ.unpack_from(raw)[0] == r:
            self.records_read += 1
            return np.frombuffer(raw, self.dtype)
        return self._checked(raw, r, n, 0)

    def _check_max(self, max_records: int) -> int:
        if not isinstance(max_records, int) or max_records < 1:
            raise UsageError(f"max_records={max_records!r} is not allowed: use a positive integer or None")
        return max_records

    def _keep_from(self, raw: bytes, r: int, n: int, dropped: int) -> np.ndarray:
        """The copy began in slots the writer was already overwriting: drop those, count them lost."""
        self.lost += dropped
        if dropped == n:
            return self._empty
        return self._checked(raw, r + dropped, n - dropped, dropped * self._size)

    def _checked(self, raw: bytes, r: int, n: int, offset: int) -> np.ndarray:
        """Records whose seq field is the one expected; any other slot is torn and counted lost."""
        records = np.frombuffer(raw, self.dtype, n, offset)
        seqs = np.frombuffer(raw, np.uint64, n * self._words_per_record, offset)[:: self._words_per_record]
        good = seqs == np.arange(r, r + n, dtype=np.uint64)
        kept = int(np.count_nonzero(good))
        if kept != n:
            self.lost += n - kept
            records = records[good]
            records.flags.writeable = False
        self.records_read += kept
        return records

    def _note_epoch(self) -> None:
        epoch = self._hq[EPOCH]
        self.epoch_changes += epoch - self._epoch
        self._epoch = epoch

    def latest(self) -> np.void | None:
        """The newest intact record (a copy), or None if there is none; does not move `read`."""
        hq, size, capacity = self._hq, self._size, self.capacity
        while True:
            w = hq[WRITE_SEQ]
            for s in range(w - 1, max(w - capacity, 0) - 1, -1):
                start = HEADER_SIZE + (s & self._mask) * size
                raw = self._mm[start : start + size]
                if s < hq[CLAIM_SEQ] - capacity:
                    break  # lapped while copying: start again from the new newest
                if _SEQ.unpack_from(raw)[0] == s:
                    record: np.void = np.frombuffer(raw, self.dtype)[0]
                    return record
            else:
                return None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until there is something to read: True; False on timeout or once the ring is closed."""
        hq, r = self._hq, self._next
        try:
            if hq[WRITE_SEQ] != r:
                return True
        except ValueError:  # the views were released by close()
            raise UsageError(f"reader of ring {self.name!r} used after close()") from None
        began = time.monotonic()
        deadline = None if timeout is None else began + timeout
        if self._sleeper is not None:
            return self._sleeper.sleep(r, deadline)
        pause = _FIRST_SLEEP_S
        while True:
            for _ in range(_SPIN_ROUND):
                if hq[WRITE_SEQ] != r:
                    return True
            if self._header.u32[CLOSED]:
                return hq[WRITE_SEQ] != r
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            if self._spin:
                continue
            if now - began < _YIELD_FOR_S:
                os.sched_yield()  # other readers sharing this CPU get their turn
            else:
                time.sleep(pause if deadline is None else min(pause, deadline - now))
                pause = min(pause * 2, _LONGEST_SLEEP_S)

    def __iter__(self) -> Iterator[np.void]:
        """Every record in order, waiting for new ones; ends when the ring is closed and drained."""
        while True:
            records = self.read(_ITER_CHUNK)
            if len(records):
                yield from records
            elif not self.wait():
                return

    # --- asyncio ---------------------------------------------------------------------------------
    # A closed reader (closed by another task, say) ends these quietly: no more records.

    async def next_batch(self, max_records: int | None = None, timeout: float | None = None) -> np.ndarray:
        """The next records in order (at least one, at most `max_records`), waiting for them without
        blocking the event loop; empty on timeout, or once the ring is closed and drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._mm.closed:
            records = self.read(max_records)
            if len(records):
                return records
            remaining = None if deadline is None else deadline - time.monotonic()
            if (remaining is not None and remaining <= 0) or not await self._wait_async(remaining):
                break
        return self._empty

    async def next(self, timeout: float | None = None) -> np.void | None:
        """The next record, waiting for it without blocking the event loop; None on timeout, or once
        the ring is closed and drained."""
        records = await self.next_batch(1, timeout)
        return records[0] if len(records) else None

    def __aiter__(self) -> AsyncIterator[np.void]:
        """`async for rec in reader`: every record in order; ends when the ring is closed and drained."""
        return self._iterate_async()

    async def _iterate_async(self) -> AsyncIterator[np.void]:
        while len(records := await self.next_batch(_ITER_CHUNK)):
            for record in records:
                yield record

    async def _wait_async(self, timeout: float | None) -> bool:
        if self._mm.closed:
            return False
        if self._hq[WRITE_SEQ] != self._next:
            return True
        if self._header.u32[CLOSED]:  # (and maybe unlinked already: no wait page to map)
            return self._hq[WRITE_SEQ] != self._next
        if self._loop_waiter is None:
            self._loop_waiter = LoopWaiter(self._new_sleeper(), self.name)
        return await self._loop_waiter.wait(self._next, timeout)

    def _new_sleeper(self) -> Sleeper:
        return Sleeper(self.path, self._inode, self._header)

    # --- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Unmap the ring (never touches the segment itself); stops a coroutine's waiting thread."""
        if self._mm.closed:
            return
        for part in (self._loop_waiter, self._sleeper):
            if part is not None:
                part.close()
        self._header.release()
        self._mm.close()

    def __enter__(self) -> RingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RingReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<RingReader {self.name!r} instance={self.instance!r} {self.record_type}x{self.capacity} "
            f"next={self._next} read={self.records_read} lost={self.lost}>"
        )


def _map_read_only(name: str, instance: str, path: Path) -> tuple[mmap.mmap, int]:
    try:
        fd = seg.open_existing(path, writable=False)
    except FileNotFoundError:
        raise seg.not_found(name, instance, path) from None
    except PermissionError:
        raise RingError(
            f"cannot open {path}: permission denied; rings are private (mode 0600) to the user that runs "
            f"the feeder"
        ) from None
    try:
        size = os.fstat(fd).st_size
        if size < HEADER_SIZE:
            check_header(os.pread(fd, HEADER_SIZE, 0), size, str(path))  # says what it is instead
            raise NotARing(f"{path} is not a feeder ring: {size} bytes, smaller than a ring header")
        return seg.map_fd(fd, size, writable=False), os.fstat(fd).st_ino
    finally:
        os.close(fd)
