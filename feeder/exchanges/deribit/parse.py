"""Deribit notification payloads (`params.data`) -> typed updates, every field validated.

Owns the shape of the `book.*`, `trades.*` and `ticker.*` payloads (reference/deribit/asyncapi.json).
Rules it keeps:
- A parse function returns a fully checked update or raises `BadMessage` naming the field, the value
  and what is allowed; nothing half-checked comes out. Pure: no state, no I/O.
- Numbers are JSON numbers (`int` or `float`; a bool is not a number). Prices are finite and > 0;
  level amounts are finite, > 0 for a level that exists and >= 0 on a delete (Deribit sends 0.0).
  Integers (change ids, trade_seq, timestamps in ms) are ints.
- The instrument named in the payload must be the channel's instrument.
- Book snapshots come out as (price, amount) pairs; changes keep Deribit's validated
  `[action, price, amount]` lists (no copy on the hot path).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, TypeGuard

from feeder.errors import BadMessage

INF = math.inf
NAN = math.nan

Level = tuple[float, float]  # (price, amount) of a snapshot
# a change's [action, price, amount] as decoded: checked by parse_book, or by the one pass as it applies it
Entry = list[Any]


class BookSnapshot(NamedTuple):
    """A whole book: a `book.{instrument}.{interval}` snapshot, any grouped book, a get_order_book result."""

    snapshot: Literal[True]
    change_id: int
    prev_change_id: int  # 0
    timestamp_ms: int
    bids: list[Level]
    asks: list[Level]


class BookChange(NamedTuple):
    """A `book.{instrument}.{interval}` change (the same fields as a snapshot: `update.snapshot` tells them
    apart, for the type checker too)."""

    snapshot: Literal[False]
    change_id: int
    prev_change_id: int
    timestamp_ms: int
    bids: list[Entry]
    asks: list[Entry]


BookUpdate = BookSnapshot | BookChange


class Trade(NamedTuple):
    """One trade of a `trades.{instrument}.{interval}` notification; fields in trade-record order."""

    timestamp_ms: int
    trade_seq: int
    trade_id: int
    price: float
    amount: float
    mark_price: float
    index_price: float
    iv: float  # NaN when absent (not an option)
    direction: int  # 1 buy, -1 sell (the taker's side)
    tick_direction: int  # 0..3
    liquidation: int  # 0 none, 1 maker, 2 taker, 3 both
    block_trade: int  # 1 when part of a block trade


class Ticker(NamedTuple):
    """One `ticker.{instrument}.{interval}` notification; fields in ticker-record order (NaN = absent)."""

    timestamp_ms: int
    best_bid_px: float
    best_bid_sz: float
    best_ask_px: float
    best_ask_sz: float
    mark_price: float
    index_price: float
    last_price: float
    open_interest: float
    funding_8h: float
    current_funding: float
    settlement_price: float
    min_price: float
    max_price: float
    mark_iv: float
    high_24h: float
    low_24h: float
    volume_24h: float
    state: int  # 1 open, 0 closed
    underlying_type: int  # UNDERLYING_TYPES
    underlying_index: int  # instrument_id of the underlying future, 0 for the index or unknown
    bid_iv: float
    ask_iv: float
    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float
    underlying_price: float
    interest_rate: float
    estimated_delivery_price: float


# Building a NamedTuple through tuple.__new__ skips its Python-level __new__ (a third of the cost).
_new = tuple.__new__


def _is_number(value: object) -> TypeGuard[float]:
    kind = type(value)
    return kind is float or kind is int


def _object(data: Any, what: str, instrument: str) -> dict[str, Any]:
    if type(data) is not dict:
        raise BadMessage(what, data, "an object")
    name = data.get("instrument_name")
    if name != instrument:
        raise BadMessage("instrument_name", name, f"{instrument!r} (the channel's instrument)")
    return data


def _int(data: dict[str, Any], field: str, minimum: int = 0) -> int:
    value = data.get(field)
    if type(value) is not int or value < minimum:
        raise BadMessage(field, value, f"an integer >= {minimum}")
    return value


def parse_book(data: Any, instrument: str) -> BookUpdate:
    """A `book.{instrument}.{interval}` payload: snapshot (also legacy, without `type`) or change."""
    _object(data, "book data", instrument)
    change_id = _int(data, "change_id", 1)
    timestamp = _int(data, "timestamp")
    kind = data.get("type")
    prev = data.get("prev_change_id")
    if kind is None:  # old recordings: a snapshot has no prev_change_id (or 0, or null)
        kind = "snapshot" if prev is None or (type(prev) is int and prev == 0) else "change"
    if kind == "change":
        if type(prev) is not int or not 0 < prev < change_id:
            raise BadMessage("prev_change_id", prev, f"an integer in 1..{change_id - 1} (below change_id)")
        return _new(
            BookChange, (False, change_id, prev, timestamp, _changes(data, "bids"), _changes(data, "asks"))
        )
    if kind == "snapshot":
        return _new(
            BookSnapshot, (True, change_id, 0, timestamp, _snapshot(data, "bids"), _snapshot(data, "asks"))
        )
    raise BadMessage("type", kind, "'snapshot', 'change' or absent")


def _entries(data: dict[str, Any], side: str, shape: str) -> list[Any]:
    entries = data.get(side)
    if type(entries) is not list:
        raise BadMessage(side, entries, f"a list of {shape}")
    return entries


def _changes(data: dict[str, Any], side: str) -> list[Entry]:
    entries = _entries(data, side, "[action, price, amount]")
    for entry in entries:
        if type(entry) is not list or len(entry) != 3:
            raise BadMessage(f"{side} entry", entry, "[action, price, amount]")
        action, price, amount = entry
        if not _is_number(price) or not 0.0 < price < INF:
            raise BadMessage(f"{side} price", price, "a finite number > 0")
        if not _is_number(amount):
            raise BadMessage(f"{side} amount", amount, "a number")
        if action == "delete":
            if not 0.0 <= amount < INF:
                raise BadMessage(f"{side} amount", amount, "a finite number >= 0 on a delete")
        elif action == "new" or action == "change":
            if not 0.0 < amount < INF:
                raise BadMessage(f"{side} amount", amount, f"a finite number > 0 on {action!r}")
        else:
            raise BadMessage(f"{side} action", action, "'new', 'change' or 'delete'")
    return entries


def _snapshot(data: dict[str, Any], side: str) -> list[Level]:
    levels = []
    for entry in _entries(data, side, "['new', price, amount]"):
        if type(entry) is not list or len(entry) != 3 or entry[0] != "new":
            raise BadMessage(f"{side} snapshot entry", entry, "['new', price, amount]")
        levels.append(_level(side, entry[1], entry[2]))
    return levels


def _level(side: str, price: Any, amount: Any) -> Level:
    if not _is_number(price) or not 0.0 < price < INF:
        raise BadMessage(f"{side} price", price, "a finite number > 0")
    if not _is_number(amount) or not 0.0 < amount < INF:
        raise BadMessage(f"{side} amount", amount, "a finite number > 0")
    return price, amount


def parse_grouped_book(data: Any, instrument: str) -> BookSnapshot:
    """A `book.{instrument}.{group}.{depth}.{interval}` payload: a whole (top-depth) book every time."""
    _object(data, "book data", instrument)
    change_id = _int(data, "change_id", 1)
    timestamp = _int(data, "timestamp")
    return _new(BookSnapshot, (True, change_id, 0, timestamp, _pairs(data, "bids"), _pairs(data, "asks")))


def parse_order_book(result: Any, instrument: str) -> BookSnapshot:
    """The result of `public/get_order_book`: the exchange's book at its `change_id`, best levels first."""
    _object(result, "order book", instrument)
    change_id = _int(result, "change_id", 1)
    timestamp = _int(result, "timestamp")
    return _new(BookSnapshot, (True, change_id, 0, timestamp, _pairs(result, "bids"), _pairs(result, "asks")))


