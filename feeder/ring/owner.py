"""Owning rings: `create_ring` / `RingOwner`, the process (the supervisor) that creates and removes them.

The owner creates a ring's segment and removes it at clean shutdown; writers (writer.py) attach,
publish and detach without removing anything, so a restarted worker finds the same ring and
readers stay attached.

Rules kept here:
- One live owner per ring, enforced by a kernel lock (see segment.py).
- A stale ring (its owner died) is taken over as it is when its layout matches what is asked for:
  records, sequence numbers and attached readers carry on. If the layout differs it is replaced by
  a new segment, and the old one is marked closed so that its readers stop. A stale ring whose
  writer is still alive is never replaced.
- Marking a segment closed always wakes the readers asleep on it (wait.py).
"""

from __future__ import annotations

import logging
import mmap
import os
from pathlib import Path

from feeder.errors import RingError, RingExists
from feeder.ring import segment as seg
from feeder.ring.header import (
    CLOSED,
    OWNER_PID,
    WAIT_PAGE,
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
from feeder.ring.wait import wake_for_close

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

    def mark_closed(self) -> None:
        """Mark the ring closed (readers drain it and stop) but keep the segment until `close()`: an
        instrument that ended keeps its ring a grace period for readers that attach late."""
        if self._mapping.fd is not None and not self._mapping.inherited and not self._words.u32[CLOSED]:
            self._words.u32[CLOSED] = 1
            wake_for_close(self._mapping.mm, WAIT_PAGE)

    def close(self) -> None:
        """Mark the ring closed and remove the segment (idempotent; a forked child only unmaps)."""
        mapping = self._mapping
        if mapping.fd is None:
            return
        if not mapping.inherited:
            self.mark_closed()
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
        assert old.fd is not None  # opened by the caller, closed below
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
            wake_for_close(old.mm, WAIT_PAGE)
        log.warning("ring %s: replaced the stale segment %s: %s", name, old.path, reason)
    finally:
        old.close()
    return RingOwner(seg.Mapping(old.path, fd, mm), check_header(mm, len(mm), str(old.path)))
