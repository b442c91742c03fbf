"""The L2 book: levels, one-pass change lists, and the top N kept in a book record (only what changed)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from feeder.core.book import BAD, CLEAN, CONTRADICTS, DEPTH, OK, REPACK, SIZES, BookSide, L2Book, book_layout
from feeder.errors import BadMessage, SchemaError
from feeder.exchanges.deribit.parse import parse_book
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
    book = L2Book(_buf(record))
    book.load([(10.0, 1.0)], [])
    assert book.write() == (1, 0)
    assert record["bid_px"][0].tolist() == [10.0] + [0.0] * (DEPTH - 1)
    assert record["bid_sz"][0].tolist() == [1.0] + [0.0] * (DEPTH - 1)
    assert not record["ask_px"][0].any() and not record["ask_sz"][0].any()


def test_write_top_leaves_the_header_of_the_record_alone():
    record = _record()
    record["change_id"] = 77
    record["flags"] = 3
    book = L2Book(_buf(record))
    book.load([(10.0, 1.0)], [(11.0, 1.0)])
    book.write()
    assert (int(record["change_id"][0]), int(record["flags"][0])) == (77, 3)


def test_packed_top_equals_a_sorted_reference_through_random_updates_of_a_deep_book():
    """Deep and shallow updates, inserts and deletes on a 200-level book; the record is reused."""
    rng = random.Random(5)
    bids = {round(1000 - i * 0.5, 1): float(rng.randint(1, 50)) for i in range(200)}
    asks = {round(1000.5 + i * 0.5, 1): float(rng.randint(1, 50)) for i in range(200)}
    record = _record()
    book = L2Book(_buf(record))
    book.load(bids.items(), asks.items())
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
        counts = book.write()
        want_bids, want_asks = _expected_top(bids, True), _expected_top(asks, False)
        assert counts == (len(want_bids), len(want_asks))
        assert _packed(record, "bid", counts[0]) == want_bids, f"bids differ after step {step}"
        assert _packed(record, "ask", counts[1]) == want_asks, f"asks differ after step {step}"


def test_an_update_below_the_top_n_leaves_that_side_clean():
    book = L2Book(_buf(_record()))
    book.load([(float(100 - i), 1.0) for i in range(50)], [(float(101 + i), 1.0) for i in range(50)])
    book.write()
    book.bids.set(60.0, 9.0)
    book.asks.remove(140.0)
    assert book.bids.touched == CLEAN and book.asks.touched == CLEAN
    book.bids.set(99.0, 9.0)
    assert book.bids.touched == REPACK and book.asks.touched == CLEAN


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


# --- change lists in one pass -----------------------------------------------------------------------


def _book_with(record: np.ndarray, bids: dict, asks: dict) -> L2Book:
    book = L2Book(_buf(record))
    book.load(bids.items(), asks.items())
    book.write()
    return book


@pytest.mark.parametrize(
    ("entries", "status"),
    [
        ([["change", 100.0, 2.0], ["new", 99.5, 1.0], ["delete", 98.0, 0.0]], OK),
        ([["delete", 100.0, 0]], OK),  # Deribit sends 0 or 0.0 on a delete
        ([["new", 100.0, 1.0]], CONTRADICTS),  # the level exists
        ([["change", 90.5, 1.0]], CONTRADICTS),  # no such level
        ([["delete", 90.5, 0.0]], CONTRADICTS),
        ([["new", float("nan"), 1.0]], BAD),
        ([["new", float("inf"), 1.0]], BAD),
        ([["new", -1.0, 1.0]], BAD),
        ([["new", True, 1.0]], BAD),
        ([["new", "99.5", 1.0]], BAD),
        ([["change", 100.0, 0.0]], BAD),
        ([["delete", 100.0, -0.5]], BAD),
        ([["new", 99.5, float("nan")]], BAD),
        ([["upsert", 99.5, 1.0]], BAD),
        ([["new", 99.5]], BAD),
        ([("new", 99.5, 1.0)], BAD),  # JSON arrays decode to lists only
        ([["change", 100.0, 2.0], ["new", 99.5, None]], BAD),  # stops at the second entry
    ],
)
def test_a_change_list_is_validated_as_it_is_applied(entries, status):
    side = BookSide(1.0)
    side.load([(100.0, 1.0), (99.0, 1.0), (98.0, 1.0)])
    assert side.apply(entries) == status


def test_one_pass_accepts_exactly_what_parse_book_accepts():
    """Random entries, good and bad: OK only where parse_book accepts, BAD only where it refuses (at a
    contradiction the pass stops; the adapter then asks parse_book about the rest)."""
    rng = random.Random(3)
    values = [1.0, 2, 0.0, 0, -1.0, float("nan"), float("inf"), -float("inf"), True, None, "1", 1e308, 5e-324]
    actions = ["new", "change", "delete", "upsert", None, 1]
    seen = {OK: 0, BAD: 0, CONTRADICTS: 0}
    for _ in range(3000):
        entries = []
        for _ in range(rng.randint(0, 3)):
            entry = [rng.choice(actions), rng.choice([100.0, 99.0, 98.5, *values]), rng.choice(values)]
            entries.append(entry if rng.random() > 0.05 else entry[: rng.randint(0, 2)])
        data = {"type": "change", "instrument_name": "BTC-PERPETUAL", "change_id": 2, "prev_change_id": 1,
                "timestamp": 1, "bids": entries, "asks": []}  # fmt: skip
        try:
            parse_book(data, "BTC-PERPETUAL")
            valid = True
        except BadMessage:
            valid = False
        side = BookSide(1.0)
        side.load([(100.0, 1.0), (99.0, 1.0)])
        status = side.apply(entries)
        assert status != (BAD if valid else OK), entries
        seen[status] += 1
    assert all(seen.values()), seen


def test_only_what_changed_is_written_and_the_record_always_equals_a_full_repack():
    """Random change lists on a deep book: sizes written in place, repacks when the top N gains or
    loses a level; after every message the record equals the top N packed from scratch."""
    rng = random.Random(8)
    bids = {round(1000 - i * 0.5, 1): float(rng.randint(1, 50)) for i in range(200)}
    asks = {round(1000.5 + i * 0.5, 1): float(rng.randint(1, 50)) for i in range(200)}
    record, reference = _record(), _record()
    book = _book_with(record, bids, asks)
    writes = {CLEAN: 0, SIZES: 0, REPACK: 0}
    for step in range(3000):
        entries = {"bids": [], "asks": []}
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(("bids", "asks"))
            levels, sign = (bids, 1) if name == "bids" else (asks, -1)
            ordered = sorted(levels, reverse=sign > 0)
            price = ordered[min(int(rng.expovariate(1 / 8)), len(ordered) - 1)]
            if any(e[1] == price for e in entries[name]):
                continue
            roll = rng.random()
            if roll < 0.15 and len(levels) > 20:
                del levels[price]
                entries[name].append(["delete", price, 0.0])
            elif roll < 0.3 and (fresh := round(price + sign * 0.25, 2)) not in levels:
                levels[fresh] = 1.0
                entries[name].append(["new", fresh, 1.0])
            else:
                levels[price] = float(rng.randint(1, 50))
                entries[name].append(["change", price, levels[price]])
        assert book.bids.apply(entries["bids"]) == OK and book.asks.apply(entries["asks"]) == OK
        for side in (book.bids, book.asks):
            writes[side.touched] += 1
        counts = book.write(entries["bids"], entries["asks"])
        fresh_book = _book_with(reference, bids, asks)
        assert counts == (fresh_book.bids.count, fresh_book.asks.count)
        assert record.tobytes() == reference.tobytes(), f"the record differs after step {step}"
    assert all(writes.values()), writes  # every kind of write happened


def test_a_deeper_record_keeps_more_levels():
    dtype = np.dtype({"names": ["bid_px", "bid_sz", "ask_px", "ask_sz"],
                      "formats": ["(25,)<f8"] * 4, "offsets": [64, 264, 464, 664], "itemsize": 896})  # fmt: skip
    layout = book_layout(dtype)
    assert (layout.depth, layout.bid_offset, layout.ask_offset, layout.levels_end) == (25, 64, 464, 864)
    record = np.zeros(1, dtype)
    book = L2Book(memoryview(record.view(np.uint8)), layout)
    book.load([(float(100 - i), 1.0) for i in range(40)], [(float(101 + i), 2.0) for i in range(3)])
    assert book.write() == (25, 3)
    assert record["bid_px"][0].tolist() == [float(100 - i) for i in range(25)]
    assert record["ask_px"][0].tolist() == [101.0, 102.0, 103.0] + [0.0] * 22


def test_a_record_whose_levels_are_not_back_to_back_is_refused():
    dtype = np.dtype({"names": ["bid_px", "bid_sz", "ask_px", "ask_sz"],
                      "formats": ["(2,)<f8"] * 4, "offsets": [0, 16, 40, 56], "itemsize": 72})  # fmt: skip
    with pytest.raises(SchemaError, match="back to back"):
        book_layout(dtype)
