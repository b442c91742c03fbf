"""Deribit's request limits, as the client's limiter buckets."""

from __future__ import annotations

import pytest
from deribit.spec import all_methods, method_tags

from feeder.core.ratelimit import cost_function
from feeder.errors import ConfigError
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
