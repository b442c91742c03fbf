"""The on-disk format of a ring recording: its writer, and its loader `load(dir) -> np.ndarray`.

A recording of one ring is a directory:

    meta.json            ring, instance, record type, schema fingerprint, numpy dtype
    chunk-00000001.npy   raw ring records (seq, flags, timestamps, payload) in ring order
    chunk-00000002.npy   ...  numbered from 1, contiguous
    events.jsonl         one JSON object per line: "start" (a recorder attached: a new session),
                         "lost" (a seq range the recorder could not read: it was lapped), "writer"
                         (a new writer epoch: a restarted worker); `at` = records recorded before it

Rules kept here:
- A chunk is written to a hidden temporary file, synced to disk, then renamed: a `chunk-*.npy` name
  always holds a complete file. A crash leaves at most a `.tmp` file, which the loader ignores and the
  next recorder in that directory removes. Events are synced before the chunk that follows them.
- A recorder restarted in the same directory continues after the last chunk, as a new session.
- The loader checks seq continuity within each session: every missing seq must lie in a recorded
  "lost" range. A missing or damaged chunk, or records out of order, is a RecordingError naming it.

    python -m consumers.recording OUT/book.BTC      # summary of a recording (or of every ring in OUT)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from feeder import FeederError, UsageError

META, EVENTS = "meta.json", "events.jsonl"
FORMAT = 1
_CHUNK_RE = re.compile(r"^chunk-(\d{8})\.npy$")
_TMP_SUFFIX = ".tmp"


class RecordingError(FeederError):
    """A recording is incomplete, damaged or inconsistent; the message names the file or seq range."""


def chunk_name(number: int) -> str:
    return f"chunk-{number:08d}.npy"


def _chunks(path: Path) -> list[tuple[int, Path]]:
    found = ((_CHUNK_RE.match(p.name), p) for p in path.iterdir())
    return sorted((int(m.group(1)), p) for m, p in found if m)


def _temporaries(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.name.startswith(".") and p.name.endswith(_TMP_SUFFIX))


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, write: Any) -> None:
    """Write via a hidden temporary file in the same directory, sync it, then rename it into place."""
    tmp = path.with_name(f".{path.name}{_TMP_SUFFIX}")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _sync_dir(path.parent)


# --- writing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """A chunk just written."""

    path: Path
    records: int
    first_seq: int
    last_seq: int


class RecordingWriter:
    """Appends one ring's records to a recording directory in chunks of `chunk_records` or `chunk_seconds`."""

    def __init__(
        self, path: Path, meta: dict[str, Any], dtype: np.dtype, chunk_records: int, chunk_seconds: float
    ):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.meta = {"format": FORMAT, **meta, "descr": np.lib.format.dtype_to_descr(dtype)}
        self._check_meta()
        self.removed_temporaries = [p.name for p in _temporaries(self.path)]
        for tmp in _temporaries(self.path):
            tmp.unlink()
        chunks = _chunks(self.path)
        self._next = chunks[-1][0] + 1 if chunks else 1
        self.recorded = sum(len(np.load(p, mmap_mode="r")) for _, p in chunks)
        self._buf = np.empty(chunk_records, dtype)
        self._n = 0
        self._since = 0.0
        self._chunk_seconds = chunk_seconds
        self._events = open(self.path / EVENTS, "a", encoding="utf-8")  # noqa: SIM115 (kept open: closed in close())

    def _check_meta(self) -> None:
        meta_path = self.path / META
        if not meta_path.exists():
            _write_atomically(meta_path, lambda f: f.write(json.dumps(self.meta, indent=2).encode()))
            return
        try:
            found = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"{meta_path} is not a recording's meta file ({exc}): use another directory"
            ) from None
        keys = ("ring", "instance", "record_type", "fingerprint", "descr")
        if [found.get(k) for k in keys] != [json.loads(json.dumps(self.meta[k])) for k in keys]:
            raise UsageError(
                f"{self.path} holds a recording of ring {found.get('ring')!r} (instance "
                f"{found.get('instance')!r}, {found.get('record_type')} records, fingerprint "
                f"{found.get('fingerprint')}); this ring differs: record it into another directory"
            )

    def event(self, kind: str, **fields: Any) -> None:
        """Append an event; `at` places it between the records recorded before and after it."""
        line = {"event": kind, "at": self.recorded + self._n, **fields, "ts_ns": time.time_ns()}
        self._events.write(json.dumps(line) + "\n")
        self._events.flush()

    def add(self, records: np.ndarray) -> list[Chunk]:
        """Buffer records (copied); returns the chunks that filled up and were written."""
        written = []
        done, n = 0, len(records)
        while done < n:
            if not self._n:
                self._since = time.monotonic()
            take = min(n - done, len(self._buf) - self._n)
            self._buf[self._n : self._n + take] = records[done : done + take]
            self._n += take
            done += take
            if self._n == len(self._buf):
                written.append(self.flush())
        return written

    def due(self, now: float) -> bool:
        """True when buffered records have waited `chunk_seconds` (time to write a chunk)."""
        return self._n > 0 and now - self._since >= self._chunk_seconds

    def flush(self) -> Chunk | None:
        """Write the buffered records as the next chunk, atomically; None when nothing is buffered."""
        if not self._n:
            return None
        os.fsync(self._events.fileno())
        records = self._buf[: self._n]
        path = self.path / chunk_name(self._next)
        _write_atomically(path, lambda f: np.lib.format.write_array(f, records, allow_pickle=False))
        chunk = Chunk(path, self._n, int(records["seq"][0]), int(records["seq"][-1]))
        self._next += 1
        self.recorded += self._n
        self._n = 0
        return chunk

    def close(self) -> Chunk | None:
        """Write what is buffered and close the events file."""
        if self._events.closed:
            return None
        try:
            return self.flush()
        finally:
            self._events.close()


