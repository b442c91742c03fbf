"""Appending one ring's records to its recording directory: buffering, slices, events, the meta file.

Rules kept here:
- Records are buffered (copied) and written as one slice once `chunk_records` are buffered or the
  first buffered record is `chunk_seconds` old; the storage (npy.py, parquet.py) writes each slice
  atomically, so a crash loses at most the records still buffered.
- Hourly storage (Parquet) never gets a slice spanning two hours (UTC, by ts_publish; an hour that goes
  back, a clock step, stays in the current slice).
- Events are synced before the slice that follows them; `at` places an event between the records
  recorded before and after it.
- A directory holds one ring of one layout in one storage: the meta file of an earlier recording must
  match, or the writer refuses the directory.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from feeder.errors import UsageError
from feeder.recordings import npy, parquet
from feeder.recordings.files import EVENTS, META, temporaries, write_atomically

FORMAT = 1


class Store(Protocol):
    """How a storage keeps the slices of one recording directory (npy.py, parquet.py)."""

    hourly: bool  # True: a slice must not hold records of two hours
    recorded: int  # records already in the directory when it was opened

    def write(self, records: np.ndarray) -> Path: ...
    def close(self) -> None: ...


STORAGES: dict[str, Callable[[Path, np.dtype, dict[str, Any]], Store]] = {
    npy.NAME: npy.NpyStore,
    parquet.NAME: parquet.ParquetStore,
}
_SAME = ("ring", "instance", "record_type", "fingerprint", "descr", "storage")


@dataclass(frozen=True)
class Chunk:
    """A slice just written."""

    path: Path
    records: int
    first_seq: int
    last_seq: int


class RecordingWriter:
    """Appends one ring's records to a recording directory in slices of `chunk_records` or `chunk_seconds`."""

    def __init__(
        self,
        path: Path,
        meta: dict[str, Any],
        dtype: np.dtype,
        chunk_records: int,
        chunk_seconds: float,
        storage: str = npy.NAME,
    ):
        if storage not in STORAGES:
            raise UsageError(f"recording format {storage!r} is not known: use one of {', '.join(STORAGES)}")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        descr = np.lib.format.dtype_to_descr(dtype)
        self.meta = {"format": FORMAT, "storage": storage, **meta, "descr": descr}
        self._check_meta()
        self.removed_temporaries = [p.name for p in temporaries(self.path)]
        for tmp in temporaries(self.path):
            tmp.unlink()
        self._store = STORAGES[storage](self.path, dtype, self.meta)
        self.recorded = self._store.recorded
        self._buf = np.empty(chunk_records, dtype)
        self._n = 0
        self._since = 0.0
        self._hour = 0
        self._chunk_seconds = chunk_seconds
        self._events = open(self.path / EVENTS, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def _check_meta(self) -> None:
        meta_path = self.path / META
        if not meta_path.exists():
            _write_meta(meta_path, self.meta)
            return
        try:
            found = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"{meta_path} is not a recording's meta file ({exc}): use another directory"
            ) from None
        found.setdefault("storage", npy.NAME)
        if [found.get(k) for k in _SAME] != [json.loads(json.dumps(self.meta[k])) for k in _SAME]:
            raise UsageError(
                f"{self.path} holds a recording of ring {found.get('ring')!r} (instance "
                f"{found.get('instance')!r}, {found.get('record_type')} records, fingerprint "
                f"{found.get('fingerprint')}, {found['storage']} files); this ring or format differs: "
                f"record it into another directory"
            )

    def event(self, kind: str, **fields: Any) -> None:
        """Append an event; `at` places it between the records recorded before and after it."""
        line = {"event": kind, "at": self.recorded + self._n, **fields, "ts_ns": time.time_ns()}
        self._events.write(json.dumps(line) + "\n")
        self._events.flush()

    def add(self, records: np.ndarray) -> list[Chunk]:
        """Buffer records (copied); returns the slices that filled up (or ended an hour) and were written."""
        written = []
        done, n = 0, len(records)
        while done < n:
            if not self._n:
                self._since = time.monotonic()
                self._hour = parquet.hour_of(records["ts_publish"][done])
            take = min(n - done, len(self._buf) - self._n)
            if self._store.hourly:
                take = _same_hour(records["ts_publish"][done : done + take], self._hour)
            self._buf[self._n : self._n + take] = records[done : done + take]
            self._n += take
            done += take
            if self._n == len(self._buf) or done < n:  # full, or what is left belongs to a later hour
                written.append(self.flush())
        return [c for c in written if c is not None]

    def due(self, now: float) -> bool:
        """True when buffered records have waited `chunk_seconds` (time to write a slice)."""
        return self._n > 0 and now - self._since >= self._chunk_seconds

    def flush(self) -> Chunk | None:
        """Write the buffered records as the next slice, atomically; None when nothing is buffered."""
        if not self._n:
            return None
        os.fsync(self._events.fileno())
        records = self._buf[: self._n]
        path = self._store.write(records)
        chunk = Chunk(path, self._n, int(records["seq"][0]), int(records["seq"][-1]))
        self.recorded += self._n
        self._n = 0
        return chunk

    def close(self) -> Chunk | None:
        """Write what is buffered, finish the storage's open file, close the events file."""
        if self._events.closed:
            return None
        try:
            chunk = self.flush()
            self._store.close()
            return chunk
        finally:
            self._events.close()


def _same_hour(ts_publish: np.ndarray, hour: int) -> int:
    """How many of these records, from the first, belong to `hour` (or earlier: a clock that stepped back)."""
    later = np.flatnonzero(ts_publish // parquet.HOUR_NS > hour)
    return int(later[0]) if len(later) else len(ts_publish)


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    write_atomically(path, lambda f: f.write(json.dumps(meta, indent=2).encode()))
