"""Following a ring by name across feeder restarts, with every loss and writer change reported.

`RingFollower` wraps a `RingReader`. `read()` returns new records as the reader does; what happened
meanwhile comes out of `events()`, in order:

- `Attached`: the first attach, or a re-attach to a new segment of the same name (the feeder was
  restarted); `seq` is the first sequence number the follower will return from it.
- `Lost`: an exact range of sequence numbers the reader could not return (it was lapped by the writer,
  or a slot was torn).
- `NewWriter`: a new writer took the ring over (a restarted worker); its first book record is a SNAPSHOT.
- `Closed`: the owner closed the ring (the feeder stopped); the follower re-attaches when it is back.

Rules kept here: every sequence number from an attach on is either returned or inside a `Lost` range;
the follower never removes or writes a segment (it only ever holds read-only readers).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from feeder import RingNotFound, RingReader

REATTACH_EVERY_S = 0.2  # how often a closed ring's name is looked up again


@dataclass(frozen=True)
class Attached:
    seq: int
    created_ns: int
    epoch: int
    again: bool  # False for the first attach


@dataclass(frozen=True)
class Lost:
    first: int
    count: int

    @property
    def last(self) -> int:
        return self.first + self.count - 1


@dataclass(frozen=True)
class NewWriter:
    epoch: int


@dataclass(frozen=True)
class Closed:
    pass


Event = Attached | Lost | NewWriter | Closed


def missing(first_expected: int, next_seq: int, seqs: np.ndarray) -> list[Lost]:
    """The ranges of [first_expected, next_seq) absent from the ascending `seqs` a read returned."""
    bounds = np.concatenate(
        (np.array([first_expected - 1], np.int64), seqs.astype(np.int64), np.array([next_seq], np.int64))
    )
    holes = np.diff(bounds) - 1
    at = np.flatnonzero(holes > 0)
    return [Lost(int(bounds[i]) + 1, int(holes[i])) for i in at]


class RingFollower:
    """A ring reader that reports its losses as events and survives the feeder being restarted."""

    def __init__(self, reader: RingReader, mode: str = "spin_sleep"):
        self.reader = reader
        self.mode = mode  # the wait of the readers made on re-attach: spin_sleep or spin
        self.ring = reader.name
        self.instance = reader.instance
        self.created_ns = reader.info.created_ns
        self.attaches = 1
        self.records_read = 0
        self.lost = 0
        self.closed = False
        self._epoch_changes = reader.epoch_changes
        self._events: list[Event] = [Attached(reader.start_seq, self.created_ns, reader.epoch, False)]
        self._retry_at = 0.0

    def read(self, max_records: int | None = None) -> np.ndarray:
        """New records in order (at most `max_records`; a read-only copy), empty if none; then `events()`."""
        reader = self.reader
        first, lost = reader.next_seq, reader.lost
        records = reader.read(max_records)
        if reader.lost != lost:
            holes = missing(first, reader.next_seq, records["seq"])
            self._events.extend(holes)
            self.lost += sum(h.count for h in holes)
        if reader.epoch_changes != self._epoch_changes:
            self._epoch_changes = reader.epoch_changes
            self._events.append(NewWriter(reader.epoch))
        self.records_read += len(records)
        if not len(records) and reader.ring_closed:
            self._closed_ring()
        return records

    def events(self) -> list[Event]:
        """What happened since the last call, oldest first."""
        out, self._events = self._events, []
        return out

    @property
    def pending(self) -> bool:
        """True when a read would return something."""
        return not self.closed and self.reader.write_seq != self.reader.next_seq

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` s for something to read; False on timeout or while the ring is closed."""
        if self.closed or self.reader.ring_closed:
            time.sleep(min(timeout, REATTACH_EVERY_S))
            return False
        return self.reader.wait(timeout)

    def _closed_ring(self) -> None:
        if not self.closed:
            self.closed = True
            self._events.append(Closed())
        now = time.monotonic()
        if now < self._retry_at:
            return
        self._retry_at = now + REATTACH_EVERY_S
        try:
            new = RingReader(self.ring, instance=self.instance, start="oldest", wait=self.mode)
        except RingNotFound:
            return
        if new.ring_closed or new.info.created_ns == self.created_ns:
            new.close()
            return
        self.reader.close()
        self.reader, self.closed = new, False
        self.created_ns = new.info.created_ns
        self._epoch_changes = new.epoch_changes
        self.attaches += 1
        self._events.append(Attached(new.start_seq, self.created_ns, new.epoch, True))

    def close(self) -> None:
        self.reader.close()


def wait_any(followers: Sequence[RingFollower], timeout: float) -> bool:
    """Wait up to `timeout` s until one of the followers has something to read."""
    if len(followers) == 1:
        return followers[0].wait(timeout)
    deadline = time.monotonic() + timeout
    pause = 50e-6
    while True:
        if any(f.pending for f in followers):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, 1e-3)
