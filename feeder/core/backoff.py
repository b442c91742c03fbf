"""Reconnect delays: exponential backoff with jitter and a cap, reset once a connection proved stable.

Rules it keeps:
- attempt n (0-based) waits `initial * multiplier**n`, capped at `cap`, then jittered by ±`jitter`
  (a fraction), so a fleet of workers does not reconnect in lockstep; never below `floor` (no tight loop).
- after the exchange said "slow down" (`after_rate_limit`): the time until the credits refill, plus the
  attempt's backoff (so a reconnect refused again waits longer), plus up to `jitter` of that sum, drawn
  upward only: never before the refill, and a fleet drained at the same moment spreads out instead of
  landing together at the edge of the exchange's refusal window.
- a connection that stayed up for `stable_after` seconds resets the attempt count; one that dropped
  sooner does not, so a server that accepts and immediately drops us still backs off.
- `max_retries` consecutive failed attempts (None = unlimited) and the caller should give up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    initial: float = 0.1
    cap: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    stable_after: float = 30.0
    max_retries: int | None = None
    floor: float = 0.01
    attempts: int = 0
    _connected_at: float | None = None

    def next_delay(self, rng: random.Random) -> float:
        """Delay before the next attempt; counts the attempt."""
        base = self._base()
        spread = base * self.jitter
        return max(self.floor, base + rng.uniform(-spread, spread))

    def after_rate_limit(self, rng: random.Random, refill_s: float) -> float:
        """Delay before the next attempt when the exchange asked us to slow down and the credits are
        full again in `refill_s` seconds; counts the attempt."""
        wait = max(0.0, refill_s) + self._base()
        return max(self.floor, wait * (1.0 + rng.uniform(0.0, self.jitter)))

    def _base(self) -> float:
        base = min(self.cap, self.initial * self.multiplier ** min(self.attempts, 64))
        self.attempts += 1
        return base

    def exhausted(self) -> bool:
        """True when `max_retries` attempts in a row have failed."""
        return self.max_retries is not None and self.attempts >= self.max_retries

    def connected(self, now: float) -> None:
        self._connected_at = now

    def disconnected(self, now: float) -> None:
        """A connection ended at `now`: reset the count if it had been up long enough."""
        if self._connected_at is not None and now - self._connected_at >= self.stable_after:
            self.attempts = 0
        self._connected_at = None
