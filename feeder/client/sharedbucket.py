"""A credit bucket shared by every process of a host: the same arithmetic on state in a small file.

Exchange limits are per account, and a feeder runs one connection per worker process, so all workers
must draw from one bucket. The state (capacity, refill rate, credits, last refill time) is four float64
in `<dir>/<name>.bucket` (mode 0600), mapped into each process; every read-modify-write holds an
exclusive `flock` on the file, so two workers never spend the same credits. Times are CLOCK_MONOTONIC,
which is one clock for the whole host. The first process creates the file; later ones must agree on
capacity and refill rate (a mismatch is a configuration error, named as such).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import time
import weakref
from pathlib import Path

from feeder.core.ratelimit import refill, wait_for
from feeder.errors import ConfigError

_LAYOUT = struct.Struct("<4d")  # capacity, refill_per_s, tokens, last
_STATE = struct.Struct("<2d")  # tokens, last: the part every take rewrites
_STATE_AT = 16


class SharedBucket:
    def __init__(self, directory: str | Path, name: str, capacity: float, refill_per_s: float):
        self.capacity, self.refill_per_s = float(capacity), float(refill_per_s)
        self.path = Path(directory) / f"{name}.bucket"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._map = self._attach()
        except BaseException:
            os.close(self._fd)
            raise
        self._finalizer = weakref.finalize(self, _release, self._map, self._fd)

    def _attach(self) -> mmap.mmap:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if os.fstat(self._fd).st_size < _LAYOUT.size:
                os.ftruncate(self._fd, _LAYOUT.size)
                m = mmap.mmap(self._fd, _LAYOUT.size)
                _LAYOUT.pack_into(m, 0, self.capacity, self.refill_per_s, self.capacity, time.monotonic())
                return m
            m = mmap.mmap(self._fd, _LAYOUT.size)
            capacity, rate, _, _ = _LAYOUT.unpack_from(m)
            if (capacity, rate) != (self.capacity, self.refill_per_s):
                m.close()
                raise ConfigError(
                    "rate_limit",
                    f"capacity={self.capacity:g}, refill_per_s={self.refill_per_s:g}",
                    f"the shared bucket {self.path} was created with capacity={capacity:g}, "
                    f"refill_per_s={rate:g}; every process sharing it must use the same values",
                )
            return m
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _update(self, cost: float, now: float, force: bool, empty: bool, reserve: float = 0.0) -> float:
        """Refill, then take `cost` (if affordable, or forced) or empty the bucket; returns seconds to wait."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            _, _, tokens, last = _LAYOUT.unpack_from(self._map)
            tokens = refill(tokens, last, now, self.capacity, self.refill_per_s)
            wait = 0.0
            if empty:
                tokens = min(tokens, 0.0)
                wait = wait_for(tokens, self.capacity, self.refill_per_s)
            elif force:
                tokens -= cost
            else:
                wait = wait_for(tokens, cost + reserve, self.refill_per_s)
                if wait == 0.0:
                    tokens -= cost
            _STATE.pack_into(self._map, _STATE_AT, tokens, max(last, now))
            return wait
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def take_or_wait(self, cost: float, now: float, reserve: float = 0.0) -> float:
        return self._update(cost, now, force=False, empty=False, reserve=reserve)

    def force_take(self, cost: float, now: float) -> None:
        self._update(cost, now, force=True, empty=False)

    def drain(self, now: float) -> float:
        return self._update(0.0, now, force=False, empty=True)

    def level(self, now: float) -> float:
        fcntl.flock(self._fd, fcntl.LOCK_SH)
        try:
            _, _, tokens, last = _LAYOUT.unpack_from(self._map)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return refill(tokens, last, now, self.capacity, self.refill_per_s)

    def close(self) -> None:
        """Unmap and close (also done when the object is collected); the file stays for the other
        processes (the caller owns the directory)."""
        self._finalizer()


def _release(mapping: mmap.mmap, fd: int) -> None:
    mapping.close()
    os.close(fd)
