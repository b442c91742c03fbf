"""The monitor's view of one book ring: records and follower events in, a row and event lines out. Pure.

States, as the feeder defines trust: `live` from a SNAPSHOT (or from the first record seen when
attaching mid-stream) until a GAP; `GAP` from a GAP record until the next SNAPSHOT (the book is not
trustworthy); `waiting` before the first record of a segment; `closed` while the feeder is stopped.
Every GAP, SNAPSHOT, entry into a CROSSED book, loss, writer change and re-attach becomes an event line,
so none of them can hide between two screen refreshes.
"""

from __future__ import annotations

import math
from typing import NotRequired, TypedDict

import numpy as np

from feeder import CROSSED, GAP, SNAPSHOT
from feeder.consumers.follow import Attached, Closed, Event, Lost, NewWriter

LIVE, GAP_STATE, WAITING, CLOSED = "live", "GAP", "waiting", "closed"


class Row(TypedDict):
    """What the monitor shows for one ring; the record's part only once there is a record."""

    ring: str
    state: str
    rate: float
    records: int
    lost: int | str  # '-' on a book of a chain ring: a reader loses records of the ring
    gaps: int
    snapshots: int
    crossed: int
    bid: NotRequired[tuple[float, float] | None]  # (price, size) of the best level
    ask: NotRequired[tuple[float, float] | None]
    spread: NotRequired[float | None]
    seq: NotRequired[int]
    change_id: NotRequired[int]
    flags: NotRequired[int]
    age_ms: NotRequired[float]
    instruments: NotRequired[int]  # a chain ring's own row: how many books it carries


class TopOfBook:
    """Counters, trust state and the last record of one book ring."""

    def __init__(self, ring: str):
        self.ring = ring
        self.state = WAITING
        self.last: np.void | None = None
        self.records = self.lost = self.gaps = self.snapshots = self.crossed = 0
        self.rate = 0.0
        self._window = 0
        self._was_crossed = False

    def on_records(self, records: np.ndarray) -> list[str]:
        """Take a batch of records (in order); returns the event lines of its flagged records."""
        n = len(records)
        if not n:
            return []
        flags = records["flags"]
        if self.state == WAITING and not flags[0] & (GAP | SNAPSHOT):
            self.state = LIVE  # attached mid-stream: the book has been live since its last SNAPSHOT
        crossed = (flags & CROSSED) != 0
        entered = crossed & ~np.concatenate(([self._was_crossed], crossed[:-1]))
        self.crossed += int(np.count_nonzero(crossed))
        self._was_crossed = bool(crossed[-1])
        lines = []
        for i in np.flatnonzero(((flags & (GAP | SNAPSHOT)) != 0) | entered):
            lines.extend(self._flagged(records[i], bool(entered[i])))
        self.count(records)
        return lines

    def count(self, records: np.ndarray) -> None:
        """Count a non-empty batch and keep its last record."""
        self.last = records[-1]
        self.records += len(records)
        self._window += len(records)

    def _flagged(self, rec: np.void, entered_crossed: bool) -> list[str]:
        flags, where = int(rec["flags"]), f"seq {rec['seq']} change_id {rec['change_id']}"
        lines = []
        if flags & GAP:
            self.gaps += 1
            self.state = GAP_STATE
            lines.append(f"GAP at {where}: the feeder missed updates; book NOT trustworthy until a SNAPSHOT")
        if flags & SNAPSHOT:
            self.snapshots += 1
            self.state = LIVE
            lines.append(f"SNAPSHOT at {where}: book trustworthy")
        if entered_crossed:
            lines.append(f"CROSSED at {where}: best bid >= best ask")
        return lines

    def on_event(self, event: Event) -> str | None:
        """Take a follower event; returns its line (None for the first attach)."""
        if isinstance(event, Lost):
            self.lost += event.count
            return (
                f"LOST {event.count} records (seq {event.first}-{event.last}): "
                f"this reader was lapped by the writer and did not see them"
            )
        if isinstance(event, NewWriter):
            return f"NEW WRITER (epoch {event.epoch}): a worker (re)attached as the ring's writer"
        if isinstance(event, Closed):
            self.state = CLOSED
            return "CLOSED: the feeder closed the ring; waiting for it to come back"
        if isinstance(event, Attached) and event.again:
            self.state = WAITING
            return f"ATTACHED to the ring's new segment at seq {event.seq} (the feeder was restarted)"
        return None

    def tick(self, elapsed_s: float) -> None:
        """Close a rate window of `elapsed_s` seconds."""
        self.rate = self._window / elapsed_s if elapsed_s > 0 else 0.0
        self._window = 0

    def row(self, now_ns: int) -> Row:
        """What the monitor shows for this ring: plain numbers and strings, None where unknown."""
        rec = self.last
        out: Row = {
            "ring": self.ring,
            "state": self.state,
            "rate": self.rate,
            "records": self.records,
            "lost": self.lost,
            "gaps": self.gaps,
            "snapshots": self.snapshots,
            "crossed": self.crossed,
        }
        if rec is None:
            return out
        bid = _level(rec, "bid", rec["bid_count"])
        ask = _level(rec, "ask", rec["ask_count"])
        out["bid"], out["ask"] = bid, ask
        out["spread"] = ask[0] - bid[0] if bid and ask else None
        out["seq"], out["change_id"] = int(rec["seq"]), int(rec["change_id"])
        out["flags"] = int(rec["flags"])
        out["age_ms"] = (now_ns - int(rec["ts_publish"])) / 1e6
        return out


def _level(rec: np.void, side: str, count: int) -> tuple[float, float] | None:
    if not count:
        return None
    price, size = float(rec[f"{side}_px"][0]), float(rec[f"{side}_sz"][0])
    return None if math.isnan(price) else (price, size)
