"""Latency samples in a bounded window (a preallocated circular buffer) and their percentiles.

Adding a sample is a store into a fixed numpy array: no allocation, memory bounded by `size`. Summaries
(p50/p99/p99.9, last, count, max over the window) are computed on demand, off the hot path, and only
again once a sample was added (a heartbeat asks for them ten times a second).
"""

from __future__ import annotations

import numpy as np


class LatencyWindow:
    def __init__(self, size: int):
        self._buf = np.zeros(size, dtype=np.float64)
        self._size = size
        self._i = 0
        self.count = 0  # samples ever added
        self.last = 0.0
        self._summary: tuple[int, dict[str, float | int]] | None = None  # (count, summary) last computed

    def add(self, value: float) -> None:
        self._buf[self._i] = value
        self._i = (self._i + 1) % self._size
        self.count += 1
        self.last = value

    def summary(self) -> dict[str, float | int]:
        """p50/p99/p999/max over the window, last sample and total count (zeros when empty)."""
        if self._summary is not None and self._summary[0] == self.count:
            return dict(self._summary[1])
        n = min(self.count, self._size)
        if n == 0:
            return {"count": 0, "window": 0, "last": 0.0, "p50": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
        window = self._buf[:n]
        p50, p99, p999 = np.percentile(window, [50.0, 99.0, 99.9])
        summary: dict[str, float | int] = {
            "count": self.count,
            "window": n,
            "last": self.last,
            "p50": float(p50),
            "p99": float(p99),
            "p999": float(p999),
            "max": float(window.max()),
        }
        self._summary = (self.count, summary)
        return dict(summary)
