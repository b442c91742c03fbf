"""Mark price records: the mark price and IV of one option, from `markprice.options.{index}`."""

from __future__ import annotations

from feeder.records.base import Column, Record, Records, Scalar
from feeder.ring import GAP, MARKER

_MARKPRICE = ("mark_price", "iv")


class Markprice(Record):
    """One mark price record (a chain ring per price index: `markprice.btc_usd`)."""

    record_type, needs, invalid = "markprice", _MARKPRICE, GAP | MARKER
    __slots__ = ()
    mark_price = Scalar(float, "in the base currency, as Deribit sends it")
    iv = Scalar(float, "implied volatility of the mark price, a fraction (0.9 is 90 %); NaN if absent")


class Markprices(Records):
    """An array of mark price records."""

    record_type, needs, invalid, one = "markprice", _MARKPRICE, GAP | MARKER, Markprice
    __slots__ = ()
    mark_price = Column()
    iv = Column()