def _pairs(data: dict[str, Any], side: str) -> list[Level]:
    levels = []
    for entry in _entries(data, side, "[price, amount]"):
        if type(entry) is not list or len(entry) != 2:
            raise BadMessage(f"{side} entry", entry, "[price, amount]")
        levels.append(_level(side, entry[0], entry[1]))
    return levels


def trades_list(data: Any) -> list[Any]:
    """The list of trades of a `trades.*` payload (each checked by `parse_trade`)."""
    if type(data) is not list or not data:
        raise BadMessage("trades data", data, "a non-empty list of trades")
    return data


_DIRECTION = {"buy": 1, "sell": -1}
_LIQUIDATION = {None: 0, "M": 1, "T": 2, "MT": 3}


def parse_trade(item: Any, instrument: str) -> Trade:
    """One public trade."""
    _object(item, "trade", instrument)
    direction = _DIRECTION.get(item.get("direction")) if type(item.get("direction")) is str else None
    if direction is None:
        raise BadMessage("direction", item.get("direction"), "'buy' or 'sell'")
    tick = item.get("tick_direction")
    if type(tick) is not int or not 0 <= tick <= 3:
        raise BadMessage("tick_direction", tick, "an integer 0..3")
    liquidation = item.get("liquidation")
    if type(liquidation) not in (str, type(None)) or liquidation not in _LIQUIDATION:
        raise BadMessage("liquidation", liquidation, "absent, 'M', 'T' or 'MT'")
    return _new(
        Trade,
        (
            _int(item, "timestamp"),
            _int(item, "trade_seq"),
            _trade_id(item.get("trade_id")),
            _price(item, "price"),
            _amount(item, "amount", positive=True),
            _amount(item, "mark_price"),  # a model value: an option worth nothing has mark 0
            _price(item, "index_price"),
            _optional(item, "iv"),
            direction,
            tick,
            _LIQUIDATION[liquidation],
            1 if item.get("block_trade_id") else 0,
        ),
    )


def _trade_id(value: Any) -> int:
    """Deribit trade ids are strings ('48079269', or 'ETH-123456' on some venues): keep the number."""
    if type(value) is int and value >= 0:
        return value
    digits = value.rpartition("-")[2] if type(value) is str else ""
    if not digits.isdigit() or not digits.isascii():
        raise BadMessage("trade_id", value, "a string ending in decimal digits, such as '48079269'")
    return int(digits)


