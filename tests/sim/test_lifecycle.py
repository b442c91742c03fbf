"""Listings, expiries, delistings and locks at run time, over a real socket (lifecycle.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from helpers import wait_until
from sim.kit import Rpc, check_notification, check_response
from sim.test_books import Book

from feeder.errors import SimControlError
from feeder.sim import SimServer

NOW = int(datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp() * 1000)  # the first expiry: 2DEC26 08:00
EXPIRING, NEXT = "BTC-2DEC26-90000-C", "BTC-4DEC26-90000-C"
STATES = "instrument.state.option.BTC"


def _sim(**overrides) -> SimServer:
    settings = dict(
        instruments=["BTC-*"], rate=0, seed=9, option_expiries=2, option_strikes=1, start_ms=NOW,
        settlement_grace=0.3, min_heartbeat_interval=0.5, rate_limits=False,  # get_instruments: 5 per burst
    )  # fmt: skip
    return SimServer(**{**settings, **overrides})


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with _sim() as server:
        yield server


@pytest.fixture
def client(sim: SimServer) -> Iterator[Rpc]:
    rpc = Rpc(sim.ws_url)
    rpc.auth()
    yield rpc
    rpc.close()


def _states(client: Rpc, count: int, channel: str = STATES) -> list[tuple[str, str]]:
    out = []
    for _ in range(count):
        msg = client.note(channel)
        check_notification(msg, "instrument.state.(kind).(currency)", "repeated")
        out.append((msg["params"]["data"]["state"], msg["params"]["data"]["instrument_name"]))
    return out


def _names(client: Rpc, **params) -> set[str]:
    found = client.result("public/get_instruments", {"currency": "BTC", "kind": "option", **params})
    return {i["instrument_name"] for i in found}


def test_an_expiry_settles_its_books_and_the_schedule_lists_the_next_one(sim, client):
    book_channel, ticker_channel = f"book.{EXPIRING}.raw", f"ticker.{EXPIRING}.raw"
    aggregated = f"book.{EXPIRING}.100ms"
    client.result("public/subscribe", {"channels": [STATES, book_channel, ticker_channel, aggregated]})
    book, book_100ms = Book(client.data(book_channel)), Book(client.data(aggregated))
    client.data(ticker_channel)
    assert EXPIRING in _names(client) and NEXT not in _names(client)

    done = sim.advance(to="expiry")
    assert done["now_ms"] >= int(datetime(2026, 12, 2, 8, tzinfo=UTC).timestamp() * 1000)
    assert EXPIRING in done["settled"] and "ETH-2DEC26-3000-P" in done["settled"]
    assert NEXT in done["listed"] and "ETH-4DEC26-3000-C" in done["listed"]

    last = client.data(book_channel)  # the last change empties the book, chained as ever
    book.apply(last)
    assert book.bids == {} and book.asks == {}
    truth = sim.truth(EXPIRING, last["change_id"])
    assert truth["bids"] == [] and truth["asks"] == []
    book_100ms.apply(client.data(aggregated))
    assert book_100ms.change_id == last["change_id"] and book_100ms.bids == book_100ms.asks == {}
    final = client.data(ticker_channel)
    while final["state"] == "open":  # option tickers also go out once a second with the model
        final = client.data(ticker_channel)
    assert final["state"] == "closed" and final["estimated_delivery_price"] == "expired"
    assert final["best_bid_price"] == final["best_ask_price"] == 0.0
    assert final["greeks"]["delta"] == 0.0 and final["settlement_price"] == final["mark_price"] >= 0.0

    states = _states(client, 2 + 2 * 2)  # 2 settled (C and P), then created + started of the 2 new
    assert states[:2] == [("settled", EXPIRING), ("settled", EXPIRING.replace("-C", "-P"))]
    assert ("created", NEXT) in states and states.index(("created", NEXT)) < states.index(("started", NEXT))
    assert _states(client, 2) == [("terminated", EXPIRING), ("terminated", EXPIRING.replace("-C", "-P"))]

    assert EXPIRING not in _names(client) and NEXT in _names(client)
    answer = client.call("public/get_instruments", {"currency": "BTC", "kind": "option", "expired": True})
    check_response("public/get_instruments", answer)
    expired = answer["result"]
    assert {i["instrument_name"] for i in expired} == {EXPIRING, EXPIRING.replace("-C", "-P")}
    assert not any(i["is_active"] for i in expired)
    assert client.result("public/subscribe", {"channels": [f"book.{EXPIRING}.100ms"]}) == []
    assert client.result("public/subscribe", {"channels": [f"book.{NEXT}.raw"]}) == [f"book.{NEXT}.raw"]
    assert client.data(f"book.{NEXT}.raw")["type"] == "snapshot"
    new = client.result("public/get_instrument", {"instrument_name": NEXT})
    assert (
        new["creation_timestamp"] == done["now_ms"] - done["now_ms"] % 1000 or new["creation_timestamp"] > NOW
    )
    assert (
        new["instrument_id"]
        > client.result("public/get_instrument", {"instrument_name": EXPIRING})["instrument_id"]
    )


def test_resting_orders_are_cancelled_at_settlement(sim, client):
    client.result("private/subscribe", {"channels": [f"user.orders.{EXPIRING}.raw"]})
    bid = client.result("public/get_order_book", {"instrument_name": EXPIRING})["best_bid_price"]
    order = client.result(
        "private/buy",
        {"instrument_name": EXPIRING, "amount": 0.5, "type": "limit", "price": bid, "label": "x"},
    )["order"]
    assert order["order_state"] == "open"
    client.data(f"user.orders.{EXPIRING}.raw")
    sim.advance(to="expiry")
    cancelled = client.data(f"user.orders.{EXPIRING}.raw")
    assert cancelled["order_state"] == "cancelled" and cancelled["cancel_reason"] == "settlement"
    refused = client.error("private/buy", {"instrument_name": EXPIRING, "amount": 0.5, "price": bid})
    assert refused["code"] == 10012 and refused["message"] == "book_closed"


def test_the_clock_runs_faster_and_expiries_happen_by_themselves():
    start = int(datetime(2026, 12, 2, 7, 30, tzinfo=UTC).timestamp() * 1000)  # 30 min before the expiry
    with _sim(start_ms=start, clock_speed=2.0) as sim:
        client = Rpc(sim.ws_url)
        try:
            client.result("public/subscribe", {"channels": [STATES]})
            assert sim.info()["clock_speed"] == 2.0
            assert sim.clock(speed=3600.0)["speed"] == 3600.0  # an hour per second from now
            assert ("settled", EXPIRING) in _states(client, 2)
            assert sim.clock()["now_ms"] > int(datetime(2026, 12, 2, 8, tzinfo=UTC).timestamp() * 1000)
        finally:
            client.close()


def test_listing_and_delisting_by_command(sim, client):
    name = "BTC-4DEC26-120000-C"
    channels = [
        STATES,
        "instrument.state.option.any",
        "instrument.state.any.BTC",
        "instrument.state.option.SOL",
    ]
    assert client.result("public/subscribe", {"channels": channels}) == channels[:2]
    assert sim.list_instrument(name)["listed"] == [name]
    assert _states(client, 2) == [("created", name), ("started", name)]
    assert _states(client, 2, "instrument.state.option.any") == [("created", name), ("started", name)]
    assert name in _names(client)
    ticker = client.result("public/ticker", {"instrument_name": name})
    assert ticker["state"] == "open" and 0 < ticker["greeks"]["delta"] < 0.1, "far out of the money"
    assert sim.publish(5, instrument=name)["count"] == 5, "it moves like any listing that matches BTC-*"
    with pytest.raises(SimControlError, match="already listed"):
        sim.list_instrument(name)

    assert sim.delist(name)["closed"] == [name]
    assert _states(client, 2) == [("closed", name), ("terminated", name)]
    assert name not in _names(client)
    with pytest.raises(SimControlError, match="terminated"):
        sim.publish(1, instrument=name)


def test_expire_settles_an_expiry_now_and_refuses_what_cannot_expire(sim, client):
    client.result("public/subscribe", {"channels": [STATES]})
    assert set(sim.expire(expiry="3DEC26")["settled"]) == {
        "BTC-3DEC26-90000-C", "BTC-3DEC26-90000-P", "ETH-3DEC26-3000-C", "ETH-3DEC26-3000-P",
    }  # fmt: skip
    assert _states(client, 2) == [("settled", "BTC-3DEC26-90000-C"), ("settled", "BTC-3DEC26-90000-P")]
    with pytest.raises(SimControlError, match="date code"):
        sim.expire(expiry="3DEC")
    with pytest.raises(SimControlError, match="nothing that trades"):
        sim.expire(instrument="BTC-PERPETUAL")
    with pytest.raises(SimControlError, match="not both"):
        sim.advance(seconds=5, to="expiry")


def test_a_locked_currency_stops_its_books_and_orders_until_unlocked(sim, client):
    client.result("public/subscribe", {"channels": ["platform_state"]})
    sim.lock("BTC")
    msg = client.note("platform_state")
    check_notification(msg, "platform_state", "repeated")
    assert msg["params"]["data"] == {"price_index": "btc_usd", "locked": True}
    status = client.call("public/status")
    check_response("public/status", status)
    assert status["result"] == {
        "locked": "partial",
        "locked_currencies": ["BTC"],
        "locked_indices": ["btc_usd"],
    }
    assert sim.publish(20, instrument="BTC-PERPETUAL")["count"] == 0
    assert sim.publish(5, instrument="ETH-PERPETUAL")["count"] == 5
    refused = client.error("private/buy", {"instrument_name": "BTC-PERPETUAL", "amount": 10, "price": 80000})
    assert refused["code"] == 10019 and refused["message"] == "locked_by_admin"
    sim.unlock("BTC")
    assert client.data("platform_state") == {"price_index": "btc_usd", "locked": False}
    assert client.result("public/status")["locked"] == "false"
    assert sim.publish(5, instrument="BTC-PERPETUAL")["count"] == 5

    sim.lock("ETH", seconds=0.3)
    assert client.data("platform_state") == {"price_index": "eth_usd", "locked": True}
    assert client.data("platform_state") == {"price_index": "eth_usd", "locked": False}
    wait_until(lambda: client.result("public/status")["locked"] == "false", what="the lock to end")


def test_the_cli_takes_the_chain_and_clock_flags_and_the_control_commands(sim):
    check = [
        sys.executable,
        "-m",
        "feeder.sim",
        "--check",
        "--instruments",
        "BTC-*",
        "--option-expiries",
        "all",
    ]
    out = subprocess.run(
        [*check, "--option-strikes", "all", "--start-time", "2026-12-01T12:00:00Z", "--clock-speed", "60"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    plan = json.loads(out.stdout)
    assert plan["start_ms"] == NOW and plan["option_expiries"] is None and plan["clock_speed"] == 60.0
    assert plan["listed"] > 1000 and plan["moving"] > 650
    bad = subprocess.run([*check, "--start-time", "tomorrow"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "start_time" in bad.stderr
    control = [sys.executable, "-m", "feeder.sim", "control", "--port", str(sim.port)]
    done = subprocess.run(
        [*control, "advance", "to=expiry"], capture_output=True, text=True, timeout=60, check=True
    )
    assert EXPIRING in json.loads(done.stdout)["settled"]


def test_deribits_2026_order_book_states_can_be_announced_instead():
    with _sim(instrument_states="book") as sim:
        client = Rpc(sim.ws_url)
        try:
            client.result("public/subscribe", {"channels": [STATES, f"ticker.{EXPIRING}.100ms"]})
            sim.advance(to="expiry")
            states = _states(client, 2 * 2 + 2)
            assert states[:2] == [("settlement", EXPIRING), ("delivered", EXPIRING)]
            assert ("open", NEXT) in states
            assert ("archivized", EXPIRING) in _states(client, 2)
            ticker = client.data(f"ticker.{EXPIRING}.100ms")
            while ticker["state"] == "open":
                ticker = client.data(f"ticker.{EXPIRING}.100ms")
            assert ticker["state"] == "delivered"
        finally:
            client.close()
