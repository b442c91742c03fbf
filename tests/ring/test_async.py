"""Coroutine reads (`async for`, `await next()`, `await next_batch()`), under asyncio and uvloop: they
wait in the kernel through a thread of the reader's own, never block the loop, and stop with the reader."""

from __future__ import annotations

import asyncio
import os
import threading

import numpy as np
import pytest
import uvloop
from helpers import DEADLINE, wait_until
from ring.ringkit import futex_waiting_threads, read_line, selfcheck_records, torn_count

from feeder.ring import RingReader, RingWriter, create_ring

LOOPS = {"asyncio": asyncio.run, "uvloop": uvloop.run}


@pytest.fixture(params=list(LOOPS))
def run(request):
    return LOOPS[request.param]


def waiting_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("feeder-wait")]


def asleep_in_the_ring() -> bool:
    """This process has one thread asleep on a ring's futex (the reader's waiting thread)."""
    return futex_waiting_threads(os.getpid()) == 1


def test_async_for_gets_every_record_another_process_publishes_and_ends_when_the_ring_closes(procs, run):
    owner = create_ring("book.BTC", "book", 64)
    writer = procs(
        "import sys\n"
        "from feeder.ring import RingWriter\n"
        "from ring.ringkit import selfcheck_records\n"
        "with RingWriter.attach('book.BTC', 'book') as w:\n"
        "    print('attached', flush=True)\n"
        "    for line in sys.stdin:\n"
        "        n = int(line)\n"
        "        w.publish(selfcheck_records(w.write_seq, 1)) if n == 1 else "
        "w.publish_batch(selfcheck_records(w.write_seq, n))\n"
    )
    assert read_line(writer) == "attached"

    async def main() -> list:
        got = []
        async with RingReader("book.BTC", start="oldest") as reader:
            for n in (1, 3, 1, 5):
                writer.stdin.write(f"{n}\n".encode())
            async for record in reader:
                got.append(record)
                if len(got) == 10:
                    owner.close()  # what is left is drained, then the iteration ends
        return got

    try:
        got = run(main())
    finally:
        owner.close()
    assert [int(r["seq"]) for r in got] == list(range(10))
    assert torn_count(np.array(got, dtype=got[0].dtype)) == 0
    assert waiting_threads() == []


def test_next_returns_none_on_timeout_while_the_loop_keeps_running(run):
    async def main() -> tuple:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        with RingReader("book.BTC") as reader:
            got = await reader.next(timeout=0.2)
            empty = await reader.next_batch(timeout=0.05)
        task.cancel()
        return got, len(empty), ticks

    with RingWriter.create("book.BTC", "book", 64):
        got, empty, ticks = run(main())
    assert got is None and empty == 0
    assert ticks > 1  # the loop ran other tasks while next() waited


def test_next_and_next_batch_return_what_is_published_while_they_wait(run):
    async def main(writer: RingWriter) -> tuple:
        loop = asyncio.get_running_loop()
        with RingReader("book.BTC") as reader:
            loop.call_later(0.05, writer.publish, selfcheck_records(0, 1))
            first = await reader.next(timeout=DEADLINE)
            loop.call_later(0.05, writer.publish_batch, selfcheck_records(1, 5))
            batch = await reader.next_batch(max_records=3, timeout=DEADLINE)
            rest = await reader.next_batch(timeout=DEADLINE)
        return first, batch, rest

    with RingWriter.create("book.BTC", "book", 64) as w:
        first, batch, rest = run(main(w))
    assert int(first["seq"]) == 0
    assert batch["seq"].tolist() == [1, 2, 3] and rest["seq"].tolist() == [4, 5]
    assert torn_count(batch) == torn_count(rest) == 0


def test_the_waiting_thread_sleeps_in_the_kernel_while_the_loop_idles(run):
    async def main(writer: RingWriter) -> tuple:
        with RingReader("book.BTC") as reader:
            pending = asyncio.create_task(reader.next(timeout=DEADLINE))
            await asyncio.sleep(0)
            await asyncio.to_thread(wait_until, asleep_in_the_ring, what="the waiting thread to sleep")
            threads = len(waiting_threads())
            writer.publish(selfcheck_records(0, 1))
            record = await pending
        return threads, int(record["seq"])

    with RingWriter.create("book.BTC", "book", 64) as w:
        assert run(main(w)) == (1, 0)
    assert waiting_threads() == []


def test_closing_the_reader_ends_a_pending_next_and_stops_its_thread(run):
    async def main() -> tuple:
        reader = RingReader("book.BTC")
        pending = asyncio.create_task(reader.next())
        await asyncio.to_thread(wait_until, asleep_in_the_ring, what="the waiting thread to sleep")
        reader.close()
        got = await asyncio.wait_for(pending, DEADLINE)
        after = await reader.next(timeout=0)
        return got, after, [record async for record in reader]

    with RingWriter.create("book.BTC", "book", 64):
        assert run(main()) == (None, None, [])
    assert waiting_threads() == []


def test_a_cancelled_wait_leaves_the_reader_usable(run):
    async def main(writer: RingWriter) -> int:
        with RingReader("book.BTC") as reader:
            pending = asyncio.create_task(reader.next())
            await asyncio.to_thread(wait_until, asleep_in_the_ring, what="the waiting thread to sleep")
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            asyncio.get_running_loop().call_later(0.01, writer.publish, selfcheck_records(0, 1))
            record = await reader.next(timeout=DEADLINE)
        return int(record["seq"])

    with RingWriter.create("book.BTC", "book", 64) as w:
        assert run(main(w)) == 0


def test_a_reader_of_a_closed_ring_drains_it_then_iteration_ends(run):
    async def main(reader: RingReader) -> list:
        return [int(record["seq"]) async for record in reader]

    with reader_of_a_closed_ring() as reader:
        assert run(main(reader)) == [0, 1, 2, 3]


def reader_of_a_closed_ring() -> RingReader:
    with RingWriter.create("book.BTC", "book", 64) as w:
        reader = RingReader("book.BTC")
        w.publish_batch(selfcheck_records(0, 4))
    return reader
