"""Recordings of rings on disk, in two storages, with one loader that accounts for every missing record.

A recording of one ring is a directory (`feeder record OUT book.BTC` makes `OUT/book.BTC/`):

    meta.json        ring, instance, record type, schema fingerprint, numpy dtype, storage (npy|parquet)
    events.jsonl     one JSON object per line: "start" (a recorder attached: a new session), "lost" (a seq
                     range the recorder could not read: it was lapped), "writer" (a new writer epoch: a
                     restarted worker); `at` = records recorded before it
    chunk-00000001.npy ...                         --format npy: raw ring records, one file per slice
    2026-11-25T20.parquet, part-00000061.parquet   --format parquet: one file per hour (see parquet.py)

    from feeder.recordings import load, load_frame, load_table, read
    records = load("OUT/book.BTC")        # numpy records, exactly as the ring held them
    df = load_frame("OUT/book.BTC")       # pandas DataFrame (pyarrow and pandas installed)
    rec = read("OUT/book.BTC")            # .losses, .lost, .sessions, .unexplained, .summary(), .records

Writing: `RecordingWriter` (the recorder program's core). Files are written atomically: a crash loses
at most the records still buffered (see writer.py and parquet.py).
"""

from feeder.recordings.files import RecordingError
from feeder.recordings.loader import Recording, Session, load, load_frame, load_table, read, recordings_in
from feeder.recordings.npy import chunk_name
from feeder.recordings.parquet import part_name
from feeder.recordings.writer import STORAGES, Chunk, RecordingWriter

__all__ = [
    "STORAGES",
    "Chunk",
    "Recording",
    "RecordingError",
    "RecordingWriter",
    "Session",
    "chunk_name",
    "load",
    "load_frame",
    "load_table",
    "part_name",
    "read",
    "recordings_in",
]
