"""Telling a ring's readers "data may be missing here": the one mechanism, for every record type.

- A book ring gets a GAP copy of its last record (SNAPSHOT cleared): readers keep the last book they
  saw, know at once that it is stale, and wait for the next SNAPSHOT.
- An event ring (trades, ticker) gets a MARKER|GAP record that carries no event: every field after
  `ts_publish` is zero, `ts_recv` is when the gap was noticed. Copying the last trade instead would make
  a reader that sums `amount` count it twice.
- A chain ring (`feeder.ring.chains`, many instruments) gets one MARKER|GAP record with
  instrument_id 0, which speaks for every instrument of the chain, whatever its record type.
- Marking is idempotent: a ring whose last record already says GAP (a book) or is a GAP marker (an
  event ring) is left alone, and so is an empty ring (nothing was ever valid). The supervisor marks the
  rings of a worker that died, and the replacement worker marks them again when it takes over; the
  second call does nothing.

`gap_record` and `marker` are pure; `mark_gap` reads the ring's newest record and publishes through the
writer it is given.
"""

from __future__ import annotations

import time

import numpy as np

from feeder.ring.chains import is_chain
from feeder.ring.flags import GAP, MARKER, SNAPSHOT
from feeder.ring.reader import RingReader
from feeder.ring.writer import RingWriter

BOOK = "book"
_KEEP = 0xFFFFFFFF ^ SNAPSHOT


def marker(dtype: np.dtype, now_ns: int) -> np.ndarray:
    """A MARKER|GAP record of `dtype`: flags and ts_recv set, everything else zero."""
    record = np.zeros(1, dtype)
    record["flags"] = MARKER | GAP
    record["ts_recv"] = now_ns
    return record


def gap_record(
    last: np.void | None, dtype: np.dtype, record_type: str, now_ns: int, chain: bool = False
) -> np.ndarray | None:
    """The record that marks a ring GAP after `last`, or None when nothing needs saying."""
    if last is None:
        return None
    flags = int(last["flags"])
    if chain:
        return None if flags & MARKER and flags & GAP and not last["instrument_id"] else marker(dtype, now_ns)
    if record_type != BOOK:
        return None if flags & MARKER and flags & GAP else marker(dtype, now_ns)
    if flags & GAP:
        return None
    record = np.array([last], dtype)
    record["flags"] = (flags & _KEEP) | GAP
    record["ts_recv"] = now_ns
    return record


def mark_gap(writer: RingWriter, now_ns: int | None = None) -> bool:
    """Publish the GAP record for the writer's ring if it needs one; returns whether it did."""
    now = time.time_ns() if now_ns is None else now_ns
    last = newest(writer.name, writer.instance)
    record = gap_record(last, writer.dtype, writer.record_type, now, is_chain(writer.name))
    if record is None:
        return False
    writer.publish(record)
    return True


def newest(ring: str, instance: str | None = None) -> np.void | None:
    """The ring's newest intact record, or None."""
    with RingReader(ring, instance=instance) as reader:
        return reader.latest()


def needs_mark(ring: str, record_type: str, instance: str | None = None) -> bool:
    """Whether `mark_gap` would publish anything (so a supervisor attaches as writer only when needed)."""
    with RingReader(ring, instance=instance) as reader:
        return gap_record(reader.latest(), reader.dtype, record_type, 0, is_chain(ring)) is not None


def last_content(ring: str, instance: str | None = None) -> np.void | None:
    """The newest retained record that is not a MARKER (e.g. the last trade before some gaps)."""
    with RingReader(ring, instance=instance, start="oldest") as reader:
        records = reader.read()
    real = np.flatnonzero((records["flags"] & MARKER) == 0)
    return records[real[-1]] if len(real) else None


def last_trades(ring: str, instance: str | None = None) -> dict[int, int]:
    """instrument_id -> trade_seq of its newest retained trade (not a MARKER), for a chain trades ring."""
    with RingReader(ring, instance=instance, start="oldest") as reader:
        records = reader.read()
    real = records[(records["flags"] & MARKER) == 0]
    return {int(iid): int(seq) for iid, seq in zip(real["instrument_id"], real["trade_seq"], strict=True)}
