"""What rings exist on this host (`list_rings`) and removing the stale ones (`clean_stale`).

Looking never changes anything: segments are opened read-only and whether an owner or a writer is
alive is asked of the kernel (is its lock held?), not guessed from a pid. Cleaning removes a
segment only while holding both its owner and writer locks, so it can never remove a ring that a
live process owns or writes, nor race a feeder that is taking the ring over.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from feeder.errors import RingError
from feeder.ring import segment as seg
from feeder.ring.header import (
    CLOSED,
    EPOCH,
    HEADER_SIZE,
    LAST_PUBLISH_NS,
    OWNER_PID,
    WRITE_SEQ,
    WRITER_PID,
    HeaderWords,
    check_header,
)
from feeder.ring.names import SHM_DIR, instance_name, split_segment_name
from feeder.ring.wait import wake_for_close_fd

# status of a ring
LIVE = "live"  # its owner is alive
ORPHANED = "orphaned"  # the owner died, the writer is still alive
STALE = "stale"  # owner and writer are gone: the next owner takes it over; --clean removes it
INVALID = "invalid"  # not a usable ring (bad magic, other version, damaged header)
INCOMPLETE = "incomplete"  # a segment whose creator died before linking it into place
REMOVABLE = (STALE, INVALID, INCOMPLETE)


@dataclass(frozen=True)
class RingInfo:
    """One ring segment as found on this host."""

    name: str
    instance: str
    segment: str
    status: str
    owner_pid: int = 0
    owner_alive: bool = False
    writer_pid: int = 0
    writer_alive: bool = False
    record_type: str = ""
    capacity: int = 0
    size_bytes: int = 0
    write_seq: int = 0
    epoch: int = 0
    closed: bool = False
    created_ns: int = 0
    last_publish_ns: int = 0
    problem: str = ""

    @property
    def stream(self) -> str:
        return self.name.partition(".")[0]

    @property
    def symbol(self) -> str:
        return self.name.partition(".")[2]

    @property
    def last_publish_age_s(self) -> float | None:
        """Seconds since the last publish; None if nothing was ever published."""
        return (time.time_ns() - self.last_publish_ns) / 1e9 if self.last_publish_ns else None

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "stream": self.stream,
            "symbol": self.symbol,
            "last_publish_age_s": self.last_publish_age_s,
        }


def _segments(instance: str | None, all_instances: bool) -> list[tuple[Path, str, str]]:
    """(path, instance, ring name) of every ring segment, including incomplete ones."""
    wanted = None if all_instances else instance_name(instance)
    found = []
    for entry in sorted(os.listdir(SHM_DIR)):
        name = entry[1:].partition(seg.TMP_MARK)[0] if seg.TMP_MARK in entry else entry
        parsed = split_segment_name(name)
        if parsed and (wanted is None or parsed[0] == wanted):
            found.append((Path(SHM_DIR) / entry, *parsed))
    return found


def _inspect(path: Path, instance: str, ring: str) -> RingInfo | None:
    try:
        fd = seg.open_existing(path, writable=False)
    except FileNotFoundError:
        return None
    try:
        return _describe(fd, path, instance, ring)
    finally:
        os.close(fd)


def _describe(fd: int, path: Path, instance: str, ring: str) -> RingInfo:
    owner_alive = seg.is_locked(fd, seg.OWNER_LOCK)
    writer_alive = seg.is_locked(fd, seg.WRITER_LOCK)
    base = partial(RingInfo, name=ring, instance=instance, segment=str(path))
    if seg.TMP_MARK in path.name:
        return base(status=LIVE if owner_alive else INCOMPLETE, owner_alive=owner_alive)
    size = os.fstat(fd).st_size
    head = os.pread(fd, HEADER_SIZE, 0)
    try:
        info = check_header(head, size, str(path))
    except RingError as problem:
        return base(
            status=INVALID,
            size_bytes=size,
            problem=str(problem),
            owner_alive=owner_alive,
            writer_alive=writer_alive,
        )
    status = LIVE if owner_alive else ORPHANED if writer_alive else STALE
    with HeaderWords(head) as words:
        return base(
            owner_pid=words.i64[OWNER_PID],
            writer_pid=words.i64[WRITER_PID],
            write_seq=words.u64[WRITE_SEQ],
            epoch=words.u64[EPOCH],
            closed=bool(words.u32[CLOSED]),
            last_publish_ns=words.i64[LAST_PUBLISH_NS],
            status=status,
            owner_alive=owner_alive,
            writer_alive=writer_alive,
            record_type=info.record_type,
            capacity=info.capacity,
            size_bytes=size,
            created_ns=info.created_ns,
        )


def list_rings(instance: str | None = None, all_instances: bool = False) -> list[RingInfo]:
    """The rings of an instance (default: $FEEDER_INSTANCE or `default`), or of every instance."""
    found = (_inspect(*entry) for entry in _segments(instance, all_instances))
    return [info for info in found if info is not None]


def clean_stale(instance: str | None = None, all_instances: bool = False) -> list[RingInfo]:
    """Remove the segments nobody owns or writes (stale, invalid, incomplete); returns what was removed."""
    return [
        info for info in list_rings(instance, all_instances) if info.status in REMOVABLE and _remove(info)
    ]


def _remove(info: RingInfo) -> bool:
    """Remove a segment if its owner and writer locks can both be taken; marks a ring closed first."""
    path = Path(info.segment)
    try:
        fd = seg.open_existing(path, writable=True)
    except FileNotFoundError:
        return False
    try:
        if not (seg.try_lock(fd, seg.OWNER_LOCK) and seg.try_lock(fd, seg.WRITER_LOCK)):
            return False
        if not seg.same_file(fd, path):
            return False
        if info.status == STALE:
            os.pwrite(fd, (1).to_bytes(4, "little"), CLOSED * 4)
            wake_for_close_fd(fd)
        path.unlink()
        return True
    finally:
        seg.release_fd(fd)
