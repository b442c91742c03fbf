"""Typed views of ring records: `Book`, `Trade`, `Ticker` over one record, `Books`, `Trades`, `Tickers`
over an array of them, as a RingReader or a recording returns them.

Rules kept here:
- A view holds the numpy record(s) it was given and copies nothing: on an array, every field is a numpy
  view into it (no Python object per record); on one record, a field is a Python int/float/bool.
  Derived figures (best bid, mid, spread) are computed when asked.
- Everything comes from the record's dtype: a book's depth is the length of its level arrays (10 for
  today's `book` records; deeper layouts work the same), and a view refuses records that lack its fields.
- `valid` is the feeder's trust rule: a book record is valid unless GAP, CROSSED or MARKER; a trade
  unless MARKER (on a trades ring GAP means trades were missed *before* this one: the trade is real);
  a ticker unless GAP or MARKER.
- Timestamps: `ts_*` are ints, nanoseconds since the Unix epoch; `*_time` are timezone-aware
  `datetime`s (microsecond precision; None for a stamp of 0, "absent") on one record, and numpy
  `datetime64[ns]` views on an array.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, Self, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from feeder.errors import UsageError
from feeder.exchanges.deribit.channels import DEFAULT_ALIASES
from feeder.ring import CROSSED, GAP, MARKER, SNAPSHOT, RingReader

T = TypeVar("T", int, float, bool)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FLAG_NAMES = ((SNAPSHOT, "SNAPSHOT"), (GAP, "GAP"), (CROSSED, "CROSSED"), (MARKER, "MARKER"))


class _Scalar(Generic[T]):
    """A field of one record, as a Python value."""

    def __init__(self, convert: Callable[[Any], T], doc: str = ""):
        self.convert: Callable[[Any], T] = convert
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Scalar[T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> T: ...
    def __get__(self, obj: Any, owner: type) -> Any:
        return self if obj is None else self.convert(obj.record[self.field])


class _Column:
    """A field of an array of records, as a numpy view."""

    def __init__(self, doc: str = ""):
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Column: ...
    @overload
    def __get__(self, obj: object, owner: type) -> NDArray[Any]: ...
    def __get__(self, obj: Any, owner: type) -> Any:
        return self if obj is None else obj.records[self.field]


def _time(ns: int) -> datetime | None:
    return None if ns == 0 else _EPOCH + timedelta(microseconds=ns // 1000)


def flag_names(flags: int) -> tuple[str, ...]:
    """The names of the flags set, e.g. ("SNAPSHOT",); unknown bits as hex."""
    names = [name for bit, name in FLAG_NAMES if flags & bit]
    rest = flags & ~(SNAPSHOT | GAP | CROSSED | MARKER)
    return (*names, hex(rest)) if rest else tuple(names)


class _View:
    """What one record and an array of records share: the ring, the record type, the fields it needs."""

    record_type: ClassVar[str]
    needs: ClassVar[tuple[str, ...]]
    invalid: ClassVar[int]  # flags that make a record not valid
    __slots__ = ("_instrument", "ring")

    def __init__(self, dtype: np.dtype, ring: str | None, instrument: str | None):
        missing = [f for f in ("seq", "flags", "ts_recv", *self.needs) if f not in (dtype.names or ())]
        if missing:
            raise UsageError(
                f"{type(self).__name__} views {self.record_type} records: these records have no field "
                f"{', '.join(missing)}"
            )
        self.ring, self._instrument = ring, instrument

    @property
    def symbol(self) -> str | None:
        """The symbol part of the ring name (`BTC` of `book.BTC`), None when the ring is not known."""
        return None if self.ring is None else self.ring.partition(".")[2]

    @property
    def instrument(self) -> str | None:
        """The exchange instrument: as given, else the ring's symbol with the default aliases resolved
        (`BTC` is `BTC-PERPETUAL`; pass `instrument=` when the feeder runs with other aliases)."""
        symbol = self.symbol
        return self._instrument or (None if symbol is None else DEFAULT_ALIASES.get(symbol, symbol))

    @classmethod
    def _check_reader(cls, reader: RingReader) -> None:
        if reader.record_type != cls.record_type:
            raise UsageError(
                f"ring {reader.name!r} holds {reader.record_type} records: {cls.__name__} views "
                f"{cls.record_type} records"
            )


class Record(_View):
    """One record: common fields and flags."""

    __slots__ = ("record",)
    seq = _Scalar(int, "ring sequence number")
    flags = _Scalar(int, "flag bits (SNAPSHOT, GAP, CROSSED, MARKER)")
    ts_exchange = _Scalar(int, "exchange timestamp, ns (Deribit sends ms: ms x 1e6); 0 if absent")
    ts_recv = _Scalar(int, "when the worker received the frame, ns")
    ts_publish = _Scalar(int, "when the record was published to the ring, ns")

    def __init__(self, record: np.void | np.ndarray, ring: str | None = None, instrument: str | None = None):
        if isinstance(record, np.ndarray):
            if record.size != 1:
                plural = {"book": "Books", "trade": "Trades", "ticker": "Tickers"}[self.record_type]
                raise UsageError(f"{type(self).__name__} views one record; got {record.size}: use {plural}")
            record = record.reshape(-1)[0]
        if not isinstance(record, np.void):
            raise UsageError(f"{type(self).__name__} views a numpy record; got {type(record).__name__}")
        super().__init__(record.dtype, ring, instrument)
        self.record: np.void = record

    @classmethod
    def latest(cls, reader: RingReader, instrument: str | None = None) -> Self | None:
        """The ring's newest record as a view, None if it has none (does not move the reader)."""
        cls._check_reader(reader)
        rec = reader.latest()
        return None if rec is None else cls(rec, reader.name, instrument)

    @classmethod
    def iterate(cls, reader: RingReader, instrument: str | None = None) -> Iterator[Self]:
        """Every record the reader returns, as views (waits for new ones, like iterating the reader)."""
        cls._check_reader(reader)
        for rec in reader:
            yield cls(rec, reader.name, instrument)

    @property
    def exchange_time(self) -> datetime | None:
        return _time(self.ts_exchange)

    @property
    def recv_time(self) -> datetime | None:
        return _time(self.ts_recv)

    @property
    def publish_time(self) -> datetime | None:
        return _time(self.ts_publish)

    @property
    def is_snapshot(self) -> bool:
        return bool(self.flags & SNAPSHOT)

    @property
    def is_gap(self) -> bool:
        return bool(self.flags & GAP)

    @property
    def is_crossed(self) -> bool:
        return bool(self.flags & CROSSED)

    @property
    def is_marker(self) -> bool:
        return bool(self.flags & MARKER)

    @property
    def flag_names(self) -> tuple[str, ...]:
        return flag_names(self.flags)

    @property
    def valid(self) -> bool:
        """True when the record can be trusted as it is (see the module's rules)."""
        return not self.flags & self.invalid

    def __repr__(self) -> str:
        flags = "|".join(self.flag_names) or "-"
        return f"<{type(self).__name__} {self.ring or '?'} seq={self.seq} flags={flags}>"


