"""Book channels over a real socket: snapshot then changes, chaining, aggregation, the spec's shapes."""

from __future__ import annotations

from sim.conftest import BTC, ETH
from sim.kit import check_error, check_notification, check_response

from feeder.sim import book_hash

RAW = f"book.{BTC}.raw"
AGG = f"book.{BTC}.100ms"


class Book:
    """A consumer's book rebuilt from notifications."""

    def __init__(self, snapshot: dict):
        self.bids = {p: a for _, p, a in snapshot["bids"]}
        self.asks = {p: a for _, p, a in snapshot["asks"]}
        self.change_id = snapshot["change_id"]

    def apply(self, data: dict) -> None:
        assert data["prev_change_id"] == self.change_id, "a change did not chain to the previous message"
        for side, entries in ((self.bids, data["bids"]), (self.asks, data["asks"])):
            for action, price, amount in entries:
                if action == "new":
                    assert price not in side, f"new for an existing level {price}"
                    side[price] = amount
                elif action == "change":
                    assert price in side, f"change for a missing level {price}"
                    side[price] = amount
                else:
                    assert action == "delete" and amount == 0.0 and price in side
                    del side[price]
        self.change_id = data["change_id"]

    def top(self) -> tuple[list[list[float]], list[list[float]]]:
        bids = [[p, self.bids[p]] for p in sorted(self.bids, reverse=True)[:10]]
        asks = [[p, self.asks[p]] for p in sorted(self.asks)[:10]]
        return bids, asks


def test_raw_book_without_authentication_fails_the_whole_request_with_13778(sim, connect):
    client = connect()
    msg = client.call("public/subscribe", {"channels": [AGG, RAW]})
    check_error(msg)
    assert msg["error"]["code"] == 13778
    assert sim.connections()[0]["subscriptions"] == []


def test_subscribe_result_lists_only_valid_channels(connect):
    client = connect()
    channels = [
        AGG,
        "book.NOPE-PERPETUAL.100ms",
        "book.BTC-PERPETUAL.5ms",
        "user.orders.BTC-PERPETUAL.raw",
        7,
    ]
    msg = client.call("public/subscribe", {"channels": channels})
    check_response("public/subscribe", msg)
    assert msg["result"] == [AGG]


def test_raw_book_sends_a_snapshot_then_changes_shaped_like_the_spec(sim, connect):
    client = connect()
    client.auth()
    assert client.result("public/subscribe", {"channels": [RAW]}) == [RAW]
    snapshot = client.note(RAW)
    check_notification(snapshot, "book.(instrument_name).(interval)", "first")
    assert (
        snapshot["params"]["data"]["type"] == "snapshot"
        and "prev_change_id" not in snapshot["params"]["data"]
    )
    sim.publish(20, BTC)
    for _ in range(20):
        change = client.note(RAW)
        check_notification(change, "book.(instrument_name).(interval)", "repeated")
        assert change["params"]["data"]["type"] == "change"


def test_change_ids_increase_with_jumps_and_chain_through_prev_change_id(sim, connect):
    client = connect()
    client.auth()
    client.result("public/subscribe", {"channels": [RAW]})
    book = Book(client.data(RAW))
    sim.publish(300, BTC)
    steps = set()
    for _ in range(300):
        data = client.data(RAW)
        assert data["change_id"] > book.change_id
        steps.add(data["change_id"] - book.change_id)
        book.apply(data)
    assert len(steps) > 1, "change_id must not be consecutive"


