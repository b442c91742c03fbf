"""Rate limiting as arithmetic: a credit bucket, cost functions, a FIFO admission queue, pressure levels.

A bucket holds up to `capacity` credits and refills at `refill_per_s`. A request costs what the cost
function says for its method (Deribit-like credit classes, Binance weights, or a flat cost), drawn from
the default bucket or a named one (venues that limit classes of requests separately), and may go when
that bucket holds that much. `refill`/`take` are plain functions on (tokens, last) so the same
arithmetic runs on a local object (`TokenBucket`) and on state shared between processes
(feeder.client.sharedbucket).

The queue is strictly first in, first out: a request that finds others waiting queues behind them even
if it could afford to go, so an order is never overtaken by a later request (at the price of a cheap
request waiting behind an expensive one). A full queue rejects; nothing is dropped silently.
Pressure: none (nobody waits), low (queue ≤ 25 % full), medium (≤ 75 %), high (above).
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from feeder.errors import ConfigError, RateLimited, UsageError

DEFAULT = "default"  # the bucket a plain number of credits is charged to
Charge = float | tuple[str, float]  # credits, or (bucket name, credits)
CostFunction = Callable[[str], Charge]
CostSpec = CostFunction | Mapping[str, float] | float | int

PRESSURE_LEVELS = ("none", "low", "medium", "high")


# --- bucket arithmetic ---------------------------------------------------------------------------


def refill(tokens: float, last: float, now: float, capacity: float, rate: float) -> float:
    """Tokens after refilling from `last` to `now` (never above capacity; time going back adds none)."""
    return min(capacity, tokens + max(0.0, now - last) * rate)


def wait_for(tokens: float, cost: float, rate: float) -> float:
    """Seconds until `tokens` reaches `cost` at `rate` (0 when it already has)."""
    return 0.0 if tokens >= cost else (cost - tokens) / rate


class Bucket(Protocol):
    """What the limiter needs from a bucket, local or shared between processes."""

    capacity: float
    refill_per_s: float

    def take_or_wait(self, cost: float, now: float, reserve: float = 0.0) -> float:
        """Take `cost` and return 0.0 if `cost + reserve` is there, else take nothing and return the
        seconds to wait."""
        ...

    def force_take(self, cost: float, now: float) -> None:
        """Take `cost` even into debt (for replies that must go at once, e.g. heartbeat answers)."""
        ...

    def drain(self, now: float) -> float:
        """Empty the bucket (the server said we overspent); return seconds until it is full again."""
        ...

    def level(self, now: float) -> float:
        """Credits available at `now`."""
        ...


@dataclass
class TokenBucket:
    """A bucket private to one process."""

    capacity: float
    refill_per_s: float
    tokens: float
    last: float

    @classmethod
    def full(cls, capacity: float, refill_per_s: float, now: float) -> TokenBucket:
        return cls(capacity, refill_per_s, capacity, now)

    def _refill(self, now: float) -> None:
        self.tokens = refill(self.tokens, self.last, now, self.capacity, self.refill_per_s)
        self.last = max(self.last, now)

    def take_or_wait(self, cost: float, now: float, reserve: float = 0.0) -> float:
        self._refill(now)
        wait = wait_for(self.tokens, cost + reserve, self.refill_per_s)
        if wait == 0.0:
            self.tokens -= cost
        return wait

    def force_take(self, cost: float, now: float) -> None:
        self._refill(now)
        self.tokens -= cost

    def drain(self, now: float) -> float:
        self._refill(now)
        self.tokens = min(self.tokens, 0.0)
        return wait_for(self.tokens, self.capacity, self.refill_per_s)

    def level(self, now: float) -> float:
        self._refill(now)
        return self.tokens


# --- cost functions ------------------------------------------------------------------------------


def flat(cost: float = 1.0) -> CostFunction:
    """Every method costs the same."""
    return lambda _method: cost


def table(costs: Mapping[str, Charge], default: Charge) -> CostFunction:
    """Cost by method from a table; keys may be exact names or glob patterns (`private/get_*`).

    Exact names win over patterns; among patterns the longest (most specific) wins. Values are credits
    or (bucket name, credits). Binance-style weights are a table of exact endpoints; Deribit-style
    credit classes are a few patterns.
    """
    exact = {k: v for k, v in costs.items() if not _is_pattern(k)}
    patterns = sorted(((k, v) for k, v in costs.items() if _is_pattern(k)), key=lambda kv: -len(kv[0]))
    cache: dict[str, Charge] = {}

    def cost(method: str) -> Charge:
        found = cache.get(method)
        if found is None:
            found = exact.get(method)
            if found is None:
                found = next((v for k, v in patterns if fnmatch.fnmatchcase(method, k)), default)
            cache[method] = found
        return found

    return cost


def _is_pattern(key: str) -> bool:
    return any(c in key for c in "*?[")


def cost_function(spec: CostSpec, field: str = "cost") -> CostFunction:
    """Accept a callable, a table (with an optional "*" default key) or a number; reject anything else."""
    if callable(spec):
        return spec
    if isinstance(spec, Mapping):
        default = spec.get("*", 1.0)
        return table({k: v for k, v in spec.items() if k != "*"}, default)
    if isinstance(spec, int | float) and not isinstance(spec, bool) and spec >= 0:
        return flat(float(spec))
    raise ConfigError(
        field, spec, "expected a callable method -> cost, a {method: cost} table, or a number ≥ 0"
    )


# --- admission queue -----------------------------------------------------------------------------


def pressure(queued: int, max_queue: int) -> str:
    """Pressure level from how full the waiting queue is."""
    if queued <= 0:
        return "none"
    fill = queued / max_queue
    return "low" if fill <= 0.25 else "medium" if fill <= 0.75 else "high"


@dataclass(slots=True)
class Waiting:
    method: str
    bucket: str
    cost: float
    ticket: Any  # whatever the I/O shell wakes when the request may go (an asyncio future)


class Limiter:
    """FIFO admission in front of one or more named buckets. Pure: the caller supplies `now` and acts
    on the answers.

    The cost function returns credits from the "default" bucket, or (bucket name, credits) for a venue
    that limits classes of requests separately (Deribit's matching engine vs everything else). The queue
    is one for all buckets, so the order of requests is kept across classes.

    `reserve` credits (per bucket) are kept back from queued requests for replies that cannot wait (an
    answer to the exchange's heartbeat must go at once, and an exchange that finds the account short
    then closes the session); those take with `force`.
    """

    def __init__(
        self,
        buckets: Mapping[str, Bucket] | Bucket,
        cost: Callable[[str], Charge],
        max_queue: int,
        reserve: Mapping[str, float] | None = None,
    ):
        self.buckets = dict(buckets) if isinstance(buckets, Mapping) else {DEFAULT: buckets}
        self.cost, self.max_queue = cost, max_queue
        self.reserve = dict(reserve or {})
        self.queue: deque[Waiting] = deque()
        self.admitted = 0
        self.queued_total = 0
        self.rejected = 0

    def charge(self, method: str) -> tuple[str, float]:
        """(bucket name, credits) for `method`; UsageError if the cost function names no such bucket."""
        charge = self.cost(method)
        name, cost = charge if isinstance(charge, tuple) else (DEFAULT, charge)
        if name not in self.buckets:
            raise UsageError(
                f"{method}: the cost function charges bucket {name!r}; configured buckets: "
                f"{', '.join(sorted(self.buckets))} (add it to rate_limit.buckets)"
            )
        return name, float(cost)

    def admit(self, method: str, now: float, ticket: Any = None) -> Waiting | None:
        """None when the request may go now; else it waits (returned entry); RateLimited when full."""
        name, cost = self.charge(method)
        bucket, reserve = self.buckets[name], self.reserve.get(name, 0.0)
        if cost + reserve > bucket.capacity:
            kept = f" (+{reserve:g} kept in reserve)" if reserve else ""
            raise RateLimited(
                f"{method}: costs {cost:g} credits{kept} but bucket {name!r} holds at most "
                f"{bucket.capacity:g}; the cost table or the bucket capacity is wrong"
            )
        if not self.queue and bucket.take_or_wait(cost, now, reserve) == 0.0:
            self.admitted += 1
            return None
        if len(self.queue) >= self.max_queue:
            self.rejected += 1
            raise RateLimited(
                f"{method}: rate-limit queue full ({self.max_queue} waiting); the request was not sent. "
                "Send less often or raise rate_limit.max_queue"
            )
        entry = Waiting(method, name, cost, ticket)
        self.queue.append(entry)
        self.queued_total += 1
        return entry

    def release(self, now: float) -> tuple[list[Waiting], float]:
        """Entries that may go now, in order, and the seconds until the next one can (0 if none waits)."""
        ready: list[Waiting] = []
        while self.queue:
            head = self.queue[0]
            wait = self.buckets[head.bucket].take_or_wait(head.cost, now, self.reserve.get(head.bucket, 0.0))
            if wait > 0.0:
                return ready, wait
            ready.append(self.queue.popleft())
            self.admitted += 1
        return ready, 0.0

    def force(self, method: str, now: float) -> None:
        """Charge a reply that must go now, even into debt."""
        name, cost = self.charge(method)
        self.buckets[name].force_take(cost, now)

    def drain(self, now: float) -> float:
        """The exchange said we overspent: empty every bucket; seconds until the default one is full.

        Reconnecting needs only default-bucket requests (login, heartbeat setup, restore), so that is
        what the reconnect waits for; the other classes stay empty and their queued requests wait in
        the limiter as usual. Waiting for the slowest class instead (Deribit's get_instruments: one per
        10 s, five in a burst) would keep every book dark for 50 s after one 10028.
        """
        refill = {name: b.drain(now) for name, b in self.buckets.items()}
        return refill.get(DEFAULT, max(refill.values()))

    def withdraw(self, entry: Waiting) -> None:
        """Remove a waiting entry whose caller gave up (timeout, cancel, disconnect)."""
        with contextlib.suppress(ValueError):
            self.queue.remove(entry)

    def pressure(self) -> str:
        return pressure(len(self.queue), self.max_queue)

    def stats(self, now: float) -> dict[str, Any]:
        return {
            "pressure": self.pressure(),
            "queued": len(self.queue),
            "max_queue": self.max_queue,
            "credits": {name: round(b.level(now), 3) for name, b in self.buckets.items()},
            "capacity": {name: b.capacity for name, b in self.buckets.items()},
            "admitted": self.admitted,
            "waited": self.queued_total,
            "rejected": self.rejected,
        }
