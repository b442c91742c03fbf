"""The monitor's view of a chain ring (`book.BTC-options`): one `TopOfBook` per instrument. Pure.

A chain ring carries the books of many instruments, told apart by `instrument_id`; flags speak for their
own instrument, and a MARKER|GAP with `instrument_id` 0 for all of them (feeder.ring.chains). So the
trust state is per instrument: the ring's row says how many books are live and how many are in GAP, and
the instruments updated last get a row each. Event lines: every GAP and CROSSED of an instrument, every
SNAPSHOT that ends a GAP, every chain-wide GAP; the first SNAPSHOT of each book (hundreds when a chain
starts) is counted, not printed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from feeder import GAP
from feeder.consumers.follow import Event
from feeder.consumers.topbook import GAP_STATE, LIVE, WAITING, Row, TopOfBook

CHAIN_WIDE = 0  # the instrument_id of a record that speaks for every instrument of the chain


class ChainTops:
    """Counters and trust state of a chain ring and of each of its instruments."""

    def __init__(self, ring: str, name_of: Callable[[int], str]):
        self.ring = ring
        self.whole = TopOfBook(ring)  # the ring's own counters: records, rate, losses, writer events
        self.tops: dict[int, TopOfBook] = {}
        self._name_of = name_of
        self._last_seq: dict[int, int] = {}

    def on_records(self, records: np.ndarray) -> list[str]:
        """Take a batch of records (in order); returns its event lines, each naming its instrument."""
        if not len(records):
            return []
        self.whole.count(records)
        ids = records["instrument_id"]
        wide = np.flatnonzero((ids == CHAIN_WIDE) & ((records["flags"] & GAP) != 0))
        lines: list[str] = []
        start = 0
        for i in (*wide.tolist(), len(records)):
            lines.extend(self._instruments(records[start:i]))
            if i < len(records):
                lines.append(self._chain_gap(records[i]))
            start = i + 1
        return lines

    def _instruments(self, records: np.ndarray) -> list[str]:
        ids = records["instrument_id"]
        keep = ids != CHAIN_WIDE
        records, ids = records[keep], ids[keep]
        order = np.argsort(ids, kind="stable")  # each instrument's records, still in ring order
        ids, records = ids[order], records[order]
        bounds = np.flatnonzero(np.diff(ids)) + 1
        lines = []
        for group in np.split(records, bounds) if len(records) else ():
            iid = int(group["instrument_id"][0])
            top = self.tops.get(iid)
            if top is None:
                top = self.tops[iid] = TopOfBook(self._name_of(iid))
            first = top.state == WAITING
            for line in top.on_records(group):
                if not (first and line.startswith("SNAPSHOT")):
                    lines.append(f"{top.ring} {line}")
                first = False
            self._last_seq[iid] = int(group["seq"][-1])
        return lines

    def _chain_gap(self, rec: np.void) -> str:
        for top in self.tops.values():
            if top.state != WAITING:
                top.state = GAP_STATE
                top.gaps += 1
        self.whole.gaps += 1
        return (
            f"GAP of the whole chain at seq {rec['seq']}: the stream was interrupted; every book NOT "
            f"trustworthy until its SNAPSHOT"
        )

    def on_event(self, event: Event) -> str | None:
        """A follower event concerns the ring, so every instrument in it."""
        line = self.whole.on_event(event)
        if self.whole.state in (WAITING, "closed"):
            for top in self.tops.values():
                top.state = self.whole.state
        return line

    def tick(self, elapsed_s: float) -> None:
        self.whole.tick(elapsed_s)
        for top in self.tops.values():
            top.tick(elapsed_s)

    def counts(self) -> dict[str, int]:
        """Instruments by trust state."""
        out = {LIVE: 0, GAP_STATE: 0, WAITING: 0}
        for top in self.tops.values():
            out[top.state] = out.get(top.state, 0) + 1
        return out

    def state(self) -> str:
        """The ring's state: its own when closed or empty, else `live` or `GAP k/n` (books in GAP)."""
        if self.whole.state == "closed" or not self.tops:
            return self.whole.state
        gapped = self.counts()[GAP_STATE]
        return f"GAP {gapped}/{len(self.tops)}" if gapped else LIVE

    def rows(self, now_ns: int, most: int) -> list[Row]:
        """The ring's row (counters, no prices), then the `most` instruments updated last."""
        ring = self.whole.row(now_ns)
        ring.pop("bid", None)  # the last record's prices are one option's, not the ring's
        ring.pop("ask", None)
        ring.pop("spread", None)
        ring.pop("change_id", None)
        ring["state"] = self.state()
        ring["instruments"] = len(self.tops)
        ring["gaps"] = self.whole.gaps + sum(top.gaps for top in self.tops.values())
        ring["snapshots"] = sum(top.snapshots for top in self.tops.values())
        ring["crossed"] = sum(top.crossed for top in self.tops.values())
        latest = sorted(self._last_seq, key=self._last_seq.__getitem__, reverse=True)[:most]
        books = []
        for iid in latest:
            row = self.tops[iid].row(now_ns)
            row["ring"] = "  " + row["ring"]
            row["lost"] = "-"  # a reader loses records of the ring, not of an instrument
            books.append(row)
        return [ring, *books]


def ring_line(row: Row) -> str:
    """The plain log line of a chain ring's own row."""
    return (
        f"{row['ring']} {row['state']}: {row['instruments']} books | seq {row.get('seq', '-')} "
        f"| {row['rate']:.1f} rec/s | lost {row['lost']} | gaps {row['gaps']} snapshots {row['snapshots']}"
    )