class Records(_View):
    """An array of records: common fields and flags, as numpy views."""

    __slots__ = ("records",)
    one: ClassVar[type[Record]]
    seq = _Column("ring sequence numbers")
    flags = _Column("flag bits")
    ts_exchange = _Column("exchange timestamps, ns; 0 if absent")
    ts_recv = _Column("when the worker received each frame, ns")
    ts_publish = _Column("when each record was published, ns")

    def __init__(self, records: np.ndarray, ring: str | None = None, instrument: str | None = None):
        if not isinstance(records, np.ndarray) or records.ndim != 1:
            raise UsageError(
                f"{type(self).__name__} views a 1-D array of records; got {type(records).__name__} "
                f"of shape {getattr(records, 'shape', None)}"
            )
        super().__init__(records.dtype, ring, instrument)
        self.records: np.ndarray = records

    @classmethod
    def read(cls, reader: RingReader, max_records: int | None = None, instrument: str | None = None) -> Self:
        """`reader.read(max_records)` as a view (empty if nothing is new)."""
        cls._check_reader(reader)
        return cls(reader.read(max_records), reader.name, instrument)

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> Any: ...  # the matching one-record view (Book for Books...)
    @overload
    def __getitem__(self, index: slice | NDArray[Any]) -> Self: ...
    def __getitem__(self, index: Any) -> Any:
        """An int gives one record's view; a slice, a bool mask or an index array gives an array view."""
        if isinstance(index, (int, np.integer)):
            return self.one(self.records[index], self.ring, self._instrument)
        return type(self)(self.records[index], self.ring, self._instrument)

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self.records)):
            yield self[i]

    def _times(self, field: str) -> NDArray[np.datetime64]:
        return self.records[field].view("datetime64[ns]")

    @property
    def exchange_time(self) -> NDArray[np.datetime64]:
        return self._times("ts_exchange")

    @property
    def recv_time(self) -> NDArray[np.datetime64]:
        return self._times("ts_recv")

    @property
    def publish_time(self) -> NDArray[np.datetime64]:
        return self._times("ts_publish")

    def _flag(self, bit: int) -> NDArray[np.bool_]:
        return (self.records["flags"] & bit) != 0

    @property
    def is_snapshot(self) -> NDArray[np.bool_]:
        return self._flag(SNAPSHOT)

    @property
    def is_gap(self) -> NDArray[np.bool_]:
        return self._flag(GAP)

    @property
    def is_crossed(self) -> NDArray[np.bool_]:
        return self._flag(CROSSED)

    @property
    def is_marker(self) -> NDArray[np.bool_]:
        return self._flag(MARKER)

    @property
    def valid(self) -> NDArray[np.bool_]:
        return (self.records["flags"] & self.invalid) == 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ring or '?'} {len(self)} records>"