def test_snapshot_is_uncrossed_deep_and_on_the_tick_grid(connect):
    client = connect()
    client.result("public/subscribe", {"channels": [AGG]})
    data = client.data(AGG)
    bids, asks = [p for _, p, _ in data["bids"]], [p for _, p, _ in data["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0] < asks[0]
    assert len(bids) >= 50 and len(asks) >= 50
    assert all((p * 2).is_integer() for p in bids + asks), "BTC-PERPETUAL prices are multiples of 0.5"


def test_the_rebuilt_raw_book_equals_the_ground_truth_at_every_change(sim, connect):
    client = connect()
    client.auth()
    client.result("public/subscribe", {"channels": [RAW]})
    book = Book(client.data(RAW))
    sim.publish(200, BTC)
    seen = []
    for _ in range(200):
        book.apply(client.data(RAW))
        seen.append((book.change_id, book.top()))
    truths = sim.truth_many(BTC, [cid for cid, _ in seen])
    for (cid, (bids, asks)), truth in zip(seen, truths, strict=True):
        assert truth["change_id"] == cid and truth["bids"] == bids and truth["asks"] == asks
        hashed = book_hash(
            [b[0] for b in bids], [b[1] for b in bids], [a[0] for a in asks], [a[1] for a in asks]
        )
        assert truth["hash"] == hashed


def test_100ms_channel_aggregates_an_interval_into_one_message_with_the_last_change_id(sim, connect):
    client = connect()
    client.result("public/subscribe", {"channels": [AGG]})
    book = Book(client.data(AGG))
    last = sim.publish(50, BTC)["last"][BTC]
    data = client.data(AGG)
    while data["change_id"] != last:  # a tick may have split the batch
        book.apply(data)
        data = client.data(AGG)
    book.apply(data)
    truth = sim.truth(BTC, last)
    assert (truth["bids"], truth["asks"]) == book.top()
    assert data["change_id"] == last


def test_100ms_messages_carry_net_changes_without_duplicate_prices(sim, connect):
    client = connect()
    client.result("public/subscribe", {"channels": [AGG]})
    book = Book(client.data(AGG))
    for _ in range(5):
        last = sim.publish(80, BTC)["last"][BTC]
        while book.change_id != last:
            data = client.data(AGG)
            for entries in (data["bids"], data["asks"]):
                prices = [p for _, p, _ in entries]
                assert len(prices) == len(set(prices))
            book.apply(data)
    truth = sim.truth(BTC, book.change_id)
    assert (truth["bids"], truth["asks"]) == book.top()


def test_unsubscribe_returns_the_removed_channels_and_stops_them(sim, connect):
    client = connect()
    client.result("public/subscribe", {"channels": [AGG, f"book.{ETH}.100ms"]})
    msg = client.call("public/unsubscribe", {"channels": [AGG, "book.NOT.100ms"]})
    check_response("public/unsubscribe", msg)
    assert msg["result"] == [AGG]
    assert client.result("public/unsubscribe_all", {}) == "ok"
    client.silent(0.3)
    sim.publish(30)
    assert [m for m in client.silent(0.5) if m.get("method") == "subscription"] == []


def test_grouped_book_sends_price_amount_pairs_to_the_depth(sim, connect):
    client = connect()
    channel = f"book.{BTC}.10.10.100ms"
    client.result("public/subscribe", {"channels": [channel]})
    msg = client.note(channel)
    check_notification(msg, "book.(instrument_name).(group).(depth).(interval)", "repeated")
    data = msg["params"]["data"]
    assert len(data["bids"]) == 10 and len(data["asks"]) == 10
    assert all(p % 10 == 0 for p, _ in data["bids"] + data["asks"])
    assert data["bids"][0][0] <= data["asks"][0][0]
    sim.publish(50, BTC)
    assert client.data(channel)["change_id"] > data["change_id"]


def test_quote_ticker_trades_and_index_channels_match_the_spec_examples(sim, connect):
    client = connect()
    channels = [f"quote.{BTC}", f"ticker.{BTC}.100ms", f"trades.{BTC}.100ms", "deribit_price_index.btc_usd"]
    assert sorted(client.result("public/subscribe", {"channels": channels})) == sorted(channels)
    sim.publish(200, BTC)
    check_notification(client.note(channels[0]), "quote.(instrument_name)", "repeated")
    check_notification(client.note(channels[1]), "ticker.(instrument_name).(interval)", "repeated")
    check_notification(client.note(channels[2]), "trades.(instrument_name).(interval)", "repeated")
    check_notification(client.note(channels[3]), "deribit_price_index.(index_name)", "repeated")
