"""Deribit's request limits, as the client's limiter buckets."""

from __future__ import annotations

import pytest
from deribit.spec import all_methods, method_tags

from feeder.core.ratelimit import cost_function
from feeder.errors import BadMessage, ConfigError
from feeder.exchanges.deribit.costs import HEADROOM, MATCHING_ENGINE, SPECIAL, TIERS, DeribitCosts, Limit
from feeder.sim.ratelimit import LIMITS


def test_matching_engine_methods_are_exactly_those_the_official_spec_tags_so():
    tagged = {m for m in all_methods() if "Matching Engine" in method_tags(m)}
    assert tagged == MATCHING_ENGINE


def test_non_matching_requests_cost_500_credits_of_a_50000_bucket_refilled_at_10000_per_s_with_headroom():
    limit = DeribitCosts().rate_limit()
    cost = cost_function(limit.cost)
    assert (limit.capacity, limit.refill_per_s) == (HEADROOM * 50_000, HEADROOM * 10_000)
    assert cost("public/get_time") == cost("private/get_positions") == 500


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_orders_draw_from_a_matching_bucket_sized_by_the_account_tier(tier):
    costs = DeribitCosts(tier)
    assert costs.cost("private/buy") == ("matching", 1.0)
    assert costs.rate_limit().buckets["matching"] == (
        HEADROOM * TIERS[tier].burst,
        HEADROOM * TIERS[tier].rate,
    )


def test_lowest_tier_orders_allow_bursts_of_20_and_at_most_5_per_second():
    assert DeribitCosts(4).buckets()["matching"] == (HEADROOM * 20.0, HEADROOM * 5.0)


def test_subscriptions_and_get_instruments_have_their_own_buckets():
    costs = DeribitCosts()
    assert costs.cost("public/subscribe") == costs.cost("private/unsubscribe") == ("subscribe", 1.0)
    assert costs.cost("public/get_instruments") == ("instruments", 1.0)
    assert costs.buckets()["subscribe"] == (HEADROOM * 10.0, HEADROOM * 3.0)
    assert SPECIAL["public/get_instruments"] == Limit(0.1, 5.0)


def test_the_buckets_are_no_looser_than_the_simulators_model_of_deribit():
    costs = DeribitCosts(4)
    for name, (capacity, refill) in costs.buckets().items():
        cost, sim_capacity, sim_refill = LIMITS[name]
        assert capacity <= sim_capacity / cost and refill <= sim_refill / cost, name


def test_unknown_tier_is_a_config_error():
    with pytest.raises(ConfigError, match="tier"):
        DeribitCosts(7)


def test_a_shared_bucket_names_its_directory(tmp_path):
    limit = DeribitCosts().rate_limit(shared_dir=tmp_path)
    assert limit.shared_dir == tmp_path and limit.shared_name == "deribit"


# --- limits from the account ---------------------------------------------------------------------------

ACCOUNT_LIMITS = {  # the shape of private/get_account_summary's `limits` (openapi.json's example)
    "limits_per_currency": False,
    "non_matching_engine": {"burst": 1500, "rate": 1000},
    "matching_engine": {
        "trading": {"total": {"burst": 250, "rate": 200}},
        "cancel_all": {"burst": 250, "rate": 200},
    },
}


def test_the_account_limits_replace_the_tier_and_say_so():
    costs = DeribitCosts.from_account(ACCOUNT_LIMITS, fallback_tier=4)
    assert costs.source == "account" and DeribitCosts(tier=3).source == "tier 3"
    assert costs.limit("private/buy") == Limit(200.0, 250.0)
    assert costs.limit("public/get_order_book") == Limit(1000.0, 1500.0)
    assert costs.buckets()["matching"] == (HEADROOM * 250, HEADROOM * 200)
    rl = costs.rate_limit()
    assert (rl.capacity, rl.refill_per_s) == (HEADROOM * 1500 * 500, HEADROOM * 1000 * 500)
    assert costs.figures() == {
        "source": "account",
        "matching": {"rate": 200.0, "burst": 250.0},
        "non_matching": {"rate": 1000.0, "burst": 1500.0},
    }


def test_without_account_limits_the_tier_gives_the_same_buckets_as_before():
    rl = DeribitCosts(tier=4).rate_limit()
    assert (rl.capacity, rl.refill_per_s) == (HEADROOM * 50_000, HEADROOM * 10_000)


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        (None, "limits"),
        ({**ACCOUNT_LIMITS, "matching_engine": {}}, "limits.matching_engine.trading.total"),
        (
            {**ACCOUNT_LIMITS, "non_matching_engine": {"rate": "20", "burst": 100}},
            "limits.non_matching_engine.rate",
        ),
        (
            {**ACCOUNT_LIMITS, "non_matching_engine": {"rate": 20, "burst": 0}},
            "limits.non_matching_engine.burst",
        ),
    ],
)
def test_malformed_account_limits_are_refused_naming_the_field(limits, field):
    with pytest.raises(BadMessage) as refused:
        DeribitCosts.from_account(limits)
    assert refused.value.field == field