# --- books ---------------------------------------------------------------------------------------

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
    change_id = _Scalar(int, "exchange change_id of the last applied message")
    prev_change_id = _Scalar(int, "its prev_change_id (0 for a snapshot)")

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
    change_id = _Column()
    prev_change_id = _Column()
    bid_count = _Column("valid bid levels of each record")
    ask_count = _Column("valid ask levels of each record")

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


# --- trades --------------------------------------------------------------------------------------

_TRADE = ("trade_seq", "trade_id", "price", "amount", "direction", "mark_price", "index_price", "iv")


class Trade(Record):
    """One trade record."""

    record_type, needs, invalid = "trade", _TRADE, MARKER
    __slots__ = ()
    trade_seq = _Scalar(int, "per-instrument trade sequence from the exchange")
    trade_id = _Scalar(int, "numeric part of the exchange's trade id")
    price = _Scalar(float)
    amount = _Scalar(float, "contracts (USD for inverse perpetuals/futures, coin for options)")
    direction = _Scalar(int, "1: the taker bought, -1: sold")
    mark_price = _Scalar(float, "NaN if absent")
    index_price = _Scalar(float, "NaN if absent")
    iv = _Scalar(float, "implied volatility (options); NaN if absent")
    tick_direction = _Scalar(int, "0 plus, 1 zero-plus, 2 minus, 3 zero-minus; -1 absent")
    liquidation = _Scalar(int, "0 none, 1 maker side, 2 taker side, 3 both")
    block_trade = _Scalar(bool, "part of a block trade")

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
    trade_seq = _Column()
    trade_id = _Column()
    price = _Column()
    amount = _Column()
    direction = _Column("1: the taker bought, -1: sold")
    mark_price = _Column()
    index_price = _Column()
    iv = _Column()
    tick_direction = _Column()
    liquidation = _Column()
    block_trade = _Column()

    @property
    def gap_before(self) -> NDArray[np.bool_]:
        return self.is_gap


# --- tickers -------------------------------------------------------------------------------------

_TICKER = ("best_bid_px", "best_bid_sz", "best_ask_px", "best_ask_sz", "mark_price", "index_price", "state")


class Ticker(Record):
    """One ticker record."""

    record_type, needs, invalid = "ticker", _TICKER, GAP | MARKER
    __slots__ = ()
    best_bid_px = _Scalar(float)
    best_bid_sz = _Scalar(float)
    best_ask_px = _Scalar(float)
    best_ask_sz = _Scalar(float)
    mark_price = _Scalar(float)
    index_price = _Scalar(float)
    last_price = _Scalar(float, "NaN if absent")
    open_interest = _Scalar(float)
    funding_8h = _Scalar(float, "perpetuals; NaN otherwise")
    current_funding = _Scalar(float, "perpetuals; NaN otherwise")
    settlement_price = _Scalar(float, "NaN if absent")
    min_price = _Scalar(float)
    max_price = _Scalar(float)
    mark_iv = _Scalar(float, "options; NaN otherwise")
    high_24h = _Scalar(float)
    low_24h = _Scalar(float)
    volume_24h = _Scalar(float)
    state = _Scalar(int, "1 open, 0 closed/other")

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
    best_bid_px = _Column()
    best_bid_sz = _Column()
    best_ask_px = _Column()
    best_ask_sz = _Column()
    mark_price = _Column()
    index_price = _Column()
    last_price = _Column()
    open_interest = _Column()
    funding_8h = _Column()
    current_funding = _Column()
    settlement_price = _Column()
    min_price = _Column()
    max_price = _Column()
    mark_iv = _Column()
    high_24h = _Column()
    low_24h = _Column()
    volume_24h = _Column()
    state = _Column()

    @property
    def mid(self) -> NDArray[np.float64]:
        return (self.records["best_bid_px"] + self.records["best_ask_px"]) / 2

    @property
    def spread(self) -> NDArray[np.float64]:
        return self.records["best_ask_px"] - self.records["best_bid_px"]
