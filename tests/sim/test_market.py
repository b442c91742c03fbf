"""The pure core: the random walk keeps a realistic book, entries describe exactly what changed."""

from __future__ import annotations

from random import Random

from feeder.sim.book import Book
from feeder.sim.catalogue import build_catalogue
from feeder.sim.market import Market
from feeder.sim.walk import Walk

BTC = "BTC-PERPETUAL"
NOW = 1_795_593_600_000  # 2026-11-25 08:00 UTC


def _walk(seed: int = 1, depth: int = 60, grid: int = 1) -> Walk:
    walk = Walk(Book(), Random(seed), grid=grid, depth=depth, lot_mean=100.0, ref=10_000)
    walk.seed()
    return walk


def test_walk_keeps_the_book_uncrossed_and_within_depth():
    walk = _walk()
    for _ in range(20_000):
        walk.step()
        assert not walk.book.crossed()
    for side in (walk.book.bids, walk.book.asks):
        assert walk.depth // 2 <= len(side) <= walk.depth + 1


def test_walk_entries_replayed_on_a_copy_give_the_same_book():
    walk = _walk(seed=5)
    bids, asks = walk.book.copy_levels()
    for _ in range(5_000):
        b, a, _ = walk.step()
        for levels, entries in ((bids, b), (asks, a)):
            prices = [e[1] for e in entries]
            assert len(prices) == len(set(prices)), "one entry per price and side in a change"
            for action, price, lots in entries:
                assert (action == "new") == (price not in levels)
                if action == "delete":
                    del levels[price]
                else:
                    levels[price] = lots
    assert (bids, asks) == walk.book.copy_levels()


def test_walk_prices_stay_on_the_grid():
    walk = _walk(grid=5)
    for _ in range(5_000):
        walk.step()
    assert all(p % 5 == 0 for p in walk.book.bids.prices + walk.book.asks.prices)


def test_walk_never_moves_user_liquidity():
    walk = _walk(seed=9)
    price = walk.book.bids.best() - 3
    walk.book.bids.user[price] = 7
    walk.book.bids.set(price, walk.book.bids.lots.get(price, 0) + 7)
    for _ in range(20_000):
        walk.step()
        assert walk.book.bids.lots.get(price, 0) >= 7


def test_walk_prints_trades_at_the_touch():
    walk = _walk(seed=2)
    trades = 0
    for _ in range(2_000):
        before = (walk.book.bids.best(), walk.book.asks.best())
        _, _, trade = walk.step()
        if trade is not None:
            trades += 1
            price, lots, is_buy = trade
            assert price == (before[1] if is_buy else before[0]) and lots > 0
    assert trades > 100


def test_same_seed_same_books_regardless_of_batching():
    one = Market(build_catalogue((BTC,), NOW), 7, 10_000)
    two = Market(build_catalogue((BTC,), NOW), 7, 10_000)
    a = one.generate(1000, 0)
    b = [c for _ in range(100) for c in two.generate(10, 0)]
    assert [(c.change_id, c.bids, c.asks) for c in a] == [(c.change_id, c.bids, c.asks) for c in b]


def test_generate_spreads_updates_over_the_active_instruments():
    market = Market(build_catalogue((BTC, "ETH-PERPETUAL"), NOW), 1, 10_000)
    counts: dict[int, int] = {}
    for change in market.generate(4000, 0):
        counts[change.inst] = counts.get(change.inst, 0) + 1
    assert set(counts) == set(market.catalogue.active)
    assert min(counts.values()) > 1500
