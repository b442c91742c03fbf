"""The adapter's live audit: the exchange's get_order_book answer against what was published."""

from __future__ import annotations

import logging

from deribit.test_adapter import BTC, ETH, _adapter, _note, change, records, snapshot

from feeder.exchanges.deribit.adapter import DeribitAdapter, Resubscribe
from feeder.exchanges.deribit.channels import ChannelConfig, ChannelMap
from feeder.exchanges.deribit.sync import BookSync
from feeder.ring.flags import GAP

BIDS = [(100.0, 1.0), (99.0, 2.0)]
ASKS = [(101.0, 1.0), (102.0, 3.0)]


def order_book(change_id: int, bids=BIDS, asks=ASKS, instrument="BTC-PERPETUAL") -> dict:
    """A public/get_order_book result, shaped like Deribit's."""
    return {
        "instrument_name": instrument,
        "timestamp": 1700000000000,
        "state": "open",
        "change_id": change_id,
        "bids": [[p, a] for p, a in bids],
        "asks": [[p, a] for p, a in asks],
    }


def _live(*extra) -> DeribitAdapter:
    """Both books live after `extra`; then the BTC audit request goes out (as the feed does it)."""
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5, bids=BIDS, asks=ASKS), 1)
    adapter.feed(snapshot(ETH, 50), 1)
    for message in extra:
        adapter.feed(message, 2)
    adapter.audit_started(BTC)
    return adapter


def _audits(adapter: DeribitAdapter, channel: str = BTC) -> dict:
    return adapter.metrics()["books"][channel]["audits"]


def test_a_snapshot_equal_to_the_published_book_passes_and_publishes_nothing():
    adapter = _live()
    assert adapter.audit(BTC, order_book(5), 77) == []
    assert _audits(adapter)["passed"] == 1 and _audits(adapter)["last_passed_ns"] == 77
    assert not adapter.take_requests()


def test_a_phantom_level_is_a_gap_at_once_and_a_resync_of_that_book_only(caplog):
    phantom = change(BTC, 5, 6, bids=[["new", 99.5, 4.0]])  # chained, not crossing: chaining cannot see it
    adapter = _live(phantom)
    with caplog.at_level(logging.WARNING):
        [(ring, rec)] = records(adapter.audit(BTC, order_book(6), 88))
    assert ring == "book.BTC" and rec["flags"] == GAP and rec["ts_recv"] == 88
    assert adapter.take_requests() == [Resubscribe(BTC, "audit mismatch")]
    assert adapter.book_state(BTC) is BookSync.GAP and adapter.book_state(ETH) is BookSync.LIVE
    assert _audits(adapter)["failed"] == 1 and adapter.stats.audit_failures == 1
    [line] = [r.getMessage() for r in caplog.records if "audit FAILED" in r.getMessage()]
    assert "change_id 6" in line and "99.5x4|99x2*" in line and "\n" not in line


def test_a_snapshot_ahead_of_the_stream_is_judged_when_the_stream_gets_there():
    adapter = _live()
    assert adapter.audit(BTC, order_book(7, bids=[(100.0, 5.0), (99.0, 2.0)]), 10) == []
    assert _audits(adapter)["pending"]
    out = records(adapter.feed(change(BTC, 5, 7, bids=[["change", 100.0, 5.0]]), 11))
    assert [rec["flags"] for _, rec in out] == [0]
    assert _audits(adapter)["passed"] == 1


def test_when_the_stream_reaches_a_pending_snapshot_with_other_levels_that_record_is_gap():
    adapter = _live()
    adapter.audit(BTC, order_book(7), 10)
    [(_, rec)] = records(adapter.feed(change(BTC, 5, 7, bids=[["new", 99.5, 1.0]]), 11))
    assert rec["flags"] == GAP and rec["change_id"] == 7
    assert _audits(adapter)["failed"] == 1
    assert [r.reason for r in adapter.take_requests()] == ["audit mismatch"]
    assert adapter.feed(change(BTC, 7, 8, bids=[["delete", 99.5, 0]]), 12) == []


def test_answers_that_cannot_be_judged_are_counted_unverifiable():
    adapter = _live()
    adapter.audit(BTC, order_book(4), 1)  # older than anything published on this stream
    adapter.audit(BTC, {"change_id": "x"}, 2)  # not an order book
    adapter.audit_unverifiable(BTC, "request failed: RequestTimeout")
    audits = _audits(adapter)
    assert (audits["passed"], audits["failed"], audits["unverifiable"]) == (0, 0, 3)
    assert adapter.stats.rejected == 1 and adapter.book_state(BTC) is BookSync.LIVE


def test_an_answer_for_a_book_that_is_not_live_is_unverifiable_and_changes_nothing():
    adapter = _live(change(BTC, 9, 10))  # a gap: BTC is resyncing
    adapter.take_requests()
    assert adapter.audit(BTC, order_book(5), 3) == []
    assert _audits(adapter)["unverifiable"] == 1 and not adapter.take_requests()


def test_only_live_ungrouped_books_are_audited_with_depth_at_least_the_record_levels():
    adapter = _live()
    assert adapter.audit_channels == [BTC, ETH]
    assert adapter.auditable(BTC)
    assert DeribitAdapter.audit_params(adapter.routes[BTC]) == {
        "instrument_name": "BTC-PERPETUAL",
        "depth": 10,
    }
    grouped = ChannelMap(ChannelConfig(book_depth=10, interval="100ms")).routes(["book.ETH"])
    assert DeribitAdapter(grouped.values()).audit_channels == []


def test_a_disconnect_settles_a_pending_audit_as_unverifiable():
    adapter = _live()
    adapter.audit(BTC, order_book(9), 1)
    adapter.disconnected(2)
    assert _audits(adapter)["unverifiable"] == 1 and not _audits(adapter)["pending"]


def test_a_disconnect_puts_a_marker_on_event_rings_that_published():
    from deribit.test_adapter import TRADES, trade

    from feeder.ring.flags import MARKER

    adapter = _adapter("trades.BTC", "ticker.BTC", "trades.ETH")
    adapter.feed(_note(TRADES, [trade(1)]), 1)
    out = records(adapter.disconnected(5))
    assert [(ring, rec["flags"], rec["ts_recv"], rec["amount"], rec["trade_seq"]) for ring, rec in out] == [
        ("trades.BTC", MARKER | GAP, 5, 0.0, 0)
    ]
    assert adapter.disconnected(6) == []  # nothing flowed since the marker
