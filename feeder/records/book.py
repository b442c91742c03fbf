"""Book records: the top levels per side after each update (depth from the dtype: 10, 25, 50...)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from feeder.records.base import Column, Record, Records, Scalar
from feeder.ring import CROSSED, GAP, MARKER

_BOOK = ("change_id", "prev_change_id", "bid_count", "ask_count", "bid_px", "bid_sz", "ask_px", "ask_sz")


def _pairs(records: np.ndarray | np.void, px: str, sz: str) -> NDArray[np.float64]:
    """(..., depth, 2) view of (price, size) pairs: sizes lie a fixed distance after prices in a record."""
    prices = records[px]
    fields = records.dtype.fields
    assert fields is not None
    gap = fields[sz][1] - fields[px][1]
    shape, strides = (*prices.shape, 2), (*prices.strides, gap)
    return np.lib.stride_tricks.as_strided(prices, shape, strides, writeable=False)


class Book(Record):
    """One book record: the top levels after an update."""

    record_type, needs, invalid = "book", _BOOK, GAP | CROSSED | MARKER
    __slots__ = ()
    change_id = Scalar(int, "exchange change_id of the last applied message")
    prev_change_id = Scalar(int, "its prev_change_id (0 for a snapshot)")

    @property
    def depth(self) -> int:
        """Levels per side in this record layout."""
        return int(self.record["bid_px"].shape[0])

    @property
    def bid_count(self) -> int:
        return min(int(self.record["bid_count"]), self.depth)

    @property
    def ask_count(self) -> int:
        return min(int(self.record["ask_count"]), self.depth)

    @property
    def bids(self) -> NDArray[np.float64]:
        """(price, size) of the valid bid levels, best first: shape (bid_count, 2), a view."""
        return _pairs(self.record, "bid_px", "bid_sz")[: self.bid_count]

    @property
    def asks(self) -> NDArray[np.float64]:
        """(price, size) of the valid ask levels, best first: shape (ask_count, 2), a view."""
        return _pairs(self.record, "ask_px", "ask_sz")[: self.ask_count]

    def _best(self, field: str, count: int) -> float:
        return float(self.record[field][0]) if count else float("nan")

    @property
    def best_bid(self) -> float:
        """Best bid price; NaN when the side is empty."""
        return self._best("bid_px", self.bid_count)

    @property
    def best_ask(self) -> float:
        return self._best("ask_px", self.ask_count)

    @property
    def best_bid_size(self) -> float:
        return self._best("bid_sz", self.bid_count)

    @property
    def best_ask_size(self) -> float:
        return self._best("ask_sz", self.ask_count)

    @property
    def mid(self) -> float:
        """(best bid + best ask) / 2; NaN when a side is empty."""
        return (self.best_bid + self.best_ask) / 2

    @property
    def spread(self) -> float:
        """best ask - best bid; NaN when a side is empty."""
        return self.best_ask - self.best_bid


class Books(Records):
    """An array of book records; level arrays are (records, depth, 2) views."""

    record_type, needs, invalid, one = "book", _BOOK, GAP | CROSSED | MARKER, Book
    __slots__ = ()
    change_id = Column()
    prev_change_id = Column()
    bid_count = Column("valid bid levels of each record")
    ask_count = Column("valid ask levels of each record")

    @property
    def depth(self) -> int:
        return int(self.records.dtype["bid_px"].shape[0])

    @property
    def bids(self) -> NDArray[np.float64]:
        """(price, size) of every bid level: shape (records, depth, 2), a view; from `bid_count` on: padding."""
        return _pairs(self.records, "bid_px", "bid_sz")

    @property
    def asks(self) -> NDArray[np.float64]:
        """(price, size) of every ask level: shape (records, depth, 2), a view; from `ask_count` on: padding."""
        return _pairs(self.records, "ask_px", "ask_sz")

    def _best(self, field: str, count: str) -> NDArray[np.float64]:
        return np.where(self.records[count] > 0, self.records[field][:, 0], np.nan)

    @property
    def best_bid(self) -> NDArray[np.float64]:
        """Best bid of each record; NaN where the side is empty."""
        return self._best("bid_px", "bid_count")

    @property
    def best_ask(self) -> NDArray[np.float64]:
        return self._best("ask_px", "ask_count")

    @property
    def best_bid_size(self) -> NDArray[np.float64]:
        return self._best("bid_sz", "bid_count")

    @property
    def best_ask_size(self) -> NDArray[np.float64]:
        return self._best("ask_sz", "ask_count")

    @property
    def mid(self) -> NDArray[np.float64]:
        return (self.best_bid + self.best_ask) / 2

    @property
    def spread(self) -> NDArray[np.float64]:
        return self.best_ask - self.best_bid
