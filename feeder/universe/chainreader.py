"""`ChainReader`: one reader for a whole chain ring, keeping the latest record of every instrument.

A chain ring (`book.BTC-options`, `ticker.ETH-futures`, `markprice.btc_usd`) holds the records of many
instruments in publish order, each naming its instrument by `instrument_id`. `poll()` reads what is new
and scatters it into a table with one row per instrument: its cost grows with the records read, not
with the instruments in the chain (a thousand books, one poll). Names resolve through the inventory.
Rules it keeps:
- A row is the instrument's latest record as published, flags included (a GAP on one option flags
  only that option's row).
- A MARKER|GAP record with instrument_id 0 (a disconnect or a dead worker: every instrument of the
  chain) adds GAP to every row; records the reader lost (it was lapped) might have been any
  instrument's, so they add GAP to every row too. An instrument's next record replaces its row whole.
- A FINAL record ends the instrument: its row goes (`ended` counts them).
"""

from __future__ import annotations

import numpy as np

from feeder.errors import UsageError
from feeder.records import Book
from feeder.ring import FINAL, GAP, MARKER, RingReader
from feeder.ring.chains import is_chain
from feeder.universe.inventory import InventoryReader
from feeder.universe.universe import Universe

_DENSE_IDS = 1 << 24  # ids below this map to rows through an array, others through a dict


class ChainReader:
    """The latest record of every instrument of a chain ring; see the module doc."""

    def __init__(
        self, ring: str, *, instance: str | None = None, start: str = "oldest", wait: str = "spin_sleep"
    ):
        if not is_chain(ring):
            raise UsageError(
                f"{ring!r} is not a chain ring (book.BTC-options, markprice.btc_usd ...): use RingReader"
            )
        self.reader = RingReader(ring, instance=instance, start=start, wait=wait)
        self.name = ring
        self.instance = self.reader.instance
        self.dtype = self.reader.dtype
        self._rows = np.zeros(64, self.dtype)
        self._n = 0
        self._row_of = np.full(1024, -1, np.int64)  # instrument_id -> row
        self._far: dict[int, int] = {}  # ids >= _DENSE_IDS -> row
        self._lost_seen = 0
        self.ended = 0
        self._inventory: InventoryReader | None = None
        self._universe: Universe | None = None

    # --- reading -----------------------------------------------------------------------------------

    def poll(self, max_records: int | None = None) -> np.ndarray:
        """Read every new record (at most `max_records`), update the table; returns them, in order."""
        records = self.reader.read(max_records)
        if self.reader.lost != self._lost_seen:
            self._lost_seen = self.reader.lost
            self._rows["flags"][: self._n] |= GAP
        if len(records):
            markers = np.flatnonzero((records["flags"] & MARKER != 0) & (records["instrument_id"] == 0))
            begin = 0
            for at in markers:
                self._apply(records[begin:at])
                self._rows["flags"][: self._n] |= GAP
                begin = int(at) + 1
            self._apply(records[begin:])
        return records

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until there are new records (False on timeout or once the ring is closed)."""
        return self.reader.wait(timeout)

    def _apply(self, records: np.ndarray) -> None:
        if not len(records):
            return
        ids = records["instrument_id"].astype(np.int64)
        reverse = ids[::-1]
        unique, first_from_end = np.unique(reverse, return_index=True)
        last = records[len(ids) - 1 - first_from_end]  # each instrument's last record of the batch
        rows = self._rows_for(unique)
        self._rows[rows] = last
        final = np.flatnonzero(last["flags"] & FINAL)
        if len(final):
            self._drop(unique[final])

    def _rows_for(self, ids: np.ndarray) -> np.ndarray:
        """Rows of these (unique, sorted) instrument ids, new rows for new ones."""
        if ids[-1] < _DENSE_IDS:
            if ids[-1] >= len(self._row_of):
                grown = np.full(max(int(ids[-1]) + 1, 2 * len(self._row_of)), -1, np.int64)
                grown[: len(self._row_of)] = self._row_of
                self._row_of = grown
            rows: np.ndarray = self._row_of[ids]
            for k in np.flatnonzero(rows < 0):
                rows[k] = self._row_of[ids[k]] = self._new_row(int(ids[k]))
            return rows
        return np.array(
            [self._far.get(int(i)) or self._far.setdefault(int(i), self._new_row(int(i))) for i in ids]
        )

    def _new_row(self, iid: int) -> int:
        if self._n == len(self._rows):
            grown = np.zeros(2 * len(self._rows), self.dtype)
            grown[: self._n] = self._rows[: self._n]
            self._rows = grown
        self._n += 1
        return self._n - 1

    def _drop(self, ids: np.ndarray) -> None:
        for iid in map(int, ids):
            row = self._row(iid)
            if row is None:
                continue
            last = self._n - 1
            if row != last:  # the last row moves into the hole: rows stay packed
                self._rows[row] = self._rows[last]
                self._set_row(int(self._rows[row]["instrument_id"]), row)
            self._set_row(iid, -1)
            self._n = last
            self.ended += 1

    def _row(self, iid: int) -> int | None:
        row = (
            (self._row_of[iid] if iid < len(self._row_of) else -1)
            if iid < _DENSE_IDS
            else self._far.get(iid, -1)
        )
        return None if row < 0 else int(row)

    def _set_row(self, iid: int, row: int) -> None:
        if iid < _DENSE_IDS:
            self._row_of[iid] = row
        elif row < 0:
            self._far.pop(iid, None)
        else:
            self._far[iid] = row

    # --- the table ---------------------------------------------------------------------------------

    def latest(self, instrument: str | int) -> np.void | None:
        """The latest record of an instrument (by name or id), a copy; None if it has none."""
        iid = instrument if isinstance(instrument, int) else self._id_of(instrument)
        row = None if iid is None else self._row(iid)
        return None if row is None else self._rows[row].copy()

    def book(self, instrument: str | int) -> Book | None:
        """The latest book of an instrument as a `Book` view (book chains), or None."""
        if self.reader.record_type != "book":
            raise UsageError(f"{self.name!r} holds {self.reader.record_type} records: use latest()")
        rec = self.latest(instrument)
        name = instrument if isinstance(instrument, str) else None
        return None if rec is None else Book(rec, self.name, instrument=name)

    def books(self) -> np.ndarray:
        """The latest record of every instrument that has one (a copy, one row per instrument)."""
        return self._rows[: self._n].copy()

    @property
    def ids(self) -> np.ndarray:
        """The instrument_id of each row of `books()`, in the same order."""
        return self._rows["instrument_id"][: self._n].copy()

    def __len__(self) -> int:
        return self._n

    def universe(self) -> Universe:
        """The inventory now (names, metadata), refreshed only when it changed."""
        if self._inventory is None:
            self._inventory = InventoryReader(self.instance)
        if self._universe is None or self._universe.generation != self._inventory.generation:
            self._universe = Universe(*self._inventory.entries())
        return self._universe

    def _id_of(self, name: str) -> int | None:
        found = self.universe().get(name) or self.universe().ended.get(name)
        return None if found is None else found.instrument_id

    # --- lifetime ----------------------------------------------------------------------------------

    def close(self) -> None:
        self.reader.close()
        if self._inventory is not None:
            self._inventory.close()

    def __enter__(self) -> ChainReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ChainReader {self.name!r} instruments={self._n} read={self.reader.records_read} lost={self.reader.lost}>"
