"""`feeder example-strategy` as a real process: simulator, feeder (two workers), orders on the exchange.

What the strategy did is checked on the exchange side: the open orders the simulator reports through the
feeder (`private/get_open_orders_by_instrument`) and the requests the simulator received.
"""

from __future__ import annotations

import os
import re
import signal

import pytest
from helpers import wait_until

from feeder import FeederHandle, RingReader

INSTRUMENT = "BTC-PERPETUAL"


def ours(prefix: str) -> list[dict]:
    """Our open orders on the exchange, asked through the running feeder."""
    with FeederHandle() as h:
        orders = h.rpc("private/get_open_orders_by_instrument", {"instrument_name": INSTRUMENT})
    return [o for o in orders if o["label"].startswith(f"{prefix}-")]


def sides(orders: list[dict]) -> list[str]:
    return sorted(o["direction"] for o in orders)


def order_ids(lines: list[str]) -> set[str]:
    return {m.group(1) for line in lines if (m := re.search(r"open id (\S+) @", line))}


@pytest.fixture
def strategy(sim_feeder, consumer):
    def start(prefix: str, *args: str):
        return consumer(
            "example-strategy",
            "--instrument",
            INSTRUMENT,
            "--ring",
            "book.BTC",
            "--label",
            prefix,
            "--wait",
            "90",
            *args,
        )

    return start


def test_quotes_appear_on_the_exchange_and_exit_cancels_them(strategy):
    s = strategy("t1")
    s.wait_for(r"PLACE buy 10 @ [\d.]+ \[t1-b\d+\]: open id")
    s.wait_for(r"PLACE sell 10 @ [\d.]+ \[t1-s\d+\]: open id")
    orders = wait_until(
        lambda: (o := ours("t1")) and sides(o) == ["buy", "sell"] and o, what="a bid and an ask"
    )
    bid, ask = sorted(orders, key=lambda o: o["direction"])
    assert bid["price"] < ask["price"] and bid["amount"] == ask["amount"] == 10
    assert s.stop(signal.SIGTERM) == 0, s.report()
    assert s.matching(r"^\S+ STOP \(SIGTERM\): cancelling all orders labelled t1-\*")
    assert s.matching(r"EXIT: none of our orders left open")
    assert ours("t1") == []


def test_a_gap_cancels_the_quotes_until_the_snapshot(sim_feeder, strategy):
    s = strategy("t2")
    s.wait_for(r"PLACE sell .*: open id")
    s.wait_for(r"PLACE buy .*: open id")
    sim_feeder.fault("gap", instrument=INSTRUMENT)
    pause = s.wait_for(r"PAUSE: GAP at change_id \d+: the book is not trustworthy")[0]
    resume = s.wait_for(r"QUOTE .*\(SNAPSHOT at change_id \d+: resuming\)")[0]
    during = s.lines[s.lines.index(pause) + 1 : s.lines.index(resume)]
    cancels = [line for line in during if " CANCEL " in line and line.endswith(": cancelled")]
    assert cancels and all(" CANCEL " in line or "no longer open" in line for line in during), during
    for order_id in {re.search(r"CANCEL \w+ (\S+) @", line).group(1) for line in cancels}:
        sim_feeder.wait_sent({"method": "private/cancel", "params": {"order_id": order_id}})
    s.wait_for(r"PLACE .*: open id", count=3)  # quoting again after the SNAPSHOT
    assert s.stop() == 0, s.report()
    assert ours("t2") == []


def test_duration_ends_the_run_with_everything_cancelled(strategy):
    s = strategy("t3", "--duration", "10")
    assert s.finish() == 0, s.report()
    assert s.matching(r"PLACE buy .*: open id") and s.matching(r"PLACE sell .*: open id")
    assert s.matching(r"STOP \(duration reached\)") and s.matching(r"EXIT: none of our orders left open")
    assert ours("t3") == []


