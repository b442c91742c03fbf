"""Telling a ring's readers "data may be missing here", through the ring: the one mechanism for every
record type, used by the supervisor (a dead worker's rings) and by a worker taking a ring over.

What the record holds is `feeder.ring.gaps`'s rule (a GAP copy of the last book, a MARKER|GAP record
on an event ring, one MARKER|GAP record for a whole chain ring); this reads the ring's newest record and publishes through the writer it is given.
Marking is idempotent: the supervisor marks the rings of a worker that died and the replacement marks
them again when it takes over; the second call does nothing.
"""

from __future__ import annotations

import time

import numpy as np

from feeder.ring.chains import is_chain
from feeder.ring.flags import MARKER
from feeder.ring.gaps import gap_record, says_gap
from feeder.ring.reader import RingReader
from feeder.ring.writer import RingWriter


def mark_gap(writer: RingWriter, now_ns: int | None = None) -> bool:
    """Publish the GAP record for the writer's ring if it needs one; returns whether it did."""
    now = time.time_ns() if now_ns is None else now_ns
    last = newest(writer.name, writer.instance)
    record = gap_record(last, writer.dtype, writer.record_type, now, chain=is_chain(writer.name))
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
    last = newest(ring, instance)
    return last is not None and not says_gap(
        int(last["flags"]), record_type, is_chain(ring), int(last["instrument_id"])
    )


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
