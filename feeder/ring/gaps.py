"""What a record that tells readers "data may be missing here" holds: the one set of rules, pure.

Everyone who writes such a record builds it here: the Deribit adapter (a broken or disconnected book,
a disconnected event stream), `feeder.ring.marking` (a dead writer's rings, marked by the supervisor
and again by the worker taking over) and replay (a hole in a ring recording).

- A GAP copy of a book repeats the last published record as it is (levels, counts, change_id,
  prev_change_id, ts_exchange) with `ts_recv` = when the gap was noticed, GAP set and SNAPSHOT and
  CROSSED cleared: those two describe the update that made a record, and a copy applies none.
- A MARKER record (event rings: trades, ticker) carries no event: flags MARKER|GAP, `ts_recv` = when
  the gap was noticed, every other field zero. A copy of the last trade would be counted twice by a
  reader summing `amount`.
- A chain ring (`feeder.ring.chains`: many instruments) is marked with one MARKER|GAP record whose
  instrument_id is 0: it speaks for every instrument of the chain, whatever the record type.
- A ring whose newest record already says so (a book record flagged GAP, a MARKER|GAP record on an
  event ring, a chain-wide MARKER|GAP on a chain ring) needs no new mark, and neither does an empty ring
  (nothing was ever valid there).
`seq` and `ts_publish` are the ring writer's: whatever these records hold there is overwritten.
"""

from __future__ import annotations

import struct

import numpy as np

from feeder.ring.flags import CROSSED, GAP, MARKER, SNAPSHOT
from feeder.ring.schema import record_kind, record_schema

BOOK = "book"
COPY_CLEARS = SNAPSHOT | CROSSED  # flags a GAP copy of a book never carries
_KEEP = 0xFFFFFFFF ^ COPY_CLEARS
_MARK = MARKER | GAP
# every record type starts with the same header (schemas/README.md), so these offsets hold for all
_HEADER = record_schema(BOOK).dtype.fields
_FLAGS, _FLAGS_AT = struct.Struct("<I"), _HEADER["flags"][1]
_TS, _TS_RECV_AT = struct.Struct("<q"), _HEADER["ts_recv"][1]


def gap_copy(record: np.ndarray | memoryview | bytearray, now_ns: int) -> None:
    """Turn the bytes of one book record holding the last published book into its GAP copy, in place
    (struct on the buffer: the adapter calls this on its scratch record, for every live book at once
    when a connection drops)."""
    (flags,) = _FLAGS.unpack_from(record, _FLAGS_AT)
    _FLAGS.pack_into(record, _FLAGS_AT, (flags & _KEEP) | GAP)
    _TS.pack_into(record, _TS_RECV_AT, now_ns)


def marker(dtype: np.dtype, ts_recv: int | np.ndarray) -> np.ndarray:
    """MARKER|GAP records of `dtype`, one per `ts_recv` given (an int: one record)."""
    record = np.zeros(np.shape(ts_recv) or 1, dtype)
    record["flags"] = _MARK
    record["ts_recv"] = ts_recv
    return record


def says_gap(flags: int, record_type: str, chain: bool = False, instrument_id: int = 0) -> bool:
    """Whether a ring whose newest record has `flags` (and `instrument_id`, in a chain ring) already tells
    its readers about a gap."""
    if chain:
        return flags & _MARK == _MARK and instrument_id == 0
    if record_kind(record_type) == BOOK:
        return bool(flags & GAP)
    return flags & _MARK == _MARK


def gap_record(
    last: np.void | None, dtype: np.dtype, record_type: str, now_ns: int, chain: bool = False
) -> np.ndarray | None:
    """The record that marks a ring GAP after its newest record `last`, or None when nothing needs saying."""
    if last is None or says_gap(int(last["flags"]), record_type, chain, int(last["instrument_id"])):
        return None
    if chain or record_kind(record_type) != BOOK:
        return marker(dtype, now_ns)
    record = np.array([last], dtype)
    gap_copy(record, now_ns)
    return record
