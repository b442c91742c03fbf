"""The L2 book: levels, top-N packed into a book record, and the dirty-side bookkeeping behind it."""

from __future__ import annotations

import random

import numpy as np
import pytest

from feeder.core.book import DEPTH, BookSide, L2Book
from feeder.ring.schema import record_schema


def _record() -> np.ndarray:
    return np.zeros(1, dtype=record_schema("book").dtype)


def _buf(record: np.ndarray) -> memoryview:
    return memoryview(record.view(np.uint8))


def _expected_top(levels: dict[float, float], best_first_reverse: bool) -> list[tuple[float, float]]:
    return sorted(levels.items(), reverse=best_first_reverse)[:DEPTH]


def _packed(record: np.ndarray, side: str, count: int) -> list[tuple[float, float]]:
    px, sz = record[f"{side}_px"][0], record[f"{side}_sz"][0]
    return list(zip(px[:count].tolist(), sz[:count].tolist(), strict=True))


def test_snapshot_levels_come_out_best_first_on_both_sides():
    book = L2Book()
    book.load([(100.0, 1.0), (102.0, 2.0), (101.0, 3.0)], [(105.0, 1.0), (103.0, 2.0), (104.0, 3.0)])
    assert book.bids.top(3) == [(102.0, 2.0), (101.0, 3.0), (100.0, 1.0)]
    assert book.asks.top(3) == [(103.0, 2.0), (104.0, 3.0), (105.0, 1.0)]
    assert (book.bids.best(), book.asks.best()) == (102.0, 103.0)


def test_set_reports_whether_the_level_existed_and_replaces_its_size():
    side = BookSide(1.0)
    assert side.set(100.0, 1.0) is False
    assert side.set(100.0, 5.0) is True
    assert side.top(1) == [(100.0, 5.0)]
    assert len(side) == 1


def test_remove_reports_a_missing_level_and_leaves_the_side_unchanged():
    side = BookSide(-1.0)
    side.set(100.0, 1.0)
    assert side.remove(99.0) is False
    assert side.remove(100.0) is True
    assert len(side) == 0 and side.best() is None


def test_integer_and_float_prices_name_the_same_level():
    side = BookSide(-1.0)
    side.set(50000, 1.0)
    assert side.set(50000.0, 2.0) is True
    assert side.remove(50000) is True


def test_write_top_pads_short_sides_with_zeros_and_returns_the_counts():
    record = _record()
    book = L2Book()
    book.load([(10.0, 1.0)], [])
    assert book.write_top(_buf(record)) == (1, 0)
    assert record["bid_px"][0].tolist() == [10.0] + [0.0] * (DEPTH - 1)
    assert record["bid_sz"][0].tolist() == [1.0] + [0.0] * (DEPTH - 1)
    assert not record["ask_px"][0].any() and not record["ask_sz"][0].any()


def test_write_top_leaves_the_header_of_the_record_alone():
    record = _record()
    record["change_id"] = 77
    record["flags"] = 3
    book = L2Book()
    book.load([(10.0, 1.0)], [(11.0, 1.0)])
    book.write_top(_buf(record))
    assert (int(record["change_id"][0]), int(record["flags"][0])) == (77, 3)


def test_packed_top_equals_a_sorted_reference_through_random_updates_of_a_deep_book():
    """Deep and shallow updates, inserts and deletes on a 200-level book; the record is reused."""
    rng = random.Random(5)
    bids = {round(1000 - i * 0.5, 1): float(rng.randint(1, 50)) for i in range(200)}
    asks = {round(1000.5 + i * 0.5, 1): float(rng.randint(1, 50)) for i in range(200)}
    book, record = L2Book(), _record()
    book.load(bids.items(), asks.items())
    buf = _buf(record)
    for step in range(5000):
        levels, side, sign = (bids, book.bids, 1) if step % 2 else (asks, book.asks, -1)
        near = sorted(levels, reverse=sign > 0)
        price = rng.choice(near[:12] if rng.random() < 0.5 else near)
        op = rng.random()
        if op < 0.2 and len(levels) > 3:
            assert side.remove(price)
            del levels[price]
        elif op < 0.4:
            fresh = round(price - sign * 0.25, 2)
            if fresh not in levels and fresh > 0:
                assert not side.set(fresh, 1.0)
                levels[fresh] = 1.0
        else:
            levels[price] = float(rng.randint(1, 50))
            assert side.set(price, levels[price])
        counts = book.write_top(buf)
        want_bids, want_asks = _expected_top(bids, True), _expected_top(asks, False)
        assert counts == (len(want_bids), len(want_asks))
        assert _packed(record, "bid", counts[0]) == want_bids, f"bids differ after step {step}"
        assert _packed(record, "ask", counts[1]) == want_asks, f"asks differ after step {step}"


def test_an_update_below_the_top_n_leaves_that_side_clean():
    book = L2Book()
    book.load([(float(100 - i), 1.0) for i in range(50)], [(float(101 + i), 1.0) for i in range(50)])
    book.write_top(_buf(_record()))
    book.bids.set(60.0, 9.0)
    book.asks.remove(140.0)
    assert not book.bids.dirty and not book.asks.dirty
    book.bids.set(99.0, 9.0)
    assert book.bids.dirty and not book.asks.dirty


@pytest.mark.parametrize(
    ("bids", "asks", "crossed"),
    [
        ([(100.0, 1.0)], [(101.0, 1.0)], False),
        ([(101.0, 1.0)], [(101.0, 1.0)], True),
        ([(102.0, 1.0)], [(101.0, 1.0)], True),
        ([(102.0, 1.0)], [], False),
    ],
)
def test_crossed_means_best_bid_at_or_above_best_ask(bids, asks, crossed):
    book = L2Book()
    book.load(bids, asks)
    assert book.crossed() is crossed
