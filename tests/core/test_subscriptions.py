"""Subscription tracking: confirmed vs refused, restore plans grouped by method, in order."""

from __future__ import annotations

from feeder.core.subscriptions import SubscribeResult, Subscriptions, group_by_method, split_result


def _method(channel: str) -> str:
    return (
        "private/subscribe" if channel.startswith("user.") or channel.endswith(".raw") else "public/subscribe"
    )


def test_channels_missing_from_the_result_are_refused():
    result = split_result(["book.BTC-PERPETUAL.100ms", "book.NOPE.100ms"], ["book.BTC-PERPETUAL.100ms"])
    assert result.confirmed == ["book.BTC-PERPETUAL.100ms"]
    assert list(result.refused) == ["book.NOPE.100ms"]


def test_the_server_may_confirm_in_another_order():
    result = split_result(["a", "b"], ["b", "a"])
    assert result.confirmed == ["a", "b"] and result.refused == {}


def test_a_result_that_is_not_a_list_refuses_everything_with_the_reason():
    result = split_result(["a"], "ok")
    assert result.confirmed == [] and "unexpected subscribe result 'ok'" in result.refused["a"]


def test_grouping_keeps_first_seen_order_drops_duplicates_and_chunks():
    groups = group_by_method(
        ["a.100ms", "user.orders.x.raw", "b.100ms", "a.100ms", "c.100ms"], _method, chunk=2
    )
    assert groups == [
        ("public/subscribe", ["a.100ms", "b.100ms"]),
        ("public/subscribe", ["c.100ms"]),
        ("private/subscribe", ["user.orders.x.raw"]),
    ]


def test_restore_asks_for_every_wanted_channel_after_a_disconnect():
    subs = Subscriptions()
    subs.confirmed(SubscribeResult(["book.A.100ms", "user.orders.any.raw"], {}))
    subs.disconnected()
    assert subs.to_restore(_method, chunk=10) == [
        ("public/subscribe", ["book.A.100ms"]),
        ("private/subscribe", ["user.orders.any.raw"]),
    ]


def test_refused_and_unsubscribed_channels_are_not_restored():
    subs = Subscriptions()
    subs.confirmed(SubscribeResult(["a", "b"], {}))
    subs.confirmed(SubscribeResult([], {"c": "refused"}))
    subs.removed(["a"])
    subs.disconnected()
    assert subs.to_restore(_method, chunk=10) == [("public/subscribe", ["b"])]
    assert subs.refused_total == 1


def test_a_channel_refused_on_restore_stops_being_wanted():
    subs = Subscriptions()
    subs.confirmed(SubscribeResult(["a"], {}))
    subs.disconnected()
    subs.confirmed(SubscribeResult([], {"a": "gone"}))
    assert list(subs.wanted) == []


def test_nothing_to_restore_while_everything_is_active():
    subs = Subscriptions()
    subs.confirmed(SubscribeResult(["a"], {}))
    assert subs.to_restore(_method, chunk=10) == []
