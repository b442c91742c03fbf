"""Shared-memory segments of rings: paths, atomic creation, mapping, and the owner/writer locks.

A ring's segment is the file /dev/shm/feeder.<instance>.<ring> (the object shm_open calls
/feeder.<instance>.<ring>). It is handled as a plain file, not through multiprocessing.shared_memory:
that module registers even merely attached segments with the resource tracker, which unlinks them
when the process exits.

Rules kept here:
- A segment appears fully formed: it is built under a hidden temporary name, its memory reserved
  (so a full /dev/shm fails at creation, not as a SIGBUS in the middle of a publish), its header
  written, and only then linked into place.
- Liveness is a kernel lock, not a pid: the owner holds an open-file-description (OFD) write lock on
  byte 0 of the segment, the writer on byte 1. The kernel drops them however the process dies, so
  "is the owner alive?" never depends on a pid that may have been reused. A forked child closes the
  lock descriptors it inherited, so a child never keeps its parent's roles alive.
- Readers open read-only, map read-only and keep no descriptor: they cannot damage a segment. A
  reader that sleeps in the kernel also maps the header's wait page (and only it) writable.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import secrets
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

from feeder.errors import RingError, RingNotFound
from feeder.ring.names import SHM_DIR, segment_name

OWNER_LOCK = 0
WRITER_LOCK = 1
TMP_MARK = ".new-"

# struct flock on 64-bit Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid.
_FLOCK = struct.Struct("hhqqi4x")


def segment_path(ring: str, instance: str | None = None) -> Path:
    return Path(SHM_DIR) / segment_name(ring, instance)


def not_found(ring: str, instance: str, path: Path) -> RingNotFound:
    return RingNotFound(
        f"no ring {ring!r} in feeder instance {instance!r} (no segment {path}). Start the feeder for "
        f"this instance first (python -m feeder ..., with FEEDER_INSTANCE={instance}), or see which rings "
        f"exist with: python -m feeder rings --all"
    )


# --- locks ---------------------------------------------------------------------------------------


def _flock(kind: int, byte: int) -> bytes:
    return _FLOCK.pack(kind, os.SEEK_SET, byte, 1, 0)


def try_lock(fd: int, byte: int) -> bool:
    """Take the OFD write lock on `byte`; False if another open file holds it."""
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_WRLCK, byte))
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    _held_locks.add(fd)
    return True


def unlock(fd: int, byte: int) -> None:
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_UNLCK, byte))


def is_locked(fd: int, byte: int) -> bool:
    """Whether some open file (in any process) holds the lock on `byte`."""
    answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock(fcntl.F_WRLCK, byte))
    kind: int = _FLOCK.unpack(answer)[0]
    return kind != fcntl.F_UNLCK


_held_locks: set[int] = set()


def release_fd(fd: int) -> None:
    """Close a descriptor that may hold locks (dropping them)."""
    _held_locks.discard(fd)
    os.close(fd)


def _drop_inherited_locks() -> None:
    for fd in _held_locks:
        with contextlib.suppress(OSError):  # the child may have closed it already
            os.close(fd)
    _held_locks.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)


# --- files and mappings --------------------------------------------------------------------------


def open_existing(path: Path, writable: bool) -> int:
    """Open a segment; FileNotFoundError if there is none."""
    return os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)


def map_fd(fd: int, size: int, writable: bool) -> mmap.mmap:
    """Map the file open on `fd` through a fresh open file description.

    mmap keeps a duplicate of the descriptor it maps; mapping `fd` itself would let that duplicate
    (and a forked child's copy of it) keep our locks alive.
    """
    fresh = os.open(f"/proc/self/fd/{fd}", (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
    try:
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        return mmap.mmap(fresh, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=prot)
    finally:
        os.close(fresh)


def map_page(fd: int, offset: int) -> mmap.mmap:
    """A writable shared mapping of the one page at `offset` of the file open on `fd`."""
    return mmap.mmap(
        fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=offset
    )


def same_file(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open on `fd` (not unlinked or replaced since)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _reserve(fd: int, size: int, path: Path) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        free = shutil.disk_usage(path.parent).free
        raise RingError(
            f"not enough shared memory for {path.name}: it needs {size} bytes and {path.parent} has "
            f"{free} free; lower the ring capacity or enlarge {path.parent}"
        ) from None


def build(path: Path, size: int, init: Callable[[mmap.mmap], None]) -> tuple[int, mmap.mmap, Path]:
    """A complete new segment under a temporary name beside `path`, owner lock held.

    Returns (fd, mapping, temporary path); the caller links or renames it into place.
    """
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        if not try_lock(fd, OWNER_LOCK):
            raise RingError(f"could not lock the new segment {tmp}")
        _reserve(fd, size, path)
        mm = map_fd(fd, size, writable=True)
        init(mm)
    except BaseException:
        release_fd(fd)
        tmp.unlink(missing_ok=True)
        raise
    return fd, mm, tmp


def link_new(tmp: Path, path: Path) -> bool:
    """Link a built segment into place unless `path` exists; the temporary name goes either way."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def peek_i64(fd: int, index: int) -> int:
    """One 8-byte header field read without mapping (0 if the file is too short)."""
    raw = os.pread(fd, 8, index * 8)
    return int.from_bytes(raw, "little", signed=True) if len(raw) == 8 else 0


class Mapping:
    """An open, mapped segment and the process that opened it."""

    def __init__(self, path: Path, fd: int | None, mm: mmap.mmap):
        self.path, self.fd, self.mm = path, fd, mm
        self.pid = os.getpid()

    @property
    def inherited(self) -> bool:
        """True in a forked child: the locks were dropped there and the roles are the parent's."""
        return os.getpid() != self.pid

    def close(self) -> None:
        """Unmap and close; every view over the mapping must have been released first."""
        if self.fd is not None and not self.inherited:
            release_fd(self.fd)
        self.fd = None
        self.mm.close()
