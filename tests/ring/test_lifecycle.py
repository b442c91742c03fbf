"""Who may remove a ring, and what happens when owners, writers and readers die."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import psutil
import pytest
from helpers import DEADLINE, wait_until
from ring.ringkit import group_gone, raw_segment, read_line, selfcheck_records, slot_offset, torn_count

from feeder.errors import RingExists
from feeder.ring import RingReader, RingWriter, clean_stale, create_ring
from feeder.ring.header import CLAIM_SEQ, WRITE_SEQ

READER_EXITS = {
    "normally": "r.close()\n",
    "by_exception": "raise RuntimeError('reader crashed')\n",
    "by_sigkill": "print('ready', flush=True)\nhold()\n",
}


def segment(instance: str, ring: str = "book.BTC") -> Path:
    return Path(f"/dev/shm/feeder.{instance}.{ring}")


def kill(proc) -> None:
    """SIGKILL one process (not its group: what it started must get the chance to act on its death)."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=DEADLINE)


def wait_group_gone(proc) -> None:
    wait_until(lambda: group_gone(proc.pid), what=f"every process started by pid {proc.pid} to exit")


@pytest.mark.parametrize("how", READER_EXITS)
def test_a_reader_never_removes_or_damages_the_ring_however_it_exits(instance, procs, how):
    with RingWriter.create("book.BTC", "book", 64) as writer:
        writer.publish_batch(selfcheck_records(0, 10))
        inode = segment(instance).stat().st_ino
        reader = procs(
            "from feeder.ring import RingReader\n"
            "from ring.ringkit import hold\n"
            "r = RingReader('book.BTC', start='oldest')\n"
            "print('read', len(r.read()), flush=True)\n" + READER_EXITS[how]
        )
        assert read_line(reader) == "read 10"
        if how == "by_sigkill":
            assert read_line(reader) == "ready"
            kill(reader)
        reader.wait(timeout=DEADLINE)
        wait_group_gone(reader)
        assert segment(instance).stat().st_ino == inode
        writer.publish_batch(selfcheck_records(10, 5))
        with RingReader("book.BTC", start="oldest") as again:
            got = again.read()
        assert got["seq"].tolist() == list(range(15)) and torn_count(got) == 0


def test_multiprocessing_shared_memory_would_remove_the_ring_when_a_reader_exits(instance, procs):
    """The hazard the test above guards against is real on this Python: the resource tracker unlinks."""
    with RingWriter.create("book.BTC", "book", 64):
        reader = procs(
            "from multiprocessing import shared_memory\n"
            f"shm = shared_memory.SharedMemory(name='feeder.{instance}.book.BTC')\n"
            "shm.close()\n"
        )
        reader.wait(timeout=DEADLINE)
        wait_group_gone(reader)
        assert not segment(instance).exists()


def test_after_the_owner_is_killed_the_next_owner_takes_the_ring_over_with_its_records(procs, caplog):
    owner = procs(
        "from feeder.ring import RingWriter\n"
        "from ring.ringkit import hold, selfcheck_records\n"
        "with RingWriter.create('book.BTC', 'book', 64) as w:\n"
        "    w.publish_batch(selfcheck_records(0, 10))\n"
        "    print('ready', flush=True)\n"
        "    hold()\n"
    )
    assert read_line(owner) == "ready"
    with RingReader("book.BTC", start="oldest") as reader:
        assert len(reader.read()) == 10
        kill(owner)
        with caplog.at_level(logging.WARNING), RingWriter.create("book.BTC", "book", 64) as writer:
            assert "took over the stale segment" in caplog.text
            assert (writer.write_seq, writer.epoch) == (10, 2)
            writer.publish_batch(selfcheck_records(10, 5))
            got = reader.read()
            assert got["seq"].tolist() == list(range(10, 15)) and torn_count(got) == 0
            assert (reader.epoch_changes, reader.lost) == (1, 0)


