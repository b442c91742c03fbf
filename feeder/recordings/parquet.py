"""`--format parquet`: one Parquet file per ring and hour, one row group per time slice.

Layout of a ring's directory (besides meta.json and events.jsonl):

    2026-11-25T20.parquet    a finished hour: the records the ring published in that hour (UTC, by
                             ts_publish), one row group per slice, Arrow schema from arrow.py
    part-00000061.parquet    one slice of the hour being recorded, a complete file of its own

Rules kept here:
- Every slice is written twice: as its own part file (atomically: the durable copy) and as the next row
  group of the hour file, which stays a hidden temporary until the hour is over (or the recorder
  stops). Then the hour file is synced and renamed, and its parts are deleted. A crash therefore loses
  no slice already written: the hour's parts stay, and loaders read them in place of the hour file.
- Parts are numbered from 1 across the whole recording, without holes. An hour file's metadata names
  the parts it holds (`feeder.parts` = "first-last"): a part it holds is a leftover (the recorder died
  between the rename and the deletes), ignored by loaders and removed by the next writer.
- A recorder restarted within an hour writes a second file for it: `2026-11-25T20.1.parquet`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from feeder.recordings.arrow import arrow_schema, meta_strings, require_pyarrow, to_table
from feeder.recordings.files import RecordingError, finish, sync_dir, temporary, write_atomically

NAME = "parquet"
HOUR_NS = 3_600_000_000_000
PARTS_KEY = b"feeder.parts"
COMPRESSION = "zstd"
_PART_RE = re.compile(r"^part-(\d{8})\.parquet$")
_HOUR_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}(\.\d+)?\.parquet$")


def part_name(number: int) -> str:
    return f"part-{number:08d}.parquet"


def hour_of(ts_ns: int) -> int:
    """The hour (since the epoch, UTC) of a timestamp in ns."""
    return int(ts_ns) // HOUR_NS


def hour_label(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H")


def _pq() -> Any:
    require_pyarrow()
    import pyarrow.parquet as pq

    return pq


def _parts_of(path: Path) -> tuple[int, int, int]:
    """(first part, last part, rows) of a finished hour file, from its footer."""
    try:
        meta = _pq().read_metadata(path)
        first, last = meta.metadata[PARTS_KEY].decode().split("-")
        return int(first), int(last), meta.num_rows
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise RecordingError(f"{path} is not a finished hour file of a recording ({exc})") from None


def scan(path: Path) -> tuple[list[tuple[int, int, Path]], dict[int, Path], list[Path]]:
    """The hour files as (first part, last part, path), the part files not inside one of them, and the
    parts an hour file holds (leftovers of a crash between its rename and the deletes)."""
    hours, parts = [], {}
    for p in path.iterdir():
        if _HOUR_RE.match(p.name):
            first, last, _ = _parts_of(p)
            hours.append((first, last, p))
        elif m := _PART_RE.match(p.name):
            parts[int(m.group(1))] = p
    covered = {n for first, last, _ in hours for n in range(first, last + 1)}
    loose = {n: p for n, p in parts.items() if n not in covered}
    return sorted(hours), loose, [p for n, p in sorted(parts.items()) if n in covered]


class ParquetStore:
    """Writes the slices of one recording directory as parts and hour files."""

    hourly = True  # a slice never holds records of two hours

    def __init__(self, path: Path, dtype: np.dtype, meta: dict[str, Any]):
        self.path = path
        self._pq = _pq()
        self.schema = arrow_schema(dtype, meta_strings(meta))
        hours, loose, leftovers = scan(path)
        for leftover in leftovers:
            leftover.unlink()
        numbers = [last for _, last, _ in hours] + list(loose)
        self._next = max(numbers, default=0) + 1
        self.recorded = sum(_parts_of(p)[2] for *_, p in hours)
        self.recorded += sum(self._pq.read_metadata(p).num_rows for p in loose.values())
        self._hour: int | None = None
        self._writer: Any = None
        self._first = self._last = 0

    def write(self, records: np.ndarray) -> Path:
        hour = hour_of(records["ts_publish"][0])
        if self._hour is not None and hour != self._hour:
            self._finish_hour()
        table = to_table(records, self.schema)
        number = self._next
        part = self.path / part_name(number)
        write_atomically(part, lambda f: self._pq.write_table(table, f, compression=COMPRESSION))
        if self._writer is None:
            self._hour, self._first = hour, number
            self._writer = self._pq.ParquetWriter(
                temporary(self.path / f"{hour_label(hour)}.parquet"), self.schema, compression=COMPRESSION
            )
        self._writer.write_table(table, row_group_size=len(table))
        self._last, self._next = number, number + 1
        return part

    def _finish_hour(self) -> None:
        writer, hour = self._writer, self._hour
        assert writer is not None and hour is not None
        writer.add_key_value_metadata({PARTS_KEY.decode(): f"{self._first}-{self._last}"})
        writer.close()
        self._writer = self._hour = None
        label = hour_label(hour)
        final, again = self.path / f"{label}.parquet", 0
        while final.exists():
            again += 1
            final = self.path / f"{label}.{again}.parquet"
        finish(temporary(self.path / f"{label}.parquet"), final)
        for number in range(self._first, self._last + 1):
            (self.path / part_name(number)).unlink(missing_ok=True)
        sync_dir(self.path)

    def close(self) -> None:
        """Finish the hour file being written, if any."""
        if self._writer is not None:
            self._finish_hour()


def load(path: Path, schema: Any) -> tuple[Any, int]:
    """The recording's table (hour files and loose parts in part order) and its file count."""
    pa, pq = require_pyarrow(), _pq()
    hours, loose, _ = scan(path)
    units = sorted([(first, last, p) for first, last, p in hours] + [(n, n, p) for n, p in loose.items()])
    expected, missing = 1, list[int]()
    for first, last, _ in units:
        missing += range(expected, first)
        expected = max(expected, last + 1)
    if missing:
        raise RecordingError(
            f"recording {path}: part files missing: {', '.join(part_name(n) for n in missing[:10])}"
        )
    tables = [_read(pq, p, schema) for *_, p in units]
    return (pa.concat_tables(tables) if tables else schema.empty_table()), len(units)


def _read(pq: Any, path: Path, schema: Any) -> Any:
    try:
        table = pq.read_table(path)
    except OSError as exc:
        raise RecordingError(f"{path} cannot be read ({exc}): the file is damaged") from None
    if not table.schema.equals(schema, check_metadata=False):
        raise RecordingError(
            f"{path} does not hold the recording's records: its columns are {table.schema.names}"
        )
    return table.replace_schema_metadata(schema.metadata)
