"""`--record DIR` then `feeder replay DIR`: the replayed rings hold the records the live run published."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import orjson
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


def _session(path, frames: list[tuple[int, dict]]) -> None:
    with open(path, "wb") as f:
        for ts, msg in frames:
            f.write(
                orjson.dumps({"ts": ts, "dir": "in", "type": "text", "data": orjson.dumps(msg).decode()})
                + b"\n"
            )


def _change(cid: int, prev: int | None, bid_size: float) -> dict:
    """A raw book notification: a snapshot (prev None) or a change of the best bid's size."""
    data: dict = {"timestamp": 1_764_000_000_000 + cid, "instrument_name": "BTC-PERPETUAL", "change_id": cid}
    if prev is None:
        data.update(type="snapshot", bids=[["new", 100.0, bid_size]], asks=[["new", 101.0, 10.0]])
    else:
        data.update(type="change", prev_change_id=prev, bids=[["change", 100.0, bid_size]], asks=[])
    params = {"channel": "book.BTC-PERPETUAL.raw", "data": data}
    return {"jsonrpc": "2.0", "method": "subscription", "params": params}


def test_a_redundant_run_replays_through_the_arbiter_as_it_ran_live(tmp_path):
    """`redundancy = 2` records each leg. Leg a misses change 3 and brings 4 before leg b brings 3: live, the
    arbiter held 4 for leg b's 3 (no GAP); the replay does the same, and publishes each change once."""
    ms = 1_000_000
    snapshot = _change(1, None, 1.0)
    _session(
        tmp_path / "worker0-20261201T000000.jsonl",
        [
            (0, snapshot),
            (1 * ms, _change(2, 1, 2.0)),
            (2 * ms, _change(4, 3, 4.0)),
            (5 * ms, _change(5, 4, 5.0)),
        ],
    )
    _session(tmp_path / "worker0-20261201T000000-b.jsonl",
             [(0, snapshot), (1 * ms + 10, _change(2, 1, 2.0)), (3 * ms, _change(3, 2, 3.0)),
              (3 * ms + 10, _change(4, 3, 4.0)), (5 * ms + 10, _change(5, 4, 5.0))])  # fmt: skip
    with Replayer(tmp_path) as replayer, RingReader("book.BTC", start="oldest") as reader:
        replayer.run(speed=None)
        replayed = reader.read()
    assert not np.any(replayed["flags"] & GAP)
    assert replayed["change_id"].tolist() == [1, 2, 3, 4, 5]
    assert replayed["bid_sz"][:, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
