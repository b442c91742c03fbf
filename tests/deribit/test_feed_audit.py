"""The live audit through the whole feed: the simulator's own get_order_book against what was published."""

from __future__ import annotations

import asyncio
import dataclasses

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

from feeder.core.audit import spare_budget
from feeder.ring import CROSSED, GAP, SNAPSHOT
from feeder.runtime.feed import Feed

RAW = f"book.{BTC}.raw"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 150))


def _config(sim, rings, audit_interval: float):
    return dataclasses.replace(feed_config(sim, rings), audit_interval=audit_interval)


def _audits(feed: Feed, channel: str = RAW) -> dict:
    return feed.adapter.metrics()["books"][channel]["audits"]


def test_a_phantom_level_is_found_by_the_next_audit_gapped_and_resynced_to_the_truth():
    async def main(sim):
        async with Feed(_config(sim, ("book.BTC",), audit_interval=0.5)) as feed:
            tape = Tape("book.BTC")
            await control(sim, "publish", 50, BTC)
            await until(lambda: _audits(feed)["passed"] >= 1, what="a first audit that passes")
            await control(sim, "fault", "phantom", instrument=BTC)
            phantom_id = (await control(sim, "publish", 1, BTC))["last"][BTC]
            await until(lambda: tape.reached(phantom_id), what="the phantom change in the ring")
            passed = _audits(feed)["passed"]
            await until(lambda: GAP in tape.flags(), what="the audit's GAP record")
            await until(lambda: tape.flags()[-1] == SNAPSHOT, what="the resync snapshot")
            audits = _audits(feed)
            assert audits["failed"] == 1 and audits["passed"] == passed, "the first audit after it found it"
            records = tape.records
            flags = [int(f) for f in records["flags"]]
            assert [f for f in flags if f] == [SNAPSHOT, GAP, SNAPSHOT]
            gap = flags.index(GAP)
            wrong = [cid for cid, _ in truth_mismatches(sim, BTC, records)]
            assert wrong and set(wrong) <= {int(c) for c in records["change_id"][flags.index(0, 1) : gap + 1]}
            assert truth_mismatches(sim, BTC, records[gap + 1 :]) == [], "the fresh snapshot is the truth"
            assert feed.metrics()["adapter"]["audit_failures"] == 1
            tape.close()

    with simulator() as sim:
        run(main(sim))


def test_a_crossing_phantom_never_yields_an_unflagged_record_containing_it():
    async def main(sim):
        async with Feed(_config(sim, ("book.BTC", "book.ETH"), audit_interval=0)) as feed:
            tape = Tape("book.BTC")
            await control(sim, "publish", 30, BTC)
            await control(sim, "fault", "phantom_cross", instrument=BTC)
            await control(sim, "publish", 200, BTC)  # later changes move the asks: the book uncrosses
            await until(lambda: tape.flags()[-1] == SNAPSHOT and len(tape.flags()) > 2, what="the resync")
            last = (await control(sim, "publish", 20, BTC))["last"][BTC]
            await until(lambda: tape.reached(last), what="the book after the resync")
            records = tape.records
            crossed = [int(f) for f in records["flags"] if f & CROSSED]
            assert crossed == [CROSSED | GAP]
            valid = records[(records["flags"] & GAP) == 0]
            assert truth_mismatches(sim, BTC, valid) == []
            assert flag_violations(records) == []
            assert feed.adapter.book_state(f"book.{ETH}.raw").value == "live"
            tape.close()

    with simulator() as sim:
        run(main(sim))


def test_audits_of_a_moving_stream_pass_and_never_break_a_correct_book():
    async def main(sim):
        async with Feed(_config(sim, ("book.BTC", "book.ETH"), audit_interval=0.4)) as feed:
            tapes = [Tape("book.BTC"), Tape("book.ETH")]
            await until(
                lambda: all(_audits(feed, f"book.{i}.raw")["passed"] >= 3 for i in (BTC, ETH)),
                what="three passed audits per book while the books move",
            )
            for tape in tapes:
                assert [f for f in tape.flags() if f] == [SNAPSHOT]
                tape.close()
            for instrument in (BTC, ETH):
                assert _audits(feed, f"book.{instrument}.raw")["failed"] == 0
            assert feed.metrics()["audits"]["sent"] >= 6

    with simulator(rate=300) as sim:
        run(main(sim))


def test_an_audit_waits_while_anything_queues_for_credits_or_the_bucket_runs_low():
    full = {"queued": 0, "credits": {"default": 45_000.0}, "capacity": {"default": 45_000.0}}
    assert spare_budget(full) and spare_budget(None)
    assert not spare_budget({**full, "queued": 1}), "an order or a subscription is waiting"
    assert not spare_budget({**full, "credits": {"default": 20_000.0}}), "less than half the bucket left"
