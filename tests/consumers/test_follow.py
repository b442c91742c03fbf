"""RingFollower: every seq from the attach on is returned or reported lost; it survives a ring being replaced.

Real rings in shared memory, written by a RingWriter in this process (the follower only reads).
"""

from __future__ import annotations

import numpy as np
from helpers import wait_until

from feeder import RingReader, RingWriter, create_ring, record_schema
from feeder.consumers.follow import Attached, Closed, Lost, NewWriter, RingFollower, missing

BOOK = record_schema("book").dtype


def records(n: int) -> np.ndarray:
    return np.zeros(n, BOOK)


def test_missing_finds_the_ranges_a_read_did_not_return():
    seqs = np.array([3, 4, 7, 9], np.uint64)
    assert missing(0, 12, seqs) == [Lost(0, 3), Lost(5, 2), Lost(8, 1), Lost(10, 2)]


def test_missing_is_empty_when_every_seq_came_back():
    assert missing(5, 8, np.array([5, 6, 7], np.uint64)) == []


def test_missing_reports_the_whole_range_when_nothing_came_back():
    assert missing(5, 9, np.array([], np.uint64)) == [Lost(5, 4)]


def test_first_event_is_the_attach_at_the_start_seq():
    with RingWriter.create("book.FOLLOW", "book", 64) as writer:
        writer.publish_batch(records(5))
        follower = RingFollower(RingReader("book.FOLLOW", start="oldest"))
        assert follower.events() == [Attached(0, follower.created_ns, 1, again=False)]
        follower.close()


def test_a_lapped_follower_reports_exactly_the_seqs_it_lost():
    with RingWriter.create("book.FOLLOW", "book", 64) as writer:
        follower = RingFollower(RingReader("book.FOLLOW"))
        follower.events()
        writer.publish_batch(records(10))
        assert len(follower.read()) == 10
        for _ in range(4):
            writer.publish_batch(records(50))  # 200 records into 64 slots: the follower is lapped
        got = follower.read()
        assert follower.events() == [Lost(10, 200 - 64)]
        assert got["seq"][0] == 146 and got["seq"][-1] == 209 and len(got) == 64
        assert follower.lost == 136 and follower.records_read == 74
        follower.close()


def test_a_new_writer_is_reported_with_its_epoch():
    with create_ring("book.FOLLOW", "book", 64):  # the owner (the supervisor)
        first = RingWriter.attach("book.FOLLOW", "book")  # a worker
        follower = RingFollower(RingReader("book.FOLLOW"))
        first.publish_batch(records(1))
        first.close()  # the worker died; the ring stays
        second = RingWriter.attach("book.FOLLOW", "book")  # its replacement
        second.publish_batch(records(1))
        got = follower.read()
        assert got["seq"].tolist() == [0, 1]
        assert follower.events()[1:] == [NewWriter(second.epoch)]
        assert second.epoch == 2
        second.close()
        follower.close()


def test_follower_reattaches_to_the_new_segment_after_the_ring_was_closed():
    writer = RingWriter.create("book.FOLLOW", "book", 64)
    follower = RingFollower(RingReader("book.FOLLOW"))
    try:
        writer.publish_batch(records(3))
        assert len(follower.read()) == 3
        first_segment = follower.created_ns
        writer.close()  # the owner closes and removes the ring: the feeder stopped
        assert len(follower.read()) == 0
        assert follower.events()[-1] == Closed()
        writer = RingWriter.create("book.FOLLOW", "book", 64)  # the feeder is back: a new segment
        writer.publish_batch(records(2))
        got: list[np.ndarray] = []
        wait_until(
            lambda: got.append(follower.read()) or sum(map(len, got)) >= 2, what="records of the new segment"
        )
        assert np.concatenate(got)["seq"].tolist() == [0, 1]
        assert follower.created_ns != first_segment
        assert Attached(0, follower.created_ns, follower.reader.epoch, again=True) in follower.events()
    finally:
        follower.close()
        writer.close()
