"""The records a replica writes where the source's records are missing. Pure numpy, time as an argument.

A run of missing seqs [a, b) becomes one record at seq b - 1 (the others are skipped, so readers count
them lost): on a book ring a GAP copy of the last book before it (SNAPSHOT and CROSSED cleared: the book
is not to be trusted until the next SNAPSHOT), or a MARKER|GAP record with no book if there was none; on
trade and ticker rings a MARKER|GAP record that carries no event, never a copy of an old one. The
contents follow feeder.ring.gaps, like every other writer of such records.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from feeder.ring import gaps
from feeder.ring.flags import MARKER
from feeder.ring.schema import record_kind

Span = tuple[int, int]


def gap_record(
    dtype: np.dtype, record_type: str, last: np.void | None, seq: int, now_ns: int, chain: bool = False
) -> np.ndarray:
    """The one record that stands for a run of missing seqs ending at `seq` (contents by the rules of
    feeder.ring.gaps, which every writer of such records follows: a chain ring gets one chain-wide
    MARKER|GAP, never a copy of one of its instruments' books)."""
    book = record_kind(record_type) == gaps.BOOK
    if not chain and book and last is not None and not int(last["flags"]) & MARKER:
        out = np.array([last], dtype)
        gaps.gap_copy(out, now_ns)
    else:
        out = gaps.marker(dtype, now_ns)
    out["seq"] = seq
    out["ts_publish"] = now_ns
    return out


def compose(
    records: np.ndarray,
    holes: Sequence[Span],
    record_type: str,
    last: np.void | None,
    now_ns: int,
    chain: bool = False,
) -> np.ndarray:
    """The records in seq order with a gap record at the end of each hole; `last` is the record before."""
    if not holes:
        return records
    seqs = records["seq"]
    parts, taken = [], 0
    for first, end in holes:
        upto = int(np.searchsorted(seqs, first))
        if upto > taken:
            parts.append(records[taken:upto])
            last = records[upto - 1]
        taken = upto
        gap = gap_record(records.dtype, record_type, last, end - 1, now_ns, chain)
        parts.append(gap)
        last = gap[0]
    parts.append(records[taken:])
    return np.concatenate(parts)