def test_a_stale_ring_of_another_layout_is_replaced_and_its_readers_are_told_it_closed(procs):
    owner = procs(
        "from feeder.ring import RingWriter\n"
        "from ring.ringkit import hold, selfcheck_records\n"
        "with RingWriter.create('book.BTC', 'book', 64) as w:\n"
        "    w.publish_batch(selfcheck_records(0, 10))\n"
        "    print('ready', flush=True)\n"
        "    hold()\n"
    )
    assert read_line(owner) == "ready"
    with RingReader("book.BTC", start="oldest") as old_reader:
        kill(owner)
        with RingWriter.create("book.BTC", "book", 128) as writer:
            assert old_reader.ring_closed
            assert len(list(old_reader)) == 10  # drains what it had, then the iteration ends
            with RingReader("book.BTC") as new_reader:
                assert (new_reader.capacity, writer.write_seq) == (128, 0)


def test_a_stale_ring_whose_writer_lives_is_taken_over_but_never_replaced(procs):
    owner = procs(
        "from feeder.ring import create_ring\n"
        "from ring.ringkit import hold\n"
        "with create_ring('book.BTC', 'book', 64):\n"
        "    print('ready', flush=True)\n"
        "    hold()\n"
    )
    assert read_line(owner) == "ready"
    writer = procs(
        "from feeder.ring import RingWriter\n"
        "from ring.ringkit import hold\n"
        "with RingWriter.attach('book.BTC', 'book'):\n"
        "    print('ready', flush=True)\n"
        "    hold()\n"
    )
    assert read_line(writer) == "ready"
    kill(owner)
    with pytest.raises(RingExists, match=f"its writer \\(pid {writer.pid}\\) is alive"):
        create_ring("book.BTC", "book", 128)
    with pytest.raises(RingExists, match=f"live writer \\(pid {writer.pid}\\)"):
        RingWriter.create("book.BTC", "book", 64)
    with create_ring("book.BTC", "book", 64) as new_owner:
        assert new_owner.capacity == 64
        with RingReader("book.BTC") as reader:
            assert reader.writer_pid == writer.pid


def test_when_a_writer_dies_the_next_one_continues_the_sequence_in_a_new_epoch(procs):
    with create_ring("book.BTC", "book", 64):
        first = procs(
            "from feeder.ring import RingWriter\n"
            "from ring.ringkit import hold, selfcheck_records\n"
            "w = RingWriter.attach('book.BTC', 'book')\n"
            "w.publish_batch(selfcheck_records(0, 10))\n"
            "print('ready', flush=True)\n"
            "hold()\n"
        )
        assert read_line(first) == "ready"
        reader = RingReader("book.BTC", start="oldest")
        assert (reader.writer_pid, reader.epoch) == (first.pid, 1)
        kill(first)
        with RingWriter.attach("book.BTC", "book") as second:
            assert (second.write_seq, second.epoch) == (10, 2)
            second.publish_batch(selfcheck_records(10, 5))
        got = reader.read()
        assert got["seq"].tolist() == list(range(15)) and torn_count(got) == 0
        assert (reader.epoch_changes, reader.lost, reader.writer_pid) == (1, 0, 0)
        reader.close()


