"""Trade records: one per trade; on a trades ring GAP means trades were missed before the record."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from feeder.records.base import Column, Record, Records, Scalar
from feeder.ring import MARKER

_TRADE = ("trade_seq", "trade_id", "price", "amount", "direction", "mark_price", "index_price", "iv")


class Trade(Record):
    """One trade record."""

    record_type, needs, invalid = "trade", _TRADE, MARKER
    __slots__ = ()
    trade_seq = Scalar(int, "per-instrument trade sequence from the exchange")
    trade_id = Scalar(int, "numeric part of the exchange's trade id")
    price = Scalar(float)
    amount = Scalar(float, "contracts (USD for inverse perpetuals/futures, coin for options)")
    direction = Scalar(int, "1: the taker bought, -1: sold")
    mark_price = Scalar(float, "NaN if absent")
    index_price = Scalar(float, "NaN if absent")
    iv = Scalar(float, "implied volatility (options); NaN if absent")
    tick_direction = Scalar(int, "0 plus, 1 zero-plus, 2 minus, 3 zero-minus; -1 absent")
    liquidation = Scalar(int, "0 none, 1 maker side, 2 taker side, 3 both")
    block_trade = Scalar(bool, "part of a block trade")

    @property
    def side(self) -> str:
        """'buy' or 'sell': the taker's side."""
        return "buy" if self.direction > 0 else "sell"

    @property
    def gap_before(self) -> bool:
        """Trades were missed before this one (the GAP flag on a trades ring)."""
        return self.is_gap


class Trades(Records):
    """An array of trade records."""

    record_type, needs, invalid, one = "trade", _TRADE, MARKER, Trade
    __slots__ = ()
    trade_seq = Column()
    trade_id = Column()
    price = Column()
    amount = Column()
    direction = Column("1: the taker bought, -1: sold")
    mark_price = Column()
    index_price = Column()
    iv = Column()
    tick_direction = Column()
    liquidation = Column()
    block_trade = Column()

    @property
    def gap_before(self) -> NDArray[np.bool_]:
        return self.is_gap
