"""The pure market-data core: notifications in, records and resubscribe requests out."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest

from feeder.errors import ConfigError, UsageError
from feeder.exchanges.deribit.adapter import AdapterStats, DeribitAdapter, Resubscribe
from feeder.exchanges.deribit.channels import ChannelMap
from feeder.exchanges.deribit.sync import BookSync, SyncEvent, next_state
from feeder.ring.flags import CROSSED, GAP, SNAPSHOT

BTC, ETH = "book.BTC-PERPETUAL.raw", "book.ETH-PERPETUAL.raw"


def _adapter(*rings: str) -> DeribitAdapter:
    rings = rings or ("book.BTC", "book.ETH")
    return DeribitAdapter(ChannelMap(authenticated=True).routes(rings).values())


def _note(channel: str, data) -> dict:
    return {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}


def _instrument(channel: str) -> str:
    return channel.split(".")[1]


def snapshot(channel: str, change_id: int, bids=((100.0, 1.0),), asks=((101.0, 1.0),)) -> dict:
    return _note(
        channel,
        {
            "type": "snapshot",
            "timestamp": 1700000000000,
            "instrument_name": _instrument(channel),
            "change_id": change_id,
            "bids": [["new", p, a] for p, a in bids],
            "asks": [["new", p, a] for p, a in asks],
        },
    )


def change(channel: str, prev: int, change_id: int, bids=(), asks=()) -> dict:
    return _note(
        channel,
        {
            "type": "change",
            "timestamp": 1700000000001,
            "instrument_name": _instrument(channel),
            "prev_change_id": prev,
            "change_id": change_id,
            "bids": [list(e) for e in bids],
            "asks": [list(e) for e in asks],
        },
    )


def records(out) -> list[tuple[str, dict]]:
    """Copy what feed() emitted (it reuses its buffers) into comparable dicts."""
    copied = []
    for ring, recs in out:
        for rec in np.array(recs, copy=True):
            copied.append((ring, {name: rec[name] for name in rec.dtype.names}))
    return copied


def test_snapshot_is_published_flagged_snapshot_with_its_top_levels():
    adapter = _adapter()
    [(ring, rec)] = records(adapter.feed(snapshot(BTC, 5, bids=[(100.0, 2.0), (99.0, 3.0)]), 42))
    assert ring == "book.BTC"
    assert rec["flags"] == SNAPSHOT
    assert (rec["change_id"], rec["prev_change_id"], rec["ts_recv"]) == (5, 0, 42)
    assert rec["ts_exchange"] == 1700000000000 * 1_000_000
    assert (rec["bid_count"], rec["ask_count"]) == (2, 1)
    assert rec["bid_px"][:2].tolist() == [100.0, 99.0] and rec["bid_sz"][:2].tolist() == [2.0, 3.0]
    assert adapter.book_state(BTC) is BookSync.LIVE


def test_chained_change_is_applied_and_published_unflagged():
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5), 1)
    [(_, rec)] = records(adapter.feed(change(BTC, 5, 9, bids=[["new", 100.5, 4.0]]), 2))
    assert rec["flags"] == 0
    assert (rec["change_id"], rec["prev_change_id"]) == (9, 5)
    assert rec["bid_px"][:2].tolist() == [100.5, 100.0]


@pytest.mark.parametrize("change_id", [5, 4])
def test_duplicate_or_stale_change_is_dropped_and_counted(change_id):
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5), 1)
    assert adapter.feed(change(BTC, 3, change_id, bids=[["new", 100.5, 4.0]]), 2) == []
    assert adapter.stats.duplicates == 1
    assert adapter.book_state(BTC) is BookSync.LIVE
    assert not adapter.take_requests()


def test_gap_publishes_gap_with_last_good_book_and_asks_to_resubscribe_that_channel_only():
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5), 1)
    adapter.feed(snapshot(ETH, 50), 1)
    adapter.feed(change(BTC, 5, 6, bids=[["change", 100.0, 7.0]]), 2)
    [(ring, rec)] = records(adapter.feed(change(BTC, 7, 8, bids=[["change", 100.0, 9.0]]), 3))
    assert ring == "book.BTC"
    assert rec["flags"] == GAP
    assert (rec["change_id"], rec["ts_recv"]) == (6, 3)
    assert rec["bid_sz"][0] == 7.0  # the last good book, not the message that revealed the gap
    assert adapter.take_requests() == [Resubscribe(BTC, "gap")]
    assert adapter.book_state(BTC) is BookSync.GAP
    assert adapter.book_state(ETH) is BookSync.LIVE
    assert adapter.stats.gaps == 1


def test_nothing_is_published_for_a_gapped_book_until_the_new_snapshot_which_is_flagged():
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5), 1)
    adapter.feed(change(BTC, 6, 7), 2)  # gap
    assert adapter.feed(change(BTC, 7, 8), 3) == []
    assert adapter.feed(change(BTC, 8, 9), 4) == []
    assert adapter.stats.skipped == 2
    [(_, rec)] = records(adapter.feed(snapshot(BTC, 20, bids=[(90.0, 1.0)]), 5))
    assert rec["flags"] == SNAPSHOT and rec["change_id"] == 20 and rec["bid_px"][0] == 90.0
    assert adapter.book_state(BTC) is BookSync.LIVE


def test_other_instruments_keep_publishing_while_one_resyncs():
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5), 1)
    adapter.feed(snapshot(ETH, 50), 1)
    adapter.feed(change(BTC, 6, 7), 2)
    [(ring, rec)] = records(adapter.feed(change(ETH, 50, 51, asks=[["new", 101.5, 1.0]]), 3))
    assert ring == "book.ETH" and rec["flags"] == 0


def test_changes_before_the_first_snapshot_are_skipped_without_a_request():
    adapter = _adapter()
    assert adapter.feed(change(BTC, 1, 2), 1) == []
    assert adapter.stats.skipped == 1 and not adapter.take_requests()
    assert adapter.book_state(BTC) is BookSync.AWAITING_SNAPSHOT


@pytest.mark.parametrize(
    "bad",
    [
        [["new", float("nan"), 1.0]],
        [["new", -1.0, 1.0]],
        [["change", 100.0, -2.0]],
        [["bogus", 100.0, 1.0]],
        [["new", "100", 1.0]],
    ],
)
def test_bad_change_on_a_live_book_is_rejected_gapped_and_resynced_never_published_as_valid(bad):
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5), 1)
    out = records(adapter.feed(change(BTC, 5, 6, bids=bad), 2))
    assert [rec["flags"] for _, rec in out] == [GAP]
    assert out[0][1]["change_id"] == 5
    assert adapter.stats.rejected == 1
    assert adapter.take_requests() == [Resubscribe(BTC, "bad message")]


@pytest.mark.parametrize(
    ("bids", "asks"),
    [
        ([["new", 100.0, 2.0]], []),  # the level exists
        ([["change", 95.0, 2.0]], []),  # no such level
        ([], [["delete", 150.0, 0.0]]),  # no such level
    ],
)
def test_an_action_the_book_contradicts_gaps_and_resyncs(bids, asks):
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5), 1)
    out = records(adapter.feed(change(BTC, 5, 6, bids=bids, asks=asks), 2))
    assert [rec["flags"] for _, rec in out] == [GAP]
    assert adapter.stats.inconsistent == 1
    assert [r.channel for r in adapter.take_requests()] == [BTC]


def test_a_bad_entry_after_good_ones_leaves_the_last_record_as_it_was():
    """The one pass applies entries as it validates them; the record is only written once the whole
    message applied, so the GAP record repeats the last published book exactly."""
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5, bids=[(100.0, 1.0), (99.0, 2.0)], asks=[(101.0, 1.0)]), 1)
    [(_, before)] = records(adapter.feed(change(BTC, 5, 6, bids=[["change", 99.0, 3.0]]), 2))
    bad = change(BTC, 6, 7, bids=[["change", 100.0, 5.0], ["new", 99.5, 1.0]], asks=[["new", -1.0, 1.0]])
    [(_, gap)] = records(adapter.feed(bad, 3))
    assert gap["flags"] == GAP and gap["change_id"] == 6
    for field in ("bid_count", "ask_count", "bid_px", "bid_sz", "ask_px", "ask_sz"):
        assert np.array_equal(gap[field], before[field]), field
    assert adapter.rejections == {"asks price": 1}
    assert adapter.take_requests() == [Resubscribe(BTC, "bad message")]


def test_a_message_both_contradicted_and_malformed_counts_as_malformed():
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5), 1)
    adapter.feed(change(BTC, 5, 6, bids=[["new", 100.0, 2.0]], asks=[["new", 102.0, "x"]]), 2)
    assert (adapter.stats.rejected, adapter.stats.inconsistent) == (1, 0)
    assert adapter.rejections == {"asks amount": 1}


def test_the_one_pass_and_the_general_path_publish_the_same_records():
    """Typed changes take the one pass; the same changes without `type` (old recordings) go through
    parse_book: every record comes out byte for byte the same."""
    rng = random.Random(4)
    bids = {100.0 - i * 0.5: 1.0 for i in range(40)}
    asks = {101.0 + i * 0.5: 1.0 for i in range(40)}
    fast, general = _adapter("book.BTC"), _adapter("book.BTC")
    first = snapshot(BTC, 1, bids=list(bids.items()), asks=list(asks.items()))
    for adapter in (fast, general):
        adapter.feed(copy.deepcopy(first), 0)
    for step in range(1, 500):
        name = rng.choice(("bids", "asks"))
        levels = bids if name == "bids" else asks
        price = rng.choice(sorted(levels, reverse=name == "bids")[:15])
        fresh = price - 20 if name == "bids" else price + 20
        if rng.random() < 0.7 or fresh in levels:
            entry = ["change", price, float(rng.randint(1, 9))]
        else:
            entry = ["delete", price, 0.0]
        if entry[0] == "delete":
            del levels[price]
            levels[fresh] = 1.0
            entries = [entry, ["new", fresh, 1.0]]
        else:
            levels[price] = entry[2]
            entries = [entry]
        msg = change(BTC, step, step + 1, **{name: entries})
        legacy = copy.deepcopy(msg)
        del legacy["params"]["data"]["type"]
        a, b = records(fast.feed(msg, step)), records(general.feed(legacy, step))
        assert len(a) == len(b) == 1 and a[0][1]["flags"] == 0
        for field in a[0][1]:
            assert np.array_equal(a[0][1][field], b[0][1][field]), (step, field)
    assert fast.stats.book_changes == general.stats.book_changes == 499


def test_bad_change_while_resyncing_is_counted_without_another_request():
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5), 1)
    adapter.feed(change(BTC, 6, 7), 2)
    adapter.take_requests()
    assert adapter.feed(change(BTC, 7, 8, bids=[["new", -1.0, 1.0]]), 3) == []
    assert adapter.stats.rejected == 1 and not adapter.take_requests()


def test_bad_snapshot_while_resyncing_asks_again_without_a_second_gap_record():
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5), 1)
    adapter.feed(change(BTC, 6, 7), 2)
    adapter.take_requests()
    bad = snapshot(BTC, 9, bids=[(float("inf"), 1.0)])
    assert adapter.feed(bad, 3) == []
    assert adapter.take_requests() == [Resubscribe(BTC, "bad message")]


def test_bad_first_snapshot_publishes_an_empty_gap_record_and_resubscribes():
    adapter = _adapter()
    [(_, rec)] = records(adapter.feed(snapshot(BTC, 5, asks=[(0.0, 1.0)]), 1))
    assert rec["flags"] == GAP and rec["bid_count"] == 0 and rec["ask_count"] == 0
    assert [r.channel for r in adapter.take_requests()] == [BTC]


def test_a_crossed_book_is_published_crossed_and_gap_and_only_that_book_resyncs():
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5), 1)
    adapter.feed(snapshot(ETH, 50), 1)
    [(_, rec)] = records(adapter.feed(change(BTC, 5, 6, bids=[["new", 101.0, 1.0]]), 2))
    assert rec["flags"] == CROSSED | GAP and rec["bid_px"][0] == 101.0
    assert adapter.take_requests() == [Resubscribe(BTC, "crossed book")]
    assert adapter.book_state(BTC) is BookSync.GAP and adapter.book_state(ETH) is BookSync.LIVE
    assert adapter.stats.crossed == 1


def test_a_phantom_crossing_level_never_reaches_an_unflagged_record_even_once_uncrossed():
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5, asks=[(101.0, 1.0), (102.0, 1.0)]), 1)
    out = records(adapter.feed(change(BTC, 5, 6, bids=[["new", 101.5, 1.0]]), 2))
    out += records(adapter.feed(change(BTC, 6, 7, asks=[["delete", 101.0, 0]]), 3))  # 101.5 < 102: uncrossed
    out += records(adapter.feed(change(BTC, 7, 8, asks=[["new", 103.0, 2.0]]), 4))
    assert [rec["flags"] for _, rec in out] == [CROSSED | GAP]
    [(_, rec)] = records(adapter.feed(snapshot(BTC, 9, asks=[(102.0, 1.0), (103.0, 2.0)]), 5))
    assert rec["flags"] == SNAPSHOT and rec["bid_px"][0] == 100.0


def test_a_locked_snapshot_is_not_published_as_a_snapshot():
    adapter = _adapter()
    [(_, rec)] = records(adapter.feed(snapshot(BTC, 5, bids=[(101.0, 1.0)]), 1))
    assert rec["flags"] == CROSSED | GAP
    assert [r.channel for r in adapter.take_requests()] == [BTC]


def test_with_crossed_flag_a_crossed_book_is_flagged_and_stays_live():
    adapter = DeribitAdapter(ChannelMap(authenticated=True).routes(["book.BTC"]).values(), crossed="flag")
    adapter.feed(snapshot(BTC, 5), 1)
    [(_, rec)] = records(adapter.feed(change(BTC, 5, 6, bids=[["new", 101.0, 1.0]]), 2))
    assert rec["flags"] == CROSSED
    assert adapter.stats.crossed == 1 and not adapter.take_requests()
    [(_, rec)] = records(adapter.feed(change(BTC, 6, 7, bids=[["delete", 101.0, 0]]), 3))
    assert rec["flags"] == 0


def test_an_unknown_crossed_mode_is_refused():
    with pytest.raises(ConfigError, match="crossed"):
        DeribitAdapter([], crossed="ignore")


def test_disconnect_gaps_live_books_only_and_forgets_pending_resyncs():
    adapter = _adapter("book.BTC", "book.ETH", "book.BTC-27DEC24")
    adapter.feed(snapshot(BTC, 5), 1)
    adapter.feed(snapshot(ETH, 50), 1)
    adapter.feed(change(ETH, 51, 52), 2)  # ETH is already in GAP with a pending request
    out = records(adapter.disconnected(99))
    assert [(ring, rec["flags"], rec["ts_recv"]) for ring, rec in out] == [("book.BTC", GAP, 99)]
    assert not adapter.take_requests()
    assert adapter.book_state("book.BTC-27DEC24.raw") is BookSync.AWAITING_SNAPSHOT
    [(_, rec)] = records(adapter.feed(snapshot(BTC, 80), 100))
    assert rec["flags"] == SNAPSHOT


def test_legacy_snapshot_without_type_resyncs_a_gapped_book():
    adapter = _adapter()
    adapter.feed(snapshot(BTC, 5), 1)
    adapter.feed(change(BTC, 6, 7), 2)
    legacy = snapshot(BTC, 30)
    del legacy["params"]["data"]["type"]
    [(_, rec)] = records(adapter.feed(legacy, 3))
    assert rec["flags"] == SNAPSHOT and rec["change_id"] == 30


def test_grouped_book_every_message_replaces_the_book_and_only_the_first_is_a_snapshot():
    from feeder.exchanges.deribit.channels import ChannelConfig

    routes = ChannelMap(ChannelConfig(book_depth=10, interval="100ms")).routes(["book.ETH"])
    adapter = DeribitAdapter(routes.values())
    channel = "book.ETH-PERPETUAL.none.10.100ms"
    data = {
        "timestamp": 1,
        "instrument_name": "ETH-PERPETUAL",
        "change_id": 10,
        "bids": [[160, 40]],
        "asks": [[161, 20]],
    }
    [(_, first)] = records(adapter.feed(_note(channel, data), 1))
    [(_, second)] = records(adapter.feed(_note(channel, data | {"change_id": 11, "bids": [[159, 1]]}), 2))
    assert adapter.feed(_note(channel, data | {"change_id": 11}), 3) == []
    assert (first["flags"], second["flags"]) == (SNAPSHOT, 0)
    assert second["bid_px"][0] == 159 and second["ask_px"][0] == 161


# --- trades and tickers ------------------------------------------------------------------------------

TRADES = "trades.BTC-PERPETUAL.raw"


def trade(seq: int, **extra) -> dict:
    return {
        "trade_seq": seq,
        "trade_id": f"{1000 + seq}",
        "timestamp": 1590484512188,
        "tick_direction": 2,
        "price": 8950.5,
        "mark_price": 8948.9,
        "instrument_name": "BTC-PERPETUAL",
        "index_price": 8955.88,
        "direction": "sell",
        "amount": 10,
    } | extra


def test_each_trade_becomes_one_record_in_order():
    adapter = _adapter("trades.BTC")
    out = records(adapter.feed(_note(TRADES, [trade(1), trade(2, direction="buy")]), 7))
    assert [(r, rec["trade_seq"], rec["trade_id"], rec["direction"], rec["flags"]) for r, rec in out] == [
        ("trades.BTC", 1, 1001, -1, 0),
        ("trades.BTC", 2, 1002, 1, 0),
    ]
    rec = out[0][1]
    assert (rec["price"], rec["amount"], rec["ts_recv"]) == (8950.5, 10.0, 7)
    assert rec["ts_exchange"] == 1590484512188 * 1_000_000
    assert np.isnan(rec["iv"]) and rec["tick_direction"] == 2


def test_trade_seq_jump_flags_the_next_trade_gap_and_counts_what_was_missed():
    adapter = _adapter("trades.BTC")
    adapter.feed(_note(TRADES, [trade(1)]), 1)
    [(_, rec)] = records(adapter.feed(_note(TRADES, [trade(5)]), 2))
    assert rec["flags"] == GAP
    assert (adapter.stats.trade_gaps, adapter.stats.trades_missed) == (1, 3)


def test_repeated_trade_seq_is_dropped_and_counted():
    adapter = _adapter("trades.BTC")
    adapter.feed(_note(TRADES, [trade(1), trade(2)]), 1)
    out = records(adapter.feed(_note(TRADES, [trade(2), trade(3)]), 2))
    assert [rec["trade_seq"] for _, rec in out] == [3]
    assert adapter.stats.trade_duplicates == 1


def test_a_bad_trade_is_rejected_and_the_trade_after_it_is_flagged_gap():
    adapter = _adapter("trades.BTC")
    out = records(adapter.feed(_note(TRADES, [trade(1), trade(2, price=-1), trade(3)]), 1))
    assert [(rec["trade_seq"], rec["flags"]) for _, rec in out] == [(1, 0), (3, GAP)]
    assert adapter.stats.rejected == 1
    assert adapter.rejections == {"price": 1}


def test_a_message_with_more_trades_than_the_scratch_holds_is_published_whole():
    adapter = _adapter("trades.BTC")
    out = records(adapter.feed(_note(TRADES, [trade(i) for i in range(1, 101)]), 1))
    assert [rec["trade_seq"] for _, rec in out] == list(range(1, 101))


def test_ticker_becomes_one_record():
    from deribit.spec import channel_examples

    adapter = _adapter("ticker.BTC")
    data = channel_examples("ticker.(instrument_name).(interval)")["repeated"]
    [(ring, rec)] = records(adapter.feed(_note("ticker.BTC-PERPETUAL.raw", data), 3))
    assert ring == "ticker.BTC"
    assert (rec["best_bid_px"], rec["best_ask_sz"], rec["mark_price"], rec["state"]) == (
        36442.5,
        100,
        36446.51,
        1,
    )
    assert (rec["volume_24h"], rec["flags"], rec["ts_recv"]) == (7871.02139035, 0, 3)


# --- envelope and robustness ---------------------------------------------------------------------------


def test_unknown_channel_is_counted_and_ignored():
    adapter = _adapter()
    assert adapter.feed(snapshot("book.SOL-PERPETUAL.raw", 1), 1) == []
    assert adapter.stats.unknown_channel == 1


@pytest.mark.parametrize(
    "msg", [None, [], {}, {"params": None}, {"params": {"channel": ["x"], "data": 1}}, "text"]
)
def test_malformed_envelope_is_rejected_not_raised(msg):
    adapter = _adapter()
    assert adapter.feed(msg, 1) == []
    assert adapter.stats.rejected == 1


def test_fuzzed_messages_never_raise_and_never_publish_a_wrong_book_as_valid():
    """Random corruptions of a valid stream: every unflagged record equals a reference book."""
    rng = random.Random(11)
    adapter = _adapter("book.BTC")
    truth_bids = {100.0 - i: 1.0 + i for i in range(30)}
    asks = [(101.0 + i, 1.0) for i in range(30)]
    adapter.feed(snapshot(BTC, 1, bids=list(truth_bids.items()), asks=asks), 0)
    last, reference, trusted = 1, dict(truth_bids), True
    corruptions = [
        lambda d: d.update(change_id="x"),
        lambda d: d["bids"].append(["new", float("nan"), 1.0]),
        lambda d: d.update(prev_change_id=d["prev_change_id"] - 1),
        lambda d: d.pop("bids"),
        lambda d: d.update(instrument_name=None),
        lambda d: d["bids"].append([None]),
    ]
    for step in range(2000):
        price = float(rng.choice(list(truth_bids)))
        truth_bids[price] = float(rng.randint(1, 9))
        msg = change(BTC, last, last + 2, bids=[["change", price, truth_bids[price]]])
        last += 2
        corrupt = rng.random() < 0.05
        if corrupt:
            rng.choice(corruptions)(msg["params"]["data"])
        for _, rec in records(adapter.feed(copy.deepcopy(msg), step)):
            if rec["flags"] & GAP:
                trusted = False
            else:
                assert trusted and rec["flags"] & SNAPSHOT == 0
                reference[price] = truth_bids[price]
                want = sorted(reference.items(), reverse=True)[:10]
                assert list(zip(rec["bid_px"].tolist(), rec["bid_sz"].tolist(), strict=True)) == want
        if adapter.take_requests():  # play the exchange: a fresh snapshot after the resubscription
            snap = snapshot(BTC, last + 1, bids=list(truth_bids.items()), asks=asks)
            last += 1
            [(_, rec)] = records(adapter.feed(snap, step))
            assert rec["flags"] == SNAPSHOT
            reference, trusted = dict(truth_bids), True
    assert adapter.stats.rejected > 0 and adapter.stats.resyncs > 0


# --- the state table ------------------------------------------------------------------------------------


def test_changes_are_only_allowed_on_a_live_book():
    assert next_state(BookSync.LIVE, SyncEvent.CHANGE) is BookSync.LIVE
    for state in (BookSync.AWAITING_SNAPSHOT, BookSync.GAP):
        with pytest.raises(UsageError, match=f"'change' is not allowed in state '{state.value}'"):
            next_state(state, SyncEvent.CHANGE)


def test_every_state_reaches_live_on_a_snapshot_and_gap_on_a_broken_book():
    for state in BookSync:
        assert next_state(state, SyncEvent.SNAPSHOT) is BookSync.LIVE
        assert next_state(state, SyncEvent.BROKEN) is BookSync.GAP


def test_every_adapter_counter_is_typed_and_every_typed_counter_exists():
    assert sorted(AdapterStats.__annotations__) == sorted(AdapterStats.__slots__)
    assert set(AdapterStats().as_dict().values()) == {0}