def test_orders_left_by_an_earlier_run_are_adopted_or_cancelled(sim_feeder, strategy):
    with RingReader("book.BTC") as ring:
        low = round(float(ring.latest()["bid_px"][0]) - 500)
    with FeederHandle() as h:
        for n in (1, 2):
            h.rpc("private/buy", {"instrument_name": INSTRUMENT, "amount": 10, "type": "limit",
                                  "price": low - n, "label": f"t4-b9{n}"})  # fmt: skip
    s = strategy("t4")
    reconciled = s.wait_for(r"RECONCILED \(buy \[any\], sell \[any\]\): open on the exchange")[0]
    assert "[t4-b92]" in reconciled  # the newest is kept...
    s.wait_for(r"RECONCILED: extra order of ours \S+ \[t4-b91\]: cancelling")  # ...the other cancelled
    s.wait_for(r"EDIT buy \S+ [\d.]+ -> [\d.]+ \[t4-b92\]: open id")  # and the kept one quoted with
    wait_until(lambda: sides(ours("t4")) == ["buy", "sell"], what="one bid and one ask")
    assert [o["label"] for o in ours("t4") if o["direction"] == "buy"] == ["t4-b92"]
    assert s.stop() == 0, s.report()
    assert ours("t4") == []


def test_an_order_with_an_unknown_outcome_is_reconciled_by_label(sim_feeder, strategy):
    s = strategy("t5")
    s.wait_for(r"PLACE sell .*: open id")
    s.wait_for(r"PLACE buy .*: open id")
    # Freeze the connection of the worker that does not carry book.BTC: requests still reach the
    # exchange, answers never come back. Orders alternate between the two workers, so one soon goes
    # there; kill that worker while it waits: the supervisor can only answer OutcomeUnknown.
    with FeederHandle() as h:
        worker = next(w for w in h.status()["workers"] if "book.ETH" in w["rings"])
    conn = max(c["id"] for c in sim_feeder.connections() if "book.ETH-PERPETUAL.raw" in c["subscriptions"])
    since = max([m.seq for m in sim_feeder.received()], default=0) + 1
    sim_feeder.fault("stall", conn=conn)
    order_methods = ("private/buy", "private/sell", "private/edit", "private/cancel")
    sent = sim_feeder.wait_sent(
        lambda m: m.get("method") in order_methods, timeout=60, conn=conn, since=since
    )
    os.kill(worker["pid"], signal.SIGKILL)
    unknown = s.wait_for(r"UNKNOWN .*: outcome unknown \(OutcomeUnknown\); reconciling by label t5-[bs]\d+")[
        0
    ]
    label = re.search(r"by label (t5-([bs])\d+)", unknown)
    params = sent.message["params"]
    assert params.get("label") == label.group(1) if "label" in params else params["order_id"] in unknown
    side = "buy" if label.group(2) == "b" else "sell"
    s.wait_for(rf"RECONCILED \({side} \[{label.group(1)}\]\): open on the exchange")
    s.wait_for(r"open id", count=len(s.matching(r"open id")) + 2)  # quoting goes on
    mine = ours("t5")
    assert len(mine) == len(set(sides(mine))), mine  # never two of ours on one side
    assert s.stop() == 0, s.report()
    assert ours("t5") == []


def test_a_ring_that_is_not_the_instruments_book_is_refused(sim_feeder, run):
    done = run(
        "example-strategy", "--instrument", INSTRUMENT, "--ring", "book.ETH", "--label", "t6", "--wait", "90"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert re.search(r"ring 'book\.ETH' has mid [\d.]+ but BTC-PERPETUAL is marked at [\d.]+", done.stderr)
    assert ours("t6") == []


def test_an_instrument_the_exchange_does_not_know_is_refused(sim_feeder, run):
    done = run(
        "example-strategy", "--instrument", "BTC-NOPE", "--ring", "book.BTC", "--label", "t7", "--wait", "90"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--instrument 'BTC-NOPE': public/get_instrument: exchange error" in done.stderr
