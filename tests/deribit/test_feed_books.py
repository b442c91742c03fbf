"""Books through the whole feed against the simulator: every record a reader sees equals the truth."""

from __future__ import annotations

import asyncio

import pytest
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

from feeder.ring import GAP, SNAPSHOT
from feeder.runtime.feed import Feed


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 150))


async def _publish(sim, n: int, instrument: str | None = None) -> dict[str, int]:
    return (await control(sim, "publish", n, instrument))["last"]


async def _caught_up(tapes: dict[str, Tape], last: dict[str, int]) -> None:
    for instrument, change_id in last.items():
        tape = tapes[instrument]
        await until(
            lambda t=tape, c=change_id: t.reached(c), what=f"{tape.ring} to reach change_id {change_id}"
        )


def _tapes() -> dict[str, Tape]:
    return {BTC: Tape("book.BTC"), ETH: Tape("book.ETH")}


def test_books_equal_the_truth_at_every_change_id_over_thousands_of_updates():
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC", "book.ETH"))) as feed:
            tapes = _tapes()
            last = {}
            for _ in range(6):
                last |= await _publish(sim, 500)
                await _caught_up(tapes, last)
            for instrument, tape in tapes.items():
                records = tape.records
                sent = [c for c, _, _ in sim.sent(f"book.{instrument}.raw")]
                assert [int(c) for c in records["change_id"]] == sent, "one record per notification, in order"
                assert truth_mismatches(sim, instrument, records) == []
                assert flag_violations(records) == []
                assert tape.flags()[0] == SNAPSHOT
                tape.close()
            assert sum(len(t.records) for t in tapes.values()) >= 3000
            assert feed.adapter.stats.rejected == feed.adapter.stats.gaps == 0

    with simulator() as sim:
        run(main(sim))


def test_a_gap_is_flagged_at_once_and_only_that_book_resyncs():
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC", "book.ETH"))) as feed:
            tapes = _tapes()
            await _caught_up(tapes, await _publish(sim, 100))
            await control(sim, "fault", "gap", instrument=BTC)
            await _publish(sim, 3, BTC)
            await until(lambda: GAP in tapes[BTC].flags(), what="a GAP record on book.BTC")
            await until(lambda: tapes[BTC].flags()[-1] == SNAPSHOT, what="the resync snapshot on book.BTC")
            await _caught_up(tapes, await _publish(sim, 100))
            btc, eth = tapes[BTC].records, tapes[ETH].records
            assert [f for f in tapes[BTC].flags() if f] == [SNAPSHOT, GAP, SNAPSHOT]
            assert [f for f in tapes[ETH].flags() if f] == [SNAPSHOT]
            assert truth_mismatches(sim, BTC, btc) == [] and truth_mismatches(sim, ETH, eth) == []
            assert flag_violations(btc) == [] and flag_violations(eth) == []
            metrics = feed.metrics()
            assert metrics["adapter"]["books"]["book.BTC-PERPETUAL.raw"]["resyncs"] == 1
            assert metrics["adapter"]["books"]["book.ETH-PERPETUAL.raw"]["resyncs"] == 0
            assert metrics["resubscribed"] == 1 and metrics["resyncing"] == {}
            for tape in tapes.values():
                tape.close()

    with simulator() as sim:
        run(main(sim))


def test_duplicates_are_dropped_without_a_gap():
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC",))) as feed:
            tape = Tape("book.BTC")
            await _publish(sim, 20, BTC)
            await control(sim, "fault", "duplicate", instrument=BTC)
            await control(sim, "fault", "duplicate", instrument=BTC)
            last = await _publish(sim, 20, BTC)
            await until(lambda: tape.reached(last[BTC]), what="book.BTC to catch up")
            assert feed.adapter.stats.duplicates == 2
            assert [f for f in tape.flags() if f] == [SNAPSHOT]
            assert truth_mismatches(sim, BTC, tape.records) == []
            tape.close()

    with simulator() as sim:
        run(main(sim))


