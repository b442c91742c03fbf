"""Marking a ring GAP: a GAP copy of the last book, a MARKER|GAP record (no event) on event rings."""

from __future__ import annotations

import numpy as np
import pytest

from feeder import record_schema
from feeder.ring import GAP, MARKER, SNAPSHOT, RingReader, RingWriter
from feeder.ring.gaps import gap_record
from feeder.ring.marking import last_content, mark_gap, needs_mark


@pytest.fixture
def ring():
    made = []

    def make(name: str, record_type: str) -> RingWriter:
        writer = RingWriter.create(name, record_type, 64)
        made.append(writer)
        return writer

    yield make
    for writer in made:
        writer.close()


def _all(name: str) -> np.ndarray:
    with RingReader(name, start="oldest") as reader:
        return reader.read()


def test_a_book_ring_gets_a_gap_copy_of_its_last_book_without_the_snapshot_flag(ring):
    writer = ring("book.BTC", "book")
    book = np.zeros(1, writer.dtype)
    book["flags"], book["change_id"], book["bid_px"][0, 0], book["ts_recv"] = SNAPSHOT, 42, 100.0, 1
    writer.publish(book)
    assert mark_gap(writer, now_ns=99)
    last = _all("book.BTC")[-1]
    assert (last["flags"], last["change_id"], last["bid_px"][0], last["ts_recv"]) == (GAP, 42, 100.0, 99)


@pytest.mark.parametrize(
    ("ring_name", "record_type", "field"),
    [("trades.BTC", "trade", "amount"), ("ticker.BTC", "ticker", "mark_price")],
)
def test_an_event_ring_gets_a_marker_that_carries_no_event(ring, ring_name, record_type, field):
    writer = ring(ring_name, record_type)
    event = np.zeros(1, writer.dtype)
    event[field], event["ts_exchange"] = 10.0, 5
    writer.publish(event)
    assert mark_gap(writer, now_ns=99)
    last = _all(ring_name)[-1]
    assert last["flags"] == MARKER | GAP and last["ts_recv"] == 99
    assert last[field] == 0 and last["ts_exchange"] == 0
    assert last_content(ring_name)[field] == 10.0  # the last real event, past the marker


@pytest.mark.parametrize(("ring_name", "record_type"), [("book.BTC", "book"), ("trades.BTC", "trade")])
def test_marking_twice_says_it_once_and_an_empty_ring_is_left_alone(ring, ring_name, record_type):
    writer = ring(ring_name, record_type)
    assert not needs_mark(ring_name, record_type) and not mark_gap(writer)
    writer.publish(np.zeros(1, writer.dtype))
    assert needs_mark(ring_name, record_type)
    assert mark_gap(writer) and not mark_gap(writer)
    assert not needs_mark(ring_name, record_type)
    assert len(_all(ring_name)) == 2


def test_a_trade_flagged_gap_is_a_trade_and_still_gets_a_marker():
    dtype = record_schema("trade").dtype
    trade = np.zeros(1, dtype)[0]
    trade["flags"], trade["amount"] = GAP, 3.0
    marked = gap_record(trade, dtype, "trade", 7)
    assert marked is not None and marked[0]["flags"] == MARKER | GAP and marked[0]["amount"] == 0
