"""Ground truth: what the true top-10 book was after every change_id, and when frames were sent.

The contract consumers rely on (soak and adapter tests):

- `book_hash(bid_px, bid_sz, ask_px, ask_sz)`: blake2b with an 8-byte digest over the little-endian
  float64 bytes of the four arrays, in that order, each exactly `LEVELS` (10) long and zero padded,
  read as an unsigned little-endian integer. Those are exactly a ring book record's arrays, so
  `book_hash(r["bid_px"], r["bid_sz"], r["ask_px"], r["ask_sz"])` can be compared with the truth.
- `TruthWindow`: the recent changes of one instrument (bounded), answering the top-N book after any
  change_id still inside the window by replaying from a base book.
- The truth log (`truth_log=path`): text lines, space separated, one per event:
  `B <instrument> <change_id> <prev_change_id> <timestamp_ms> <hash>` for every book change, and
  `S <channel> <change_id> <prev_change_id> <send_ns>` for every book notification when its frame
  was handed to the first subscriber's socket (wall clock, ns), and `T <instrument> <trade_seq>
  <amount>` for every public trade (amount as the trades channel sends it). `read_truth_log` parses it.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import IO

from feeder.sim.book import Entry

LEVELS = 10
_PACK = struct.Struct(f"<{4 * LEVELS}d")


def _padded(values: Iterable[float]) -> list[float]:
    out = [float(v) for v in values][:LEVELS]
    return out + [0.0] * (LEVELS - len(out))


def book_hash(
    bid_px: Sequence[float], bid_sz: Sequence[float], ask_px: Sequence[float], ask_sz: Sequence[float]
) -> int:
    """The truth hash of a top-10 book (see the module docstring for the exact definition)."""
    data = _PACK.pack(*_padded(bid_px), *_padded(bid_sz), *_padded(ask_px), *_padded(ask_sz))
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")


class TruthError(LookupError):
    """The asked change_id is not (or no longer) known."""


class TruthWindow:
    """The last `size` changes of one instrument, replayable from checkpoints of the whole book.

    A checkpoint (the book after a change) is taken every `size // 8` changes, so recording a change
    costs an append; answering replays at most that many changes from the nearest checkpoint.
    Changes older than the oldest usable checkpoint are forgotten (TruthError).
    """

    __slots__ = ("changes", "checkpoints", "count", "every", "size")

    def __init__(self, size: int, change_id: int, bids: dict[int, int], asks: dict[int, int]):
        self.size = size
        self.every = max(16, size // 8)
        self.changes: deque[tuple[int, tuple[Entry, ...], tuple[Entry, ...]]] = deque(maxlen=size)
        self.checkpoints: deque[tuple[int, dict[int, int], dict[int, int]]] = deque()
        self.checkpoints.append((change_id, dict(bids), dict(asks)))
        self.count = 0

    def checkpoint(self, change_id: int, bids: dict[int, int], asks: dict[int, int]) -> None:
        """Remember the whole book after `change_id` (call right after recording that change)."""
        cps = self.checkpoints
        cps.append((change_id, dict(bids), dict(asks)))
        while len(cps) > 1 and not self._usable(cps[0][0]):
            cps.popleft()

    def _usable(self, change_id: int) -> bool:
        """Are all changes after `change_id` still held?"""
        return self.count <= self.size or change_id >= self.changes[0][0]

    @property
    def oldest(self) -> int:
        return next(c for c, _, _ in self.checkpoints if self._usable(c))

    @property
    def newest(self) -> int:
        return self.changes[-1][0] if self.changes else self.checkpoints[-1][0]

    def books(self, change_ids: Iterable[int]) -> Iterator[tuple[int, dict[int, int], dict[int, int]]]:
        """(change_id, bids, asks) after each asked change_id, in ascending order; one replay for all."""
        wanted = sorted(set(change_ids))
        if not wanted:
            return
        start = None
        for cp in self.checkpoints:
            if cp[0] <= wanted[0] and self._usable(cp[0]):
                start = cp
        if start is None:
            raise TruthError(
                f"change_id {wanted[0]} is older than the truth window (oldest kept: {self.oldest}); "
                "use a larger truth_window or the truth log"
            )
        base_id, bids, asks = start[0], dict(start[1]), dict(start[2])
        pos = 0
        if wanted[0] == base_id:
            yield base_id, bids, asks
            pos = 1
        for change_id, b, a in self.changes:
            if pos == len(wanted) or change_id > wanted[pos]:
                break
            if change_id <= base_id:
                continue
            _apply(bids, b)
            _apply(asks, a)
            if change_id == wanted[pos]:
                yield change_id, bids, asks
                pos += 1
        if pos < len(wanted):
            raise TruthError(
                f"no book change with change_id {wanted[pos]} (window holds {self.oldest}..{self.newest})"
            )


def _apply(levels: dict[int, int], entries: Iterable[Entry]) -> None:
    for action, price, lots in entries:
        if action == "delete":
            levels.pop(price, None)
        else:
            levels[price] = lots


def top_levels(levels: dict[int, int], is_bid: bool, n: int = LEVELS) -> list[tuple[int, int]]:
    prices = sorted(levels, reverse=is_bid)[:n]
    return [(p, levels[p]) for p in prices]


# --- the truth log ------------------------------------------------------------------------------


class TruthLog:
    """Appends B and S lines (see the module docstring) to a file; flushed on `flush`/`close`."""

    def __init__(self, path: str):
        self.path = path
        self._file: IO[str] = open(path, "a", buffering=1 << 20)  # noqa: SIM115 (closed in close())
        self._file.write(
            "# feeder-sim truth log v1: B inst change_id prev ts_ms hash | S channel change_id prev send_ns"
            " | T inst trade_seq amount\n"
        )

    def change(self, instrument: str, change_id: int, prev: int, ts_ms: int, hash_: int) -> None:
        self._file.write(f"B {instrument} {change_id} {prev} {ts_ms} {hash_}\n")

    def sent(self, channel: str, change_id: int, prev: int, send_ns: int) -> None:
        self._file.write(f"S {channel} {change_id} {prev} {send_ns}\n")

    def trade(self, instrument: str, trade_seq: int, amount: float) -> None:
        self._file.write(f"T {instrument} {trade_seq} {amount!r}\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class TruthLogEntries:
    """A parsed truth log: hashes[(instrument, change_id)], sends[channel] = [(cid, prev, ns)] and
    trades[(instrument, trade_seq)] = amount."""

    hashes: dict[tuple[str, int], int]
    prev: dict[tuple[str, int], int]
    sends: dict[str, list[tuple[int, int, int]]]
    trades: dict[tuple[str, int], float]


def read_truth_log(path: str) -> TruthLogEntries:
    """Parse a truth log file written by the simulator."""
    hashes: dict[tuple[str, int], int] = {}
    prev: dict[tuple[str, int], int] = {}
    sends: dict[str, list[tuple[int, int, int]]] = {}
    trades: dict[tuple[str, int], float] = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts or parts[0] == "#":
                continue
            if parts[0] == "B" and len(parts) == 6:
                key = (parts[1], int(parts[2]))
                hashes[key] = int(parts[5])
                prev[key] = int(parts[3])
            elif parts[0] == "S" and len(parts) == 5:
                sends.setdefault(parts[1], []).append((int(parts[2]), int(parts[3]), int(parts[4])))
            elif parts[0] == "T" and len(parts) == 4:
                trades[(parts[1], int(parts[2]))] = float(parts[3])
    return TruthLogEntries(hashes, prev, sends, trades)
