"""Loading a recording: its records (numpy, Arrow or pandas) and what the recorder could not record.

Rules kept here:
- The loader checks seq continuity within each session (a recorder attach): every missing seq must lie
  in a recorded "lost" range. A hole nothing explains, or records going back, is `unexplained`: `read()`
  reports it, the `load*()` functions refuse the recording with a RecordingError naming the seqs.
- A missing or damaged file is a RecordingError naming it; a crash's leftovers (a temporary file, a
  torn last event line) are harmless and only noted.
- Both storages give the same records and the same accounting: npy and Parquet differ only in files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from feeder.recordings import npy, parquet
from feeder.recordings.arrow import arrow_schema, meta_strings, to_frame, to_records, to_table
from feeder.recordings.files import EVENTS, META, RecordingError, temporaries
from feeder.recordings.writer import FORMAT


@dataclass(frozen=True)
class Session:
    """What one recorder attach recorded: from `start_seq` on, `records` records and `lost` lost."""

    start_seq: int
    records: int
    lost: int
    first_seq: int | None
    last_seq: int | None


class Recording:
    """A loaded recording of one ring: its records, and what its loader found."""

    def __init__(
        self,
        path: Path,
        meta: dict[str, Any],
        data: np.ndarray | Any,
        files: int,
        events: list[dict[str, Any]],
    ):
        self.path, self.meta, self.files = path, meta, files
        self.dtype: np.dtype = np.lib.format.descr_to_dtype(_descr(meta["descr"]))
        self.storage: str = meta.get("storage", npy.NAME)
        self._records: np.ndarray | None = None
        self._table: Any = None
        if isinstance(data, np.ndarray):
            self._records, self.seqs = data, data["seq"]
        else:
            self._table, self.seqs = data, data.column("seq").to_numpy().astype(np.uint64)
        self.sessions: list[Session] = []
        self.unexplained: list[str] = []  # continuity failures: the recording is damaged
        self.notes: list[str] = []  # harmless leftovers (a crash's temporary file...)
        self.losses = [
            (e["first"], e["count"]) for e in events if e.get("event") == "lost"
        ]  # (first seq, count)
        self.writers = [e["epoch"] for e in events if e.get("event") == "writer"]  # writer epochs seen
        self._verify(events)

    @property
    def records(self) -> np.ndarray:
        """The records, exactly as the ring held them (numpy structured array of the ring's dtype)."""
        if self._records is None:
            self._records = to_records(self._table, self.dtype)
        return self._records

    def table(self) -> Any:
        """The records as a pyarrow Table (needs pyarrow), columns as in arrow.py."""
        if self._table is None:
            assert self._records is not None
            self._table = to_table(self._records, arrow_schema(self.dtype, meta_strings(self.meta)))
        return self._table

    def frame(self) -> Any:
        """The records as a pandas DataFrame (needs pyarrow and pandas)."""
        return to_frame(self.table())

    def __len__(self) -> int:
        return len(self.seqs)

    @property
    def lost(self) -> int:
        return sum(count for _, count in self.losses)

    def summary(self) -> dict[str, Any]:
        seqs = self.seqs
        return {
            "path": str(self.path),
            "ring": self.meta.get("ring"),
            "instance": self.meta.get("instance"),
            "record_type": self.meta.get("record_type"),
            "storage": self.storage,
            "records": len(seqs),
            "files": self.files,
            "sessions": len(self.sessions),
            "first_seq": int(seqs[0]) if len(seqs) else None,
            "last_seq": int(seqs[-1]) if len(seqs) else None,
            "lost": self.lost,
            "losses": [list(x) for x in self.losses],
            "writer_epochs": self.writers,
            "ok": not self.unexplained,
            "unexplained": self.unexplained,
            "notes": self.notes,
        }

    def _verify(self, events: list[dict[str, Any]]) -> None:
        groups: list[
            tuple[dict[str, Any], dict[int, int]]
        ] = []  # (start event, {first lost seq: count}) per session
        for e in events:
            if e.get("event") == "start":
                groups.append((e, {}))
            elif e.get("event") == "lost" and groups:
                groups[-1][1][e["first"]] = e["count"]
        n = len(self.seqs)
        if n and (not groups or groups[0][0]["at"] != 0):
            raise RecordingError(f"recording {self.path}: {EVENTS} has no start event for its first record")
        bounds = [start["at"] for start, _ in groups[1:]] + [n] * bool(groups)
        for (start, lost), end in zip(groups, bounds, strict=True):
            seqs = self.seqs[start["at"] : end].astype(np.int64)
            self.unexplained += _holes(seqs, start["seq"], lost)
            first, last = (int(seqs[0]), int(seqs[-1])) if len(seqs) else (None, None)
            self.sessions.append(Session(start["seq"], len(seqs), sum(lost.values()), first, last))


def read(path: str | Path) -> Recording:
    """A recording with its losses, sessions and any continuity failures (see `load` for the strict form)."""
    path = Path(path)
    meta = _read_meta(path)
    dtype = np.lib.format.descr_to_dtype(_descr(meta["descr"]))
    notes = [
        f"ignored {p.name}: an unfinished file (the recorder stopped while writing it)"
        for p in temporaries(path)
    ]
    if meta.get("storage", npy.NAME) == parquet.NAME:
        data, files = parquet.load(path, arrow_schema(dtype, meta_strings(meta)))
    else:
        data, files = npy.load(path, dtype)
    events, torn = _read_events(path)
    if torn:
        notes.append(f"ignored a torn last line of {EVENTS} (the recorder stopped while writing it)")
    recording = Recording(path, meta, data, files, events)
    recording.notes += notes
    return recording


def _strict(path: str | Path) -> Recording:
    rec = read(path)
    if rec.unexplained:
        raise RecordingError(f"recording {rec.path} is damaged: " + "; ".join(rec.unexplained[:5]))
    return rec


def load(path: str | Path) -> np.ndarray:
    """The records of a recording, in order; RecordingError if seqs are missing that no recorded loss explains
    (a damaged recording)."""
    return _strict(path).records


def load_table(path: str | Path) -> Any:
    """`load`, as a pyarrow Table (timestamps as timestamp[ns, UTC], level arrays as fixed-size lists)."""
    return _strict(path).table()


def load_frame(path: str | Path) -> Any:
    """`load`, as a pandas DataFrame (level arrays stay Arrow lists: `df.bid_px.list[0]`)."""
    return _strict(path).frame()


def recordings_in(path: str | Path) -> list[Path]:
    """`path` if it is a recording, else the recordings directly inside it (a recorder's OUT)."""
    path = Path(path)
    if (path / META).exists():
        return [path]
    return sorted(p for p in path.iterdir() if (p / META).exists()) if path.is_dir() else []


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = path / META
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise RecordingError(f"{path} is not a recording: no {META}") from None
    except ValueError as exc:
        raise RecordingError(f"{meta_path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise RecordingError(f"{meta_path} holds a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT or "descr" not in meta:
        raise RecordingError(f"{meta_path}: format {meta.get('format')!r} is not {FORMAT}, or no descr")
    if meta.get("storage", npy.NAME) not in (npy.NAME, parquet.NAME):
        raise RecordingError(f"{meta_path}: storage {meta['storage']!r} is not npy or parquet")
    return meta


def _descr(value: list[Any]) -> list[tuple[Any, ...]]:
    """JSON turned the (flat) dtype description's tuples into lists; numpy wants tuples back."""
    return [tuple(tuple(v) if isinstance(v, list) else v for v in item) for item in value]


def _read_events(path: Path) -> tuple[list[dict[str, Any]], bool]:
    try:
        lines = (path / EVENTS).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return [], False
    events = []
    for i, line in enumerate(lines):
        try:
            events.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                return events, True
            raise RecordingError(f"{path / EVENTS} line {i + 1} is not JSON: the file is damaged") from None
    return events, False


def _holes(seqs: np.ndarray, start: int, lost: dict[int, int]) -> list[str]:
    """Continuity failures of one session: jumps not covered exactly by lost ranges, and steps back."""
    steps = np.diff(np.concatenate((np.array([start - 1], np.int64), seqs)))
    out = []
    for i in np.flatnonzero(steps != 1):
        expected, got = int(seqs[i] - steps[i] + 1), int(seqs[i])
        if got < expected:
            out.append(f"seq {got} follows seq {expected - 1}: records out of order or repeated")
            continue
        pos = expected
        while pos < got and pos in lost:
            pos += lost[pos]
        if pos != got:
            out.append(f"seqs {expected}-{got - 1} are missing and no recorded loss explains them")
    return out
