"""The content of GAP copies and MARKER records: one rule, the same whoever writes the record.

The adapter (a disconnect, a broken book) and the ring marking of a dead writer's rings must produce the
same record after the same last record: the cross-checks below feed the adapter, then compare what it
published with what `gap_record` makes of the record before.
"""

from __future__ import annotations

import numpy as np
import pytest
from deribit.test_adapter import BTC, TRADES, _adapter, _note, change, snapshot, trade

from feeder import record_schema
from feeder.exchanges.deribit.adapter import DeribitAdapter
from feeder.exchanges.deribit.channels import ChannelMap
from feeder.ring import CROSSED, GAP, MARKER, SNAPSHOT
from feeder.ring.gaps import gap_copy, gap_record, marker, says_gap

BOOK = record_schema("book").dtype
TRADE = record_schema("trade").dtype


@pytest.mark.parametrize(
    ("flags", "copied"),
    [(0, GAP), (SNAPSHOT, GAP), (CROSSED, GAP), (CROSSED | GAP, GAP), (SNAPSHOT | CROSSED, GAP)],
)
def test_a_gap_copy_of_a_book_keeps_the_book_and_carries_gap_without_snapshot_or_crossed(flags, copied):
    last = np.zeros(1, BOOK)
    last["flags"], last["change_id"], last["prev_change_id"], last["ts_exchange"] = flags, 42, 41, 7
    last["bid_count"], last["bid_px"][0, 0], last["bid_sz"][0, 0], last["ts_recv"] = 1, 100.0, 2.0, 5
    before = last.copy()
    gap_copy(last, now_ns=99)
    assert last["flags"][0] == copied and last["ts_recv"][0] == 99
    for name in BOOK.names:
        if name not in ("flags", "ts_recv"):
            assert np.array_equal(last[name], before[name]), name


@pytest.mark.parametrize("ts_recv", [99, np.array([5, 6, 7])])
def test_a_marker_carries_nothing_but_its_flags_and_when_the_gap_was_noticed(ts_recv):
    records = marker(TRADE, ts_recv)
    assert len(records) == np.size(ts_recv)
    assert np.all(records["flags"] == MARKER | GAP) and np.array_equal(
        records["ts_recv"], np.atleast_1d(ts_recv)
    )
    empty = records.copy()
    empty["flags"], empty["ts_recv"] = 0, 0
    assert not empty.tobytes().strip(b"\0")


@pytest.mark.parametrize(
    ("flags", "record_type", "said"),
    [
        (GAP, "book", True),
        (CROSSED | GAP, "book", True),
        (SNAPSHOT, "book", False),
        (MARKER | GAP, "trade", True),
        (GAP, "trade", False),  # a GAP trade is a real trade (trades were missed before it)
        (MARKER | GAP, "ticker", True),
        (0, "ticker", False),
    ],
)
def test_what_already_tells_readers_about_a_gap(flags, record_type, said):
    assert says_gap(flags, record_type) is said


def test_an_empty_ring_needs_no_mark():
    assert gap_record(None, BOOK, "book", 1) is None


def _published(out) -> np.ndarray:
    return np.concatenate([np.array(records, copy=True) for _, records in out])


@pytest.mark.parametrize("crossed", ["resync", "flag"])
def test_the_adapters_gap_copy_on_a_disconnect_is_what_marking_makes_of_the_same_book(crossed):
    adapter = DeribitAdapter(ChannelMap(authenticated=True).routes(["book.BTC"]).values(), crossed=crossed)
    last = _published(adapter.feed(snapshot(BTC, 5, bids=[(100.0, 1.0), (99.0, 2.0)]), 1))
    if crossed == "flag":  # the last record before the disconnect is CROSSED
        last = _published(adapter.feed(change(BTC, 5, 6, bids=[["new", 101.5, 1.0]]), 2))
    copy = _published(adapter.disconnected(77))
    assert copy.tobytes() == gap_record(last[-1], BOOK, "book", 77).tobytes()


def test_the_adapters_gap_copy_of_a_broken_book_is_what_marking_makes_of_the_same_book():
    adapter = _adapter("book.BTC")
    last = _published(adapter.feed(snapshot(BTC, 5), 1))
    last = _published(adapter.feed(change(BTC, 5, 6, bids=[["new", 99.5, 1.0]]), 2))
    copy = _published(adapter.feed(change(BTC, 9, 10), 3))  # a gap in change_ids
    assert copy.tobytes() == gap_record(last[-1], BOOK, "book", 3).tobytes()


def test_the_adapters_marker_on_a_disconnect_is_what_marking_makes_of_the_same_trade():
    adapter = _adapter("trades.BTC")
    last = _published(adapter.feed(_note(TRADES, [trade(1), trade(2)]), 1))
    mark = _published(adapter.disconnected(55))
    assert mark.tobytes() == gap_record(last[-1], TRADE, "trade", 55).tobytes()
