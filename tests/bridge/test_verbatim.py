"""RingWriter.publish_verbatim: a replica's copies land at their own seqs, byte for byte; skipped seqs are
counted lost by readers, never returned."""

from __future__ import annotations

import numpy as np
import pytest

from feeder import record_schema
from feeder.errors import UsageError
from feeder.ring import RingReader, RingWriter

BOOK = record_schema("book").dtype


def records(seqs: list[int]) -> np.ndarray:
    out = np.zeros(len(seqs), BOOK)
    out["seq"] = seqs
    out["ts_publish"] = [1_000 + s for s in seqs]  # the source's, which must survive
    out["change_id"] = [10 * s for s in seqs]
    return out


@pytest.fixture
def ring():
    with RingWriter.create("book.BTC", "book", 8) as writer, RingReader("book.BTC", start="oldest") as reader:
        yield writer, reader


def test_records_keep_their_seq_and_ts_publish_byte_for_byte(ring):
    writer, reader = ring
    sent = records([0, 1, 2])
    assert writer.publish_verbatim(sent) == 3
    assert reader.read().tobytes() == sent.tobytes()


def test_seqs_skipped_before_and_between_records_are_lost_for_readers(ring):
    writer, reader = ring
    writer.publish_verbatim(records([0]))
    writer.publish_verbatim(records([3, 5]))
    got = reader.read()
    assert got["seq"].tolist() == [0, 3, 5]
    assert reader.lost == 3 and writer.write_seq == 6


def test_a_skip_on_a_fresh_ring_never_shows_zeroed_slots_as_records(ring):
    writer, reader = ring
    writer.publish_verbatim(records([4]))
    assert reader.read()["seq"].tolist() == [4]
    assert reader.lost == 4


def test_a_skip_longer_than_the_ring_is_counted_by_the_lap_check(ring):
    writer, reader = ring
    writer.publish_verbatim(records([0]))
    assert reader.read()["seq"].tolist() == [0]
    writer.publish_verbatim(records([100, 101]))
    assert reader.read()["seq"].tolist() == [100, 101]
    assert reader.lost == 99


def test_normal_publishes_continue_after_verbatim_ones(ring):
    writer, reader = ring
    writer.publish_verbatim(records([2]))
    assert writer.publish(np.zeros(1, writer.dtype)) == 3
    assert reader.read()["seq"].tolist() == [2, 3]


@pytest.mark.parametrize("seqs", [[1, 1], [2, 1]])
def test_seqs_must_increase(ring, seqs):
    writer, _ = ring
    with pytest.raises(UsageError, match="increasing seqs"):
        writer.publish_verbatim(records(seqs))


def test_seqs_below_write_seq_are_refused(ring):
    writer, _ = ring
    writer.publish_verbatim(records([0, 1]))
    with pytest.raises(UsageError, match="from write_seq 2"):
        writer.publish_verbatim(records([1]))
