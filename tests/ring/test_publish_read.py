"""Publishing and reading through real shared memory: order, batches, start positions, latest, wait."""

from __future__ import annotations

import os
import stat
import struct
import time

import numpy as np
import pytest
from ring.ringkit import selfcheck_records, torn_count

from feeder.errors import UsageError
from feeder.ring import RingReader, RingWriter, create_ring
from feeder.ring.header import CLAIM_SEQ


@pytest.fixture
def writer():
    with RingWriter.create("book.BTC", "book", 16) as w:
        yield w


@pytest.fixture
def reader(writer):
    with RingReader("book.BTC", start="oldest") as r:
        yield r


def publish_each(writer: RingWriter, records: np.ndarray) -> None:
    for i in range(len(records)):
        writer.publish(records[i : i + 1])


def test_records_come_back_in_order_with_the_fields_published(writer, reader):
    publish_each(writer, selfcheck_records(0, 5))
    got = reader.read()
    assert got["seq"].tolist() == [0, 1, 2, 3, 4]
    assert torn_count(got) == 0


def test_the_writer_assigns_seq_and_ts_publish_itself(writer, reader):
    record = selfcheck_records(0, 1)
    record["seq"], record["ts_publish"] = 999, -1
    before = time.time_ns()
    assert writer.publish(record) == 0
    got = reader.read()
    assert got["seq"][0] == 0
    assert before <= got["ts_publish"][0] <= time.time_ns()


def test_a_record_kept_and_changed_in_place_is_published_as_it_is_each_time(writer, reader):
    """The writer keeps the last record it took (and a byte view of it): what it copies is always the
    record's current bytes, also when two records alternate (the books of a chain ring)."""
    one, other = np.zeros(1, writer.dtype), np.zeros(1, writer.dtype)
    for step in range(6):
        one["change_id"] = step
        writer.publish(one)
        writer.publish(one if step % 2 else other)
        other["change_id"] = 100 + step
    got = reader.read()
    assert got["change_id"].tolist() == [0, 0, 1, 1, 2, 101, 3, 3, 4, 103, 5, 5]


def test_publish_takes_a_structured_scalar_too(writer, reader):
    writer.publish(selfcheck_records(0, 1)[0])
    assert torn_count(reader.read()) == 0


def test_a_batch_is_published_at_once_and_returns_its_first_seq(writer, reader):
    writer.publish(selfcheck_records(0, 1))
    assert writer.publish_batch(selfcheck_records(1, 10)) == 1
    assert writer.write_seq == 11
    got = reader.read()
    assert got["seq"].tolist() == list(range(11))
    assert torn_count(got) == 0
    assert len(set(got["ts_publish"][1:].tolist())) == 1  # one publish for the whole batch


def test_a_batch_that_wraps_around_the_end_of_the_ring_is_intact(writer, reader):
    writer.publish_batch(selfcheck_records(0, 12))
    reader.read()
    writer.publish_batch(selfcheck_records(12, 10))  # slots 12..15 then 0..5
    got = reader.read()
    assert got["seq"].tolist() == list(range(12, 22))
    assert torn_count(got) == 0


def test_an_empty_batch_publishes_nothing(writer, reader):
    assert writer.publish_batch(selfcheck_records(0, 0)) == 0
    assert writer.write_seq == 0 and len(reader.read()) == 0


FOREIGN = np.dtype([("seq", "<u8"), ("x", "<f8", (47,))])  # the same size as a book record


@pytest.mark.parametrize(
    "make_bad",
    [lambda dt: np.zeros(2, dt), lambda dt: {"seq": 1}, lambda dt: np.zeros(1, FOREIGN)],
    ids=["two-records", "dict", "foreign-dtype"],
)
def test_publish_refuses_anything_but_one_record_of_the_ring_dtype(writer, reader, make_bad):
    with pytest.raises(UsageError, match=r"ring 'book\.BTC' takes one record"):
        writer.publish(make_bad(writer.dtype))
    assert writer.write_seq == 0 and reader.lost == 0


def test_publish_batch_refuses_a_batch_larger_than_the_ring(writer):
    with pytest.raises(UsageError, match="does not fit its capacity 16"):
        writer.publish_batch(np.zeros(17, writer.dtype))
    assert writer.write_seq == 0


def test_publish_batch_refuses_a_foreign_dtype(writer):
    with pytest.raises(UsageError, match="takes a 1-D array"):
        writer.publish_batch(np.zeros(3, [("seq", "<u8")]))


def test_read_returns_read_only_copies_that_later_writes_do_not_change(writer, reader):
    writer.publish_batch(selfcheck_records(0, 4))
    got = reader.read()
    assert not got.flags.writeable
    writer.publish_batch(selfcheck_records(4, 16))  # overwrites every slot
    assert got["seq"].tolist() == [0, 1, 2, 3] and torn_count(got) == 0


