"""Typed views of ring records: `Book`, `Trade`, `Ticker`, `Markprice` over one record, `Books`, `Trades`,
`Tickers`, `Markprices` over an array of them, as a RingReader or a recording returns them.

Rules kept here:
- A view holds the numpy record(s) it was given and copies nothing: on an array, every field is a numpy
  view into it (no Python object per record); on one record, a field is a Python int/float/bool.
  Derived figures (best bid, mid, spread) are computed when asked.
- Everything comes from the record's dtype: a book's depth is the length of its level arrays (10 for
  today's `book` records; deeper layouts work the same), and a view refuses records that lack its fields.
- `valid` is the feeder's trust rule: a book record is valid unless GAP, CROSSED or MARKER; a trade
  unless MARKER (on a trades ring GAP means trades were missed *before* this one: the trade is real);
  a ticker or a mark price unless GAP or MARKER.
- Timestamps: `ts_*` are ints, nanoseconds since the Unix epoch; `*_time` are timezone-aware
  `datetime`s (microsecond precision; None for a stamp of 0, "absent") on one record, and numpy
  `datetime64[ns]` views on an array.
"""

from feeder.records.base import Record, Records, flag_names
from feeder.records.book import Book, Books
from feeder.records.markprice import Markprice, Markprices
from feeder.records.ticker import Ticker, Tickers
from feeder.records.trade import Trade, Trades

__all__ = [
    "Book",
    "Books",
    "Markprice",
    "Markprices",
    "Record",
    "Records",
    "Ticker",
    "Tickers",
    "Trade",
    "Trades",
    "flag_names",
]
