"""`feeder monitor` as a real process, against a real feeder and the simulator."""

from __future__ import annotations

import re
import signal

import numpy as np
import pytest

from feeder import RingReader, RingWriter, record_schema, universe
from feeder.sim import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SimServer

BOOK = record_schema("book").dtype
CREDENTIALS = {"DERIBIT_CLIENT_ID": DEMO_CLIENT_ID, "DERIBIT_CLIENT_SECRET": DEMO_CLIENT_SECRET}


def test_plain_mode_shows_the_top_of_book_the_ring_holds(feeders, run):
    feeders.embedded()
    done = run("monitor", "book.BTC", "--display", "plain", "--start", "oldest", "--count", "20")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"book\.BTC SNAPSHOT at seq 0 change_id \d+: book trustworthy", out)
    assert "summary book.BTC: read 20 records, lost 0, gaps 0, snapshots 1" in out
    last = [line for line in out.splitlines() if " seq 19 " in line][-1]
    with RingReader("book.BTC", start="oldest") as ring:
        rec = ring.read()[19]
    bid, ask = float(rec["bid_px"][0]), float(rec["ask_px"][0])
    assert f"bid {bid:.10g} x {float(rec['bid_sz'][0]):.10g} | ask {ask:.10g}" in last
    assert f"spread {ask - bid:.10g} | change_id {rec['change_id']} seq 19 flags -" in last
    assert re.search(r"\| age [\d.]+m?s \| [\d.]+ rec/s \| lost 0 \| gaps 0 snapshots 1", last)


def test_a_gap_and_the_snapshot_after_it_are_shown(sim_feeder, consumer):
    monitor = consumer("monitor", "book.BTC", "--display", "plain", "--interval", "0.5")
    monitor.wait_for(r"book\.BTC live bid")
    sim_feeder.fault("gap", instrument="BTC-PERPETUAL")
    gap = monitor.wait_for(r"book\.BTC GAP at seq \d+ .*NOT trustworthy until a SNAPSHOT")[0]
    snapshot = monitor.wait_for(r"book\.BTC SNAPSHOT at seq")[-1]
    assert monitor.lines.index(snapshot) > monitor.lines.index(gap)
    assert monitor.stop() == 0
    assert re.search(
        r"summary book\.BTC: read \d+ records, lost 0, gaps [1-9]\d*, snapshots [1-9]", monitor.text
    )


def test_live_mode_redraws_a_table(feeders, run):
    feeders.embedded()
    done = run("monitor", "book.BTC", "--display", "live", "--count", "5", "--interval", "0.05")
    assert done.returncode == 0, done.stderr
    assert "feeder monitor  instance" in done.stdout
    header = [line for line in done.stdout.splitlines() if "change_id" in line and "spread" in line]
    assert header, done.stdout
    assert re.search(r"book\.BTC\s+(live|waiting)\s", done.stdout)


def test_a_lapped_monitor_says_exactly_what_it_lost(consumer):
    with RingWriter.create("book.LAP", "book", 64) as writer:
        writer.publish_batch(np.zeros(10, BOOK))
        monitor = consumer(
            "monitor", "book.LAP", "--display", "plain", "--start", "oldest", "--interval", "0.1"
        )
        monitor.wait_for(r"book\.LAP live .* seq 9 ")
        monitor.proc.send_signal(signal.SIGSTOP)
        try:
            for _ in range(4):
                writer.publish_batch(np.zeros(50, BOOK))
        finally:
            monitor.proc.send_signal(signal.SIGCONT)
        monitor.wait_for(r"book\.LAP LOST 136 records \(seq 10-145\)")
        monitor.wait_for(r"book\.LAP live .* seq 209 .* lost 136 ")
        assert monitor.stop() == 0


def test_feeder_restart_is_shown_and_followed(feeders, consumer):
    first = feeders.embedded()
    monitor = consumer("monitor", "book.BTC", "--display", "plain", "--interval", "0.5")
    monitor.wait_for(r"book\.BTC live bid")
    assert first.stop() == 0
    monitor.wait_for(r"book\.BTC CLOSED: the feeder closed the ring")
    feeders.embedded()
    monitor.wait_for(r"book\.BTC ATTACHED to the ring's new segment")
    after = monitor.wait_for(r"book\.BTC SNAPSHOT at seq 0")
    assert after
    assert monitor.stop() == 0


def test_a_ring_that_is_not_a_book_is_refused(run):
    with RingWriter.create("trades.X", "trade", 64):
        done = run("monitor", "trades.X", "--wait", "0")
    assert done.returncode == 2
    assert "ring 'trades.X' holds trade records: the monitor shows book rings" in done.stderr


@pytest.mark.parametrize("wait", ["0", "0.3"])
def test_a_missing_ring_fails_with_its_name_after_the_wait(run, instance, wait):
    done = run("monitor", "book.NOPE", "--wait", wait)
    assert done.returncode == 1
    assert (
        f"no ring 'book.NOPE' in feeder instance {instance!r} after waiting {float(wait):g} s" in done.stderr
    )


def test_a_chain_ring_shows_its_books_by_name_and_a_gap_on_one_option(feeders, consumer):
    settings = dict(instruments=["BTC-*-C", "BTC-*-P"], rate=200, seed=5, option_expiries=2, option_strikes=5)
    with SimServer(**settings) as sim:
        feeders.start(
            "--url", sim.ws_url, "--kind", "option", "--currency", "BTC", "--chains", "option",
            "--streams", "book", "--workers", "1", workers=1, env=CREDENTIALS,
        )  # fmt: skip
        options = [i.name for i in universe(feeders.instance)]
        assert len(options) == 20
        monitor = consumer(
            "monitor", "book.BTC-options", "--display", "plain", "--interval", "0.3", "--rows", "3"
        )
        monitor.wait_for(r" book\.BTC-options live: 20 books \| seq \d+ ")
        shown = monitor.wait_for(r"\d   BTC-\w+-\d+-[CP] live bid ", count=3)
        assert {line.split()[1] for line in shown} <= set(options)
        victim = options[3]
        sim.fault("gap", instrument=victim)
        monitor.wait_for(rf" book\.BTC-options {victim} GAP at seq \d+ .*NOT trustworthy")
        monitor.wait_for(rf" book\.BTC-options {victim} SNAPSHOT at seq \d+ .*trustworthy")
        assert monitor.stop() == 0
        assert re.search(
            r"summary book\.BTC-options: read \d+ records, lost 0, gaps [1-9].*books 20", monitor.text
        )
