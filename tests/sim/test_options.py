"""Option market data over a real socket: tickers with greeks and IVs, marks, summaries, the truth.

The exchange clock starts at a fixed time so the chain's names are known; only BTC moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sim.kit import Rpc, check_notification, check_response, schema, validate
from sim.test_books import Book

from feeder.sim import SimServer, book_hash, pricing
from feeder.sim.instruments import to_date
from feeder.sim.testing import TRUTHS_PER_REQUEST

NOW = int(datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp() * 1000)
CALL, PUT = "BTC-2DEC26-90000-C", "BTC-2DEC26-90000-P"
OTM_CALL = "BTC-3DEC26-90500-C"
PERPETUAL_ONLY = ("current_funding", "funding_8h", "interest_value")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(
        instruments=["BTC-*"], rate=0, seed=5, option_expiries=2, option_strikes=3, start_ms=NOW
    ) as server:
        yield server


@pytest.fixture
def client(sim: SimServer) -> Iterator[Rpc]:
    rpc = Rpc(sim.ws_url)
    rpc.auth()
    yield rpc
    rpc.close()


def _model(data: dict, name: str) -> tuple[float, float, float, bool]:
    """(forward, strike, years, call) of a ticker, from what it says."""
    _, _, strike, cp = name.split("-")
    expiry = {CALL: "2DEC26", PUT: "2DEC26"}.get(name, "3DEC26")
    expiry_ms = int(datetime.strptime(expiry, "%d%b%y").replace(hour=8, tzinfo=UTC).timestamp() * 1000)
    return data["underlying_price"], float(strike), pricing.years(expiry_ms, data["timestamp"]), cp == "C"


@pytest.mark.parametrize("name", [CALL, PUT, OTM_CALL])
def test_option_tickers_are_shaped_like_the_spec_and_priced_by_their_mark_iv(client, name):
    channel = f"ticker.{name}.100ms"
    assert client.result("public/subscribe", {"channels": [channel]}) == [channel]
    msg = client.note(channel)
    check_notification(msg, "ticker.(instrument_name).(interval)", "repeated", PERPETUAL_ONLY)
    data = msg["params"]["data"]
    validate(data["greeks"], schema("greeks"))
    for field in ("bid_iv", "ask_iv", "mark_iv", "underlying_price", "interest_rate"):
        validate(data[field], schema(field))
    assert data["underlying_index"] == f"SYN.BTC-{name.split('-')[1]}" and data["interest_rate"] == 0.0
    fwd, strike, t, call = _model(data, name)
    usd = pricing.value(fwd, strike, t, data["mark_iv"] / 100, call)
    assert data["mark_price"] == pytest.approx(usd / fwd, abs=1.5e-4)
    greeks = pricing.greeks(fwd, strike, t, data["mark_iv"] / 100, call)
    assert data["greeks"]["delta"] == pytest.approx(greeks["delta"], abs=2e-3)
    assert data["greeks"]["vega"] == pytest.approx(greeks["vega"], rel=2e-2)
    for side in ("bid", "ask"):
        price = data[f"best_{side}_price"]
        vol = pricing.implied_vol(price * fwd, fwd, strike, t, call, 0.5) if price else None
        expected = round(vol * 100, 2) if vol is not None else 0.0
        assert data[f"{side}_iv"] == pytest.approx(expected, abs=0.05), side
    assert data["estimated_delivery_price"] == data["index_price"] and data["state"] == "open"


def test_public_ticker_and_the_order_book_of_an_option_carry_the_same_model(client):
    ticker = client.call("public/ticker", {"instrument_name": CALL})
    check_response("public/ticker", ticker)
    book = client.result("public/get_order_book", {"instrument_name": CALL, "depth": 5})
    assert book["mark_iv"] == ticker["result"]["mark_iv"] and book["greeks"] == ticker["result"]["greeks"]
    assert book["bids"][0] == [book["best_bid_price"], book["best_bid_amount"]]


def test_markprice_options_lists_every_btc_option_with_its_mark_and_iv(client):
    channel = "markprice.options.btc_usd"
    assert client.result("public/subscribe", {"channels": [channel]}) == [channel]
    msg = client.note(channel)
    check_notification(msg, "markprice.options.(index_name)", "repeated")
    items = {i["instrument_name"]: i for i in msg["params"]["data"]}
    options = client.result("public/get_instruments", {"currency": "BTC", "kind": "option"})
    assert set(items) == {o["instrument_name"] for o in options} and len(items) == 2 * 3 * 2
    ticker = client.result("public/ticker", {"instrument_name": CALL})
    assert items[CALL]["iv"] == pytest.approx(ticker["mark_iv"] / 100, abs=2e-3)
    assert items[CALL]["mark_price"] == pytest.approx(ticker["mark_price"], abs=2e-4)
    assert client.result("public/subscribe", {"channels": ["markprice.options.sol_usdc"]}) == []


def test_book_summaries_and_the_index_price_match_the_spec(client):
    by_currency = client.call("public/get_book_summary_by_currency", {"currency": "BTC", "kind": "option"})
    check_response("public/get_book_summary_by_currency", by_currency)
    assert len(by_currency["result"]) == 12 and all("mark_iv" in s for s in by_currency["result"])
    by_name = client.call("public/get_book_summary_by_instrument", {"instrument_name": CALL})
    check_response("public/get_book_summary_by_instrument", by_name)
    futures = client.result("public/get_book_summary_by_currency", {"currency": "BTC", "kind": "future"})
    assert {s["instrument_name"] for s in futures} >= {"BTC-PERPETUAL", "BTC-4DEC26"}
    index = client.call("public/get_index_price", {"index_name": "btc_usd"})
    check_response("public/get_index_price", index)


def test_option_book_changes_equal_the_truth_at_every_change_id(sim, client):
    names = [CALL, PUT, OTM_CALL, "BTC-3DEC26-89500-P"]
    channels = [f"book.{n}.raw" for n in names]
    client.result("public/subscribe", {"channels": channels})
    books = {n: Book(client.data(f"book.{n}.raw")) for n in names}
    seen: dict[str, list[tuple[int, int]]] = {n: [] for n in names}
    for name in names:
        sim.publish(30, instrument=name)
    for _ in range(4 * 30):
        msg = client.note()
        check_notification(msg, "book.(instrument_name).(interval)", "repeated")
        data = msg["params"]["data"]
        book = books[data["instrument_name"]]
        book.apply(data)
        bids, asks = book.top()
        hashed = book_hash(
            [b[0] for b in bids], [b[1] for b in bids], [a[0] for a in asks], [a[1] for a in asks]
        )
        seen[data["instrument_name"]].append((data["change_id"], hashed))
    truths = sim.truths({n: [cid for cid, _ in seen[n]] for n in names})
    for name in names:
        assert [t["hash"] for t in truths[name]] == [h for _, h in seen[name]], name
        listed = client.result("public/get_instrument", {"instrument_name": name})["instrument_id"]
        assert {t["instrument_id"] for t in truths[name]} == {listed}


def test_the_exchange_clock_starts_where_it_was_told(sim, client):
    assert abs(client.result("public/get_time") - NOW) < 600_000
    assert to_date(sim.clock()["next_expiry_ms"]).isoformat() == "2026-12-02T08:00:00+00:00"


def test_option_trades_carry_the_implied_volatility_of_their_price(sim, client):
    channel = f"trades.{PUT}.raw"
    client.result("public/subscribe", {"channels": [channel]})
    sim.publish(200, instrument=PUT)
    msg = client.note(channel)
    check_notification(msg, "trades.(instrument_name).(interval)", "repeated")
    trade = msg["params"]["data"][0]
    ticker = client.result("public/ticker", {"instrument_name": PUT})
    fwd, strike, t, call = _model(ticker, PUT)
    vol = pricing.implied_vol(trade["price"] * fwd, fwd, strike, t, call, 0.5)
    assert trade["iv"] == pytest.approx(round(vol * 100, 2) if vol else 0.0, abs=0.1)
    assert trade["mark_price"] == ticker["mark_price"]


def test_truths_of_many_change_ids_go_in_several_requests_and_come_back_in_order(sim):
    last = sim.publish(3, instrument=CALL)["last"][CALL]
    ids = [last] * (TRUTHS_PER_REQUEST + 5)
    books = sim.truths({CALL: ids, PUT: []})
    assert len(books[CALL]) == len(ids) and {b["change_id"] for b in books[CALL]} == {last}
    assert books[CALL][-1] == sim.truth(CALL, last) and books[PUT] == []
