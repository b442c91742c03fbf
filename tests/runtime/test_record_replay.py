"""`--record DIR` then `feeder replay DIR`: the replayed rings hold the records the live run published."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from helpers import wait_until
from runtime.feederkit import FeederProcess, cleanup_run_dir

from feeder import GAP, SNAPSHOT, RingReader
from feeder.runtime.replay import Replayer

FIELDS = [
    "flags",
    "change_id",
    "prev_change_id",
    "bid_count",
    "ask_count",
    "bid_px",
    "bid_sz",
    "ask_px",
    "ask_sz",
]


def test_replay_reproduces_the_live_book_records(tmp_path, instance):
    record_dir = tmp_path / "rec"
    record_dir.mkdir()
    feeder = FeederProcess(
        "--sim", "--instruments", "BTC-PERPETUAL", "--workers", "1", "--streams", "book,trades",
        "--record", str(record_dir), log=tmp_path / "feeder.log",
    )  # fmt: skip
    live: list[np.ndarray] = []
    try:
        feeder.start(workers=1)
        with RingReader("book.BTC", start="oldest") as reader:
            wait_until(
                lambda: live.append(reader.read()) or sum(map(len, live)) >= 300, what="300 live records"
            )
        assert feeder.stop() == 0
    finally:
        feeder.kill()
        cleanup_run_dir(instance)
    live_records = np.concatenate(live)
    assert live_records[0]["flags"] & SNAPSHOT

    with Replayer(record_dir) as replayer, RingReader("book.BTC", start="oldest") as reader:
        stats = replayer.run(speed=None)
        replayed = reader.read()
    assert stats.notifications > 0 and reader.lost == 0
    replayed = replayed[(replayed["flags"] & GAP) == 0][: len(live_records)]
    assert len(replayed) == len(live_records)
    for field in FIELDS:
        assert np.array_equal(replayed[field], live_records[field]), field


def test_replay_cli_reports_what_it_did_and_refuses_an_empty_directory(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "feeder", "replay", str(tmp_path), "--speed", "max"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "no recordings" in out.stderr
