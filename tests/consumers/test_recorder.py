"""`feeder record` as a real process: against a running feeder, lapped, and killed."""

from __future__ import annotations

import signal

import numpy as np

from feeder import RingReader, RingWriter, record_schema
from feeder.recordings import chunk_name, load, read
from feeder.runtime.replay import RecordingReplayer

BOOK = record_schema("book").dtype


def _without_publish_time(records: np.ndarray) -> bytes:
    out = records.copy()
    out["ts_publish"] = 0  # the replay's own
    return out.tobytes()


def test_recordings_of_a_running_feeder_are_the_ring_and_replay_into_the_same_records(
    feeders, consumer, tmp_path, instance
):
    feeders.embedded("BTC-PERPETUAL,ETH-PERPETUAL")
    args = [
        "book.BTC",
        "book.ETH",
        "--start",
        "oldest",
        "--duration",
        "5",
        "--chunk-records",
        "64",
        "--wait",
        "90",
    ]
    recorders = {
        fmt: consumer("record", str(tmp_path / fmt), *args, "--format", fmt) for fmt in ("npy", "parquet")
    }
    for storage, recorder in recorders.items():
        assert recorder.finish() == 0, recorder.report()
        first = "chunk-00000001.npy" if storage == "npy" else "part-00000001.parquet"
        assert f"book.BTC: chunk {first}: 64 records, seq 0-63" in recorder.text
    with RingReader("book.BTC", start="oldest") as btc, RingReader("book.ETH", start="oldest") as eth:
        ring = {"book.BTC": btc.read(), "book.ETH": eth.read()}
    for storage in recorders:
        for name, held in ring.items():
            records = load(tmp_path / storage / name)
            assert len(records) > 64 and records["seq"].tolist() == list(range(len(records)))
            assert held[: len(records)].tobytes() == records.tobytes(), (storage, name)
            assert records["flags"][0] == 1  # the first record of a ring is its SNAPSHOT
    assert list((tmp_path / "parquet" / "book.BTC").glob("part-*")) == []  # a clean stop finished the hour
    for storage in recorders:  # and `feeder replay` puts the same records back into rings
        with RecordingReplayer(tmp_path / storage, instance=f"{instance}r") as replayer:
            replayer.run(speed=None)
            for name in ring:
                recorded = load(tmp_path / storage / name)
                with RingReader(name, instance=f"{instance}r", start="oldest") as reader:
                    replayed = reader.read()
                assert len(replayed) == len(recorded) and reader.lost == 0
                assert _without_publish_time(replayed) == _without_publish_time(recorded), (storage, name)


def test_a_lapped_recorder_records_its_loss_and_the_recording_verifies(consumer, tmp_path):
    out = tmp_path / "rec"
    with RingWriter.create("book.LAP", "book", 64) as writer:
        writer.publish_batch(np.zeros(10, BOOK))
        recorder = consumer("record", str(out), "book.LAP", "--start", "oldest", "--chunk-records", "10")
        recorder.wait_for(r"book\.LAP: chunk chunk-00000001\.npy: 10 records, seq 0-9")
        recorder.proc.send_signal(signal.SIGSTOP)
        try:
            for _ in range(4):
                writer.publish_batch(np.zeros(50, BOOK))  # seqs 10-209 into 64 slots
        finally:
            recorder.proc.send_signal(signal.SIGCONT)
        recorder.wait_for(r"book\.LAP: LOST 136 records \(seq 10-145\): the recorder was lapped")
        writer.publish_batch(np.zeros(6, BOOK))  # fills the chunk that 206-209 began
        recorder.wait_for(r"book\.LAP: chunk .* seq 206-215")
        assert recorder.stop() == 0
    rec = read(out / "book.LAP")
    assert rec.unexplained == [] and rec.losses == [(10, 136)]
    assert rec.records["seq"].tolist() == [*range(10), *range(146, 216)]
    assert "summary book.LAP: recorded 80 records" in recorder.text and "lost 136" in recorder.text


def test_a_killed_recorder_leaves_only_complete_chunks(feeders, consumer, tmp_path):
    feeders.embedded()
    out = tmp_path / "rec"
    recorder = consumer("record", str(out), "book.BTC", "--chunk-records", "1")
    recorder.wait_for(r"book\.BTC: chunk", count=30)
    recorder.kill()  # SIGKILL, most likely in the middle of writing a chunk
    first = read(out / "book.BTC")
    assert first.unexplained == [] and len(first.records) >= 30
    files = sorted(p.name for p in (out / "book.BTC").glob("chunk-*.npy"))
    assert files == [chunk_name(n) for n in range(1, len(files) + 1)]
    again = consumer("record", str(out), "book.BTC", "--chunk-records", "1", "--count", "5")
    assert again.finish() == 0, again.report()
    second = read(out / "book.BTC")
    assert second.unexplained == [] and len(second.sessions) == 2
    assert len(second.records) == len(first.records) + 5
    assert not list((out / "book.BTC").glob(".*.tmp"))
