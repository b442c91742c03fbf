"""Parquet recordings (feeder/recordings/parquet.py): hour files, row groups per slice, crash safety, and
the same records and loss accounting as the npy storage. Files on a real disk; records built from data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feeder import UsageError, record_schema
from feeder.recordings import RecordingError, RecordingWriter, load, load_frame, load_table, part_name, read
from feeder.recordings.arrow import arrow_schema, to_records, to_table

BOOK = record_schema("book").dtype
META = {"ring": "book.BTC", "instance": "t", "record_type": "book", "fingerprint": "0x1", "capacity": 64}
HOUR = 3_600_000_000_000
T0 = 493_000 * HOUR  # 2026-03-29T16:00Z


def records(first: int, n: int, hour: int = 0, dtype: np.dtype = BOOK) -> np.ndarray:
    out = np.zeros(n, dtype)
    out["seq"] = np.arange(first, first + n)
    out["flags"] = 1
    out["ts_exchange"] = T0 + hour * HOUR + out["seq"].astype(np.int64) * 1_000_000
    out["ts_recv"] = out["ts_exchange"] + 5_000
    out["ts_publish"] = out["ts_recv"] + 7_000
    if dtype == BOOK:
        out["change_id"] = out["seq"].astype(np.int64) * 10
        out["bid_count"], out["ask_count"] = 3, 2
        out["bid_px"][:, :3] = 100.0 - np.arange(3)
        out["bid_sz"][:, :3] = 1.5
        out["ask_px"][:, :2] = 101.0 + np.arange(2)
        out["ask_sz"][:, :2] = 2.5
    return out


def writer(path, chunk_records: int = 4) -> RecordingWriter:
    return RecordingWriter(path, META, BOOK, chunk_records, 3600.0, "parquet")


def started(path, chunk_records: int = 4, seq: int = 0) -> RecordingWriter:
    w = writer(path, chunk_records)
    w.event("start", seq=seq, created_ns=1, epoch=1)
    return w


def test_the_arrow_schema_comes_from_the_record_layout():
    schema = arrow_schema(BOOK)
    assert schema.names == [n for n in BOOK.names if not n.startswith("_")]
    assert schema.field("seq").type == pa.uint64() and schema.field("bid_count").type == pa.uint16()
    assert schema.field("ts_recv").type == pa.timestamp("ns", tz="UTC")
    assert schema.field("bid_px").type == pa.list_(pa.float64(), 10)  # the level count comes from the dtype
    trade = arrow_schema(record_schema("trade").dtype)
    assert trade.field("direction").type == pa.int8() and trade.field("block_trade").type == pa.uint8()


@pytest.mark.parametrize("kind", ["book", "trade", "ticker"])
def test_records_to_a_table_and_back_are_byte_for_byte_the_same(kind):
    dtype = record_schema(kind).dtype
    original = records(0, 7, dtype=dtype)
    rng = np.random.default_rng(3)
    for name in dtype.names:
        if dtype[name].base.kind == "f":
            original[name] = rng.normal(size=original[name].shape)
    assert to_records(to_table(original, arrow_schema(dtype)), dtype).tobytes() == original.tobytes()


def test_one_file_per_hour_with_a_row_group_per_slice(tmp_path):
    w = started(tmp_path)
    w.add(np.concatenate([records(0, 10, hour=0), records(10, 3, hour=1)]))  # one read across the hour
    w.close()
    hours = sorted(p.name for p in tmp_path.glob("*.parquet"))
    assert hours == ["2026-03-29T16.parquet", "2026-03-29T17.parquet"]  # and no part files left
    first = pq.ParquetFile(tmp_path / hours[0])
    assert [first.metadata.row_group(i).num_rows for i in range(first.num_row_groups)] == [4, 4, 2]
    assert first.schema_arrow.metadata[b"ring"] == b"book.BTC"
    assert load(tmp_path).tobytes() == np.concatenate([records(0, 10), records(10, 3, hour=1)]).tobytes()


def test_the_table_and_the_dataframe_hold_the_same_records(tmp_path):
    w = started(tmp_path)
    w.add(records(0, 6))
    w.close()
    table = load_table(tmp_path)
    assert table.num_rows == 6 and table.column("seq").to_pylist() == list(range(6))
    frame = load_frame(tmp_path)
    assert str(frame["ts_publish"].dtype) == "datetime64[ns, UTC]"
    assert frame["bid_px"].list[0].tolist() == [100.0] * 6
    assert frame["change_id"].tolist() == [0, 10, 20, 30, 40, 50]


def test_a_crash_keeps_every_written_slice_as_parts_and_the_next_recorder_continues(tmp_path):
    w = started(tmp_path)
    w.add(records(0, 10))  # two slices written, two records buffered: a crash loses those two
    # the process dies here: no close(), the hour file is still a hidden temporary
    assert sorted(p.name for p in tmp_path.glob("part-*.parquet")) == [part_name(1), part_name(2)]
    crashed = read(tmp_path)
    assert crashed.seqs.tolist() == list(range(8)) and crashed.unexplained == []
    assert any("unfinished file" in note for note in crashed.notes)
    again = writer(tmp_path)
    assert again.removed_temporaries and again.recorded == 8
    again.event("start", seq=10, created_ns=1, epoch=1)
    again.add(records(10, 4))
    again.close()
    rec = read(tmp_path)
    assert rec.seqs.tolist() == [*range(8), *range(10, 14)] and len(rec.sessions) == 2
    assert rec.unexplained == [] and rec.files == 3  # two loose parts of the crash, one hour file
    assert (tmp_path / "2026-03-29T16.parquet").exists()


def test_a_restart_within_the_hour_writes_a_second_file_for_it(tmp_path):
    for first in (0, 4):
        w = started(tmp_path, seq=first)
        w.add(records(first, 4))
        w.close()
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == [
        "2026-03-29T16.1.parquet",
        "2026-03-29T16.parquet",
    ]
    assert load(tmp_path)["seq"].tolist() == list(range(8))


def test_parts_an_hour_file_already_holds_are_ignored_and_removed(tmp_path):
    w = started(tmp_path)
    w.add(records(0, 8))
    part = (tmp_path / part_name(2)).read_bytes()
    w.close()
    (tmp_path / part_name(2)).write_bytes(part)  # as if the recorder died before deleting its parts
    assert read(tmp_path).seqs.tolist() == list(range(8))
    writer(tmp_path).close()
    assert not (tmp_path / part_name(2)).exists()


def test_a_missing_part_is_reported_by_name(tmp_path):
    w = started(tmp_path)
    w.add(records(0, 12))
    (tmp_path / part_name(2)).unlink()
    with pytest.raises(RecordingError, match=f"part files missing: {part_name(2)}"):
        read(tmp_path)


def test_losses_are_accounted_as_in_the_npy_storage(tmp_path):
    w = started(tmp_path)
    w.add(records(0, 5))
    w.event("lost", first=5, count=100)
    w.add(records(105, 5))
    w.close()
    rec = read(tmp_path)
    assert rec.unexplained == [] and rec.losses == [(5, 100)] and len(rec) == 10
    assert rec.summary()["storage"] == "parquet"


def test_a_directory_of_npy_chunks_refuses_a_parquet_recorder(tmp_path):
    RecordingWriter(tmp_path, META, BOOK, 4, 60.0, "npy").close()
    with pytest.raises(UsageError, match="npy files"):
        writer(tmp_path)