def test_read_returns_an_empty_array_of_the_ring_dtype_when_nothing_is_new(reader):
    got = reader.read()
    assert len(got) == 0 and got.dtype == reader.dtype


def test_max_records_limits_a_read_and_the_rest_follows(writer, reader):
    writer.publish_batch(selfcheck_records(0, 10))
    assert reader.read(max_records=4)["seq"].tolist() == [0, 1, 2, 3]
    assert reader.read()["seq"].tolist() == list(range(4, 10))


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_max_records_must_be_a_positive_integer(writer, reader, bad):
    writer.publish_batch(selfcheck_records(0, 3))
    with pytest.raises(UsageError, match="max_records"):
        reader.read(max_records=bad)


def test_start_newest_reads_only_what_is_published_after_attaching(writer):
    writer.publish_batch(selfcheck_records(0, 5))
    with RingReader("book.BTC", start="newest") as r:
        assert r.start_seq == 5 and len(r.read()) == 0
        writer.publish(selfcheck_records(5, 1))
        assert r.read()["seq"].tolist() == [5]


def test_start_oldest_reads_every_record_still_retained(writer):
    writer.publish_batch(selfcheck_records(0, 16))
    writer.publish_batch(selfcheck_records(16, 4))
    with RingReader("book.BTC", start="oldest") as r:
        assert r.start_seq == 4
        assert r.read()["seq"].tolist() == list(range(4, 20))
        assert r.lost == 0


def test_a_lapped_reader_counts_exactly_the_records_it_lost(writer, reader):
    writer.publish_batch(selfcheck_records(0, 3))
    assert len(reader.read()) == 3
    for first in range(3, 43, 10):
        writer.publish_batch(selfcheck_records(first, 10))
    got = reader.read()
    assert got["seq"].tolist() == list(range(27, 43))
    assert reader.lost == 24
    assert reader.records_read + reader.lost == writer.write_seq - reader.start_seq


def test_latest_is_none_on_an_empty_ring(reader):
    assert reader.latest() is None


def test_latest_is_the_newest_record_and_does_not_move_the_read_position(writer, reader):
    writer.publish_batch(selfcheck_records(0, 7))
    newest = reader.latest()
    assert newest["seq"] == 6 and torn_count(newest.reshape(1)) == 0
    assert reader.read()["seq"].tolist() == list(range(7))


@pytest.mark.parametrize("strategy", ["spin", "spin_sleep"])
def test_wait_times_out_with_false_when_nothing_is_published(writer, strategy):
    with RingReader("book.BTC", wait=strategy) as r:
        assert r.wait(timeout=0.05) is False


@pytest.mark.parametrize("strategy", ["spin", "spin_sleep"])
def test_wait_returns_true_when_another_process_publishes(procs, strategy):
    with create_ring("book.ETH", "book", 16), RingReader("book.ETH", wait=strategy) as r:
        procs(
            "import numpy as np\n"
            "from feeder.ring import RingWriter\n"
            "with RingWriter.attach('book.ETH', 'book') as w:\n"
            "    w.publish(np.zeros(1, w.dtype))\n"
        )
        assert r.wait(timeout=30) is True
        assert r.read()["seq"].tolist() == [0]


def test_wait_returns_false_once_the_ring_is_closed(writer):
    with RingReader("book.BTC") as r:
        writer.close()
        assert r.ring_closed
        assert r.wait(timeout=None) is False


def test_iteration_yields_every_record_and_ends_when_the_ring_is_closed_and_drained(writer):
    with RingReader("book.BTC") as r:
        writer.publish_batch(selfcheck_records(0, 5))
        writer.close()
        assert [int(rec["seq"]) for rec in r] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("arg", "value"), [("start", "middle"), ("wait", "nap")])
def test_reader_options_are_checked(writer, arg, value):
    with pytest.raises(UsageError, match=f"{arg}='{value}' is not allowed"):
        RingReader("book.BTC", **{arg: value})


def test_the_reader_describes_the_ring(writer, reader):
    assert (reader.record_type, reader.capacity, reader.dtype) == ("book", 16, writer.dtype)
    assert reader.writer_pid == os.getpid()
    assert reader.epoch == writer.epoch == 1


def test_segments_are_private_to_the_user(writer):
    mode = stat.S_IMODE(os.stat(f"/dev/shm/feeder.{writer.instance}.book.BTC").st_mode)
    assert mode == 0o600


def test_the_segment_never_grows(writer):
    path = f"/dev/shm/feeder.{writer.instance}.book.BTC"
    size = os.stat(path).st_size
    for first in range(0, 200, 16):
        writer.publish_batch(selfcheck_records(first, 16))
    assert os.stat(path).st_size == size == 8192 + 16 * writer.dtype.itemsize


