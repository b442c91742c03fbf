"""The adapter for option chains: option tickers, instrument ids in every record, chain rings, mark prices,
listings and expiries as events, FINAL records, platform_state locks."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from deribit.spec import channel_examples

from feeder.errors import BadMessage
from feeder.exchanges.deribit.adapter import DeribitAdapter
from feeder.exchanges.deribit.channels import ChannelMap
from feeder.exchanges.deribit.notices import InstrumentState, parse_instrument_state, parse_platform_state
from feeder.exchanges.deribit.parse import parse_ticker
from feeder.ring import FINAL, GAP, LOCKED, MARKER, SNAPSHOT
from feeder.ring.chains import instrument_group, is_chain

CALL, PUT = "BTC-27DEC26-100000-C", "BTC-27DEC26-100000-P"
IDS = {CALL: 301, PUT: 302, "BTC-27DEC26": 200, "BTC-PERPETUAL": 100}
OPTION_TICKER = {
    "timestamp": 1766822400000,
    "instrument_name": CALL,
    "state": "open",
    "best_bid_price": 0.0405,
    "best_bid_amount": 12.5,
    "best_ask_price": 0.042,
    "best_ask_amount": 3.0,
    "bid_iv": 51.2,
    "ask_iv": 53.9,
    "mark_iv": 52.4,
    "mark_price": 0.0411,
    "index_price": 90312.5,
    "underlying_price": 91005.2,
    "underlying_index": "BTC-27DEC26",
    "interest_rate": 0.0,
    "estimated_delivery_price": 90312.5,
    "last_price": 0.041,
    "open_interest": 812.4,
    "settlement_price": 0.0399,
    "min_price": 0.0001,
    "max_price": 0.1,
    "greeks": {"delta": 0.41253, "gamma": 0.00002, "vega": 187.5, "theta": -64.2, "rho": 51.7},
    "stats": {"high": 0.045, "low": 0.039, "volume": 120.3},
}


def _ticker(**change) -> dict:
    return copy.deepcopy(OPTION_TICKER) | change


def _msg(channel: str, data) -> dict:
    return {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}


def _snapshot(instrument: str, change_id: int, bid: float = 0.04, ask: float = 0.042) -> dict:
    return {
        "type": "snapshot",
        "timestamp": 1,
        "instrument_name": instrument,
        "change_id": change_id,
        "bids": [["new", bid, 1.0]],
        "asks": [["new", ask, 1.0]],
    }


def _chain_adapter(streams=("book",), **kw) -> DeribitAdapter:
    channels = ChannelMap(authenticated=True)
    routes = [
        channels.route(f"{stream}.BTC-options", name, IDS[name]) for name in (CALL, PUT) for stream in streams
    ]
    return DeribitAdapter(routes, ids=IDS, indexes={CALL: "btc_usd", PUT: "btc_usd"}, **kw)


# --- option tickers ---------------------------------------------------------------------------------


def test_option_ticker_carries_ivs_greeks_and_its_underlying_as_an_id():
    t = parse_ticker(_ticker(), CALL, IDS)
    assert (t.bid_iv, t.ask_iv, t.mark_iv) == (51.2, 53.9, 52.4)
    assert (t.delta, t.gamma, t.vega, t.theta, t.rho) == (0.41253, 0.00002, 187.5, -64.2, 51.7)
    assert (t.underlying_price, t.interest_rate, t.estimated_delivery_price) == (91005.2, 0.0, 90312.5)
    assert (t.underlying_type, t.underlying_index) == (2, 200)


@pytest.mark.parametrize(
    ("underlying", "expected"),
    [("index_price", (1, 0)), ("SYN.BTC-27DEC26", (3, 200)), ("BTC-3JAN27", (2, 0)), (200, (2, 200))],
)
def test_underlying_index_names_the_index_a_future_or_a_synthetic_one(underlying, expected):
    t = parse_ticker(_ticker(underlying_index=underlying), CALL, IDS)
    assert (t.underlying_type, t.underlying_index) == expected


def test_expired_delivery_price_and_absent_option_fields_are_nan():
    data = _ticker(estimated_delivery_price="expired")
    for field in ("bid_iv", "greeks", "underlying_price", "underlying_index", "interest_rate"):
        del data[field]
    t = parse_ticker(data, CALL, IDS)
    assert all(
        math.isnan(v) for v in (t.estimated_delivery_price, t.bid_iv, t.delta, t.rho, t.underlying_price)
    )
    assert (t.underlying_type, t.underlying_index) == (0, 0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"greeks": [1, 2]}, "greeks"),
        ({"greeks": {"delta": "high"}}, "delta"),
        ({"bid_iv": -1.0}, "bid_iv"),
        ({"underlying_index": ""}, "underlying_index"),
        ({"estimated_delivery_price": "soon"}, "estimated_delivery_price"),
        ({"interest_rate": math.inf}, "interest_rate"),
    ],
)
def test_bad_option_ticker_field_is_rejected_naming_it(change, field):
    with pytest.raises(BadMessage) as caught:
        parse_ticker(_ticker(**change), CALL, IDS)
    assert caught.value.field == field


def test_ticker_record_holds_the_option_fields_and_the_instrument_id():
    channels = ChannelMap(authenticated=True)
    adapter = DeribitAdapter([channels.route(f"ticker.{CALL}", instrument_id=301)], ids=IDS)
    [(ring, records)] = adapter.feed(_msg(f"ticker.{CALL}.raw", _ticker()), 7)
    rec = records[0]
    assert ring == f"ticker.{CALL}" and rec["instrument_id"] == 301
    assert (rec["delta"], rec["theta"], rec["bid_iv"], rec["underlying_index"]) == (0.41253, -64.2, 51.2, 200)
    assert rec["mark_price"] == 0.0411 and rec["flags"] == 0


# --- chain rings -------------------------------------------------------------------------------------


def test_chain_ring_names_are_never_an_instruments():
    assert (
        is_chain("book.BTC-options")
        and is_chain("ticker.BTC_USDC-perpetuals")
        and is_chain("markprice.btc_usd")
    )
    assert not is_chain(f"book.{CALL}") and not is_chain("book.BTC") and not is_chain("trades.ETH-27DEC26")
    assert instrument_group(CALL) == "BTC" and instrument_group("BTC_USDC-PERPETUAL") == "BTC_USDC"


def test_every_instrument_of_a_chain_writes_into_the_chain_ring_with_its_own_id():
    adapter = _chain_adapter()
    for name, cid in ((CALL, 10), (PUT, 20)):
        [(ring, records)] = adapter.feed(_msg(f"book.{name}.raw", _snapshot(name, cid)), 1)
        assert ring == "book.BTC-options"
        assert (records[0]["instrument_id"], records[0]["change_id"]) == (IDS[name], cid)
        assert records[0]["flags"] == SNAPSHOT


def test_a_gap_on_one_option_flags_only_that_options_record():
    adapter = _chain_adapter()
    for name, cid in ((CALL, 10), (PUT, 20)):
        adapter.feed(_msg(f"book.{name}.raw", _snapshot(name, cid)), 1)
    change = {"type": "change", "timestamp": 2, "instrument_name": PUT, "change_id": 25, "prev_change_id": 21}
    [(_, records)] = adapter.feed(_msg(f"book.{PUT}.raw", change | {"bids": [], "asks": []}), 2)
    assert records[0]["flags"] & GAP and records[0]["instrument_id"] == IDS[PUT]
    assert [r.channel for r in adapter.take_requests()] == [f"book.{PUT}.raw"]


def test_a_disconnect_puts_one_marker_on_a_chain_event_ring_for_all_its_instruments():
    adapter = _chain_adapter(streams=("book", "ticker"))
    for name in (CALL, PUT):
        adapter.feed(_msg(f"book.{name}.raw", _snapshot(name, 10)), 1)
        adapter.feed(_msg(f"ticker.{name}.raw", _ticker(instrument_name=name)), 1)
    emitted = [(ring, rec.copy()) for ring, records in adapter.disconnected(5) for rec in records]
    books = [rec for ring, rec in emitted if ring == "book.BTC-options"]
    markers = [rec for ring, rec in emitted if ring == "ticker.BTC-options"]
    assert sorted(int(r["instrument_id"]) for r in books) == [301, 302] and all(
        r["flags"] & GAP for r in books
    )
    assert len(markers) == 1 and markers[0]["flags"] == MARKER | GAP and markers[0]["instrument_id"] == 0


def test_mark_prices_of_served_options_become_records_of_the_index_chain():
    channels = ChannelMap(authenticated=True)
    payload = channel_examples("markprice.options.(index_name)")["repeated"]
    served = {item["instrument_name"]: 500 + n for n, item in enumerate(payload[:3])}
    routes = [channels.route("markprice.btc_usd", name, iid) for name, iid in served.items()]
    adapter = DeribitAdapter(routes)
    assert adapter.channels == ["markprice.options.btc_usd"]
    [(ring, records)] = adapter.feed(_msg("markprice.options.btc_usd", payload), 9)
    assert ring == "markprice.btc_usd"
    assert list(records["instrument_id"]) == list(served.values())
    assert list(records["mark_price"]) == [item["mark_price"] for item in payload[:3]]
    assert (
        list(records["iv"]) == [0.9, 0.9, 0.9]
        and records[0]["ts_exchange"] == payload[0]["timestamp"] * 10**6
    )
    assert adapter.stats.markprice_unserved == len(payload) - 3


# --- the universe ---------------------------------------------------------------------------------


def test_instrument_state_notifications_become_events():
    adapter = _chain_adapter()
    adapter.watch(["instrument.state.option.BTC"])
    example = channel_examples("instrument.state.(kind).(currency)")["repeated"]
    assert adapter.feed(_msg("instrument.state.option.BTC", example), 1) == []
    assert adapter.take_events() == [
        (InstrumentState("BTC-22MAR19", "created", 1553080940000), "instrument.state.option.BTC")
    ]
    adapter.feed(_msg("instrument.state.option.BTC", {"state": "blooming"}), 1)
    assert adapter.take_events() == [] and adapter.stats.rejected == 1


def test_settled_ends_an_instrument_only_at_its_expiry():
    daily = parse_instrument_state({"instrument_name": "BTC-PERPETUAL", "state": "settled", "timestamp": 10})
    assert not daily.ends(expiration_ms=32503708800000)
    assert daily.ends(expiration_ms=10) and not daily.listed
    assert parse_instrument_state({"instrument_name": CALL, "state": "terminated", "timestamp": 0}).ends(
        10**13
    )


def test_a_removed_instrument_gets_final_records_and_its_channels_go():
    adapter = _chain_adapter(streams=("book", "ticker"))
    adapter.feed(_msg(f"book.{CALL}.raw", _snapshot(CALL, 10)), 1)
    emitted, channels = adapter.remove([CALL], 9)
    records = {ring: rec.copy() for ring, recs in emitted for rec in recs}
    assert records["book.BTC-options"]["flags"] == GAP | FINAL
    assert (
        records["book.BTC-options"]["bid_px"][0] == 0.04
        and records["book.BTC-options"]["instrument_id"] == 301
    )
    assert records["ticker.BTC-options"]["flags"] == MARKER | FINAL
    assert records["ticker.BTC-options"]["instrument_id"] == 301
    assert sorted(channels) == [f"book.{CALL}.raw", f"ticker.{CALL}.raw"]
    assert sorted(adapter.channels) == [f"book.{PUT}.raw", f"ticker.{PUT}.raw"]
    assert adapter.feed(_msg(f"book.{CALL}.raw", _snapshot(CALL, 11)), 1) == []


def test_a_platform_lock_flags_the_indexs_books_at_once_and_until_it_is_lifted():
    adapter = _chain_adapter()
    adapter.watch(["platform_state"])
    adapter.feed(_msg(f"book.{CALL}.raw", _snapshot(CALL, 10)), 1)
    example = channel_examples("platform_state")["repeated"]
    assert parse_platform_state(example).price_index == "sol_usdc"
    assert adapter.feed(_msg("platform_state", example), 2) == []  # another index
    locked = [
        (r, rec.copy()) for r, recs in adapter.feed(_msg("platform_state", _lock(True)), 3) for rec in recs
    ]
    assert [int(rec["instrument_id"]) for _, rec in locked] == [301]  # the put has no book yet
    assert all(rec["flags"] & LOCKED for _, rec in locked) and locked[0][1]["bid_px"][0] == 0.04
    change = {
        "type": "change",
        "timestamp": 4,
        "instrument_name": CALL,
        "change_id": 12,
        "prev_change_id": 10,
    }
    [(_, records)] = adapter.feed(
        _msg(f"book.{CALL}.raw", change | {"bids": [["change", 0.04, 2.0]], "asks": []}), 4
    )
    assert records[0]["flags"] == LOCKED
    unlocked = adapter.feed(_msg("platform_state", _lock(False)), 5)
    assert not any(rec["flags"] & LOCKED for _, recs in unlocked for rec in recs)
    assert np.all([len(recs) for _, recs in unlocked])


def _lock(locked: bool) -> dict:
    return {"price_index": "btc_usd", "locked": locked}