@pytest.mark.parametrize(
    ("fault", "params", "counter"),
    [
        ("reorder", {"instrument": BTC}, "gaps"),
        ("wrong_types", {"instrument": BTC}, "rejected"),
        ("nan_price", {"instrument": BTC}, None),  # not JSON: the client drops the frame, a gap follows
        ("negative_price", {"instrument": BTC}, "rejected"),
        ("malformed", {"instrument": BTC}, None),
    ],
)
def test_a_reordered_or_corrupted_message_is_never_published_as_valid(fault, params, counter):
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC", "book.ETH"))) as feed:
            tapes = _tapes()
            await _caught_up(tapes, await _publish(sim, 30))
            await control(sim, "fault", fault, **params)
            await _publish(sim, 3, BTC)
            await until(
                lambda: tapes[BTC].flags()[-1] == SNAPSHOT and GAP in tapes[BTC].flags(),
                what="GAP then SNAPSHOT",
            )
            await _caught_up(tapes, await _publish(sim, 50))
            assert [f for f in tapes[BTC].flags() if f] == [SNAPSHOT, GAP, SNAPSHOT]
            assert [f for f in tapes[ETH].flags() if f] == [SNAPSHOT]
            for instrument, tape in tapes.items():
                assert truth_mismatches(sim, instrument, tape.records) == []
                assert flag_violations(tape.records) == []
                tape.close()
            if counter is not None:
                assert feed.metrics()["adapter"][counter] >= 1

    with simulator() as sim:
        run(main(sim))


@pytest.mark.parametrize("how", ["reset", "close"])
def test_a_reconnect_gaps_every_book_then_resyncs_them_all(how):
    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC", "book.ETH"))) as feed:
            tapes = _tapes()
            await _caught_up(tapes, await _publish(sim, 50))
            await control(sim, "disconnect", how=how)
            for tape in tapes.values():
                await until(lambda t=tape: t.flags()[-1] == GAP, what=f"a GAP record on {tape.ring}")
            await until(
                lambda: all(t.flags()[-1] == SNAPSHOT for t in tapes.values()), what="fresh snapshots"
            )
            await _caught_up(tapes, await _publish(sim, 50))
            for instrument, tape in tapes.items():
                assert [f for f in tape.flags() if f] == [SNAPSHOT, GAP, SNAPSHOT]
                assert truth_mismatches(sim, instrument, tape.records) == []
                assert flag_violations(tape.records) == []
                tape.close()
            assert feed.client.metrics()["reconnects"] == 1
            assert feed.session.logins == 2  # logged in again before the raw channels were restored

    with simulator() as sim:
        run(main(sim))


def test_books_stay_true_through_mixed_faults_over_thousands_of_updates():
    # (control command, its args, the instruments that must resync: None = a duplicate, dropped)
    schedule = [
        ("fault", {"name": "gap", "instrument": BTC}, [BTC]),
        ("fault", {"name": "duplicate", "instrument": ETH}, None),
        ("fault", {"name": "reorder", "instrument": ETH}, [ETH]),
        ("disconnect", {"how": "reset"}, [BTC, ETH]),
        ("fault", {"name": "negative_price", "instrument": BTC}, [BTC]),
        ("fault", {"name": "gap", "instrument": ETH, "count": 3}, [ETH]),
        ("fault", {"name": "malformed", "instrument": BTC}, [BTC]),
        ("disconnect", {"how": "close"}, [BTC, ETH]),
    ]

    async def main(sim):
        async with Feed(feed_config(sim, ("book.BTC", "book.ETH"))) as feed:
            tapes = _tapes()
            last = await _publish(sim, 300)
            await _caught_up(tapes, last)
            for command, args, resyncing in schedule:
                snapshots = {i: t.flags().count(SNAPSHOT) for i, t in tapes.items()}
                duplicates = feed.adapter.stats.duplicates
                if command == "fault":
                    await control(sim, "fault", args.pop("name"), **args)
                    last |= await _publish(sim, 5, args["instrument"])  # brings the fault out
                else:
                    await control(sim, "disconnect", **args)
                if resyncing is None:
                    await until(
                        lambda d=duplicates: feed.adapter.stats.duplicates > d, what="a dropped duplicate"
                    )
                for instrument in resyncing or ():
                    tape, before = tapes[instrument], snapshots[instrument]
                    await until(
                        lambda t=tape, b=before: t.flags().count(SNAPSHOT) > b, what=f"{tape.ring} resync"
                    )
                last |= await _publish(sim, 300)
                await _caught_up(tapes, last)
            for instrument, tape in tapes.items():
                records = tape.records
                assert truth_mismatches(sim, instrument, records) == []
                assert flag_violations(records) == []
                tape.close()
            assert sum(len(t.records) for t in tapes.values()) > 2500, "thousands of updates were checked"
            adapter = feed.metrics()["adapter"]
            assert adapter["duplicates"] == 1 and adapter["gaps"] >= 3 and adapter["rejected"] == 1

    with simulator() as sim:
        run(main(sim))
