"""Orders over a real socket: matching, trades, user notifications, labels, cancel-on-disconnect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import wait_until
from sim.conftest import BTC
from sim.kit import Rpc, check_notification, check_response, schema, validate

from feeder.sim import SimServer

ALICE, BOB = ("alice", "alice-secret"), ("bob", "bob-secret")


@pytest.fixture
def exch() -> Iterator[SimServer]:
    creds = dict([ALICE, BOB])
    with SimServer(instruments=[BTC], rate=0, seed=11, credentials=creds, min_heartbeat_interval=0.3) as sim:
        yield sim


@pytest.fixture
def trader(exch):
    opened: list[Rpc] = []

    def open_trader(who: tuple[str, str] = ALICE, channels: tuple[str, ...] = ()) -> Rpc:
        client = Rpc(exch.ws_url)
        opened.append(client)
        client.auth(*who)
        if channels:
            client.result("private/subscribe", {"channels": list(channels)})
        return client

    yield open_trader
    for client in opened:
        client.close()


def _touch(client: Rpc) -> tuple[float, float]:
    book = client.result("public/get_order_book", {"instrument_name": BTC, "depth": 1})
    return book["best_bid_price"], book["best_ask_price"]


def test_a_resting_buy_is_open_booked_and_notified(trader):
    alice = trader(ALICE, (f"user.orders.{BTC}.raw", f"book.{BTC}.raw"))
    alice.note(f"book.{BTC}.raw")
    bid, _ = _touch(alice)
    msg = alice.call(
        "private/buy", {"instrument_name": BTC, "amount": 100, "price": bid + 0.5, "label": "s1-1"}
    )
    check_response("private/buy", msg)
    order = msg["result"]["order"]
    assert order["order_state"] == "open" and order["label"] == "s1-1" and msg["result"]["trades"] == []
    note = alice.note(f"user.orders.{BTC}.raw")
    check_notification(
        note, "user.orders.(instrument_name).raw", "repeated", optional=("original_order_type",)
    )
    check_response("private/get_position", alice.call("private/get_position", {"instrument_name": BTC}))
    validate(note["params"]["data"], schema("order"))
    change = alice.data(f"book.{BTC}.raw")
    assert change["bids"] == [["new", bid + 0.5, 100.0]]


def test_crossing_orders_fill_print_trades_and_notify_both_sides(trader):
    alice = trader(ALICE, (f"user.orders.{BTC}.raw", f"user.trades.{BTC}.raw"))
    bob = trader(BOB, (f"user.trades.{BTC}.raw", f"trades.{BTC}.raw"))
    bid, _ = _touch(alice)
    price = bid + 0.5
    sell = alice.result(
        "private/sell", {"instrument_name": BTC, "amount": 50, "price": price, "post_only": True}
    )
    assert sell["order"]["order_state"] == "open"
    msg = bob.call("private/buy", {"instrument_name": BTC, "amount": 50, "price": price, "label": "take"})
    check_response("private/buy", msg)
    trades = msg["result"]["trades"]
    assert msg["result"]["order"]["order_state"] == "filled" and len(trades) == 1
    assert trades[0]["liquidity"] == "T" and trades[0]["price"] == price and trades[0]["amount"] == 50
    note = bob.note(f"trades.{BTC}.raw")
    check_notification(note, "trades.(instrument_name).(interval)", "repeated")
    public = note["params"]["data"]
    assert public[0]["direction"] == "buy" and public[0]["price"] == price
    theirs = alice.data(f"user.trades.{BTC}.raw")
    assert theirs[0]["liquidity"] == "M" and theirs[0]["direction"] == "sell"
    for item in theirs:
        validate(item, schema("user_trade"))
    filled = [alice.data(f"user.orders.{BTC}.raw") for _ in range(2)][-1]
    assert filled["order_state"] == "filled" and filled["filled_amount"] == 50


def test_edit_and_cancel_answer_with_the_order(trader):
    alice = trader()
    bid, _ = _touch(alice)
    order = alice.result("private/buy", {"instrument_name": BTC, "amount": 10, "price": bid - 50})["order"]
    msg = alice.call("private/edit", {"order_id": order["order_id"], "amount": 20, "price": bid - 60})
    check_response("private/edit", msg)
    assert msg["result"]["order"]["amount"] == 20 and msg["result"]["order"]["price"] == bid - 60
    msg = alice.call("private/cancel", {"order_id": order["order_id"]})
    check_response("private/cancel", msg)
    assert msg["result"]["order_state"] == "cancelled" and msg["result"]["cancel_reason"] == "user_request"
    assert alice.error("private/cancel", {"order_id": order["order_id"]})["code"] == 11044


def test_a_post_only_edit_never_takes_liquidity(trader):
    alice = trader()
    bid, ask = _touch(alice)
    order = alice.result("private/buy", {"instrument_name": BTC, "amount": 10, "price": bid - 50})["order"]
    crossing = {"order_id": order["order_id"], "amount": 10, "price": ask + 5}
    refused = alice.error("private/edit", {**crossing, "post_only": True, "reject_post_only": True})
    assert refused["code"] == 11054
    assert alice.result("private/get_order_state", {"order_id": order["order_id"]})["price"] == bid - 50
    moved = alice.result("private/edit", {**crossing, "post_only": True, "reject_post_only": False})
    assert moved["trades"] == [] and moved["order"]["order_state"] == "open"
    assert moved["order"]["price"] < ask  # moved just behind the best ask instead of crossing


def test_labels_find_and_cancel_orders(trader):
    alice = trader()
    bid, _ = _touch(alice)
    for n, label in enumerate(("grid", "grid", "other")):
        alice.result(
            "private/buy", {"instrument_name": BTC, "amount": 10, "price": bid - 10 - n, "label": label}
        )
    by_label = alice.call("private/get_open_orders_by_label", {"currency": "BTC", "label": "grid"})
    check_response("private/get_open_orders_by_label", by_label)
    assert len(by_label["result"]) == 2
    assert alice.result("private/cancel_by_label", {"label": "grid"}) == 2
    left = alice.call("private/get_open_orders_by_instrument", {"instrument_name": BTC})
    check_response("private/get_open_orders_by_instrument", left)
    assert [o["label"] for o in left["result"]] == ["other"]
    msg = alice.call("private/cancel_all", {})
    check_response("private/cancel_all", msg)
    assert msg["result"] == 1


def test_orders_are_private_to_their_account(trader):
    alice, bob = trader(ALICE), trader(BOB)
    bid, _ = _touch(alice)
    order = alice.result("private/buy", {"instrument_name": BTC, "amount": 10, "price": bid - 5})["order"]
    assert bob.error("private/cancel", {"order_id": order["order_id"]})["code"] == 10004
    assert bob.result("private/get_open_orders_by_instrument", {"instrument_name": BTC}) == []


def test_bad_orders_are_refused_with_deribit_codes(trader):
    alice = trader()
    assert (
        alice.error("private/buy", {"instrument_name": "BTC-NOPE", "amount": 10, "price": 1})["code"] == 10020
    )
    assert alice.error("private/buy", {"instrument_name": BTC, "amount": 10, "price": 100.3})["code"] == 10043
    error = alice.error("private/buy", {"instrument_name": BTC, "amount": 15, "price": 100})
    assert error["code"] == -32602 and error["data"]["param"] == "amount"
    error = alice.error(
        "private/buy", {"instrument_name": BTC, "amount": 10, "type": "stop_limit", "price": 1}
    )
    assert error["code"] == -32602 and error["data"]["param"] == "type"
    error = alice.error(
        "private/buy", {"instrument_name": BTC, "amount": 10, "price": 100, "label": "x" * 65}
    )
    assert error["data"]["param"] == "label"


def test_private_methods_need_authentication(exch):
    client = Rpc(exch.ws_url)
    try:
        error = client.error("private/get_open_orders_by_instrument", {"instrument_name": BTC})
        assert error["code"] == 13009
    finally:
        client.close()


def _open_orders(client: Rpc) -> list[dict]:
    return client.result("private/get_open_orders_by_instrument", {"instrument_name": BTC})


def test_cancel_on_disconnect_cancels_that_connections_orders_when_it_drops(exch, trader):
    watcher = trader(ALICE, (f"user.orders.{BTC}.raw",))
    alice = trader()
    assert alice.result("private/enable_cancel_on_disconnect", {}) == "ok"
    check_response("private/get_cancel_on_disconnect", alice.call("private/get_cancel_on_disconnect", {}))
    bid, _ = _touch(alice)
    alice.result("private/buy", {"instrument_name": BTC, "amount": 10, "price": bid - 5, "label": "cod"})
    watcher.result("private/buy", {"instrument_name": BTC, "amount": 10, "price": bid - 6, "label": "keep"})
    conn = next(c["id"] for c in exch.connections() if c["cancel_on_disconnect"])
    exch.disconnect(conn=conn, how="reset")
    wait_until(
        lambda: [o["label"] for o in _open_orders(watcher)] == ["keep"], what="the cod order cancelled"
    )
    cancelled = [n for n in (watcher.data(f"user.orders.{BTC}.raw") for _ in range(3)) if n["label"] == "cod"]
    assert cancelled[-1]["cancel_reason"] == "cancel_on_disconnect"


def test_cancel_on_disconnect_fires_when_the_heartbeat_fails(exch, trader):
    watcher = trader()
    alice = trader()
    alice.result("private/enable_cancel_on_disconnect", {"scope": "connection"})
    bid, _ = _touch(alice)
    alice.result("private/buy", {"instrument_name": BTC, "amount": 10, "price": bid - 5})
    alice.result("public/set_heartbeat", {"interval": 0.3})
    wait_until(lambda: len(exch.connections()) == 1, what="the silent connection closed by the heartbeat")
    assert exch.stats()["counters"]["heartbeat_closes"] == 1
    wait_until(lambda: _open_orders(watcher) == [], what="its orders cancelled")


def test_logout_closes_without_cancelling(exch, trader):
    watcher = trader()
    alice = trader()
    alice.result("private/enable_cancel_on_disconnect", {})
    bid, _ = _touch(alice)
    alice.result("private/buy", {"instrument_name": BTC, "amount": 10, "price": bid - 5})
    alice.send("private/logout", {})
    wait_until(lambda: len(exch.connections()) == 1, what="the logout")
    assert len(_open_orders(watcher)) == 1


def test_aggregated_user_channels_send_lists_per_interval(trader):
    alice = trader(ALICE, (f"user.orders.{BTC}.100ms", "user.trades.future.BTC.100ms"))
    bob = trader(BOB)
    bid, _ = _touch(alice)
    alice.result("private/sell", {"instrument_name": BTC, "amount": 20, "price": bid + 0.5})
    bob.result("private/buy", {"instrument_name": BTC, "amount": 20, "price": bid + 0.5})
    orders = alice.note(f"user.orders.{BTC}.100ms")
    check_notification(
        orders, "user.orders.(instrument_name).(interval)", "repeated", optional=("original_order_type",)
    )
    trades = alice.note("user.trades.future.BTC.100ms")
    check_notification(trades, "user.trades.(instrument_name).(interval)", "repeated")
    assert trades["params"]["data"][0]["liquidity"] == "M"
