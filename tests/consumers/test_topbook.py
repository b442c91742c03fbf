"""The monitor's per-ring view (pure): trust state, counters and event lines from records and events."""

from __future__ import annotations

import math

from feeder import CROSSED, GAP, SNAPSHOT
from feeder.consumers.follow import Attached, Closed, Lost, NewWriter
from feeder.consumers.monitor import plain_line, table
from feeder.consumers.topbook import CLOSED, GAP_STATE, LIVE, WAITING, TopOfBook


def test_first_plain_record_means_live_when_attached_mid_stream(book_records):
    book = TopOfBook("book.BTC")
    assert book.state == WAITING
    assert book.on_records(book_records((100.0, 101.0, 0))) == []
    assert book.state == LIVE


def test_gap_makes_the_book_untrustworthy_until_the_next_snapshot(book_records):
    book = TopOfBook("book.BTC")
    lines = book.on_records(book_records((100.0, 101.0, SNAPSHOT), (100.0, 101.0, 0), (100.0, 101.0, GAP)))
    assert book.state == GAP_STATE
    assert [line.split()[0] for line in lines] == ["SNAPSHOT", "GAP"]
    assert "NOT trustworthy" in lines[1] and "change_id 1002" in lines[1]
    lines = book.on_records(book_records((100.5, 101.0, SNAPSHOT), first_seq=3))
    assert book.state == LIVE and lines[0].startswith("SNAPSHOT at seq 3")
    assert (book.gaps, book.snapshots, book.records) == (1, 2, 4)


def test_every_gap_in_a_batch_is_an_event_line(book_records):
    book = TopOfBook("book.BTC")
    rows = [(1.0, 2.0, GAP), (1.0, 2.0, SNAPSHOT)] * 3
    lines = book.on_records(book_records(*rows))
    assert sum(line.startswith("GAP") for line in lines) == 3
    assert book.gaps == 3 and book.state == LIVE


def test_only_entering_a_crossed_book_is_an_event(book_records):
    book = TopOfBook("book.BTC")
    rows = [(2.0, 1.0, CROSSED), (2.0, 1.0, CROSSED), (1.0, 2.0, 0), (2.0, 1.0, CROSSED)]
    lines = book.on_records(book_records(*rows))
    assert [line.split()[0] for line in lines] == ["CROSSED", "CROSSED"]
    assert book.crossed == 3


def test_losses_and_restarts_are_event_lines():
    book = TopOfBook("book.BTC")
    assert book.on_event(Attached(0, 1, 1, again=False)) is None
    assert book.on_event(Lost(10, 5)).startswith("LOST 5 records (seq 10-14)")
    assert book.lost == 5
    assert "epoch 3" in book.on_event(NewWriter(3))
    assert book.on_event(Closed()).startswith("CLOSED") and book.state == CLOSED
    assert book.on_event(Attached(0, 2, 1, again=True)).startswith("ATTACHED") and book.state == WAITING


def test_row_shows_best_levels_spread_flags_and_age(book_records):
    book = TopOfBook("book.BTC")
    rec = book_records((100.0, 100.5, SNAPSHOT))
    book.on_records(rec)
    book.tick(2.0)
    row = book.row(int(rec["ts_publish"][0]) + 3_000_000)
    assert row["bid"] == (100.0, 10.0) and row["ask"] == (100.5, 20.0)
    assert row["spread"] == 0.5 and row["flags"] == SNAPSHOT
    assert math.isclose(row["age_ms"], 3.0) and row["rate"] == 0.5
    line = plain_line(row)
    assert "bid 100 x 10 | ask 100.5 x 20 | spread 0.5" in line and "flags SNAPSHOT" in line
    assert "age 3.0ms" in line and "0.5 rec/s" in line


def test_an_empty_side_shows_as_a_dash(book_records):
    book = TopOfBook("book.BTC")
    book.on_records(book_records((None, 100.5, SNAPSHOT | GAP)))
    row = book.row(0)
    assert row["bid"] is None and row["spread"] is None
    assert "bid - x -" in plain_line(row) and "SNAPSHOT|GAP" in plain_line(row)


def test_table_has_a_header_and_a_line_per_ring(book_records):
    live, waiting = TopOfBook("book.BTC"), TopOfBook("book.ETH")
    live.on_records(book_records((100.0, 100.5, GAP)))
    lines = table([live.row(0), waiting.row(0)])
    assert len(lines) == 3 and "change_id" in lines[0]
    assert "GAP" in lines[1] and "waiting" in lines[2]
