"""Typed record views (feeder/records/): one record or an array of them, zero-copy, depth from the dtype."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import numpy as np
import pytest

from feeder import (
    CROSSED,
    GAP,
    MARKER,
    SNAPSHOT,
    Book,
    Books,
    RingReader,
    RingWriter,
    Ticker,
    Tickers,
    Trade,
    Trades,
    UsageError,
    record_schema,
)
from feeder.ring.schema import dtype_from_fields, schema_dir

BOOK = record_schema("book").dtype
TS = 1_764_100_000_123_456_789  # 2025-11-25T19:46:40.123456789Z


def books(*sides: tuple[list, list], flags: int = 0, dtype: np.dtype = BOOK) -> np.ndarray:
    """Book records from (bids, asks) level lists [(px, sz), ...]."""
    out = np.zeros(len(sides), dtype)
    out["flags"], out["ts_recv"], out["ts_exchange"] = flags, TS, TS - 1_000_000
    out["seq"] = np.arange(len(sides))
    for rec, (bids, asks) in zip(out, sides, strict=True):
        rec["change_id"] = 100 + rec["seq"]
        rec["bid_count"], rec["ask_count"] = len(bids), len(asks)
        for i, (px, sz) in enumerate(bids):
            rec["bid_px"][i], rec["bid_sz"][i] = px, sz
        for i, (px, sz) in enumerate(asks):
            rec["ask_px"][i], rec["ask_sz"][i] = px, sz
    return out


def deep_book(levels: int) -> np.dtype:
    """A book layout with `levels` per side, laid out as book.json lays out 10."""
    doc = json.loads((schema_dir() / "book.json").read_text())
    fields, offset = [], 64
    for f in copy.deepcopy(doc["fields"]):
        if f.get("count") == doc["levels"]:
            f["count"], f["offset"] = levels, offset
            offset += 8 * levels
        fields.append(f)
    return dtype_from_fields(fields, -(-offset // 64) * 64, "deep book")


def test_one_book_shows_only_its_valid_levels_and_the_figures_derived_from_them():
    book = Book(books(([(100.0, 1.0), (99.5, 2.0)], [(101.0, 3.0)]))[0], ring="book.BTC")
    assert book.bids.tolist() == [[100.0, 1.0], [99.5, 2.0]] and book.asks.tolist() == [[101.0, 3.0]]
    assert (book.best_bid, book.best_ask, book.best_bid_size, book.best_ask_size) == (100.0, 101.0, 1.0, 3.0)
    assert (book.mid, book.spread, book.depth, book.change_id) == (100.5, 1.0, 10, 100)
    assert (book.ring, book.symbol, book.instrument) == ("book.BTC", "BTC", "BTC-PERPETUAL")
    assert Book(books(([], []))[0], ring="book.X-1", instrument="X-1").instrument == "X-1"


def test_an_empty_side_gives_nan_not_a_price():
    book = Book(books(([(100.0, 1.0)], []))[0])
    assert book.asks.shape == (0, 2) and np.isnan(book.best_ask) and np.isnan(book.mid)
    assert book.ring is None and book.instrument is None


@pytest.mark.parametrize(
    ("flags", "valid", "names"),
    [
        (SNAPSHOT, True, ("SNAPSHOT",)),
        (0, True, ()),
        (GAP, False, ("GAP",)),
        (CROSSED, False, ("CROSSED",)),
        (GAP | MARKER, False, ("GAP", "MARKER")),
    ],
)
def test_a_book_is_valid_unless_gap_crossed_or_marker(flags, valid, names):
    book = Book(books(([(1.0, 1.0)], [(2.0, 1.0)]), flags=flags))
    assert (book.valid, book.flag_names) == (valid, names)
    assert (book.is_snapshot, book.is_gap, book.is_crossed) == (
        bool(flags & SNAPSHOT),
        bool(flags & GAP),
        bool(flags & CROSSED),
    )


def test_timestamps_are_ints_and_datetimes():
    book = Book(books(([], []))[0])
    assert book.ts_recv == TS and isinstance(book.ts_recv, int)
    assert book.recv_time == datetime(2025, 11, 25, 19, 46, 40, 123456, tzinfo=UTC)
    assert book.publish_time is None  # 0: absent
    many = Books(books(([], []), ([], [])))
    assert many.recv_time.dtype == np.dtype("datetime64[ns]")
    assert str(many.recv_time[0]) == "2025-11-25T19:46:40.123456789"


def test_an_array_view_copies_nothing_and_indexes_like_numpy():
    records = books(([(100.0, 1.0)], [(101.0, 2.0)]), ([], [(102.0, 1.0)]), ([(99.0, 1.0)], [(98.0, 1.0)]))
    records["flags"][2] = CROSSED
    many = Books(records, ring="book.ETH")
    assert len(many) == 3 and many.bids.shape == (3, 10, 2)
    for view in (many.bids, many.asks, many.seq, many.recv_time, many[0].bids):
        assert np.shares_memory(view, records)
    assert many.best_bid[0] == 100.0 and np.isnan(many.best_bid[1]) and many.spread[0] == 1.0
    assert many.valid.tolist() == [True, True, False]
    assert [b.seq for b in many[many.valid]] == [0, 1]
    assert isinstance(many[2], Book) and many[2].ring == "book.ETH" and many[2].is_crossed


@pytest.mark.parametrize("levels", [25, 50])
def test_the_depth_comes_from_the_records_not_from_ten(levels):
    dtype = deep_book(levels)
    deep = [(1000.0 - i, 1.0 + i) for i in range(levels)]
    records = books((deep, deep[:3]), dtype=dtype)
    many = Books(records)
    assert many.depth == levels and many.bids.shape == (1, levels, 2)
    one = many[0]
    assert one.bids.tolist() == [list(level) for level in deep] and one.asks.shape == (3, 2)


def test_views_refuse_records_of_another_type():
    trades = np.zeros(2, record_schema("trade").dtype)
    with pytest.raises(UsageError, match="Books views book records: these records have no field change_id"):
        Books(trades)
    with pytest.raises(UsageError, match="views one record; got 2: use Trades"):
        Trade(trades)


def test_trade_and_ticker_views():
    trades = np.zeros(2, record_schema("trade").dtype)
    trades["price"], trades["amount"], trades["direction"] = [100.5, 101.0], [10, 20], [1, -1]
    trades["flags"] = [GAP, GAP | MARKER]
    one = Trade(trades[0])
    assert (one.price, one.amount, one.side, one.gap_before, one.valid) == (100.5, 10.0, "buy", True, True)
    assert Trades(trades).valid.tolist() == [True, False] and Trades(trades)[1].side == "sell"
    tickers = np.zeros(1, record_schema("ticker").dtype)
    tickers["best_bid_px"], tickers["best_ask_px"], tickers["mark_price"] = 10.0, 11.0, 10.4
    assert (Ticker(tickers).mid, Ticker(tickers).mark_price) == (10.5, 10.4)
    assert Tickers(tickers).spread.tolist() == [1.0]


def test_views_read_a_ring():
    records = books(([(100.0, 1.0)], [(101.0, 2.0)]), ([(100.5, 1.0)], [(101.0, 2.0)]), flags=SNAPSHOT)
    with (
        RingWriter.create("book.VIEW", "book", 8) as writer,
        RingReader("book.VIEW", start="oldest") as reader,
    ):
        assert Book.latest(reader) is None
        writer.publish_batch(records)
        latest = Book.latest(reader)
        assert latest is not None and latest.best_bid == 100.5 and latest.ring == "book.VIEW"
        many = Books.read(reader)
        assert many.best_bid.tolist() == [100.0, 100.5] and many.ring == "book.VIEW"
        writer.publish(records[:1])
        assert next(Book.iterate(reader)).best_bid == 100.0
        with pytest.raises(
            UsageError, match=r"ring 'book\.VIEW' holds book records: Trades views trade records"
        ):
            Trades.read(reader)


@pytest.mark.parametrize("record_type", ["book25", "book50"])
def test_views_read_rings_of_the_deeper_book_records(record_type):
    schema = record_schema(record_type)
    deep = [(1000.0 - i, 1.0 + i) for i in range(schema.levels + 5)]
    records = books((deep[: schema.levels], deep[:2]), dtype=schema.dtype)
    with (
        RingWriter.create("book.DEEP", record_type, 8) as writer,
        RingReader("book.DEEP", start="oldest") as reader,
    ):
        writer.publish_batch(records)
        [one] = list(Books.read(reader))
        assert one.depth == schema.levels and one.bids.tolist() == [list(x) for x in deep[: schema.levels]]
        assert Book.latest(reader).asks.shape == (2, 2)