def _price(data: dict[str, Any], field: str) -> float:
    value = data.get(field)
    if not _is_number(value) or not 0.0 < value < INF:
        raise BadMessage(field, value, "a finite number > 0")
    return value


def _amount(data: dict[str, Any], field: str, positive: bool = False) -> float:
    value = data.get(field)
    if not _is_number(value) or not (0.0 < value < INF if positive else 0.0 <= value < INF):
        raise BadMessage(field, value, f"a finite number {'>' if positive else '>='} 0")
    return value


def _optional(data: dict[str, Any], field: str, signed: bool = False) -> float:
    """A number that may be absent or null (-> NaN); non-negative unless `signed`."""
    value = data.get(field)
    if value is None:
        return NAN
    if not _is_number(value) or not (-INF < value < INF if signed else 0.0 <= value < INF):
        raise BadMessage(field, value, f"absent, null or a finite number{'' if signed else ' >= 0'}")
    return value


_TICKER_REQUIRED = ("best_bid_price", "best_ask_price", "best_bid_amount", "best_ask_amount", "mark_price")
BOOK_STATES = {"closed": 0, "open": 1}  # the ticker's `state` (the spec's book_state)
# What an option's `underlying_index` names: nothing (not an option), the index, a future, a synthetic one.
UNDERLYING_TYPES = {"absent": 0, "index": 1, "future": 2, "synthetic": 3}
_GREEKS = ("delta", "gamma", "vega", "theta", "rho")
_NO_GREEKS = (NAN,) * len(_GREEKS)
_NO_IDS: dict[str, int] = {}


def parse_ticker(data: Any, instrument: str, ids: Mapping[str, int] = _NO_IDS) -> Ticker:
    """A `ticker.{instrument}.{interval}` payload; best bid/ask may be null or 0 when a side is empty.
    Options add IVs, greeks and their underlying, whose name `ids` turns into an instrument_id."""
    _object(data, "ticker data", instrument)
    for field in _TICKER_REQUIRED:
        if field not in data:
            raise BadMessage(field, None, "present (the ticker always carries it)")
    state = BOOK_STATES.get(data.get("state")) if type(data.get("state")) is str else None
    if state is None:
        raise BadMessage("state", data.get("state"), f"one of {', '.join(BOOK_STATES)}")
    stats = data.get("stats")
    if stats is None:
        stats = {}
    elif type(stats) is not dict:
        raise BadMessage("stats", stats, "an object")
    kind, underlying = _underlying(data.get("underlying_index"), ids)
    return _new(
        Ticker,
        (
            _int(data, "timestamp"),
            _optional(data, "best_bid_price"),
            _optional(data, "best_bid_amount"),
            _optional(data, "best_ask_price"),
            _optional(data, "best_ask_amount"),
            _optional(data, "mark_price"),
            _optional(data, "index_price"),
            _optional(data, "last_price"),
            _optional(data, "open_interest"),
            _optional(data, "funding_8h", signed=True),
            _optional(data, "current_funding", signed=True),
            _optional(data, "settlement_price"),
            _optional(data, "min_price"),
            _optional(data, "max_price"),
            _optional(data, "mark_iv"),
            _optional(stats, "high"),
            _optional(stats, "low"),
            _optional(stats, "volume"),
            state,
            kind,
            underlying,
            _optional(data, "bid_iv"),
            _optional(data, "ask_iv"),
            *_greeks(data.get("greeks")),
            _optional(data, "underlying_price"),
            _optional(data, "interest_rate", signed=True),
            _delivery_price(data.get("estimated_delivery_price")),
        ),
    )


def _greeks(greeks: Any) -> tuple[float, ...]:
    if greeks is None:
        return _NO_GREEKS
    if type(greeks) is not dict:
        raise BadMessage("greeks", greeks, "an object with delta, gamma, vega, theta, rho")
    return tuple(_optional(greeks, name, signed=True) for name in _GREEKS)


def _underlying(value: Any, ids: Mapping[str, int]) -> tuple[int, int]:
    """(UNDERLYING_TYPES code, instrument_id) of an option's `underlying_index`."""
    if value is None:
        return 0, 0
    if type(value) is int and value >= 0:  # the spec types it a number in one place: an id then
        return 2, value
    if type(value) is not str or not value:
        raise BadMessage("underlying_index", value, "'index_price', a future's name or 'SYN.<future>'")
    if value == "index_price":
        return 1, 0
    if value.startswith("SYN."):
        return 3, ids.get(value[4:], 0)
    return 2, ids.get(value, 0)


def _delivery_price(value: Any) -> float:
    """`estimated_delivery_price`: a price, or absent, null or the string 'expired' (all NaN)."""
    if value is None or value == "expired":
        return NAN
    if not _is_number(value) or not 0.0 <= value < INF:
        raise BadMessage("estimated_delivery_price", value, "absent, 'expired' or a finite number >= 0")
    return value
