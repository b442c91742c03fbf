"""Decoding Deribit payloads: the official spec examples, legacy snapshots, and every kind of bad field."""

from __future__ import annotations

import copy
import math

import pytest
from deribit.spec import channel_examples

from feeder.errors import BadMessage
from feeder.exchanges.deribit.parse import (
    parse_book,
    parse_grouped_book,
    parse_ticker,
    parse_trade,
    trades_list,
)

BOOK = "book.(instrument_name).(interval)"


def _book_example(name: str) -> dict:
    return copy.deepcopy(channel_examples(BOOK)[name])


def test_spec_first_book_notification_is_a_snapshot_of_price_amount_pairs():
    update = parse_book(_book_example("first"), "BTC-PERPETUAL")
    assert update.snapshot is True
    assert (update.change_id, update.prev_change_id, update.timestamp_ms) == (297217, 0, 1554373962454)
    assert update.bids == [(5042.34, 30), (5041.94, 20)]
    assert update.asks == [(5042.64, 40), (5043.3, 40)]


def test_spec_repeated_book_notification_is_a_change_chained_to_the_snapshot():
    update = parse_book(_book_example("repeated"), "BTC-PERPETUAL")
    assert update.snapshot is False
    assert (update.change_id, update.prev_change_id) == (297218, 297217)
    assert update.bids == [["delete", 5041.94, 0], ["delete", 5042.34, 0]]
    assert update.asks == []


def test_spec_grouped_book_notification_is_a_whole_book():
    payload = channel_examples("book.(instrument_name).(group).(depth).(interval)")["repeated"]
    update = parse_grouped_book(payload, "ETH-PERPETUAL")
    assert update.snapshot is True
    assert (update.change_id, update.bids, update.asks) == (109615, [(160, 40)], [(161, 20)])


@pytest.mark.parametrize("prev", ["absent", None, 0])
def test_legacy_message_without_type_and_without_prev_change_id_is_a_snapshot(prev):
    data = _book_example("first")
    del data["type"]
    if prev != "absent":
        data["prev_change_id"] = prev
    assert parse_book(data, "BTC-PERPETUAL").snapshot is True


def test_legacy_message_without_type_but_with_prev_change_id_is_a_change():
    data = _book_example("repeated")
    del data["type"]
    assert parse_book(data, "BTC-PERPETUAL").snapshot is False


def _change(**fields) -> dict:
    data = {
        "type": "change",
        "timestamp": 1,
        "instrument_name": "BTC-PERPETUAL",
        "change_id": 10,
        "prev_change_id": 9,
        "bids": [["new", 100.0, 1.0]],
        "asks": [],
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not _MISSING}


_MISSING = object()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"bids": [["new", math.nan, 1.0]]}, "bids price"),
        ({"bids": [["new", math.inf, 1.0]]}, "bids price"),
        ({"asks": [["change", -5.0, 1.0]]}, "asks price"),
        ({"asks": [["change", 0.0, 1.0]]}, "asks price"),
        ({"bids": [["new", "100.0", 1.0]]}, "bids price"),
        ({"bids": [["new", True, 1.0]]}, "bids price"),
        ({"bids": [["new", 100.0, -1.0]]}, "bids amount"),
        ({"bids": [["new", 100.0, math.nan]]}, "bids amount"),
        ({"bids": [["change", 100.0, 0.0]]}, "bids amount"),
        ({"bids": [["delete", 100.0, -0.5]]}, "bids amount"),
        ({"bids": [["upsert", 100.0, 1.0]]}, "bids action"),
        ({"bids": [["new", 100.0]]}, "bids entry"),
        ({"bids": ["new", 100.0, 1.0]}, "bids entry"),
        ({"bids": {"new": 1}}, "bids"),
        ({"asks": _MISSING}, "asks"),
        ({"change_id": _MISSING}, "change_id"),
        ({"change_id": "10"}, "change_id"),
        ({"change_id": 10.0}, "change_id"),
        ({"timestamp": -1}, "timestamp"),
        ({"prev_change_id": _MISSING}, "prev_change_id"),
        ({"prev_change_id": 10}, "prev_change_id"),
        ({"prev_change_id": "9"}, "prev_change_id"),
        ({"type": "delta"}, "type"),
        ({"instrument_name": "ETH-PERPETUAL"}, "instrument_name"),
    ],
)
def test_bad_book_field_is_rejected_naming_the_field(fields, field):
    with pytest.raises(BadMessage) as caught:
        parse_book(_change(**fields), "BTC-PERPETUAL")
    assert caught.value.field == field


def test_a_delete_may_carry_amount_zero_as_an_integer():
    update = parse_book(_change(bids=[["delete", 100.0, 0]]), "BTC-PERPETUAL")
    assert update.bids == [["delete", 100.0, 0]]


def test_snapshot_entries_must_be_new_levels_with_positive_amounts():
    data = _book_example("first")
    data["asks"][0] = ["change", 5042.64, 40]
    with pytest.raises(BadMessage, match="asks snapshot entry"):
        parse_book(data, "BTC-PERPETUAL")
    data = _book_example("first")
    data["bids"][1][2] = 0
    with pytest.raises(BadMessage, match="bids amount"):
        parse_book(data, "BTC-PERPETUAL")


def test_non_object_payload_is_rejected():
    with pytest.raises(BadMessage, match="book data"):
        parse_book([1, 2], "BTC-PERPETUAL")


