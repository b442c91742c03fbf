"""Feed lifecycle: owned or attached rings, the last word on stop, and metrics."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest
from deribit.simfeed import BTC, Tape, control, feed_config, simulator, until

from feeder.client import ClientConfig
from feeder.errors import ConfigError, RingNotFound
from feeder.ring import GAP, MARKER, SNAPSHOT, RingReader, RingWriter, create_ring
from feeder.runtime.feed import Feed, FeedConfig


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 150))


def test_a_feed_attaches_to_rings_a_supervisor_owns_and_leaves_them_on_stop():
    async def main(sim):
        owners = [create_ring("book.BTC", "book", 1024), create_ring("trades.BTC", "trade", 1024)]
        try:
            config = dataclasses.replace(feed_config(sim, ("book.BTC", "trades.BTC")), attach_rings=True)
            async with Feed(config) as feed:
                tape = Tape("book.BTC")
                await until(lambda: tape.flags() == [SNAPSHOT], what="the snapshot")
                assert feed.metrics()["rings"]["book.BTC"]["epoch"] == 1
            assert tape.flags() == [SNAPSHOT, GAP]  # the feed's last word: the book is stale now
            tape.close()
            with RingReader("book.BTC") as reader:  # still there for the next writer
                assert reader.writer_pid == 0
        finally:
            for owner in owners:
                owner.close()

    with simulator() as sim:
        run(main(sim))


def test_taking_over_from_a_writer_that_died_marks_its_rings_gap_and_continues_trade_seq():
    async def main(sim):
        owners = [create_ring("book.BTC", "book", 1024), create_ring("trades.BTC", "trade", 1024)]
        try:
            await control(sim, "publish", 300, BTC)  # trades printed while nobody listens
            with RingWriter.attach("book.BTC", "book") as dead:  # a worker that died mid-stream
                book = np.zeros(1, dead.dtype)
                book["change_id"], book["bid_count"], book["bid_px"][0, 0] = 42, 1, 100.0
                dead.publish(book)
            with RingWriter.attach("trades.BTC", "trade") as dead:
                trade = np.zeros(1, dead.dtype)
                trade["trade_seq"] = 1
                dead.publish(trade)
            books, trades = Tape("book.BTC"), Tape("trades.BTC")
            config = dataclasses.replace(feed_config(sim, ("book.BTC", "trades.BTC")), attach_rings=True)
            async with Feed(config) as feed:
                await until(lambda: len(books.records) == 3, what="the takeover GAP and the snapshot")
                assert books.flags() == [0, GAP, SNAPSHOT]
                assert (books.records[1]["change_id"], books.records[1]["bid_px"][0]) == (42, 100.0)
                await control(sim, "publish", 300, BTC)
                await until(lambda: len(trades.records) > 2, what="trades after the takeover")
                marker, first = trades.records[1], trades.records[2]
                assert marker["flags"] == MARKER | GAP and marker["trade_seq"] == marker["amount"] == 0
                assert first["flags"] == GAP and first["trade_seq"] > 2  # continuity past the marker
                assert feed.adapter.stats.trades_missed == first["trade_seq"] - 2
            books.close()
            trades.close()
        finally:
            for owner in owners:
                owner.close()

    with simulator() as sim:
        run(main(sim))


def test_attaching_to_a_ring_nobody_created_fails_without_connecting():
    async def main(sim):
        config = dataclasses.replace(feed_config(sim, ("book.BTC",)), attach_rings=True)
        with pytest.raises(RingNotFound):
            await Feed(config).start()
        assert sim.connections() == []

    with simulator() as sim:
        run(main(sim))


def test_metrics_show_each_book_state_and_ring_sequence():
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC", "ticker.BTC"))) as feed:
            tape = Tape("book.BTC")
            last = (await control(sim, "publish", 10, BTC))["last"][BTC]
            await until(lambda: tape.reached(last), what="the book to catch up")
            metrics = feed.metrics()
            book = metrics["adapter"]["books"]["book.BTC-PERPETUAL.raw"]
            assert (book["state"], book["change_id"], book["ring"]) == ("live", last, "book.BTC")
            assert metrics["rings"]["book.BTC"]["write_seq"] == len(tape.records)
            assert metrics["session"]["authenticated"] and metrics["client"]["state"] == "connected"
            assert metrics["refused_channels"] == {} and metrics["publish_errors"] == 0
            tape.close()

    with simulator() as sim:
        run(main(sim))


@pytest.mark.parametrize(("field", "value"), [("rings", ()), ("rings", "book.BTC"), ("resync_retry_s", 0)])
def test_bad_feed_config_names_the_field(field, value):
    fields = {"client": ClientConfig(url="ws://127.0.0.1:9/ws/api/v2"), "rings": ("book.BTC",), field: value}
    with pytest.raises(ConfigError) as caught:
        FeedConfig(**fields)
    assert caught.value.field == field
