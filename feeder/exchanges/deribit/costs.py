"""Deribit's request limits (per sub-account), as data, and the credit table for the client's limiter.

Deribit's model:
- non-matching-engine requests: 500 credits each from a bucket of 50,000 refilled at 10,000/s
  (20 requests/s sustained, bursts of 100);
- matching-engine requests (`MATCHING_ENGINE`: buy, sell, edit, cancel, cancel_all*, close_position,
  mass_quote ...): their own limit, by account tier (`TIERS`, from 7-day volume; tier 4 is the
  lowest: 5 requests/s, bursts of 20);
- a few methods have tighter limits of their own (`SPECIAL`): subscribe about 3/s (bursts of 10;
  unsubscribe is counted with it here, to be safe), get_instruments 1 per 10 s (bursts of 5).
Running out answers 10028 too_many_requests and ends the session.

The connection client has one credit bucket. `DeribitCosts.rate_limit()` builds one that keeps every
class within its own limit on its own: a method of a class limited to `rate`/s with bursts of `burst`
costs max(capacity / burst, refill / rate) credits. That is exact for non-matching requests and
conservative for the others (they share the bucket, so together they are slower than Deribit allows,
never faster), with one exception: a cost cannot exceed the bucket, so get_instruments (which would
need two bucketfuls) costs one and may go once per 5 s instead of once per 10 s. The feeder never calls
it; callers that do must space it. Pass `shared_dir` so every worker of a feeder draws from one bucket
(the limits are per account, not per connection).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from feeder.client import RateLimit
from feeder.errors import ConfigError


@dataclass(frozen=True)
class Limit:
    """At most `rate` requests per second sustained, `burst` at once."""

    rate: float
    burst: float


NON_MATCHING_COST = 500.0
NON_MATCHING_CAPACITY = 50_000.0
NON_MATCHING_REFILL = 10_000.0
NON_MATCHING = Limit(NON_MATCHING_REFILL / NON_MATCHING_COST, NON_MATCHING_CAPACITY / NON_MATCHING_COST)

TIERS: Mapping[int, Limit] = MappingProxyType(
    {1: Limit(30.0, 100.0), 2: Limit(20.0, 50.0), 3: Limit(10.0, 30.0), 4: Limit(5.0, 20.0)}
)

# Tagged "Matching Engine" in reference/deribit/openapi.json (tests check this list against it).
MATCHING_ENGINE = frozenset(
    {
        "private/buy",
        "private/sell",
        "private/edit",
        "private/edit_by_label",
        "private/cancel",
        "private/cancel_all",
        "private/cancel_all_by_instrument",
        "private/cancel_all_by_currency",
        "private/cancel_all_by_currency_pair",
        "private/cancel_all_by_kind_or_type",
        "private/cancel_by_label",
        "private/cancel_quotes",
        "private/close_position",
        "private/mass_quote",
        "private/move_positions",
        "private/get_mmp_config",
        "private/get_mmp_status",
        "private/set_mmp_config",
        "private/reset_mmp",
        "private/create_combo",
        "private/simulate_block_trade",
        "private/verify_block_trade",
        "private/execute_block_trade",
    }
)

SPECIAL: Mapping[str, Limit] = MappingProxyType(
    {
        "public/subscribe": Limit(3.0, 10.0),
        "private/subscribe": Limit(3.0, 10.0),
        "public/unsubscribe": Limit(3.0, 10.0),
        "private/unsubscribe": Limit(3.0, 10.0),
        "public/unsubscribe_all": Limit(3.0, 10.0),
        "private/unsubscribe_all": Limit(3.0, 10.0),
        "public/get_instruments": Limit(0.1, 5.0),
    }
)


@dataclass(frozen=True)
class DeribitCosts:
    """Deribit's limits for one account tier, and a credit table for the client's bucket."""

    tier: int = 4

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ConfigError("tier", self.tier, f"a Deribit account tier: {', '.join(map(str, TIERS))}")

    def limit(self, method: str) -> Limit:
        """The limit that applies to `method` on its own."""
        if method in SPECIAL:
            return SPECIAL[method]
        return TIERS[self.tier] if method in MATCHING_ENGINE else NON_MATCHING

    def cost(self, method: str) -> float:
        """Credits a request takes from the client's single bucket (see the module doc)."""
        limit = self.limit(method)
        wanted = max(NON_MATCHING_CAPACITY / limit.burst, NON_MATCHING_REFILL / limit.rate)
        return min(wanted, NON_MATCHING_CAPACITY)

    def table(self) -> dict[str, float]:
        """{method: credits} for every method with its own cost, "*" for the rest (non-matching)."""
        named = {m: self.cost(m) for m in sorted(MATCHING_ENGINE | set(SPECIAL))}
        return {**named, "*": NON_MATCHING_COST}

    def rate_limit(
        self, *, shared_dir: str | Path | None = None, shared_name: str = "deribit", max_queue: int = 1000
    ) -> RateLimit:
        """The client's bucket: Deribit's non-matching bucket, charging each method by `cost`."""
        return RateLimit(
            capacity=NON_MATCHING_CAPACITY,
            refill_per_s=NON_MATCHING_REFILL,
            cost=self.table(),
            max_queue=max_queue,
            shared_dir=shared_dir,
            shared_name=shared_name,
        )
