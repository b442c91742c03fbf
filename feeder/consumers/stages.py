"""Per-stage latency from record timestamps: records in, percentiles out. Pure (no I/O).

Every record carries wall-clock (CLOCK_REALTIME) nanosecond timestamps; with the time it was read:

| stage          | from        | to          | what it measures                                          |
|----------------|-------------|-------------|-----------------------------------------------------------|
| exchange->recv | ts_exchange | ts_recv     | network + exchange send path. Coarse: Deribit timestamps  |
|                |             |             | are whole milliseconds, so this reads up to 1 ms high     |
| recv->publish  | ts_recv     | ts_publish  | the feeder's own work: decode, book, record, publish      |
| publish->read  | ts_publish  | read        | the ring hop, including how long the reader took to look  |
| end-to-end     | ts_exchange | read        | all of it (coarse like the first)                         |

Records without an exchange timestamp (0) are left out of the stages that need it. A window keeps
every sample (exact nearest-rank percentiles: the value at rank ceil(q% x n), one that was seen); the run goes
into a histogram of 1 % wide buckets, so a long run needs constant memory (its percentiles are the
bucket's upper bound; values <= 1 ns, including negative ones from clock offsets, share bucket 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

STAGES = ("exchange->recv", "recv->publish", "publish->read", "end-to-end")
QUANTILES = (50.0, 99.0, 99.9)
_GROWTH = 1.01
_LOG_GROWTH = math.log(_GROWTH)
_BUCKETS = math.ceil(math.log(1e12) / _LOG_GROWTH) + 1  # up to 1000 s


def rank(q: float, n: int) -> int:
    """The nearest rank (1-based) of percentile `q` among `n` values: ceil(q% x n)."""
    return max(1, math.ceil(q * n / 100 - 1e-9))


@dataclass(frozen=True)
class Stats:
    """Percentiles of one stage, nanoseconds."""

    n: int
    p50: float
    p99: float
    p99_9: float
    max: float

    def micros(self) -> dict[str, float | int]:
        us = 1e3
        return {
            "n": self.n,
            "p50_us": round(self.p50 / us, 3),
            "p99_us": round(self.p99 / us, 3),
            "p99_9_us": round(self.p99_9 / us, 3),
            "max_us": round(self.max / us, 3),
        }


class Samples:
    """A growable int64 buffer of one window's samples."""

    def __init__(self, capacity: int = 4096):
        self._buf = np.empty(capacity, np.int64)
        self._n = 0

    def extend(self, values: np.ndarray) -> None:
        need = self._n + len(values)
        if need > len(self._buf):
            grown = np.empty(max(need, 2 * len(self._buf)), np.int64)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : need] = values
        self._n = need

    def stats(self) -> Stats | None:
        if not self._n:
            return None
        values = self._buf[: self._n]
        ranks = [rank(q, self._n) - 1 for q in QUANTILES]
        p50, p99, p99_9 = (float(v) for v in np.partition(values, ranks)[ranks])
        return Stats(self._n, p50, p99, p99_9, float(values.max()))

    def clear(self) -> None:
        self._n = 0


class Histogram:
    """Counts in buckets 1 % wide (bucket i holds values up to 1.01**i ns); the exact max on the side."""

    def __init__(self) -> None:
        self.counts = np.zeros(_BUCKETS, np.int64)
        self.max: int | None = None

    def add(self, values: np.ndarray) -> None:
        if not len(values):
            return
        logs = np.log(np.maximum(values, 1).astype(np.float64)) / _LOG_GROWTH
        index = np.clip(np.ceil(logs - 1e-9), 0, _BUCKETS - 1).astype(np.intp)
        self.counts += np.bincount(index, minlength=_BUCKETS)
        top = int(values.max())
        self.max = top if self.max is None else max(self.max, top)

    def stats(self) -> Stats | None:
        n = int(self.counts.sum())
        if not n or self.max is None:
            return None
        cumulative = np.cumsum(self.counts)
        p50, p99, p99_9 = (
            min(_GROWTH ** int(np.searchsorted(cumulative, rank(q, n))), float(self.max)) for q in QUANTILES
        )
        return Stats(n, p50, p99, p99_9, float(self.max))


class StageLatency:
    """The four stages, for the current window (exact) and for the whole run (histogram)."""

    def __init__(self) -> None:
        self.window = {stage: Samples() for stage in STAGES}
        self.total = {stage: Histogram() for stage in STAGES}

    def add(self, records: np.ndarray, read_ns: int) -> None:
        """Take a batch of records read at `read_ns` (ns since the epoch)."""
        if not len(records):
            return
        exchange = records["ts_exchange"]
        known = exchange != 0
        recv, publish = records["ts_recv"], records["ts_publish"]
        stages = (
            (recv - exchange)[known],
            publish - recv,
            read_ns - publish,
            (read_ns - exchange)[known],
        )
        for stage, values in zip(STAGES, stages, strict=True):
            self.window[stage].extend(values)
            self.total[stage].add(values)

    def close_window(self) -> dict[str, Stats | None]:
        """The current window's stats per stage; starts a new window."""
        out = {stage: samples.stats() for stage, samples in self.window.items()}
        for samples in self.window.values():
            samples.clear()
        return out

    def totals(self) -> dict[str, Stats | None]:
        return {stage: hist.stats() for stage, hist in self.total.items()}
