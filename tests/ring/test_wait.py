"""Readers that sleep in the kernel (wait="block"): woken by another process's publish, by the ring's
closing, by a new writer; never woken for nothing, and never left asleep by a reader that died."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from helpers import DEADLINE, wait_until
from ring.ringkit import (
    cpu_seconds,
    futex_waiting_threads,
    raw_segment,
    read_line,
    selfcheck_records,
    slot_offset,
    wait_words,
)

from feeder.ring import RingReader, RingWriter, clean_stale, create_ring, futex
from feeder.ring.header import CLAIM_SEQ, SLEEPERS, WAKEUPS, WRITE_SEQ, WRITER_FENCE

SLEEPER = """
from feeder.ring import RingReader
r = RingReader('book.BTC', wait='block')
print('attached', flush=True)
try:
    ok = r.wait()
except KeyboardInterrupt:
    print('interrupted', flush=True)
else:
    print(ok, r.read()['seq'].tolist(), r.epoch_changes, flush=True)
"""


def segment(instance: str) -> Path:
    return Path(f"/dev/shm/feeder.{instance}.book.BTC")


def sleeper(procs):
    """A child process asleep in the ring's futex, waiting for the next record (with no timeout, so
    that only a wake, never the clock, gets it out)."""
    child = procs(SLEEPER)
    assert read_line(child) == "attached"
    wait_until(lambda: futex_waiting_threads(child.pid) == 1, what=f"pid {child.pid} to sleep on the ring")
    return child


def raw_publish(instance: str, seq: int) -> None:
    """What a writer leaves when it dies right after storing write_seq, before it could wake anyone."""
    with raw_segment(segment(instance)) as (words, mm):
        start = slot_offset(seq, 64, selfcheck_records(0, 1).itemsize)
        words.u64[CLAIM_SEQ] = seq + 1
        mm[start : start + selfcheck_records(0, 1).itemsize] = selfcheck_records(seq, 1).tobytes()
        words.u64[WRITE_SEQ] = seq + 1


def test_a_blocked_reader_uses_no_cpu_asleep_and_wakes_when_another_process_publishes(procs):
    with create_ring("book.BTC", "book", 64):
        child = sleeper(procs)
        before = cpu_seconds(child.pid)
        time.sleep(0.3)  # a window to measure over, not a synchronisation
        assert futex_waiting_threads(child.pid) == 1
        assert cpu_seconds(child.pid) - before < 0.05  # a spinning reader would use the whole window
        procs(
            "from feeder.ring import RingWriter\n"
            "from ring.ringkit import selfcheck_records\n"
            "with RingWriter.attach('book.BTC', 'book') as w:\n"
            "    w.publish(selfcheck_records(0, 1))\n"
        )
        assert read_line(child) == "True [0] 1"  # and it saw that writer attach (a new epoch)


def test_a_blocked_wait_times_out_with_false():
    with RingWriter.create("book.BTC", "book", 64), RingReader("book.BTC", wait="block") as r:
        assert r.wait(timeout=0.05) is False
        assert r.wait(timeout=0) is False


def test_a_blocked_wait_returns_at_once_when_records_are_waiting():
    with RingWriter.create("book.BTC", "book", 64) as w, RingReader("book.BTC", wait="block") as r:
        w.publish(selfcheck_records(0, 1))
        assert r.wait(timeout=None) is True
        assert r.read()["seq"].tolist() == [0]


def test_closing_the_ring_wakes_a_blocked_reader_with_false(procs):
    owner = create_ring("book.BTC", "book", 64)
    try:
        child = sleeper(procs)
    finally:
        owner.close()
    assert read_line(child) == "False [] 0"


def test_a_new_writer_wakes_the_readers_its_dead_predecessor_left_asleep(instance, procs):
    with create_ring("book.BTC", "book", 64):
        first = procs(
            "from feeder.ring import RingWriter\n"
            "from ring.ringkit import hold, selfcheck_records\n"
            "with RingWriter.attach('book.BTC', 'book') as w:\n"
            "    w.publish(selfcheck_records(0, 1))\n"
            "    print('published', flush=True)\n"
            "    hold()\n"
        )
        assert read_line(first) == "published"
        child = sleeper(procs)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=DEADLINE)
        raw_publish(instance, 1)  # it died between its write_seq store and its wake
        assert futex_waiting_threads(child.pid) == 1
        with RingWriter.attach("book.BTC", "book") as second:
            assert read_line(child) == "True [1] 1"
            assert second.epoch == 2


def test_a_reader_killed_asleep_costs_the_writer_one_wake_and_later_sleepers_still_wake(instance, procs):
    with RingWriter.create("book.BTC", "book", 64) as w, wait_words(segment(instance)) as words:
        doomed = sleeper(procs)
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=DEADLINE)
        assert words[SLEEPERS] == 1  # nothing can take it back for the dead
        wakeups = words[WAKEUPS]
        w.publish(selfcheck_records(0, 1))
        assert (words[SLEEPERS], words[WAKEUPS]) == (0, wakeups + 1)  # one needless wake, then clear
        w.publish(selfcheck_records(1, 1))
        assert words[WAKEUPS] == wakeups + 1  # nobody sleeps: no wake
        child = sleeper(procs)
        w.publish(selfcheck_records(2, 1))
        assert read_line(child) == "True [2] 0"


def test_one_publish_wakes_every_sleeping_reader(procs):
    with RingWriter.create("book.BTC", "book", 64) as w:
        children = [sleeper(procs) for _ in range(3)]
        w.publish(selfcheck_records(0, 1))
        assert [read_line(child) for child in children] == ["True [0] 0"] * 3


def test_without_the_writers_fence_sleeps_are_bounded_so_even_an_unannounced_publish_is_seen(instance, procs):
    with create_ring("book.BTC", "book", 64):
        with raw_segment(segment(instance)) as (words, _):
            words.u32[WRITER_FENCE] = 0  # a writer that could not register for membarrier
        child = sleeper(procs)
        raw_publish(instance, 0)  # and a publish nobody is woken for
        assert read_line(child) == "True [0] 0"


def test_sigint_interrupts_a_blocked_wait(procs):
    with RingWriter.create("book.BTC", "book", 64):
        child = sleeper(procs)
        os.kill(child.pid, signal.SIGINT)
        assert read_line(child) == "interrupted"


def test_a_publish_wakes_only_when_a_reader_said_it_sleeps(instance):
    with RingWriter.create("book.BTC", "book", 64) as w, wait_words(segment(instance)) as words:
        wakeups = words[WAKEUPS]
        w.publish(selfcheck_records(0, 1))
        w.publish_batch(selfcheck_records(1, 3))
        assert words[WAKEUPS] == wakeups
        for publish in (
            lambda: w.publish(selfcheck_records(4, 1)),
            lambda: w.publish_batch(selfcheck_records(5, 2)),
        ):
            words[SLEEPERS] = 1  # what a reader stores before it sleeps
            publish()
            assert words[SLEEPERS] == 0 and words[WAKEUPS] == wakeups + 1
            wakeups += 1


def test_the_writer_says_in_the_header_how_it_orders_its_wake_check(instance):
    expected = 2 if futex.register_writer() else 0
    with RingWriter.create("book.BTC", "book", 64), raw_segment(segment(instance)) as (words, _):
        assert words.u32[WRITER_FENCE] == expected


@pytest.mark.parametrize("how", ["replaced", "cleaned"])
def test_a_stale_ring_replaced_or_cleaned_away_wakes_its_sleepers_with_false(procs, how):
    owner = procs(
        "from feeder.ring import create_ring\n"
        "from ring.ringkit import hold\n"
        "with create_ring('book.BTC', 'book', 64):\n"
        "    print('ready', flush=True)\n"
        "    hold()\n"
    )
    assert read_line(owner) == "ready"
    child = sleeper(procs)
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait(timeout=DEADLINE)
    if how == "replaced":
        with create_ring("book.BTC", "book", 128):  # another capacity: a new segment
            assert read_line(child) == "False [] 0"
    else:
        assert [info.name for info in clean_stale()] == ["book.BTC"]
        assert read_line(child) == "False [] 0"


@pytest.mark.parametrize("count", [1, 3])
def test_a_verbatim_publish_wakes_sleeping_readers_too(procs, count):
    """A replica writes another ring's records at their own seqs; its readers must wake like any others."""
    with RingWriter.create("book.BTC", "book", 64) as w:
        child = sleeper(procs)
        w.publish_verbatim(selfcheck_records(0, count))
        assert read_line(child) == f"True {list(range(count))} 0"
