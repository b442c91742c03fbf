"""The recording format (feeder/recordings/, npy storage): writer, atomic chunks, a loader that verifies continuity.

Files on a real disk (tmp_path); records built from data.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from feeder import UsageError, record_schema
from feeder.consumers.recording import main
from feeder.recordings import RecordingError, RecordingWriter, chunk_name, load, read
from feeder.recordings.files import EVENTS

BOOK = record_schema("book").dtype
META = {"ring": "book.BTC", "instance": "t", "record_type": "book", "fingerprint": "0x1", "capacity": 64}


def records(first: int, n: int, flags: int = 0) -> np.ndarray:
    out = np.zeros(n, BOOK)
    out["seq"] = np.arange(first, first + n)
    out["flags"] = flags
    out["change_id"] = out["seq"].astype(np.int64) * 10
    return out


def writer(path, chunk_records: int = 4, chunk_seconds: float = 3600.0) -> RecordingWriter:
    return RecordingWriter(path, META, BOOK, chunk_records, chunk_seconds)


def test_records_come_back_in_order_with_their_flags_and_seqs(tmp_path):
    w = writer(tmp_path)
    w.event("start", seq=0, created_ns=1, epoch=1)
    chunks = w.add(records(0, 10, flags=2))
    last = w.close()
    assert [c.records for c in chunks] == [4, 4] and last.records == 2
    assert [c.path.name for c in [*chunks, last]] == [chunk_name(1), chunk_name(2), chunk_name(3)]
    got = load(tmp_path)
    assert got.tobytes() == records(0, 10, flags=2).tobytes()


def test_chunks_rotate_by_time(tmp_path):
    w = writer(tmp_path, chunk_records=1000, chunk_seconds=0.0)
    w.event("start", seq=0, created_ns=1, epoch=1)
    w.add(records(0, 3))
    assert w.due(float("inf"))
    assert w.flush().records == 3
    assert not w.due(float("inf"))
    w.close()


def test_a_recorded_loss_explains_the_missing_seqs(tmp_path):
    w = writer(tmp_path)
    w.event("start", seq=0, created_ns=1, epoch=1)
    w.add(records(0, 5))
    w.event("lost", first=5, count=100)
    w.add(records(105, 5))
    w.close()
    rec = read(tmp_path)
    assert rec.unexplained == [] and rec.lost == 100 and rec.losses == [(5, 100)]
    assert len(load(tmp_path)) == 10


def test_losses_at_the_start_of_a_session_are_explained_too(tmp_path):
    w = writer(tmp_path)
    w.event("start", seq=20, created_ns=1, epoch=1)
    w.event("lost", first=20, count=3)
    w.add(records(23, 2))
    w.close()
    assert read(tmp_path).unexplained == []


def test_a_deleted_chunk_is_reported_by_name(tmp_path):
    w = writer(tmp_path)
    w.event("start", seq=0, created_ns=1, epoch=1)
    w.add(records(0, 12))
    w.close()
    (tmp_path / chunk_name(2)).unlink()
    with pytest.raises(RecordingError, match=chunk_name(2)):
        load(tmp_path)


def test_a_hole_no_loss_explains_makes_load_fail(tmp_path):
    w = writer(tmp_path)
    w.event("start", seq=0, created_ns=1, epoch=1)
    w.add(records(0, 4))
    w.add(records(7, 4))  # seqs 4-6 vanished without a recorded loss
    w.close()
    assert read(tmp_path).unexplained == ["seqs 4-6 are missing and no recorded loss explains them"]
    with pytest.raises(RecordingError, match="seqs 4-6 are missing"):
        load(tmp_path)


def test_a_loss_that_does_not_cover_the_hole_exactly_is_not_an_explanation(tmp_path):
    w = writer(tmp_path)
    w.event("start", seq=0, created_ns=1, epoch=1)
    w.add(records(0, 2))
    w.event("lost", first=2, count=2)
    w.add(records(5, 2))  # 2-3 lost, but 4 is missing too
    w.close()
    assert read(tmp_path).unexplained == ["seqs 2-4 are missing and no recorded loss explains them"]


def test_records_going_back_are_reported(tmp_path):
    w = writer(tmp_path)
    w.event("start", seq=0, created_ns=1, epoch=1)
    w.add(records(0, 3))
    w.add(records(1, 2))
    w.close()
    assert "out of order or repeated" in read(tmp_path).unexplained[0]


def test_a_truncated_chunk_is_refused_by_name(tmp_path):
    w = writer(tmp_path)
    w.event("start", seq=0, created_ns=1, epoch=1)
    w.add(records(0, 8))
    w.close()
    data = (tmp_path / chunk_name(2)).read_bytes()
    (tmp_path / chunk_name(2)).write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match=f"chunk .*{chunk_name(2)} cannot be loaded"):
        load(tmp_path)


def test_an_unfinished_chunk_left_by_a_crash_is_ignored_and_then_removed(tmp_path):
    w = writer(tmp_path)
    w.event("start", seq=0, created_ns=1, epoch=1)
    w.add(records(0, 4))
    w.close()
    tmp = tmp_path / f".{chunk_name(2)}.tmp"
    tmp.write_bytes((tmp_path / chunk_name(1)).read_bytes()[:100])  # what a crash mid-write leaves
    rec = read(tmp_path)
    assert len(rec.records) == 4 and rec.unexplained == []
    assert rec.notes == [f"ignored {tmp.name}: an unfinished file (the recorder stopped while writing it)"]
    again = writer(tmp_path)
    assert again.removed_temporaries == [tmp.name] and not tmp.exists()
    again.close()


def test_a_torn_last_event_line_is_ignored(tmp_path):
    w = writer(tmp_path)
    w.event("start", seq=0, created_ns=1, epoch=1)
    w.add(records(0, 2))
    w.close()
    with open(tmp_path / EVENTS, "a") as f:
        f.write('{"event": "lost", "at": 2, "fi')
    rec = read(tmp_path)
    assert rec.unexplained == [] and "torn last line" in rec.notes[0]


def test_a_restarted_recorder_continues_as_a_new_session(tmp_path):
    w = writer(tmp_path)
    w.event("start", seq=0, created_ns=1, epoch=1)
    w.add(records(0, 6))
    w.close()
    w = writer(tmp_path)  # later, same ring: numbering and positions carry on
    assert w.recorded == 6
    w.event("start", seq=50, created_ns=1, epoch=1)
    w.add(records(50, 3))
    w.close()
    rec = read(tmp_path)
    assert rec.files == 3 and rec.unexplained == []
    assert [(s.start_seq, s.records, s.first_seq, s.last_seq) for s in rec.sessions] == [
        (0, 6, 0, 5),
        (50, 3, 50, 52),
    ]


def test_a_directory_holding_another_ring_is_refused(tmp_path):
    writer(tmp_path).close()
    with pytest.raises(UsageError, match=r"holds a recording of ring 'book\.BTC'"):
        RecordingWriter(tmp_path, {**META, "ring": "book.ETH"}, BOOK, 4, 1.0)


def test_command_line_summary_flags_a_damaged_recording(tmp_path, capsys):
    good, bad = tmp_path / "book.BTC", tmp_path / "book.ETH"
    for path, gap in ((good, 0), (bad, 3)):
        w = RecordingWriter(path, {**META, "ring": path.name}, BOOK, 4, 1.0)
        w.event("start", seq=0, created_ns=1, epoch=1)
        w.add(records(0, 4))
        w.add(records(4 + gap, 4))
        w.close()
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    summaries = json.loads("[" + out.replace("}\n{", "},\n{") + "]")
    assert [(s["ring"], s["ok"], s["records"]) for s in summaries] == [
        ("book.BTC", True, 8),
        ("book.ETH", False, 8),
    ]


def test_a_recording_without_records_loads_empty(tmp_path):
    writer(tmp_path).close()
    assert len(load(tmp_path)) == 0
