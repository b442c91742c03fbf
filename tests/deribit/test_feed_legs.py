"""Two legs against the simulator (real sockets, real rings): faults aimed at one connection leave every ring
without a GAP, every change once and the books equal to the truth; both legs down is a GAP as with one."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
from deribit.simfeed import (
    BTC,
    ETH,
    Tape,
    control,
    feed_config,
    flag_violations,
    simulator,
    truth_mismatches,
    until,
)

from feeder.ring import FINAL, GAP, MARKER, SNAPSHOT, RingReader
from feeder.runtime.feed import Feed

A = "t-a"  # leg a's public/hello client_name (the feed's client_name is "t")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 150))


async def _publish(sim, n: int) -> dict[str, int]:
    return (await control(sim, "publish", n))["last"]


async def _caught_up(tapes: dict[str, Tape], last: dict[str, int]) -> None:
    for instrument, change_id in last.items():
        tape = tapes[instrument]
        await until(lambda t=tape, c=change_id: t.reached(c), what=f"{tape.ring} to reach {change_id}")


def _joined(feed: Feed) -> bool:
    return all(leg["up"] and leg["books_joined"] == 2 for leg in feed.metrics()["legs"])


async def _fault_on_a(sim, feed: Feed, tapes: dict[str, Tape], fault: str, **params) -> None:
    """One fault aimed at leg a, the market moving meanwhile; returns when both legs feed every book again
    (after a fault that ends leg a's connection: on a new one)."""
    connects = feed.clients[0].metrics()["connects"]
    if fault in ("reset", "close"):
        await control(sim, "disconnect", client=A, how=fault)
    else:
        await control(sim, "fault", fault, client=A, **params)
    for _ in range(4):
        await _caught_up(tapes, await _publish(sim, 25))
    if fault in ("reset", "close", "rate_limit", "stall"):
        await until(
            lambda: feed.clients[0].metrics()["connects"] > connects, what=f"leg a to reconnect ({fault})"
        )
    await until(lambda: _joined(feed), what=f"leg a to rejoin every book after {fault}")
    await _caught_up(tapes, await _publish(sim, 25))


def _valid(records: np.ndarray) -> np.ndarray:
    return records[(records["flags"] & GAP) == 0]


def test_faults_on_one_leg_leave_no_gap_and_every_change_once_and_both_legs_down_is_a_gap():
    async def main(sim):
        config = replace(
            feed_config(sim, ("book.BTC", "book.ETH", "trades.BTC"), client_name="t"), redundancy=2
        )
        async with Feed(config) as feed:
            tapes = {BTC: Tape("book.BTC"), ETH: Tape("book.ETH")}
            trades = RingReader("trades.BTC", start="oldest")
            trade_tape: list[np.ndarray] = []
            await until(lambda: _joined(feed), what="both legs to feed every book")
            await _caught_up(tapes, await _publish(sim, 50))
            for fault, params in [
                ("gap", {"instrument": BTC, "count": 2}),
                ("duplicate", {"instrument": ETH}),
                ("reorder", {"instrument": BTC}),
                ("wrong_types", {"instrument": ETH}),  # rejected; only leg a resyncs that book
                ("reset", {}),
                ("close", {}),
                ("rate_limit", {}),  # the next request (a heartbeat's public/test) gets 10028, then a close
                ("stall", {}),  # until leg a's heartbeat finds it dead and reconnects
            ]:
                await _fault_on_a(sim, feed, tapes, fault, **params)
            trade_tape.append(trades.read())
            for instrument, tape in tapes.items():
                records = tape.records
                assert [f for f in tape.flags() if f] == [SNAPSHOT], f"{instrument}: no GAP, one SNAPSHOT"
                cids = [int(c) for c in records["change_id"]]
                sent = sorted({c for c, _, _ in sim.sent(f"book.{instrument}.raw") if c >= cids[0]})
                assert cids == sent, f"{instrument}: every change the simulator sent, once, in order"
                assert truth_mismatches(sim, instrument, records) == []
                assert flag_violations(records) == []
            seen = np.concatenate(trade_tape)
            assert len(seen) and not np.any(seen["flags"] & (GAP | MARKER))
            assert np.all(np.diff(seen["trade_seq"].astype(np.int64)) == 1), "every trade once"
            assert int(seen["trade_seq"][-1]) == sim.stats()["trade_seq"][BTC]
            assert feed.adapter.stats.rejected == 1
            legs = feed.metrics()["legs"]
            assert legs[1]["wins"] > 0 and legs[0]["filled"] > 0 and legs[0]["matched"] == 2 * 4 + 1
            enabled = {
                m.conn
                for m in sim.received()
                if (m.message or {}).get("method") == "private/enable_cancel_on_disconnect"
            }
            b = {c["id"] for c in sim.connections() if c.get("client_name") == "t-b"}  # one, never dropped
            assert len(enabled) == 5 and len(b) == 1 and not enabled & b, "only leg a trades"

            await control(sim, "fault", "gap", instrument=BTC, client="t-*")  # both legs miss one change
            await _publish(sim, 5)
            await until(lambda: GAP in tapes[BTC].flags(), what="a GAP once the hole waited long enough")
            await until(lambda: _joined(feed), what="both legs back on the resynced book")
            await control(sim, "disconnect", client="t-*", how="reset")  # both legs down: as with one
            await until(lambda: GAP in tapes[ETH].flags(), what="GAP records")
            await until(lambda: _joined(feed), what="both legs back")
            await _caught_up(tapes, await _publish(sim, 25))
            once, twice = [SNAPSHOT, GAP, SNAPSHOT], [SNAPSHOT, GAP, SNAPSHOT, GAP, SNAPSHOT]
            for instrument, tape in tapes.items():
                assert [f for f in tape.flags() if f] == (twice if instrument == BTC else once), instrument
                assert truth_mismatches(sim, instrument, tape.records) == []
                assert flag_violations(tape.records) == []
                tape.close()
            markers = trades.read()
            assert np.any(markers["flags"] & MARKER), "the trades ring is told its stream was interrupted"
            trades.close()

    with simulator() as sim:
        run(main(sim))


def test_channels_added_and_removed_at_run_time_are_subscribed_and_unsubscribed_on_both_legs():
    async def main(sim):
        config = replace(feed_config(sim, ("book.BTC",), client_name="t"), redundancy=2)
        async with Feed(config) as feed:
            feed.add([("book.ETH", ETH, 2)])
            tape = Tape("book.ETH")
            carried = lambda: [c for c in sim.connections() if "book.ETH-PERPETUAL.raw" in c["subscriptions"]]  # noqa: E731
            await until(lambda: len(carried()) == 2, what="book.ETH subscribed on both legs")
            await until(lambda: _joined(feed), what="both legs to feed both books")
            await _caught_up({ETH: tape}, (await control(sim, "publish", 20, ETH))["last"])
            assert [f for f in tape.flags() if f] == [SNAPSHOT]
            assert truth_mismatches(sim, ETH, tape.records) == []
            await feed.remove([ETH])
            await until(lambda: not carried(), what="book.ETH unsubscribed on both legs")
            assert tape.flags()[-1] & FINAL
            tape.close()
            assert feed.legs is not None and "book.ETH-PERPETUAL.raw" not in feed.legs._books

    with simulator() as sim:
        run(main(sim))
