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

The limits in force come from the account when it can tell: `private/get_account_summary` answers them
in `limits` (`non_matching_engine` and `matching_engine.trading.total`, each {rate, burst} in requests),
and `from_account` turns that into a `DeribitCosts`; the configured `tier` is only the fallback
(`source` says which one is in force).

`DeribitCosts.rate_limit()` gives the connection client the same buckets Deribit keeps, at `HEADROOM`
(90 %) of their size and refill rate: requests reach the exchange with varying delays, so a client that
spends credits exactly as fast as they refill would now and then arrive early and get 10028: the
non-matching bucket in credits (500 per request), and one bucket per separately limited class counted
in requests (capacity = burst, refill = rate): `matching` for the account's tier, `subscribe`,
`instruments`. The client's queue is one FIFO across buckets, so orders are never overtaken. Pass
`shared_dir` so every worker of a feeder draws from the same buckets (the limits are per account, not
per connection).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from feeder.client import RateLimit
from feeder.core.ratelimit import Charge
from feeder.errors import BadMessage, ConfigError


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


HEADROOM = 0.9


@dataclass(frozen=True)
class DeribitCosts:
    """Deribit's limits for one account (its own, or its tier's), and a credit table for the client's bucket."""

    tier: int = 4
    matching: Limit | None = None  # the account's matching-engine limit; None: the tier's
    non_matching: Limit | None = None  # the account's non-matching limit; None: Deribit's default

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ConfigError("tier", self.tier, f"a Deribit account tier: {', '.join(map(str, TIERS))}")

    @classmethod
    def from_account(cls, limits: Any, fallback_tier: int = 4) -> DeribitCosts:
        """The limits of a `private/get_account_summary` result's `limits`; BadMessage naming the field."""
        if type(limits) is not dict:
            raise BadMessage("limits", limits, "an object (private/get_account_summary's limits)")
        engine = limits.get("matching_engine")
        trading = engine.get("trading") if type(engine) is dict else None
        total = trading.get("total") if type(trading) is dict else None
        return cls(
            fallback_tier,
            matching=_limit(total, "limits.matching_engine.trading.total"),
            non_matching=_limit(limits.get("non_matching_engine"), "limits.non_matching_engine"),
        )

    @property
    def source(self) -> str:
        """Where the limits in force come from: the account, or the configured tier."""
        return "account" if self.matching is not None else f"tier {self.tier}"

    def matching_limit(self) -> Limit:
        return self.matching or TIERS[self.tier]

    def non_matching_limit(self) -> Limit:
        return self.non_matching or NON_MATCHING

    def limit(self, method: str) -> Limit:
        """The limit that applies to `method` on its own."""
        if method in SPECIAL:
            return SPECIAL[method]
        return self.matching_limit() if method in MATCHING_ENGINE else self.non_matching_limit()

    def cost(self, method: str) -> Charge:
        """What a request takes: (bucket, 1 request) for a separately limited class, else 500 credits."""
        bucket = _BUCKETS.get(method) or ("matching" if method in MATCHING_ENGINE else None)
        return (bucket, 1.0) if bucket else NON_MATCHING_COST

    def buckets(self) -> dict[str, tuple[float, float]]:
        """{bucket: (capacity, refill per second)} of the separately limited classes, in requests."""
        limits = {"matching": self.matching_limit(), **{name: SPECIAL[m] for m, name in _BUCKETS.items()}}
        return {name: (HEADROOM * lim.burst, HEADROOM * lim.rate) for name, lim in limits.items()}

    def rate_limit(
        self, *, shared_dir: str | Path | None = None, shared_name: str = "deribit", max_queue: int = 1000
    ) -> RateLimit:
        """The client's limiter: Deribit's non-matching credit bucket plus the per-class buckets."""
        non = self.non_matching_limit()
        return RateLimit(
            capacity=HEADROOM * non.burst * NON_MATCHING_COST,
            refill_per_s=HEADROOM * non.rate * NON_MATCHING_COST,
            cost=self.cost,
            buckets=self.buckets(),
            max_queue=max_queue,
            shared_dir=shared_dir,
            shared_name=shared_name,
        )

    def figures(self) -> dict[str, Any]:
        """What is in force, for status: source, and each limit as requests per second and burst."""
        return {
            "source": self.source,
            "matching": vars(self.matching_limit()),
            "non_matching": vars(self.non_matching_limit()),
        }


def _limit(value: Any, field: str) -> Limit:
    if type(value) is not dict:
        raise BadMessage(field, value, "an object {rate, burst}")
    for key in ("rate", "burst"):
        number = value.get(key)
        if (type(number) is not float and type(number) is not int) or not 0 < number < float("inf"):
            raise BadMessage(f"{field}.{key}", number, "a number of requests > 0")
    return Limit(float(value["rate"]), float(value["burst"]))


# methods limited on their own, and the bucket that counts them
_BUCKETS: Mapping[str, str] = MappingProxyType(
    {**{m: "subscribe" for m in SPECIAL if "subscribe" in m}, "public/get_instruments": "instruments"}
)