def test_bad_message_error_names_the_value_and_what_is_allowed():
    with pytest.raises(BadMessage) as caught:
        parse_book(_change(bids=[["new", -5.0, 1.0]]), "BTC-PERPETUAL")
    assert str(caught.value) == "bad bids price: got -5.0; expected a finite number > 0"


# --- trades ------------------------------------------------------------------------------------------


def _spec_trade() -> dict:
    return copy.deepcopy(channel_examples("trades.(instrument_name).(interval)")["repeated"][0])


def test_spec_trade_example_decodes_every_field():
    trade = parse_trade(_spec_trade(), "BTC-PERPETUAL")
    assert trade.trade_seq == 30289442
    assert trade.trade_id == 48079269
    assert (trade.timestamp_ms, trade.price, trade.amount) == (1590484512188, 8950, 10)
    assert (trade.mark_price, trade.index_price) == (8948.9, 8955.88)
    assert (trade.direction, trade.tick_direction, trade.liquidation, trade.block_trade) == (-1, 2, 0, 0)
    assert math.isnan(trade.iv)


@pytest.mark.parametrize(("trade_id", "number"), [("48079269", 48079269), ("ETH-123456", 123456), (7, 7)])
def test_trade_id_keeps_its_number(trade_id, number):
    item = _spec_trade() | {"trade_id": trade_id}
    assert parse_trade(item, "BTC-PERPETUAL").trade_id == number


@pytest.mark.parametrize(("liquidation", "code"), [("M", 1), ("T", 2), ("MT", 3)])
def test_liquidation_side_is_encoded(liquidation, code):
    item = _spec_trade() | {"liquidation": liquidation, "iv": 55.5, "block_trade_id": "154"}
    trade = parse_trade(item, "BTC-PERPETUAL")
    assert (trade.liquidation, trade.iv, trade.block_trade) == (code, 55.5, 1)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"direction": "long"}, "direction"),
        ({"tick_direction": 4}, "tick_direction"),
        ({"liquidation": "X"}, "liquidation"),
        ({"trade_id": "abc"}, "trade_id"),
        ({"trade_seq": -1}, "trade_seq"),
        ({"price": 0}, "price"),
        ({"amount": -3}, "amount"),
        ({"mark_price": None}, "mark_price"),
        ({"iv": "high"}, "iv"),
        ({"instrument_name": "ETH-PERPETUAL"}, "instrument_name"),
    ],
)
def test_bad_trade_field_is_rejected_naming_the_field(fields, field):
    with pytest.raises(BadMessage) as caught:
        parse_trade(_spec_trade() | fields, "BTC-PERPETUAL")
    assert caught.value.field == field


@pytest.mark.parametrize("data", [[], {}, None])
def test_trades_payload_must_be_a_non_empty_list(data):
    with pytest.raises(BadMessage, match="trades data"):
        trades_list(data)


# --- ticker ------------------------------------------------------------------------------------------


def _spec_ticker() -> dict:
    return copy.deepcopy(channel_examples("ticker.(instrument_name).(interval)")["repeated"])


def test_spec_ticker_example_decodes_every_field():
    ticker = parse_ticker(_spec_ticker(), "BTC-PERPETUAL")
    assert ticker.timestamp_ms == 1623060194301
    assert (ticker.best_bid_px, ticker.best_bid_sz, ticker.best_ask_px, ticker.best_ask_sz) == (
        36442.5,
        5000,
        36443,
        100,
    )
    assert (ticker.mark_price, ticker.index_price, ticker.last_price) == (36446.51, 36441.64, 36457.5)
    assert (ticker.open_interest, ticker.funding_8h, ticker.current_funding) == (502097590, 2.11e-05, 0)
    assert (ticker.settlement_price, ticker.min_price, ticker.max_price) == (36169.49, 35898.37, 36991.72)
    assert (ticker.high_24h, ticker.low_24h, ticker.volume_24h) == (36824.5, 35213.5, 7871.02139035)
    assert ticker.state == 1
    assert math.isnan(ticker.mark_iv)


def test_ticker_nulls_and_absent_optionals_become_nan():
    data = _spec_ticker() | {"best_bid_price": None, "last_price": None, "state": "closed"}
    del data["stats"], data["funding_8h"]
    ticker = parse_ticker(data, "BTC-PERPETUAL")
    assert math.isnan(ticker.best_bid_px) and math.isnan(ticker.last_price)
    assert math.isnan(ticker.high_24h) and math.isnan(ticker.funding_8h)
    assert ticker.state == 0


def test_ticker_funding_may_be_negative_but_prices_may_not():
    assert parse_ticker(_spec_ticker() | {"funding_8h": -0.0003}, "BTC-PERPETUAL").funding_8h == -0.0003
    with pytest.raises(BadMessage, match="mark_price"):
        parse_ticker(_spec_ticker() | {"mark_price": -1.0}, "BTC-PERPETUAL")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"best_ask_price": _MISSING}, "best_ask_price"),
        ({"state": "halted"}, "state"),
        ({"timestamp": "now"}, "timestamp"),
        ({"open_interest": math.nan}, "open_interest"),
        ({"stats": [1, 2]}, "stats"),
    ],
)
def test_bad_ticker_field_is_rejected_naming_the_field(change, field):
    data = _spec_ticker() | change
    data = {k: v for k, v in data.items() if v is not _MISSING}
    with pytest.raises(BadMessage) as caught:
        parse_ticker(data, "BTC-PERPETUAL")
    assert caught.value.field == field