# --- loading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """What one recorder attach recorded: from `start_seq` on, `records` records and `lost` lost."""

    start_seq: int
    records: int
    lost: int
    first_seq: int | None
    last_seq: int | None


@dataclass(frozen=True)
class Recording:
    """A loaded recording and what its loader found."""

    path: Path
    meta: dict[str, Any]
    records: np.ndarray
    chunks: int
    sessions: list[Session]
    losses: list[tuple[int, int]]  # (first seq, count) the recorder could not read, in order
    writers: list[int]  # writer epochs that started during the recording
    unexplained: list[str] = field(default_factory=list)  # continuity failures: the recording is damaged
    notes: list[str] = field(default_factory=list)  # harmless leftovers (a crash's temporary file...)

    @property
    def lost(self) -> int:
        return sum(count for _, count in self.losses)

    def summary(self) -> dict[str, Any]:
        seqs = self.records["seq"]
        return {
            "path": str(self.path),
            "ring": self.meta.get("ring"),
            "instance": self.meta.get("instance"),
            "record_type": self.meta.get("record_type"),
            "records": len(self.records),
            "chunks": self.chunks,
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


def load(path: str | Path) -> np.ndarray:
    """The records of a recording, in order; RecordingError if seqs are missing that no recorded loss explains."""
    rec = read(path)
    if rec.unexplained:
        raise RecordingError(f"recording {rec.path} is damaged: " + "; ".join(rec.unexplained[:5]))
    return rec.records


def read(path: str | Path) -> Recording:
    """A recording with its losses, sessions and any continuity failures (see `load` for the strict form)."""
    path = Path(path)
    meta = _read_meta(path)
    dtype = np.lib.format.descr_to_dtype(_descr(meta["descr"]))
    chunks = _chunks(path)
    notes = [
        f"ignored {p.name}: an unfinished chunk (the recorder stopped while writing it)"
        for p in _temporaries(path)
    ]
    numbers = [n for n, _ in chunks]
    if numbers != list(range(1, len(numbers) + 1)):
        absent = sorted(set(range(1, (numbers[-1] if numbers else 0) + 1)) - set(numbers))
        raise RecordingError(
            f"recording {path}: chunk files missing: {', '.join(chunk_name(n) for n in absent)}"
        )
    parts = [_load_chunk(p, dtype) for _, p in chunks]
    records = np.concatenate(parts) if parts else np.empty(0, dtype)
    events, torn = _read_events(path)
    if torn:
        notes.append(f"ignored a torn last line of {EVENTS} (the recorder stopped while writing it)")
    return _verify(path, meta, records, len(chunks), events, notes)


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = path / META
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise RecordingError(f"{path} is not a recording: no {META}") from None
    except ValueError as exc:
        raise RecordingError(f"{meta_path} is not valid JSON: {exc}") from None
    if meta.get("format") != FORMAT or "descr" not in meta:
        raise RecordingError(f"{meta_path}: format {meta.get('format')!r} is not {FORMAT}, or no descr")
    return meta


def _descr(value: list) -> list:
    """JSON turned the (flat) dtype description's tuples into lists; numpy wants tuples back."""
    return [tuple(tuple(v) if isinstance(v, list) else v for v in item) for item in value]


def _load_chunk(path: Path, dtype: np.dtype) -> np.ndarray:
    try:
        part = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise RecordingError(f"chunk {path} cannot be loaded ({exc}): the file is damaged") from None
    if part.dtype != dtype or part.ndim != 1:
        raise RecordingError(f"chunk {path} holds {part.dtype} x {part.shape}, not the recording's records")
    return part


def _read_events(path: Path) -> tuple[list[dict], bool]:
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


def _verify(
    path: Path, meta: dict, records: np.ndarray, chunks: int, events: list[dict], notes: list[str]
) -> Recording:
    groups: list[tuple[dict, dict[int, int]]] = []  # (start event, {first lost seq: count}) per session
    for e in events:
        if e.get("event") == "start":
            groups.append((e, {}))
        elif e.get("event") == "lost" and groups:
            groups[-1][1][e["first"]] = e["count"]
    if len(records) and (not groups or groups[0][0]["at"] != 0):
        raise RecordingError(f"recording {path}: {EVENTS} has no start event for its first record")
    bounds = [start["at"] for start, _ in groups[1:]] + [len(records)] * bool(groups)
    sessions, unexplained = [], []
    for (start, lost), end in zip(groups, bounds, strict=True):
        seqs = records["seq"][start["at"] : end].astype(np.int64)
        unexplained += _holes(seqs, start["seq"], lost)
        first, last = (int(seqs[0]), int(seqs[-1])) if len(seqs) else (None, None)
        sessions.append(Session(start["seq"], len(seqs), sum(lost.values()), first, last))
    losses = [(e["first"], e["count"]) for e in events if e.get("event") == "lost"]
    writers = [e["epoch"] for e in events if e.get("event") == "writer"]
    return Recording(path, meta, records, chunks, sessions, losses, writers, unexplained, notes)


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


# --- command line --------------------------------------------------------------------------------


def recordings_in(path: Path) -> list[Path]:
    """`path` if it is a recording, else the recordings directly inside it."""
    if (path / META).exists():
        return [path]
    return sorted(p for p in path.iterdir() if (p / META).exists()) if path.is_dir() else []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m consumers.recording",
        description="Load recordings made by consumers.recorder, verify them and print a summary as JSON.",
        epilog="exit status 1 when a recording is damaged (seqs missing that no recorded loss explains).",
    )
    p.add_argument(
        "paths", nargs="+", metavar="DIR", help="a ring's recording directory, or the recorder's OUT"
    )
    ns = p.parse_args(argv)
    status = 0
    for given in ns.paths:
        found = recordings_in(Path(given))
        if not found:
            print(f"python -m consumers.recording: no recording in {given}", file=sys.stderr)
            status = 1
        for path in found:
            try:
                summary = read(path).summary()
            except RecordingError as exc:
                summary = {"path": str(path), "ok": False, "error": str(exc)}
            status = status or (0 if summary["ok"] else 1)
            print(json.dumps(summary, indent=2), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
