"""The replica's decisions as data: duplicates, losses on the way, losses at the mirror, new incarnations."""

from __future__ import annotations

import numpy as np

from feeder import GAP, MARKER, SNAPSHOT, record_schema
from feeder.bridge.gaps import compose, gap_record
from feeder.bridge.track import Track, history, holes_in, judge, reachable
from feeder.bridge.wire import BatchHeader, RingIdentity

BOOK = record_schema("book").dtype
TRADE = record_schema("trade").dtype
IDENTITY = RingIdentity("book", 16, 1, 100)


def header(first: int, end: int, epoch: int = 1, identity: RingIdentity = IDENTITY) -> BatchHeader:
    return BatchHeader(identity, epoch, first, end)


def seqs(*values: int) -> np.ndarray:
    return np.array(values, np.uint64)


def test_a_first_batch_starts_a_new_local_ring_at_its_first_seq():
    plan = judge(None, header(5, 7), seqs(5, 6))
    assert plan.replace and plan.missing is None and plan.holes == () and plan.end == 7


def test_the_batch_that_follows_is_written_as_it_is():
    plan = judge(Track(IDENTITY, 1, 7), header(7, 9), seqs(7, 8))
    assert not plan.replace and not plan.new_epoch
    assert (plan.missing, plan.keep, plan.holes, plan.end) == (None, 0, (), 9)


def test_seqs_already_held_are_dropped():
    plan = judge(Track(IDENTITY, 1, 8), header(6, 10), seqs(6, 7, 8, 9))
    assert plan.keep == 2 and plan.holes == () and plan.end == 10


def test_a_batch_wholly_held_changes_nothing():
    plan = judge(Track(IDENTITY, 1, 10), header(6, 8), seqs(6, 7))
    assert plan.keep == 2 and plan.holes == () and plan.end == 10 and plan.missing is None


def test_seqs_before_a_batch_went_missing_on_the_way():
    plan = judge(Track(IDENTITY, 1, 7), header(10, 11), seqs(10))
    assert plan.missing == (7, 10) and plan.holes == ()


def test_seqs_the_mirror_reported_lost_are_holes():
    plan = judge(Track(IDENTITY, 1, 7), header(7, 12), seqs(8, 10))
    assert plan.holes == ((7, 8), (9, 10), (11, 12)) and plan.missing is None


def test_a_heartbeat_beyond_what_was_received_reveals_the_lost_tail():
    plan = judge(Track(IDENTITY, 1, 7), header(9, 9), seqs())
    assert plan.missing == (7, 9) and plan.end == 9


def test_a_new_epoch_upstream_is_noticed():
    assert judge(Track(IDENTITY, 1, 7), header(7, 8, epoch=3), seqs(7)).new_epoch


def test_a_new_incarnation_of_the_source_ring_replaces_the_local_one():
    reborn = RingIdentity("book", 16, 1, 200)
    plan = judge(Track(IDENTITY, 1, 900), header(0, 2, identity=reborn), seqs(0, 1))
    assert plan.replace and plan.missing is None and plan.keep == 0 and plan.end == 2


def test_holes_in_finds_every_run():
    assert holes_in(seqs(), 3, 5) == ((3, 5),)
    assert holes_in(seqs(3, 4), 3, 5) == ()
    assert holes_in(seqs(4), 3, 6) == ((3, 4), (5, 6))


def test_a_repair_never_asks_for_more_than_the_ring_can_hold():
    assert reachable((0, 100), 16) == (84, 100)
    assert reachable((90, 100), 16) == (90, 100)
    assert history(5, 16) == (0, 5) and history(100, 16) == (84, 100)


def book(seq: int, flags: int = 0) -> np.ndarray:
    out = np.zeros(1, BOOK)
    out["seq"], out["flags"], out["change_id"], out["bid_px"][0, 0] = seq, flags, 1000 + seq, 50.0
    return out


def test_a_book_gap_is_a_gap_copy_of_the_last_book_never_a_snapshot():
    last = book(4, SNAPSHOT)[0]
    gap = gap_record(BOOK, "book", last, 9, now_ns=77)[0]
    assert int(gap["flags"]) == GAP and gap["seq"] == 9 and gap["change_id"] == 1004
    assert gap["bid_px"][0] == 50.0 and gap["ts_publish"] == 77 and gap["ts_recv"] == 77


def test_a_gap_without_a_book_before_it_is_a_marker():
    gap = gap_record(BOOK, "book", None, 3, now_ns=1)[0]
    assert int(gap["flags"]) == MARKER | GAP and gap["change_id"] == 0


def test_an_event_gap_carries_no_event():
    last = np.zeros(1, TRADE)
    last["price"] = 7.0
    gap = gap_record(TRADE, "trade", last[0], 3, now_ns=1)[0]
    assert int(gap["flags"]) == MARKER | GAP and gap["price"] == 0


def test_compose_puts_one_gap_record_at_the_end_of_each_hole():
    records = np.concatenate([book(5), book(8)])
    out = compose(records, ((3, 5), (6, 8), (9, 11)), "book", None, now_ns=1)
    assert out["seq"].tolist() == [4, 5, 7, 8, 10]
    assert [int(f) for f in out["flags"]] == [MARKER | GAP, 0, GAP, 0, GAP]
    assert out["change_id"].tolist() == [0, 1005, 1005, 1008, 1008]


def test_compose_without_holes_returns_the_records_themselves():
    records = book(5)
    assert compose(records, (), "book", None, now_ns=1) is records


def test_a_hole_in_a_chain_ring_is_one_chain_wide_marker_never_a_copy_of_one_instruments_book():
    records = np.concatenate([book(5), book(8)])
    records["instrument_id"] = 100007
    out = compose(records, ((6, 8),), "book", None, now_ns=1, chain=True)
    gap = out[out["seq"] == 7][0]
    assert int(gap["flags"]) == MARKER | GAP and gap["instrument_id"] == 0 and gap["bid_count"] == 0
