"""Trades and tickers through the whole feed against the simulator."""

from __future__ import annotations

import asyncio

from deribit.simfeed import BTC, Tape, control, feed_config, simulator, until

from feeder.ring import GAP
from feeder.runtime.feed import Feed


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 150))


def test_every_trade_arrives_once_in_trade_seq_order():
    async def main(sim):
        async with Feed(feed_config(sim, ("trades.BTC",))) as feed:
            tape = Tape("trades.BTC")
            await control(sim, "publish", 600, BTC)
            history = await feed.session.rpc(
                "public/get_last_trades_by_instrument", {"instrument_name": BTC, "count": 1000}
            )
            exchange = sorted(
                (t["trade_seq"], int(t["trade_id"].rpartition("-")[2])) for t in history["trades"]
            )
            assert exchange, "the simulator printed no trades"
            await until(lambda: len(tape.records) >= len(exchange), what=f"{len(exchange)} trade records")
            records = tape.records
            assert (
                list(zip(records["trade_seq"].tolist(), records["trade_id"].tolist(), strict=True))
                == exchange
            )
            assert not any(records["flags"] & GAP)
            assert all(records["price"] > 0) and set(records["direction"].tolist()) <= {1, -1}
            tape.close()

    with simulator() as sim:
        run(main(sim))


def test_trades_missed_during_a_stall_are_counted_and_the_next_trade_is_flagged_gap():
    async def main(sim):
        async with Feed(feed_config(sim, ("trades.BTC",))) as feed:
            tape = Tape("trades.BTC")
            await control(sim, "publish", 300, BTC)
            await until(lambda: len(tape.records) > 0, what="first trades")
            await control(sim, "fault", "stall")
            await control(sim, "publish", 300, BTC)  # these trades are never delivered
            await control(sim, "fault", "resume")
            before = feed.adapter.stats.trades
            await control(sim, "publish", 300, BTC)
            await until(lambda: feed.adapter.stats.trades > before, what="trades after the stall")
            await until(
                lambda: len(tape.records) == feed.adapter.stats.trades, what="trade records in the ring"
            )
            records = tape.records
            [gap_at] = [i for i, f in enumerate(records["flags"]) if f & GAP]
            missed = int(records["trade_seq"][gap_at]) - int(records["trade_seq"][gap_at - 1]) - 1
            assert missed > 0
            assert feed.adapter.stats.trades_missed == missed and feed.adapter.stats.trade_gaps == 1
            tape.close()

    with simulator() as sim:
        run(main(sim))


def test_ticker_records_carry_the_exchanges_best_bid_and_ask():
    async def main(sim):
        async with Feed(feed_config(sim, ("ticker.BTC",))) as feed:
            tape = Tape("ticker.BTC")
            last = (await control(sim, "publish", 50, BTC))["last"][BTC]
            truth = sim.truth(BTC, last)
            best = (truth["bids"][0][0], truth["asks"][0][0])
            await until(
                lambda: (
                    len(tape.records)
                    and (tape.records[-1]["best_bid_px"], tape.records[-1]["best_ask_px"]) == best
                ),
                what=f"a ticker with best bid/ask {best}",
            )
            record = tape.records[-1]
            assert record["mark_price"] > 0 and record["state"] == 1 and record["ts_exchange"] > 0
            assert feed.adapter.stats.rejected == 0
            tape.close()

    with simulator() as sim:
        run(main(sim))
