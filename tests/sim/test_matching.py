"""Price-time matching against the simulated book (pure: a book, orders, outcomes)."""

from __future__ import annotations

import pytest

from feeder.sim.book import Book
from feeder.sim.matching import Matcher, Order
from feeder.sim.rpc import RpcError


def _book() -> tuple[Book, Matcher]:
    book = Book()
    for price, lots in ((99, 5), (98, 5), (97, 5)):
        book.bids.set(price, lots)
    for price, lots in ((101, 5), (102, 5), (103, 5)):
        book.asks.set(price, lots)
    return book, Matcher(book, lambda price: 1)


def _order(is_buy: bool, price: int | None, lots: int, tif: str = "good_til_cancelled", **kw) -> Order:
    return Order(
        order_id=kw.pop("order_id", "1"), account=kw.pop("account", "a"), conn=1, inst=0, is_buy=is_buy,
        price=price, lots=lots, label=kw.pop("label", ""), order_type="limit" if price else "market", tif=tif,
        post_only=kw.pop("post_only", False), reject_post_only=kw.pop("reject_post_only", False),
        reduce_only=False, created_ms=0,
    )  # fmt: skip


def test_resting_order_adds_to_the_level_and_is_marked_as_user_liquidity():
    book, m = _book()
    out = m.place(_order(True, 100, 3))
    assert out.bids == [("new", 100, 3)] and out.fills == []
    assert book.bids.user == {100: 3} and book.bids.best() == 100


def test_crossing_order_walks_the_book_and_rests_its_remainder():
    book, m = _book()
    order = _order(True, 102, 12)
    out = m.place(order)
    assert [(f.price, f.lots) for f in out.fills] == [(101, 5), (102, 5)]
    assert out.asks == [("delete", 101, 0), ("delete", 102, 0)]
    assert out.bids == [("new", 102, 2)]
    assert order.state == "open" and order.filled == 10 and not book.crossed()


def test_anonymous_liquidity_fills_before_users_and_users_in_time_order():
    book, m = _book()
    first, second = _order(False, 101, 2, order_id="s1"), _order(False, 101, 2, order_id="s2")
    m.place(first)
    m.place(second)
    out = m.place(_order(True, 101, 8, order_id="b"))
    assert [(f.maker.order_id if f.maker else None, f.lots) for f in out.fills] == [
        (None, 5),
        ("s1", 2),
        ("s2", 1),
    ]
    assert first.state == "filled" and second.state == "open" and second.remaining == 1
    assert book.asks.user == {101: 1} and book.asks.lots[101] == 1


def test_immediate_or_cancel_cancels_its_remainder():
    _, m = _book()
    order = _order(True, 101, 8, tif="immediate_or_cancel")
    m.place(order)
    assert order.filled == 5 and order.state == "cancelled"


def test_fill_or_kill_that_cannot_fill_does_not_touch_the_book():
    book, m = _book()
    order = _order(True, 101, 8, tif="fill_or_kill")
    out = m.place(order)
    assert order.state == "cancelled" and order.filled == 0 and out.fills == [] and book.asks.lots[101] == 5


def test_market_order_takes_whatever_is_there():
    _, m = _book()
    order = _order(False, None, 7)
    out = m.place(order)
    assert [(f.price, f.lots) for f in out.fills] == [(99, 5), (98, 2)] and order.state == "filled"


def test_post_only_that_would_cross_is_moved_next_to_the_touch_or_rejected():
    _, m = _book()
    moved = _order(True, 102, 1, post_only=True)
    m.place(moved)
    assert moved.price == 100 and moved.filled == 0
    with pytest.raises(RpcError) as err:
        m.place(_order(True, 102, 1, post_only=True, reject_post_only=True))
    assert err.value.code == 11054


def test_edit_down_keeps_priority_and_edit_up_loses_it():
    book, m = _book()
    a, b = _order(False, 104, 4, order_id="a"), _order(False, 104, 4, order_id="b")
    m.place(a)
    m.place(b)
    m.edit(a, 2, 104)
    assert list(m.queues[(False, 104)]) == [a, b] and book.asks.lots[104] == 6
    m.edit(a, 5, 104)
    assert list(m.queues[(False, 104)]) == [b, a] and book.asks.lots[104] == 9


def test_edit_to_a_crossing_price_trades():
    _, m = _book()
    order = _order(True, 100, 3)
    m.place(order)
    out = m.edit(order, 3, 101)
    assert [(f.price, f.lots) for f in out.fills] == [(101, 3)] and order.state == "filled"
    assert out.bids == [("delete", 100, 0)]


def test_cancel_takes_the_order_out_of_its_level():
    book, m = _book()
    order = _order(True, 99, 2)
    m.place(order)
    out = m.cancel(order, "user_request")
    assert out.bids == [("change", 99, 5)] and book.bids.user == {} and order.state == "cancelled"
