"""Ticker records: one per ticker update."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from feeder.records.base import Column, Record, Records, Scalar
from feeder.ring import GAP, MARKER

_TICKER = ("best_bid_px", "best_bid_sz", "best_ask_px", "best_ask_sz", "mark_price", "index_price", "state")


class Ticker(Record):
    """One ticker record."""

    record_type, needs, invalid = "ticker", _TICKER, GAP | MARKER
    __slots__ = ()
    best_bid_px = Scalar(float)
    best_bid_sz = Scalar(float)
    best_ask_px = Scalar(float)
    best_ask_sz = Scalar(float)
    mark_price = Scalar(float)
    index_price = Scalar(float)
    last_price = Scalar(float, "NaN if absent")
    open_interest = Scalar(float)
    funding_8h = Scalar(float, "perpetuals; NaN otherwise")
    current_funding = Scalar(float, "perpetuals; NaN otherwise")
    settlement_price = Scalar(float, "NaN if absent")
    min_price = Scalar(float)
    max_price = Scalar(float)
    mark_iv = Scalar(float, "options; NaN otherwise")
    high_24h = Scalar(float)
    low_24h = Scalar(float)
    volume_24h = Scalar(float)
    state = Scalar(int, "1 open, 0 closed")
    underlying_type = Scalar(int, "options: 1 the index, 2 a future, 3 a synthetic future; 0 otherwise")
    underlying_index = Scalar(int, "options: the underlying future's instrument_id (0: the index, unknown)")
    bid_iv = Scalar(float, "options; NaN otherwise")
    ask_iv = Scalar(float, "options; NaN otherwise")
    delta = Scalar(float, "options; NaN otherwise")
    gamma = Scalar(float, "options; NaN otherwise")
    vega = Scalar(float, "options; NaN otherwise")
    theta = Scalar(float, "options; NaN otherwise")
    rho = Scalar(float, "options; NaN otherwise")
    underlying_price = Scalar(float, "options; NaN otherwise")
    interest_rate = Scalar(float, "options; NaN otherwise")
    estimated_delivery_price = Scalar(float, "NaN when absent or 'expired'")

    @property
    def mid(self) -> float:
        return (self.best_bid_px + self.best_ask_px) / 2

    @property
    def spread(self) -> float:
        return self.best_ask_px - self.best_bid_px


class Tickers(Records):
    """An array of ticker records."""

    record_type, needs, invalid, one = "ticker", _TICKER, GAP | MARKER, Ticker
    __slots__ = ()
    best_bid_px = Column()
    best_bid_sz = Column()
    best_ask_px = Column()
    best_ask_sz = Column()
    mark_price = Column()
    index_price = Column()
    last_price = Column()
    open_interest = Column()
    funding_8h = Column()
    current_funding = Column()
    settlement_price = Column()
    min_price = Column()
    max_price = Column()
    mark_iv = Column()
    high_24h = Column()
    low_24h = Column()
    volume_24h = Column()
    state = Column()
    underlying_type = Column()
    underlying_index = Column()
    bid_iv = Column()
    ask_iv = Column()
    delta = Column()
    gamma = Column()
    vega = Column()
    theta = Column()
    rho = Column()
    underlying_price = Column()
    interest_rate = Column()
    estimated_delivery_price = Column()

    @property
    def mid(self) -> NDArray[np.float64]:
        bid: NDArray[np.float64] = self.records["best_bid_px"]
        ask: NDArray[np.float64] = self.records["best_ask_px"]
        return (bid + ask) / 2

    @property
    def spread(self) -> NDArray[np.float64]:
        bid: NDArray[np.float64] = self.records["best_bid_px"]
        ask: NDArray[np.float64] = self.records["best_ask_px"]
        return ask - bid
