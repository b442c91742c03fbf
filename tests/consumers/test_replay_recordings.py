"""`feeder replay` of ring recordings (`feeder record` output, npy or Parquet): holes become GAP|MARKER
records, rings merge in publish order, damaged or ambiguous inputs are refused. Recordings built from data."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from feeder import GAP, MARKER, RingReader, record_schema
from feeder.recordings import RecordingWriter
from feeder.runtime.replay import RecordingReplayer, open_replay

BOOK, TRADE = record_schema("book").dtype, record_schema("trade").dtype


def recorded(out, ring: str, seqs: list[int], dtype: np.dtype, storage: str, t0: int, lost=()) -> np.ndarray:
    """Write a recording of `ring` holding records with these seqs (publish times 1 ms apart from t0)."""
    kind = "book" if dtype == BOOK else "trade"
    meta = {"ring": ring, "instance": "x", "record_type": kind, "fingerprint": "0x0", "capacity": 64}
    records = np.zeros(len(seqs), dtype)
    records["seq"] = seqs
    records["ts_recv"] = t0 + np.arange(len(seqs)) * 2_000_000
    records["ts_publish"] = records["ts_recv"] + 1000
    records["ts_exchange"] = records["ts_recv"] - 5_000_000
    w = RecordingWriter(out / ring, meta, dtype, 4, 60.0, storage)
    w.event("start", seq=seqs[0], created_ns=1, epoch=1)
    for first, count in lost:
        w.event("lost", first=first, count=count)
    w.add(records)
    w.close()
    return records


@pytest.mark.parametrize("storage", ["npy", "parquet"])
def test_a_loss_in_the_recording_reaches_the_replayed_ring_as_a_gap_marker(tmp_path, storage, instance):
    records = recorded(tmp_path, "trades.BTC", [0, 1, 2, 10, 11], TRADE, storage, 1_000, lost=[(3, 7)])
    with RecordingReplayer(tmp_path) as replayer, RingReader("trades.BTC", start="oldest") as reader:
        stats = replayer.run(speed=None)
        ring = reader.read()
    assert (stats.records, stats.markers, stats.rings) == (6, 1, 1)
    assert ring["flags"].tolist() == [0, 0, 0, GAP | MARKER, 0, 0]
    assert ring["seq"].tolist() == list(range(6))
    assert (
        ring["ts_recv"][3] == records["ts_recv"][3]
    )  # the marker carries the time of the first record after it
    kept = np.delete(ring, 3)
    for field in ("ts_exchange", "ts_recv", "price", "trade_seq"):
        assert kept[field].tolist() == records[field].tolist()


def test_rings_are_merged_in_their_recorded_publish_order(tmp_path, instance):
    recorded(tmp_path, "book.A", [0, 1, 2], BOOK, "npy", 0)
    recorded(tmp_path, "book.B", [0, 1, 2], BOOK, "parquet", 1_000_000)  # 1 ms after each A record
    with RecordingReplayer(tmp_path) as replayer:
        replayer.run(speed=None)
        with RingReader("book.A", start="oldest") as a, RingReader("book.B", start="oldest") as b:
            published = [
                *(("A", t) for t in a.read()["ts_publish"]),
                *(("B", t) for t in b.read()["ts_publish"]),
            ]
    assert [name for name, _ in sorted(published, key=lambda p: p[1])] == ["A", "B", "A", "B", "A", "B"]


def test_speed_paces_the_replay_by_the_recorded_publish_times(tmp_path, instance):
    recorded(tmp_path, "book.A", list(range(5)), BOOK, "npy", 0)  # 8 ms of recorded time
    with RecordingReplayer(tmp_path) as replayer:
        stats = replayer.run(speed=0.05)  # 20 times slower: 160 ms
    assert stats.seconds >= 0.16


def test_the_command_line_replays_a_recorders_output_and_refuses_a_damaged_one(tmp_path, instance):
    recorded(tmp_path / "ok", "book.A", [0, 1, 5], BOOK, "npy", 0, lost=[(2, 3)])
    done = subprocess.run(
        [sys.executable, "-m", "feeder", "replay", str(tmp_path / "ok"), "--speed", "max"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "replayed 3 recorded records (+1 GAP markers) into 1 rings: 4 records" in done.stdout
    recorded(tmp_path / "bad", "book.A", [0, 1, 5], BOOK, "npy", 0)  # a hole no loss explains
    done = subprocess.run(
        [sys.executable, "-m", "feeder", "replay", str(tmp_path / "bad" / "book.A")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "is damaged, not replayed: seqs 2-4 are missing" in done.stderr


def test_a_directory_with_both_kinds_of_recordings_is_refused(tmp_path):
    recorded(tmp_path, "book.A", [0], BOOK, "npy", 0)
    (tmp_path / "worker-0.jsonl").write_text("")
    with pytest.raises(Exception, match="holds both worker sessions"):
        open_replay(tmp_path)