def test_records_a_writer_was_writing_when_it_died_are_reported_lost_never_returned(instance, procs):
    capacity, size = 8, selfcheck_records(0, 1).itemsize
    with create_ring("book.BTC", "book", capacity):
        first = procs(
            "from feeder.ring import RingWriter\n"
            "from ring.ringkit import hold, selfcheck_records\n"
            "w = RingWriter.attach('book.BTC', 'book')\n"
            "w.publish_batch(selfcheck_records(0, 8))\n"
            "w.publish_batch(selfcheck_records(8, 2))\n"
            "print('ready', flush=True)\n"
            "hold()\n"
        )
        assert read_line(first) == "ready"
        kill(first)
        # What that writer would have left had it died inside publish_batch of seqs 10..12: claim_seq
        # stored, and the slots they share with the retained records 2..4 half overwritten.
        with raw_segment(segment(instance)) as (words, mm):
            assert words.u64[WRITE_SEQ] == 10
            words.u64[CLAIM_SEQ] = 13
            for seq in (10, 11, 12):
                at = slot_offset(seq, capacity, size)
                mm[at : at + size // 2] = b"\xff" * (size // 2)
        with RingReader("book.BTC", start="oldest") as reader:
            assert reader.start_seq == 2
            got = reader.read()
            assert got["seq"].tolist() == [5, 6, 7, 8, 9] and torn_count(got) == 0
            assert reader.lost == 3  # 2..4: overwritten
            with RingWriter.attach("book.BTC", "book") as second:
                assert second.write_seq == 13
                assert reader.latest()["seq"] == 9  # the newest intact record
                second.publish_batch(selfcheck_records(13, 3))
            got = reader.read()
            assert got["seq"].tolist() == [13, 14, 15] and torn_count(got) == 0
            assert reader.lost == 6  # and 10..12: never completed
            assert reader.records_read + reader.lost == 16 - reader.start_seq


def test_closing_an_attached_writer_detaches_it_and_keeps_the_ring(instance):
    with create_ring("book.BTC", "book", 64):
        RingWriter.attach("book.BTC", "book").close()
        assert segment(instance).exists()
        with RingReader("book.BTC") as reader:
            assert reader.writer_pid == 0
        with RingWriter.attach("book.BTC", "book") as again:
            assert again.epoch == 2


def test_a_forked_child_does_not_keep_its_dead_parents_ownership_alive(procs):
    parent = procs(
        "import os\n"
        "from feeder.ring import create_ring\n"
        "from ring.ringkit import hold\n"
        "owner = create_ring('book.BTC', 'book', 64)\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    os.write(1, b'forked\\n')\n"  # past fork(): its at-fork handlers have run
        "    hold()\n"
        "    os._exit(0)\n"
        "os.write(1, b'%d\\n' % child)\n"  # one write each: the two lines share one pipe
        "hold()\n"
    )
    lines = {read_line(parent), read_line(parent)}
    lines.remove("forked")
    child = int(lines.pop())
    kill(parent)
    assert psutil.pid_exists(child)
    with create_ring("book.BTC", "book", 64) as owner:
        assert owner.capacity == 64


def test_a_forked_child_closing_its_copy_of_the_owner_does_not_remove_the_ring(procs):
    parent = procs(
        "import os\n"
        "from feeder.ring import create_ring\n"
        "with create_ring('book.BTC', 'book', 64) as owner:\n"
        "    child = os.fork()\n"
        "    if child == 0:\n"
        "        owner.close()\n"
        "        os._exit(0)\n"
        "    os.waitpid(child, 0)\n"
        "    print(owner.path.exists(), flush=True)\n"
    )
    assert read_line(parent) == "True"


def test_clean_stale_removes_a_dead_owners_ring_and_marks_it_closed_for_its_readers(instance, procs):
    owner = procs(
        "from feeder.ring import create_ring\n"
        "from ring.ringkit import hold\n"
        "with create_ring('book.BTC', 'book', 64):\n"
        "    print('ready', flush=True)\n"
        "    hold()\n"
    )
    assert read_line(owner) == "ready"
    with create_ring("book.ETH", "book", 64), RingReader("book.BTC") as reader:
        assert clean_stale() == []  # the owner is alive
        kill(owner)
        removed = clean_stale()
        assert [info.name for info in removed] == ["book.BTC"]
        assert not segment(instance).exists() and segment(instance, "book.ETH").exists()
        assert reader.ring_closed


def test_records_a_writer_claimed_and_never_committed_before_it_died_are_lost(procs):
    with create_ring("book.BTC", "book", 8), RingReader("book.BTC") as reader:
        first = procs(
            "from feeder.ring import RingWriter\n"
            "from ring.ringkit import hold, selfcheck_records\n"
            "w = RingWriter.attach('book.BTC', 'book')\n"
            "w.publish(selfcheck_records(0, 1))\n"
            "slot = w.claim(2)\n"
            "w.records[slot] = selfcheck_records(1, 1)[0]\n"
            "print('ready', flush=True)\n"
            "hold()\n"
        )
        assert read_line(first) == "ready"
        kill(first)
        with RingWriter.attach("book.BTC", "book") as second:
            assert second.write_seq == 3
            second.publish(selfcheck_records(3, 1))
        got = reader.read()
        assert got["seq"].tolist() == [0, 3] and torn_count(got) == 0
        assert reader.lost == 2
