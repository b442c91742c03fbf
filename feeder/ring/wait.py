"""Sleeping until the writer publishes: ring.json's waiting protocol, reader side and writer side.

`Sleeper` is a reader's: it sleeps on the header's `wakeups` futex word until write_seq moves, the
ring is closed, a deadline passes or its owner asks it to stop. `Waker` is the writer's: after each
publish one load of `sleepers` tells it whether anyone sleeps; only then does it make a system call.
`wake_for_close` is for whoever marks a ring closed.

Rules kept here:
- No lost wake-up. A reader sleeps only while `wakeups` still holds the value it loaded before its
  last look at write_seq and closed, and every event changes `wakeups` after making itself visible.
  Between the reader's `sleepers` store and its re-check, and between the writer's write_seq store
  and its `sleepers` load, there is a full fence: the reader's own (membarrier's), and the writer's
  supplied by the reader's membarrier(GLOBAL_EXPEDITED) into every registered writer, so that a
  publish costs the writer one load and no fence. Where the kernel cannot do that (writer_fence 0),
  each sleep is bounded by `BACKSTOP_S`, so a missed wake-up costs at most that.
- `sleepers` is a flag that only over-estimates: readers set it, only a waker clears it. A reader
  killed in its sleep leaves it set, which costs the writer one needless FUTEX_WAKE, once.
- The reader's writable mapping covers the wait page alone (`wakeups`, `sleepers`): the header page
  and the records stay read-only to it, so a reader still cannot damage records or sequence words.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from feeder.errors import RingError, UsageError
from feeder.ring import futex
from feeder.ring import segment as seg
from feeder.ring.header import (
    CLOSED,
    PAGE,
    SLEEPERS,
    WAIT_PAGE,
    WAKEUPS,
    WRITE_SEQ,
    WRITER_FENCE,
    HeaderWords,
)

BACKSTOP_S = 0.010
# writer_fence values (ring.json)
FENCE_UNKNOWN, FENCE_WRITER, FENCE_MEMBARRIER = 0, 1, 2
_MASK32 = 0xFFFFFFFF


def _unavailable() -> str | None:
    if not futex.AVAILABLE:
        return futex.UNAVAILABLE_REASON
    if mmap.PAGESIZE != PAGE:
        return f"the wait page is {PAGE} bytes and this machine's pages are {mmap.PAGESIZE}"
    return None


class Sleeper:
    """A reader's way to sleep until there is something to read; one per reader, any thread."""

    def __init__(self, path: Path, inode: int, header: HeaderWords):
        """`path` and `inode`: the segment the reader mapped; `header`: its (read-only) header views."""
        problem = _unavailable()
        if problem is not None:
            raise UsageError(f"ring {path.name}: readers cannot sleep in the kernel here: {problem}")
        self._page = _map_wait_page(path, inode)
        self._words = memoryview(self._page).cast("I")
        self._word: ctypes.c_uint32 | None = ctypes.c_uint32.from_buffer(self._page, WAKEUPS * 4)
        self._addr = ctypes.addressof(self._word)
        self._hq, self._u32 = header.u64, header.u32
        self._bitset = 1 << random.randrange(32)  # our own, so that stopping us wakes few others
        self._when = futex.Timespec()

    def sleep(self, r: int, deadline: float | None, stop: Callable[[], bool] | None = None) -> bool:
        """Until write_seq != r: True. False at `deadline` (time.monotonic), or once the ring is closed
        or `stop()` is true with nothing to read."""
        words, addr = self._words, self._addr
        while True:
            expected = words[WAKEUPS]
            ready = self._ready(r, stop)
            if ready is not None:
                return ready
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            words[SLEEPERS] = 1
            futex.fence_everywhere()
            ready = self._ready(r, stop)
            if ready is not None:
                return ready
            futex.wait(addr, expected, self._until(deadline, now), self._bitset, self._when)

    def _ready(self, r: int, stop: Callable[[], bool] | None) -> bool | None:
        if self._hq[WRITE_SEQ] != r:
            return True
        if self._u32[CLOSED] or (stop is not None and stop()):
            return self._hq[WRITE_SEQ] != r
        return None

    def _until(self, deadline: float | None, now: float) -> float | None:
        if self._u32[WRITER_FENCE] != FENCE_UNKNOWN:
            return deadline
        backstop = now + BACKSTOP_S
        return backstop if deadline is None else min(deadline, backstop)

    def interrupt(self) -> None:
        """Wake this sleeper (from another thread) so that it looks at its `stop` again."""
        futex.wake(self._addr, self._bitset)

    def close(self) -> None:
        """Unmap the wait page; no thread may be sleeping here any more."""
        if self._page.closed:
            return
        self._words.release()
        self._word = None  # drops ctypes' export of the mapping
        self._page.close()


def _map_wait_page(path: Path, inode: int) -> mmap.mmap:
    try:
        fd = seg.open_existing(path, writable=True)
    except FileNotFoundError:
        raise RingError(f"{path} was removed while attaching; attach again") from None
    except PermissionError:
        raise RingError(
            f"cannot open {path} for writing: a reader that sleeps in the kernel maps the ring's wait "
            f"page writable, which needs write permission on the segment (its owner's user); or use "
            f"wait='spin' or 'spin_sleep'"
        ) from None
    try:
        if os.fstat(fd).st_ino != inode:
            raise RingError(f"{path} was replaced by a new segment while attaching; attach again")
        return seg.map_page(fd, WAIT_PAGE)
    finally:
        os.close(fd)


class Waker:
    """The writer's side, over its own writable mapping of the whole segment."""

    __slots__ = ("_addr", "_word", "sleepers", "words")

    def __init__(self, mm: mmap.mmap):
        with memoryview(mm) as whole, whole[WAIT_PAGE : WAIT_PAGE + PAGE] as page:
            self.words = page.cast("I")
        self.sleepers = SLEEPERS  # a publish checks `words[sleepers]`, the one cost when nobody sleeps
        self._word: ctypes.c_uint32 | None = ctypes.c_uint32.from_buffer(mm, WAIT_PAGE + WAKEUPS * 4)
        self._addr = ctypes.addressof(self._word)

    @staticmethod
    def writer_fence() -> int:
        """Register this process for readers' membarrier; the writer_fence value it earns."""
        return FENCE_MEMBARRIER if futex.AVAILABLE and futex.register_writer() else FENCE_UNKNOWN

    def wake(self) -> None:
        """Clear `sleepers`, change `wakeups`, wake every sleeper (write protocol step 4)."""
        words = self.words
        words[SLEEPERS] = 0
        words[WAKEUPS] = (words[WAKEUPS] + 1) & _MASK32
        if futex.AVAILABLE:
            futex.wake(self._addr)

    def release(self) -> None:
        self.words.release()
        self._word = None


def wake_for_close(page: mmap.mmap, offset: int) -> None:
    """After storing closed = 1: add 1 to `wakeups` atomically and wake every sleeper.

    `page` is a writable mapping holding the wait page at `offset`. Atomic, because the writer may
    be changing `wakeups` at the same moment.
    """
    if not futex.AVAILABLE:
        return
    word = ctypes.c_uint32.from_buffer(page, offset + WAKEUPS * 4)
    try:
        futex.add_one_and_wake(ctypes.addressof(word))
    finally:
        del word


def wake_for_close_fd(fd: int) -> None:
    """`wake_for_close` for a segment open on `fd` that this process has not mapped."""
    page = seg.map_page(fd, WAIT_PAGE)
    try:
        wake_for_close(page, 0)
    finally:
        page.close()
