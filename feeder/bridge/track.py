"""The replica's decisions for one ring, as data: what a batch from the mirror means for the local ring.

Pure: a `Track` (what was written so far) and a batch header with its record seqs in, a `Plan` out. The
replica (replica.py) only carries plans out. Rules kept here:
- The local ring holds the source's records at the source's seqs, so a seq is written once: anything
  below the next expected seq is a duplicate (a resent or repaired batch) and is dropped.
- Seqs between the one expected and a batch's `first` went missing on the way (a slow-consumer drop, a
  server restart, a mirror that started afresh): `missing`, which JetStream may still hold. Seqs inside
  a batch's range without a record were lost at the mirror: `holes`, which nobody holds.
- A new incarnation of the source ring (the feeder restarted, the ring was recreated, or its layout
  changed) cannot continue the local ring's seqs: `replace`. A new writer epoch upstream: `new_epoch`.
- Only the last `capacity` seqs before a batch can still be held by the local ring after it, so a
  repair never asks for more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feeder.bridge.wire import BatchHeader, RingIdentity

Span = tuple[int, int]  # seqs [first, end)


@dataclass(frozen=True)
class Track:
    """What the local copy of one source ring holds: its source incarnation, epoch, next seq expected."""

    identity: RingIdentity
    epoch: int
    next: int | None  # None: nothing written yet


@dataclass(frozen=True)
class Plan:
    replace: bool  # start a new local ring for a new source incarnation
    new_epoch: bool  # a new writer took over the source ring
    missing: Span | None  # lost on the way: [expected, first), worth asking JetStream for
    keep: int  # index of the first record of the batch that is new
    holes: tuple[Span, ...]  # lost at the mirror, within the batch's range
    end: int  # the next seq expected after this batch


def holes_in(seqs: np.ndarray, first: int, end: int) -> tuple[Span, ...]:
    """The maximal runs of seqs in [first, end) that are not in `seqs` (increasing, within the range)."""
    if first >= end:
        return ()
    if len(seqs) == 0:
        return ((first, end),)
    bounds = np.concatenate(([first - 1], seqs.astype(np.int64), [end]))
    jumps = np.flatnonzero(np.diff(bounds) > 1)
    return tuple((int(bounds[i]) + 1, int(bounds[i + 1])) for i in jumps)


def judge(track: Track | None, header: BatchHeader, seqs: np.ndarray) -> Plan:
    """What to do with one batch, given what the local ring holds."""
    kept = None if track is None or header.identity != track.identity else track
    replace = kept is None
    expected = None if kept is None else kept.next
    new_epoch = kept is not None and header.epoch != kept.epoch
    if expected is None:
        expected = header.first
    missing = (expected, header.first) if expected < header.first else None
    keep = int(np.searchsorted(seqs, expected)) if len(seqs) else 0
    end = max(expected, header.end)
    holes = holes_in(seqs[keep:], max(expected, header.first), end)
    return Plan(replace, new_epoch, missing, keep, holes, end)


def reachable(span: Span, capacity: int) -> Span:
    """The part of a missing span that the local ring can still hold once the seqs after it arrive."""
    first, end = span
    return max(first, end - capacity), end


def history(first: int, capacity: int) -> Span:
    """What a late joiner asks JetStream for: the ring's worth of seqs before the first one it saw."""
    return max(0, first - capacity), first
