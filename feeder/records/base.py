"""What every typed record view shares: field descriptors, flags, times, the ring, the record type check.

`Record` views one record (fields as Python values), `Records` an array of them (fields as numpy views);
the record types (book.py, trade.py, ticker.py) declare their fields and what makes a record invalid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, Self, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from feeder.errors import UsageError
from feeder.exchanges.deribit.channels import DEFAULT_ALIASES
from feeder.ring import CROSSED, FINAL, GAP, LOCKED, MARKER, SNAPSHOT, RingReader
from feeder.ring.schema import record_kind

T = TypeVar("T", int, float, bool)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FLAG_NAMES = (
    (SNAPSHOT, "SNAPSHOT"), (GAP, "GAP"), (CROSSED, "CROSSED"), (MARKER, "MARKER"), (FINAL, "FINAL"),
    (LOCKED, "LOCKED"),
)  # fmt: skip
_KNOWN_FLAGS = SNAPSHOT | GAP | CROSSED | MARKER | FINAL | LOCKED


class Scalar(Generic[T]):
    """A field of one record, as a Python value."""

    def __init__(self, convert: Callable[[Any], T], doc: str = ""):
        self.convert: Callable[[Any], T] = convert
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = name

    @overload
    def __get__(self, obj: None, owner: type) -> Scalar[T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> T: ...
    def __get__(self, obj: Any, owner: type) -> Any:
        return self if obj is None else self.convert(obj.record[self.field])


class Column:
    """A field of an array of records, as a numpy view."""

    def __init__(self, doc: str = ""):
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = name

    @overload
    def __get__(self, obj: None, owner: type) -> Column: ...
    @overload
    def __get__(self, obj: object, owner: type) -> NDArray[Any]: ...
    def __get__(self, obj: Any, owner: type) -> Any:
        return self if obj is None else obj.records[self.field]


def _time(ns: int) -> datetime | None:
    return None if ns == 0 else _EPOCH + timedelta(microseconds=ns // 1000)


def flag_names(flags: int) -> tuple[str, ...]:
    """The names of the flags set, e.g. ("SNAPSHOT",); unknown bits as hex."""
    names = [name for bit, name in FLAG_NAMES if flags & bit]
    rest = flags & ~_KNOWN_FLAGS
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
        if record_kind(reader.record_type) != cls.record_type:
            raise UsageError(
                f"ring {reader.name!r} holds {reader.record_type} records: {cls.__name__} views "
                f"{cls.record_type} records"
            )


class Record(_View):
    """One record: common fields and flags."""

    __slots__ = ("record",)
    seq = Scalar(int, "ring sequence number")
    flags = Scalar(int, "flag bits (SNAPSHOT, GAP, CROSSED, MARKER, FINAL, LOCKED)")
    instrument_id = Scalar(
        int, "the exchange's instrument id (chain rings: whose record it is); 0 if unknown"
    )
    ts_exchange = Scalar(int, "exchange timestamp, ns (Deribit sends ms: ms x 1e6); 0 if absent")
    ts_recv = Scalar(int, "when the worker received the frame, ns")
    ts_publish = Scalar(int, "when the record was published to the ring, ns")

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
    def is_final(self) -> bool:
        return bool(self.flags & FINAL)

    @property
    def is_locked(self) -> bool:
        return bool(self.flags & LOCKED)

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
    seq = Column("ring sequence numbers")
    flags = Column("flag bits")
    instrument_id = Column("the exchange's instrument ids; 0 if unknown")
    ts_exchange = Column("exchange timestamps, ns; 0 if absent")
    ts_recv = Column("when the worker received each frame, ns")
    ts_publish = Column("when each record was published, ns")

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
