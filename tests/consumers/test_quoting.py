"""The example strategy's pure decisions: trust rules, target prices, order plans, reconciliation.

Exchange answers come from the official spec examples (reference/deribit/openapi.json).
"""

from __future__ import annotations

import pytest
from deribit.spec import method_response

from feeder import (
    CROSSED,
    GAP,
    SNAPSHOT,
    ConnectionLost,
    ExchangeError,
    FeederNotRunning,
    NoHealthyWorker,
    OutcomeUnknown,
    RateLimited,
    RequestTimeout,
    UsageError,
)
from feeder.consumers.quoting import (
    BUY,
    SELL,
    Cancel,
    Edit,
    Mode,
    Order,
    Outcome,
    Place,
    QuoteParams,
    Quoter,
    Reconcile,
    Unknown,
    check_prefix,
    classify,
    label,
    order_from,
    plan,
    reconcile,
    targets_for,
)

PARAMS = QuoteParams(tick=0.5, amount=10, offset_ticks=4, requote_ticks=2, min_interval=0.0)


def quoter(params: QuoteParams = PARAMS) -> Quoter:
    return Quoter(params)


# --- targets -------------------------------------------------------------------------------------


def test_targets_are_offset_ticks_from_the_mid_on_the_tick_grid():
    t = targets_for(100.25, PARAMS)  # mid between ticks
    assert (t.bid, t.ask, t.mid) == (98.0, 102.5, 100.25)
    t = targets_for(100.0, PARAMS)
    assert (t.bid, t.ask) == (98.0, 102.0)


def test_targets_keep_the_tick_decimals():
    p = QuoteParams(tick=0.05, amount=1, offset_ticks=3, requote_ticks=1)
    t = targets_for(3003.675, p)
    assert (t.bid, t.ask) == (3003.5, 3003.85)


@pytest.mark.parametrize(
    ("field", "value"),
    [("tick", 0), ("amount", -1), ("offset_ticks", 0), ("requote_ticks", 1.5), ("min_interval", -1)],
)
def test_bad_quote_params_name_the_parameter(field, value):
    args = {"tick": 0.5, "amount": 10, field: value}
    with pytest.raises(UsageError, match=field):
        QuoteParams(**args)


# --- trust ---------------------------------------------------------------------------------------


def test_first_record_mid_stream_starts_quoting(book_records):
    q = quoter()
    change = q.on_record(book_records((100.0, 101.0, 0))[0])
    assert q.mode is Mode.QUOTING and change.targets.mid == 100.5


def test_gap_cancels_and_quoting_resumes_only_at_the_snapshot(book_records):
    q = quoter()
    recs = book_records(
        (100.0, 101.0, SNAPSHOT), (100.0, 101.0, GAP), (100.0, 101.0, 0), (105.0, 106.0, SNAPSHOT)
    )
    assert q.on_record(recs[0]).targets is not None
    paused = q.on_record(recs[1])
    assert paused.targets is None and "GAP" in paused.reason
    assert q.on_record(recs[2]) is None and q.mode is Mode.PAUSED
    resumed = q.on_record(recs[3])
    assert resumed.targets.mid == 105.5 and "resuming" in resumed.reason


def test_a_gap_and_its_snapshot_in_one_batch_still_cancel_first(book_records):
    q = quoter()
    q.on_records(book_records((100.0, 101.0, SNAPSHOT)))
    batch = book_records((100.0, 101.0, 0), (100.0, 101.0, GAP), (100.0, 101.0, SNAPSHOT), (100.0, 101.0, 0))
    changes = q.on_records(batch)
    assert [c.targets is None for c in changes] == [True, False]


def test_closed_ring_pauses_like_a_gap(book_records):
    q = quoter()
    q.on_record(book_records((100.0, 101.0, SNAPSHOT))[0])
    assert q.on_closed().targets is None and q.mode is Mode.PAUSED
    assert q.on_closed() is None


def test_requotes_only_once_the_mid_moved_enough(book_records):
    q = quoter()
    recs = book_records((100.0, 101.0, SNAPSHOT), (100.5, 101.0, 0), (101.0, 102.0, 0))
    changes = [q.on_record(r) for r in recs]
    assert changes[1] is None  # the mid moved 0.25: half a tick
    assert changes[2].targets.mid == 101.5  # moved 1.0 = 2 ticks


def test_requotes_at_most_once_per_min_interval(book_records):
    q = quoter(QuoteParams(tick=0.5, amount=10, offset_ticks=4, requote_ticks=1, min_interval=1.0))
    first = book_records((100.0, 101.0, SNAPSHOT), ts_recv=10_000_000_000)
    soon = book_records((110.0, 111.0, 0), ts_recv=10_500_000_000)
    later = book_records((110.0, 111.0, 0), ts_recv=11_000_000_000)
    assert q.on_record(first[0]) is not None
    assert q.on_record(soon[0]) is None
    assert q.on_record(later[0]).targets.mid == 110.5


