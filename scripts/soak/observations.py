"""What a soak consumer logs for every book record (and trade record) it reads, and the book hash it logs.

Rules kept here:
- One observation per record read, in read order, as a fixed-size numpy record (`OBS` for books,
  `TRADE_OBS` for trades, in a log of their own); a consumer's log is these records back to back, so
  a log cut short by a crash loses at most its last record.
- The hash is the simulator's `book_hash` (feeder.sim.truth) over the record's four level arrays.
  Those arrays lie back to back in a book record (bid_px, bid_sz, ask_px, ask_sz, little-endian f8),
  so the hash is blake2b over one byte range of the record; `LEVELS_START`/`LEVELS_END` are taken
  from the schema and the layout is checked at import, so a schema change cannot silently break it.
"""

from __future__ import annotations

import json
from hashlib import blake2b
from pathlib import Path
from typing import IO, Any

import numpy as np

from feeder import record_schema

BOOK = record_schema("book").dtype
_ARRAYS = ("bid_px", "bid_sz", "ask_px", "ask_sz")


def _levels_range() -> tuple[int, int]:
    offsets = [BOOK.fields[name][1] for name in _ARRAYS]
    sizes = [BOOK.fields[name][0].itemsize for name in _ARRAYS]
    for i in range(1, len(_ARRAYS)):
        if offsets[i] != offsets[i - 1] + sizes[i - 1]:
            raise RuntimeError(
                f"book record arrays {_ARRAYS} are no longer contiguous: the soak hash needs them"
            )
    return offsets[0], offsets[-1] + sizes[-1]


LEVELS_START, LEVELS_END = _levels_range()

OBS = np.dtype(
    [
        ("seq", "<u8"),
        ("change_id", "<i8"),
        ("prev_change_id", "<i8"),
        ("hash", "<u8"),
        ("ts_exchange", "<i8"),
        ("ts_recv", "<i8"),
        ("ts_publish", "<i8"),
        ("read_ns", "<i8"),
        ("flags", "<u4"),
        ("ring", "<u2"),
    ],
    align=True,
)
_COPIED = ("seq", "change_id", "prev_change_id", "ts_exchange", "ts_recv", "ts_publish", "flags")


def level_hash(levels: bytes | memoryview) -> int:
    """book_hash of a record's level bytes (`LEVELS_START:LEVELS_END`)."""
    return int.from_bytes(blake2b(levels, digest_size=8).digest(), "little")


def record_hash(record: np.void | np.ndarray) -> int:
    """book_hash of one book record."""
    return level_hash(record.tobytes()[LEVELS_START:LEVELS_END])


class ObservationLog:
    """Keeps the bytes of the records read and turns them into observations in bulk when flushing:
    the read loop only appends bytes (well under a microsecond a batch); field extraction is
    vectorised and hashing runs once per chunk."""

    def __init__(self, file: IO[bytes], chunk: int = 1 << 14):
        self.file, self.chunk = file, chunk
        self.raw = bytearray()
        self.batches: list[tuple[int, int, int]] = []  # (ring, records, read_ns)
        self.used = 0
        self.written = 0

    def add(self, ring: int, records: np.ndarray, read_ns: int) -> None:
        """Log a batch of book records read from ring number `ring` at `read_ns`."""
        self.raw += records.tobytes()
        self.batches.append((ring, len(records), read_ns))
        self.used += len(records)
        if self.used >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if not self.used:
            return
        self.file.write(observe(self.raw, self.batches).tobytes())
        self.file.flush()
        self.written += self.used
        self.raw, self.batches, self.used = bytearray(), [], 0


def observe(raw: bytes | bytearray, batches: list[tuple[int, int, int]]) -> np.ndarray:
    """Observations of back-to-back book records, read in `batches` of (ring, records, read_ns)."""
    records = np.frombuffer(raw, BOOK)
    out = np.zeros(len(records), OBS)
    for name in _COPIED:
        out[name] = records[name]
    meta = np.array(batches, np.int64).reshape(-1, 3)
    out["ring"] = np.repeat(meta[:, 0], meta[:, 1])
    out["read_ns"] = np.repeat(meta[:, 2], meta[:, 1])
    view, size = memoryview(raw), BOOK.itemsize
    out["hash"] = [level_hash(view[i + LEVELS_START : i + LEVELS_END]) for i in range(0, len(raw), size)]
    return out


TRADE = record_schema("trade").dtype
TRADE_OBS = np.dtype(
    [
        ("seq", "<u8"),
        ("trade_seq", "<i8"),
        ("amount", "<f8"),
        ("ts_recv", "<i8"),
        ("read_ns", "<i8"),
        ("flags", "<u4"),
        ("ring", "<u2"),
    ],
    align=True,
)


class TradeLog:
    """Trade observations (no hashing: a few fields copied per record), flushed like ObservationLog."""

    def __init__(self, file: IO[bytes]):
        self.file = file
        self.pending: list[np.ndarray] = []

    def add(self, ring: int, records: np.ndarray, read_ns: int) -> None:
        out = np.zeros(len(records), TRADE_OBS)
        for name in ("seq", "trade_seq", "amount", "ts_recv", "flags"):
            out[name] = records[name]
        out["ring"], out["read_ns"] = ring, read_ns
        self.pending.append(out)

    def flush(self) -> None:
        if self.pending:
            self.file.write(np.concatenate(self.pending).tobytes())
            self.file.flush()
            self.pending = []


def load_trades(path: str | Path) -> np.ndarray:
    """A consumer's trade observation log."""
    data = Path(path).read_bytes()
    return np.frombuffer(data, TRADE_OBS, len(data) // TRADE_OBS.itemsize).copy()


def load_observations(path: str | Path) -> np.ndarray:
    """A consumer's observation log (a trailing partial record, from a crash, is ignored)."""
    data = Path(path).read_bytes()
    return np.frombuffer(data, OBS, len(data) // OBS.itemsize).copy()


def write_summary(path: str | Path, summary: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(summary, indent=1))


def read_summary(path: str | Path) -> dict[str, Any] | None:
    """A consumer's exit summary, None if it wrote none (it was killed)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