def test_a_closed_writer_refuses_to_publish():
    writer = RingWriter.create("book.BTC", "book", 16)
    writer.close()
    with pytest.raises(UsageError, match="used after close"):
        writer.publish(np.zeros(1, writer.dtype))
    with pytest.raises(UsageError, match="used after close"):
        writer.publish_batch(np.zeros(2, writer.dtype))


def test_a_closed_reader_refuses_to_read(writer):
    reader = RingReader("book.BTC")
    reader.close()
    with pytest.raises(UsageError, match="used after close"):
        reader.read()


# --- records written in place: claim, then commit --------------------------------------------------


def test_a_record_written_in_place_is_published_by_commit_with_its_seq_and_ts_publish(writer, reader):
    writer.publish(selfcheck_records(0, 1))
    slot = writer.claim()
    assert slot == 1
    writer.records[slot] = selfcheck_records(1, 1)[0]
    writer.records[slot]["seq"] = 999  # the writer's to set
    assert len(reader.read()) == 1  # claimed is not published
    before = time.time_ns()
    assert writer.commit() == 1
    got = reader.read()
    assert got["seq"].tolist() == [1] and torn_count(got) == 0
    assert before <= got["ts_publish"][0] <= time.time_ns()


def test_struct_pack_into_can_write_a_claimed_slot_through_records(writer, reader):
    bid_px = writer.dtype.fields["bid_px"][1]
    slot = writer.claim()
    struct.pack_into("<2d", writer.records, slot * writer.dtype.itemsize + bid_px, 50_000.5, 50_000.0)
    writer.commit()
    assert reader.read()["bid_px"][0][:2].tolist() == [50_000.5, 50_000.0]


def test_a_claimed_batch_that_wraps_around_the_end_of_the_ring_is_intact(writer, reader):
    writer.publish_batch(selfcheck_records(0, 12))
    reader.read()
    first = writer.claim(10)  # slots 12..15 then 0..5
    writer.records[(first + np.arange(10)) % writer.capacity] = selfcheck_records(12, 10)
    assert writer.commit() == 12
    got = reader.read()
    assert got["seq"].tolist() == list(range(12, 22)) and torn_count(got) == 0
    assert len(set(got["ts_publish"].tolist())) == 1


def test_commit_without_a_claim_is_refused(writer):
    with pytest.raises(UsageError, match=r"commit\(\) without a claim\(\)"):
        writer.commit()
    writer.claim()
    writer.commit()
    with pytest.raises(UsageError, match=r"commit\(\) without a claim\(\)"):
        writer.commit()
    assert writer.write_seq == 1


def test_a_publish_between_claim_and_commit_voids_the_claim(writer, reader):
    writer.claim()
    writer.publish(selfcheck_records(0, 1))
    with pytest.raises(UsageError, match="with a publish in between"):
        writer.commit()
    got = reader.read()
    assert got["seq"].tolist() == [0] and torn_count(got) == 0


@pytest.mark.parametrize("bad", [0, -1, 17, 2.0, "1"])
def test_claim_takes_1_to_capacity_slots(writer, bad):
    with pytest.raises(UsageError, match=r"claim\(.*\) is not allowed: claim from 1 to 16 slots"):
        writer.claim(bad)


def test_a_refused_record_claims_nothing(writer):
    with pytest.raises(UsageError):
        writer.publish(np.zeros(2, writer.dtype))
    with RingReader("book.BTC") as r:
        assert r._hq[CLAIM_SEQ] == r.write_seq == 0


def test_a_closed_writer_refuses_to_claim_or_commit():
    writer = RingWriter.create("book.BTC", "book", 16)
    writer.claim()
    writer.close()
    with pytest.raises(UsageError, match="used after close"):
        writer.claim()
    with pytest.raises(UsageError, match="used after close"):
        writer.commit()


def test_a_strided_batch_is_published_like_a_contiguous_one(writer, reader):
    every_other = selfcheck_records(0, 8)[::2]
    every_other["seq"] = 0  # the writer's to set
    writer.publish_batch(every_other)
    got = reader.read()
    assert got["seq"].tolist() == [0, 1, 2, 3]
    assert got["change_id"].tolist() == selfcheck_records(0, 8)["change_id"][::2].tolist()


def test_closing_a_writer_whose_slots_are_still_viewed_says_so_and_detaches_all_the_same(instance):
    writer = RingWriter.create("book.BTC", "book", 16)
    kept = writer.records[3:5]
    with pytest.raises(UsageError, match=r"views of its slots \(writer.records"):
        writer.close()
    assert writer.closed and not os.path.exists(f"/dev/shm/feeder.{instance}.book.BTC")
    del kept
