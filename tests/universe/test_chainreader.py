"""ChainReader: the latest record per instrument of a chain ring, with per-instrument flags."""

from __future__ import annotations

import numpy as np
import pytest
from universe.universekit import CALL, PUT

from feeder import FINAL, GAP, MARKER, SNAPSHOT, ChainReader, RingWriter, UsageError, record_schema
from feeder.ring.marking import mark_gap, needs_mark
from feeder.universe.inventory import InventoryWriter, entry_for


def book(iid: int, change_id: int, bid: float, flags: int = 0) -> np.ndarray:
    rec = np.zeros(1, record_schema("book").dtype)
    rec["instrument_id"], rec["change_id"], rec["flags"] = iid, change_id, flags
    rec["bid_px"][0, 0], rec["ask_px"][0, 0], rec["bid_count"], rec["ask_count"] = bid, bid + 1, 1, 1
    return rec


@pytest.fixture
def chain():
    inventory = InventoryWriter(capacity=16)
    inventory.add([entry_for(CALL, "BTC-options", 1, 0), entry_for(PUT, "BTC-options", 1, 0)])
    writer = RingWriter.create("book.BTC-options", "book", 64)
    reader = ChainReader("book.BTC-options")
    yield writer, reader
    reader.close()
    writer.close()
    inventory.close()


def test_the_latest_record_of_each_instrument_by_name_and_as_an_array(chain):
    writer, reader = chain
    for rec in (
        book(301, 1, 10.0, SNAPSHOT),
        book(302, 1, 20.0, SNAPSHOT),
        book(301, 2, 11.0),
        book(301, 3, 12.0),
    ):
        writer.publish(rec)
    assert len(reader.poll()) == 4 and len(reader) == 2
    assert reader.book(CALL.name).best_bid == 12.0 and reader.book(PUT.name).best_bid == 20.0
    assert reader.book(PUT.name).instrument == PUT.name and reader.book(302).best_bid == 20.0
    books = reader.books()
    assert dict(zip(reader.ids, books["change_id"], strict=True)) == {301: 3, 302: 1}
    assert reader.book("BTC-25DEC26-90000-C") is None


def test_a_gap_on_one_instrument_flags_only_its_row(chain):
    writer, reader = chain
    writer.publish_batch(np.concatenate([book(301, 1, 10.0, SNAPSHOT), book(302, 1, 20.0, SNAPSHOT)]))
    writer.publish(book(302, 1, 20.0, GAP))
    reader.poll()
    assert reader.book(PUT.name).is_gap and reader.book(CALL.name).valid


def test_a_chain_wide_marker_flags_every_row_until_each_next_record(chain):
    writer, reader = chain
    writer.publish_batch(np.concatenate([book(301, 1, 10.0, SNAPSHOT), book(302, 1, 20.0, SNAPSHOT)]))
    marker = np.zeros(1, writer.dtype)
    marker["flags"] = MARKER | GAP
    writer.publish(marker)
    writer.publish(book(301, 5, 13.0, SNAPSHOT))
    reader.poll()
    assert reader.book(CALL.name).valid and reader.book(CALL.name).best_bid == 13.0
    assert reader.book(PUT.name).is_gap and reader.book(PUT.name).best_bid == 20.0


def test_a_final_record_ends_the_instrument(chain):
    writer, reader = chain
    writer.publish_batch(np.concatenate([book(301, 1, 10.0, SNAPSHOT), book(302, 1, 20.0, SNAPSHOT)]))
    reader.poll()
    writer.publish(book(301, 1, 10.0, GAP | FINAL))
    reader.poll()
    assert reader.book(CALL.name) is None and len(reader) == 1 and reader.ended == 1
    assert list(reader.ids) == [302]


def test_a_lapped_reader_flags_every_row_it_may_have_missed(chain):
    writer, reader = chain
    writer.publish_batch(np.concatenate([book(301, 1, 10.0, SNAPSHOT), book(302, 1, 20.0, SNAPSHOT)]))
    reader.poll()
    for n in range(100):
        writer.publish(book(301, 2 + n, 11.0))
    reader.poll()
    assert reader.reader.lost > 0
    assert reader.book(PUT.name).is_gap and reader.book(CALL.name).valid  # its newest record came after


def test_a_chain_reader_refuses_a_per_instrument_ring():
    with RingWriter.create("book.BTC", "book", 16), pytest.raises(UsageError, match="RingReader"):
        ChainReader("book.BTC")


def test_a_dead_writers_chain_ring_is_marked_once_for_every_instrument(chain):
    writer, reader = chain
    writer.publish_batch(np.concatenate([book(301, 1, 10.0, SNAPSHOT), book(302, 1, 20.0, SNAPSHOT)]))
    assert needs_mark("book.BTC-options", "book") and mark_gap(writer)
    assert not needs_mark("book.BTC-options", "book") and not mark_gap(writer)
    records = reader.poll()
    assert (records[-1]["flags"], records[-1]["instrument_id"]) == (MARKER | GAP, 0)
    assert reader.book(CALL.name).is_gap and reader.book(PUT.name).is_gap