def test_crossed_or_one_sided_books_leave_the_quotes_alone(book_records):
    q = quoter()
    q.on_record(book_records((100.0, 101.0, SNAPSHOT))[0])
    assert q.on_record(book_records((110.0, 105.0, CROSSED))[0]) is None
    assert q.on_record(book_records((None, 130.0, 0))[0]) is None
    assert q.targets.mid == 100.5


# --- plans ---------------------------------------------------------------------------------------

BID = Order("1", "q-b1", BUY, 98.0, 10.0)
ASK = Order("2", "q-s2", SELL, 102.0, 10.0)


def test_plan_places_missing_sides_and_edits_moved_ones():
    t = targets_for(100.0, PARAMS)
    assert plan(t, {BUY: None, SELL: None}) == [Place(BUY, 98.0), Place(SELL, 102.0)]
    t2 = targets_for(101.0, PARAMS)
    assert plan(t2, {BUY: BID, SELL: ASK}) == [Edit(BID, 99.0), Edit(ASK, 103.0)]
    assert plan(t, {BUY: BID, SELL: ASK}) == []


def test_plan_without_targets_cancels_everything():
    assert plan(None, {BUY: BID, SELL: ASK}) == [Cancel(BID), Cancel(ASK)]
    assert plan(None, {BUY: None, SELL: None}) == []


def test_a_side_with_an_unknown_outcome_is_reconciled_before_it_is_touched():
    t = targets_for(100.0, PARAMS)
    actions = plan(t, {BUY: Unknown("q-b3", "worker died"), SELL: ASK})
    assert actions == [Reconcile()]
    actions = plan(targets_for(105.0, PARAMS), {BUY: Unknown("q-b3", "x"), SELL: ASK})
    assert actions == [Reconcile(), Edit(ASK, 107.0)]


# --- exchange answers ----------------------------------------------------------------------------


def test_open_order_from_the_edit_example():
    obj = method_response("private/edit")["result"]["order"]
    assert order_from(obj) == Order("438994", "", "buy", 0.1448, 4.0)


def test_a_filled_order_is_not_open():
    assert order_from(method_response("private/buy")["result"]["order"]) is None


def open_order(oid: str, lbl: str, direction: str, created: int) -> dict:
    """An open order object with the fields of the spec's get_open_orders_by_instrument example."""
    return {
        "time_in_force": "good_til_cancelled", "reduce_only": False, "price": 100.0, "post_only": True,
        "order_type": "limit", "order_state": "open", "order_id": oid, "max_show": 10,
        "last_update_timestamp": created, "label": lbl, "is_rebalance": False, "is_liquidation": False,
        "instrument_name": "BTC-PERPETUAL", "filled_amount": 0, "direction": direction,
        "creation_timestamp": created, "average_price": 0, "api": True, "amount": 10,
    }  # fmt: skip


def test_reconcile_keeps_our_newest_order_per_side_and_cancels_the_rest():
    found = [
        open_order("x", "", "sell", 3),  # someone else's order (no label of ours)
        open_order("a", "q-b1", "buy", 1),
        open_order("b", "q-b4", "buy", 5),
        open_order("c", "other-s1", "sell", 9),
        open_order("d", "q-s7", "sell", 2),
    ]
    kept, extras = reconcile(found, "q")
    assert kept[BUY].order_id == "b" and kept[SELL].order_id == "d"
    assert [o.order_id for o in extras] == ["a"]


def test_reconcile_reads_the_spec_example_as_not_ours():
    example = method_response("private/get_open_orders_by_instrument")["result"]
    assert reconcile(example, "q") == ({BUY: None, SELL: None}, [])


def test_labels_are_unique_and_carry_the_prefix():
    assert label("q", BUY, 7) == "q-b7" and label("q", SELL, 8) == "q-s8"
    with pytest.raises(UsageError, match="label prefix"):
        check_prefix("has space")


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (OutcomeUnknown("private/buy", "q-b1", "worker died"), Outcome.UNKNOWN),
        (RequestTimeout("private/buy", 5.0), Outcome.UNKNOWN),
        (ConnectionLost("private/buy", sent=True), Outcome.UNKNOWN),
        (ConnectionLost("private/buy", sent=False), Outcome.NOT_SENT),
        (NoHealthyWorker("none"), Outcome.NOT_SENT),
        (RateLimited("queue full"), Outcome.NOT_SENT),
        (ExchangeError(11044, "not_open_order"), Outcome.CLOSED),
        (ExchangeError(10009, "not_enough_funds"), Outcome.REFUSED),
        (FeederNotRunning("gone"), None),
    ],
)
def test_failed_requests_are_classified_by_what_they_mean_for_our_orders(exc, outcome):
    assert classify(exc) is outcome
