"""The phantom faults and get_order_book: a corrupt but correctly chained level only an audit can see."""

from __future__ import annotations

import pytest
from sim.conftest import BTC
from sim.kit import Rpc

RAW = f"book.{BTC}.raw"


def _subscribed(connect) -> tuple[Rpc, dict]:
    client = connect()
    client.auth()
    client.result("public/subscribe", {"channels": [RAW]})
    return client, client.data(RAW)


def _levels(entries: list, side: list) -> dict[float, float]:
    """A side after applying [action, price, amount] entries to {price: amount}."""
    book = {p: a for p, a in side}
    for action, price, amount in entries:
        if action == "delete":
            book.pop(price, None)
        else:
            book[price] = amount
    return book


def test_a_phantom_keeps_the_chain_adds_a_level_the_truth_lacks_and_does_not_cross(sim, connect):
    client, snap = _subscribed(connect)
    bids = {p: a for _, p, a in snap["bids"]}
    asks = {p: a for _, p, a in snap["asks"]}
    sim.fault("phantom", instrument=BTC)
    last = sim.publish(1, BTC)["last"][BTC]
    data = client.data(RAW)
    assert (data["prev_change_id"], data["change_id"]) == (snap["change_id"], last)
    seen_bids = _levels(data["bids"], bids.items())
    seen_asks = _levels(data["asks"], asks.items())
    truth = sim.truth(BTC, last)
    top = lambda book, reverse: sorted(book.items(), reverse=reverse)[:10]  # noqa: E731
    assert [top(seen_bids, True), top(seen_asks, False)] != [
        [tuple(x) for x in truth["bids"]],
        [tuple(x) for x in truth["asks"]],
    ], "the phantom is in the top 10"
    assert max(seen_bids) < min(seen_asks), "the phantom does not cross the book"
    assert sim.stats()["faults"]["fault_phantom_applied"] == 1


def test_a_crossing_phantom_puts_a_bid_above_the_best_ask(sim, connect):
    client, snap = _subscribed(connect)
    sim.fault("phantom_cross", instrument=BTC)
    sim.publish(1, BTC)
    data = client.data(RAW)
    best_ask = min(p for _, p, _ in snap["asks"])
    assert any(action == "new" and price > best_ask for action, price, _ in data["bids"])


@pytest.mark.parametrize("depth", [1, 10, 20])
def test_get_order_book_answers_the_truth_at_a_change_id_the_stream_carried(sim, connect, depth):
    client, _ = _subscribed(connect)
    sim.publish(50, BTC)
    book = client.result("public/get_order_book", {"instrument_name": BTC, "depth": depth})
    sent = [c for c, _, _ in sim.sent(RAW)]
    assert book["change_id"] == sent[-1]
    truth, n = sim.truth(BTC, book["change_id"]), min(depth, 10)  # the truth keeps the top 10
    assert len(book["bids"]) == len(book["asks"]) == depth
    assert book["bids"][:n] == truth["bids"][:n] and book["asks"][:n] == truth["asks"][:n]


def test_the_account_summary_matches_the_spec_and_reports_the_limits_the_simulator_enforces(connect):
    from sim.kit import check_response

    client = connect()
    client.auth()
    msg = client.call("private/get_account_summary", {"currency": "BTC"})
    check_response("private/get_account_summary", msg)
    limits = msg["result"]["limits"]
    assert limits["matching_engine"]["trading"]["total"] == {"rate": 5.0, "burst": 20.0}
    assert limits["non_matching_engine"] == {"rate": 20.0, "burst": 100.0}
