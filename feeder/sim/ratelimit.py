"""Deribit's credit-based rate limits: pure bucket arithmetic, time passed in.

Each key (an account once authenticated, else the connection, or the client IP over HTTP) has one
bucket per kind of request, as Deribit separates them:

| bucket      | methods                                   | cost | capacity | refill / s |
|-------------|-------------------------------------------|------|----------|------------|
| default     | everything else                           | 500  | 50 000   | 10 000     |
| matching    | buy, sell, edit, cancel, cancel_all*, ... | 1000 | 20 000   | 5 000      |
| subscribe   | subscribe, unsubscribe(_all)              | 1000 | 10 000   | 3 000      |
| instruments | public/get_instruments                    | 1000 | 5 000    | 100        |

That is ~20 requests/s with a burst of 100, 5/s burst 20 for the matching engine (the account's
`matching_limit`, which `private/get_account_summary` reports), 3/s burst 10 for subscriptions and
one get_instruments per 10 s with a burst of 5. A request that finds its
bucket short is refused (the server then answers 10028 and closes the connection).
"""

from __future__ import annotations

from dataclasses import dataclass

LIMITS = {
    "default": (500, 50_000, 10_000),
    "matching": (1000, 20_000, 5_000),
    "subscribe": (1000, 10_000, 3_000),
    "instruments": (1000, 5_000, 100),
}


@dataclass(slots=True)
class Bucket:
    capacity: float
    refill: float  # credits per second
    credits: float
    at: float  # monotonic seconds of the last update

    def take(self, cost: float, now: float) -> bool:
        """Spend `cost` credits if the bucket holds them (after refilling up to `now`)."""
        self.credits = min(self.capacity, self.credits + (now - self.at) * self.refill)
        self.at = now
        if self.credits < cost:
            return False
        self.credits -= cost
        return True


class Limiter:
    """Buckets per (key, bucket name), created full on first use."""

    def __init__(self, matching_limit: tuple[float, float] = (5.0, 20.0)) -> None:
        rate, burst = matching_limit
        cost = LIMITS["matching"][0]
        self.limits = {**LIMITS, "matching": (cost, burst * cost, rate * cost)}
        self._buckets: dict[tuple[str, str], Bucket] = {}

    def allow(self, key: str, bucket: str, now: float) -> bool:
        cost, capacity, refill = self.limits[bucket]
        b = self._buckets.get((key, bucket))
        if b is None:
            b = self._buckets[(key, bucket)] = Bucket(capacity, refill, capacity, now)
        return b.take(cost, now)

    def forget(self, key: str) -> None:
        """Drop a key's buckets (a closed connection's)."""
        for k in [k for k in self._buckets if k[0] == key]:
            del self._buckets[k]
