"""The simulator's truth log as numpy arrays: every book change per instrument, every send per channel.

The log's format is the simulator's (feeder/sim/truth.py): `B <instrument> <change_id> <prev> <ts_ms>
<hash>` for every book change, `S <channel> <change_id> <prev> <send_ns>` for every book frame handed
to a subscriber's socket, `T <instrument> <trade_seq> <amount>` for every public trade. A 10-minute soak writes millions of lines, so the file is parsed in chunks
into arrays (`feeder.sim.read_truth_log` builds dicts, fine for tests, too big here).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CHUNK_LINES = 1 << 20


@dataclass(frozen=True)
class BookTruth:
    """One instrument's book changes in change_id order; `initial` is the change_id before the first."""

    change_id: np.ndarray  # int64, strictly increasing
    prev: np.ndarray  # int64
    hash: np.ndarray  # uint64, book_hash of the top 10 after the change
    initial: int

    def count_in(self, lo: np.ndarray | int, hi: np.ndarray | int) -> np.ndarray:
        """How many changes have lo < change_id <= hi (0 where hi <= lo)."""
        ids = self.change_id
        n = np.searchsorted(ids, hi, "right") - np.searchsorted(ids, lo, "right")
        return np.maximum(n, 0)

    def ids_in(self, lo: int, hi: int) -> np.ndarray:
        """The change_ids with lo < change_id <= hi."""
        ids = self.change_id
        return ids[np.searchsorted(ids, lo, "right") : np.searchsorted(ids, hi, "right")]


@dataclass(frozen=True)
class Sends:
    """The book frames sent on one channel, sorted by (change_id, send_ns)."""

    change_id: np.ndarray  # int64
    send_ns: np.ndarray  # int64


@dataclass(frozen=True)
class TradeTruth:
    """One instrument's public trades, by trade_seq."""

    trade_seq: np.ndarray  # int64, strictly increasing
    amount: np.ndarray  # float64

    def amounts(self, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(known mask, amount where known) for each trade_seq."""
        idx = np.minimum(np.searchsorted(self.trade_seq, seqs), max(len(self.trade_seq) - 1, 0))
        known = (self.trade_seq[idx] == seqs) if len(self.trade_seq) else np.zeros(len(seqs), bool)
        return known, np.where(known, self.amount[idx] if len(self.amount) else 0.0, 0.0)


NO_TRADES = TradeTruth(np.zeros(0, np.int64), np.zeros(0, np.float64))


@dataclass(frozen=True)
class Truth:
    books: dict[str, BookTruth]  # by instrument name
    sends: dict[str, Sends]  # by channel name
    trades: dict[str, TradeTruth] = field(default_factory=dict)  # by instrument name


def trade_truth(trade_seq: Iterable[int], amount: Iterable[float]) -> TradeTruth:
    seqs, amounts = _array(trade_seq, np.int64), _array(amount, np.float64)
    order = np.argsort(seqs, kind="stable")
    return TradeTruth(seqs[order], amounts[order])


def book_truth(change_id: Iterable[int], prev: Iterable[int], hashes: Iterable[int]) -> BookTruth:
    """A BookTruth from columns in publication order."""
    ids, prevs, hs = _array(change_id, np.int64), _array(prev, np.int64), _array(hashes, np.uint64)
    order = np.argsort(ids, kind="stable")
    initial = int(prevs[order[0]]) if len(ids) else 0
    return BookTruth(ids[order], prevs[order], hs[order], initial)


def sends(change_id: Iterable[int], send_ns: Iterable[int]) -> Sends:
    """Sends from columns in any order."""
    ids, ns = _array(change_id, np.int64), _array(send_ns, np.int64)
    order = np.lexsort((ns, ids))
    return Sends(ids[order], ns[order])


def _array(values: Iterable[int], dtype: type) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(dtype, copy=False)
    return np.fromiter(values, dtype)


class _Columns:
    """Per-key string columns of the current chunk, turned into arrays chunk by chunk."""

    def __init__(self, width: int, kinds: tuple[type, ...]):
        self.kinds = kinds
        self.pending: dict[str, list[list[str]]] = defaultdict(lambda: [[] for _ in range(width)])
        self.done: dict[str, list[list[np.ndarray]]] = defaultdict(lambda: [[] for _ in range(width)])

    def add(self, key: str, values: list[str]) -> None:
        for column, value in zip(self.pending[key], values, strict=True):
            column.append(value)

    def convert(self) -> None:
        for key, columns in self.pending.items():
            for done, column, kind in zip(self.done[key], columns, self.kinds, strict=True):
                done.append(np.array(column).astype(kind))
        self.pending.clear()

    def arrays(self) -> dict[str, list[np.ndarray]]:
        self.convert()
        return {key: [np.concatenate(c) for c in columns] for key, columns in self.done.items()}


def load_truth(path: str | Path) -> Truth:
    """Parse a simulator truth log file."""
    changes = _Columns(3, (np.int64, np.int64, np.uint64))
    sent = _Columns(2, (np.int64, np.int64))
    trades = _Columns(2, (np.int64, np.float64))
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) == 6 and parts[0] == "B":
                changes.add(parts[1], [parts[2], parts[3], parts[5]])
            elif len(parts) == 5 and parts[0] == "S":
                sent.add(parts[1], [parts[2], parts[4]])
            elif len(parts) == 4 and parts[0] == "T":
                trades.add(parts[1], [parts[2], parts[3]])
            if n % CHUNK_LINES == 0:
                changes.convert()
                sent.convert()
                trades.convert()
    books = {inst: book_truth(*cols) for inst, cols in changes.arrays().items()}
    return Truth(
        books,
        {channel: sends(*cols) for channel, cols in sent.arrays().items()},
        {inst: trade_truth(*cols) for inst, cols in trades.arrays().items()},
    )
