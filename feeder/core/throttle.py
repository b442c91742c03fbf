"""Counting bad input by kind and deciding when to log it: the first time, then at most once a period.

A flood of malformed frames must not become a flood of log lines (which would itself stall the worker),
yet nothing may be lost silently: every occurrence is counted, and each logged line says how many were
suppressed since the previous one.
"""

from __future__ import annotations

from collections import Counter


class LogThrottle:
    def __init__(self, period: float = 60.0):
        self.period = period
        self.counts: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}
        self._logged_count: dict[str, int] = {}

    def hit(self, kind: str, now: float) -> int | None:
        """Count one `kind`; returns how many went unlogged since the last line when it is time to log."""
        self.counts[kind] += 1
        last = self._logged_at.get(kind)
        if last is not None and now - last < self.period:
            return None
        suppressed = self.counts[kind] - self._logged_count.get(kind, 0) - 1
        self._logged_at[kind] = now
        self._logged_count[kind] = self.counts[kind]
        return suppressed
